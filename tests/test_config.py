import json

import pytest

from lewm.config import Config, ConfigError, apply_overrides, preset


def test_presets_are_data_with_valid_values():
    for name in ("paper", "cpu", "tiny"):
        cfg = preset(name)
        assert Config.from_dict(cfg.to_dict()) == cfg
    assert preset("paper").model.encoder.kind == "vit"
    assert preset("cpu").model.encoder.image_size == 64


def test_overrides_coerce_types_and_revalidate():
    cfg = apply_overrides(
        preset("cpu"),
        [
            "train.lr=3e-4",
            "model.encoder.channels=16,32",
            "model.predictor.history=1",
            "train.precision=fp32",
        ],
    )
    assert cfg.train.lr == 3e-4 and cfg.model.encoder.channels == (16, 32)
    assert cfg.model.predictor.history == 1


@pytest.mark.parametrize(
    "override, match",
    [
        ("train.lr=-1", "train.lr must be > 0"),
        ("train.lr=abc", "expected float"),
        ("train.nope=1", "unknown config key 'train.nope'"),
        ("model.encoder.kind=resnet", "encoder.kind"),
        ("model.encoder.image_size=4", "image_size must be >= 8"),
        ("train.precision=fp8", "precision"),
        ("model.predictor.dropout=1.5", "dropout"),
        ("steps", "key.sub=value"),
    ],
)
def test_bad_config_values(override, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(preset("cpu"), [override])


def test_unknown_preset():
    with pytest.raises(ConfigError, match="available"):
        preset("huge")


def test_vit_patch_must_divide_image():
    with pytest.raises(ConfigError, match="multiple of"):
        apply_overrides(preset("paper"), ["model.encoder.patch_size=5"])


def test_a_kind_switch_on_the_command_line_keeps_the_presets_settings(capsys):
    from lewm.cli.main import main
    from lewm.models import PLDMConfig

    cfg = preset("tworoom-cpu", ["model.kind=pldm", "model.latent_dim=32"])
    assert isinstance(cfg.model, PLDMConfig)
    assert (cfg.model.latent_dim, cfg.model.predictor.history, cfg.model.encoder.image_size) == (
        32,
        1,
        64,
    )
    # without a kind switch: exactly the preset with the overrides on top
    assert preset("cpu", ["train.lr=3e-4"]) == apply_overrides(preset("cpu"), ["train.lr=3e-4"])
    # preset keys the new kind lacks are left out (tworoom-quick's CEM iterations for Adam)
    adam = preset("tworoom-quick", ["eval.solver.kind=adam"]).eval.solver
    assert adam.kind == "adam" and adam.num_samples == 100
    assert preset("tworoom-quick", ["eval.solver.kind=icem"]).eval.solver.iterations == 10
    assert main(["config", "--preset", "tworoom-cpu", "model.kind=pldm"]) == 0
    printed = json.loads(capsys.readouterr().out)["model"]
    assert printed["kind"] == "pldm" and printed["latent_dim"] == 64
    assert printed["loss"]["variance"] == 18.0
