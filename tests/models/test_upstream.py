"""The authors' checkpoint format (lewm.models.upstream): import against references computed by
their own code (tests/fixtures/upstream, see its README), both config forms and both ViT key
namings, strictness, and export + round trip."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lewm.cli.main import main
from lewm.data.normalize import Normalizer
from lewm.models import CheckpointError, EncoderConfig, LeWM, LeWMConfig, PredictorConfig, load
from lewm.models.upstream import (
    MASK_TOKEN,
    compare_outputs,
    export_upstream,
    import_upstream,
    is_upstream_checkpoint,
    parse_upstream_config,
    read_upstream_weights,
    reference_outputs,
    to_upstream_state_dict,
    upstream_config,
    upstream_key,
)
from lewm.planning.objective import GoalCost

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "upstream"
FOLDERS = {
    "transformers-5": FIXTURES / "swm-transformers5",
    "transformers-4": FIXTURES / "swm-transformers4",
}
TOL = 1e-5  # max |ours - theirs| / max(1, max |theirs|)


def _copy(folder: Path, tmp_path: Path, name: str = "ck") -> Path:
    dst = tmp_path / name
    shutil.copytree(folder, dst)
    (dst / "reference.pt").unlink()
    return dst


def _write_config(folder: Path, cfg: dict) -> None:
    (folder / "config.json").write_text(json.dumps(cfg))


def _config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "weights.pt", weights_only=True)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max()) / max(1.0, float(b.abs().max()))


def _strip_targets(x):
    """The plain form of le-wm's README: the same sections without ``_target_``/``norm_fn``."""
    if isinstance(x, dict):
        return {k: _strip_targets(v) for k, v in x.items() if k not in ("_target_", "norm_fn")}
    return x


# -- against the authors' own outputs ---------------------------------------------------------


@pytest.mark.parametrize("naming", list(FOLDERS))
def test_import_reproduces_the_authors_outputs(naming):
    folder = FOLDERS[naming]
    model = import_upstream(folder)
    assert model.metadata["imported_from"]["vit_key_names"] == naming
    assert model.frameskip == 5 and model.action_dim == 2
    ref = torch.load(folder / "reference.pt", weights_only=True)
    d, theirs = ref["inputs"], ref["outputs"]
    ours = reference_outputs(model, d)  # their encode takes normalised frames: the same tensor
    diffs = compare_outputs(ours, theirs)
    assert set(diffs) == {"z", "z_goal", "act_emb", "pred", "rollout", "cost"}
    assert max(diffs.values()) <= TOL, diffs
    # the fast rollout equals the plain window loop, and CEM's cost is lewm's planning cost
    with torch.inference_mode():
        slow = model.rollout_reference(ours["z"], d["cand"], d["hist"])
        cost = GoalCost()(ours["rollout"], ours["z_goal"])
    assert _rel(slow, theirs["rollout"]) <= TOL
    assert _rel(cost, theirs["cost"]) <= TOL
    # the reference is not trivial: candidates are told apart
    assert float(theirs["cost"].std()) > 1e-3


def test_both_namings_hold_the_same_keys_under_other_names():
    w5, w4 = _weights(FOLDERS["transformers-5"]), _weights(FOLDERS["transformers-4"])
    assert any(k.startswith("encoder.layers.0.attention.q_proj") for k in w5)
    assert any(k.startswith("encoder.encoder.layer.0.attention.attention.query") for k in w4)
    assert len(w5) == len(w4)


@pytest.mark.parametrize("naming", list(FOLDERS))
def test_export_of_an_import_gives_back_the_authors_file(naming):
    """Import then export (same naming) reproduces their weights.pt tensor for tensor."""
    folder = FOLDERS[naming]
    model = import_upstream(folder)
    back = to_upstream_state_dict(model, "v5" if naming == "transformers-5" else "v4")
    theirs = _weights(folder)
    assert back.keys() == theirs.keys()
    for k in theirs:
        assert torch.equal(back[k], theirs[k]), k
    # and the config describes the same model
    again = parse_upstream_config(upstream_config(model.config)).config
    assert again == model.config


# -- config forms ------------------------------------------------------------------------------


def test_plain_form_and_le_wm_targets_build_the_same_model(tmp_path):
    folder = FOLDERS["transformers-5"]
    base = import_upstream(folder)
    hydra = _config(folder)
    plain = _strip_targets(hydra)
    wrapped = {"model": {**plain, "embed_dim": 16, "history_size": 3}}
    le_wm = copy.deepcopy(hydra)
    le_wm["_target_"] = "jepa.JEPA"
    le_wm["predictor"]["_target_"] = "module.ARPredictor"
    le_wm["action_encoder"]["_target_"] = "module.Embedder"
    le_wm["projector"]["_target_"] = le_wm["pred_proj"]["_target_"] = "module.MLP"
    for i, cfg in enumerate([plain, wrapped, le_wm]):
        ck = _copy(folder, tmp_path, f"ck{i}")
        _write_config(ck, cfg)
        model = import_upstream(ck)
        assert model.config == base.config
        for k, v in base.state_dict().items():
            assert torch.equal(model.state_dict()[k], v), k


def test_unknown_keys_are_accepted_and_reported(tmp_path):
    ck = _copy(FOLDERS["transformers-5"], tmp_path)
    cfg = _config(ck)
    cfg["wandb_run"] = "abc"
    cfg["predictor"]["some_new_option"] = True
    cfg["encoder"]["hidden_dropout_prob"] = 0.0
    cfg["predictor"]["emb_dropout"] = 0.2
    _write_config(ck, cfg)
    model = import_upstream(ck)
    ignored = model.metadata["imported_from"]["ignored_config_keys"]
    assert "model.wandb_run" in ignored and "predictor.some_new_option" in ignored
    assert any(i.startswith("predictor.emb_dropout=0.2") for i in ignored)


def test_missing_input_dim_is_read_from_the_weights(tmp_path):
    ck = _copy(FOLDERS["transformers-5"], tmp_path)
    cfg = _config(ck)
    cfg["action_encoder"]["input_dim"] = "???"
    _write_config(ck, cfg)
    assert import_upstream(ck).action_block_dim == 10


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["predictor"].__setitem__("hidden_dim", 32), "predictor.hidden_dim = 32"),
        (lambda c: c["encoder"].__setitem__("hidden_act", "relu"), "encoder.hidden_act"),
        (lambda c: c["encoder"].__setitem__("layer_norm_eps", 1e-6), "encoder.layer_norm_eps"),
        (
            lambda c: c["projector"].__setitem__("norm_fn", {"_target_": "torch.nn.LayerNorm"}),
            "projector.norm_fn",
        ),
        (lambda c: c.__setitem__("_target_", "stable_worldmodel.wm.pldm.PLDM"), "not the authors'"),
        (lambda c: c["predictor"].__setitem__("depth", "${depth}"), "unresolved Hydra value"),
        (lambda c: c["predictor"].__setitem__("depth", 2.5), "predictor.depth must be an integer"),
        (lambda c: c.pop("pred_proj"), "no pred_proj section"),
        (lambda c: c.pop("encoder"), "no encoder section"),
        (lambda c: c["pred_proj"].__setitem__("hidden_dim", 64), "share one width"),
        (lambda c: c["encoder"].__setitem__("size", "gigantic"), "encoder.size 'gigantic'"),
        (lambda c: c["action_encoder"].__setitem__("emb_dim", 8), "action_encoder.emb_dim = 8"),
    ],
)
def test_settings_lewm_cannot_reproduce_are_one_clear_error(tmp_path, edit, message):
    ck = _copy(FOLDERS["transformers-5"], tmp_path)
    cfg = _config(ck)
    edit(cfg)
    _write_config(ck, cfg)
    with pytest.raises(CheckpointError, match=message):
        import_upstream(ck)


def test_a_config_describing_another_size_names_the_tensor(tmp_path):
    ck = _copy(FOLDERS["transformers-5"], tmp_path)
    cfg = _config(ck)
    cfg["predictor"]["mlp_dim"] = 64
    _write_config(ck, cfg)
    with pytest.raises(
        CheckpointError, match=r"mlp\.net\.1\.weight has shape \(32, 16\).*\(64, 16\)"
    ):
        import_upstream(ck)
    cfg["predictor"]["mlp_dim"] = 32
    cfg["predictor"]["depth"] = 3  # a block the file does not hold
    _write_config(ck, cfg)
    with pytest.raises(CheckpointError, match="no tensor predictor.transformer.layers.2"):
        import_upstream(ck)
    cfg["predictor"]["depth"] = 1  # a block the model has no place for
    _write_config(ck, cfg)
    with pytest.raises(CheckpointError, match="no place for.*layers.1"):
        import_upstream(ck)


# -- weights.pt --------------------------------------------------------------------------------


def _edit_weights(ck: Path, fn) -> None:
    w = _weights(ck)
    out = fn(w)  # edits w in place, or returns a new object to save
    torch.save(out if isinstance(out, dict | list) else w, ck / "weights.pt")


def test_every_tensor_must_be_used_and_present(tmp_path):
    ck = _copy(FOLDERS["transformers-5"], tmp_path)
    _edit_weights(ck, lambda w: w.__setitem__("extra.thing", torch.zeros(3)))
    with pytest.raises(CheckpointError, match=r"no place for: \['extra.thing'\]"):
        import_upstream(ck)
    ck = _copy(FOLDERS["transformers-5"], tmp_path, "ck2")
    _edit_weights(ck, lambda w: w.pop("predictor.transformer.norm.weight"))
    with pytest.raises(CheckpointError, match="no tensor predictor.transformer.norm.weight"):
        import_upstream(ck)


def test_nan_weights_and_mixed_namings_are_refused(tmp_path):
    ck = _copy(FOLDERS["transformers-5"], tmp_path)
    _edit_weights(ck, lambda w: w["pred_proj.net.0.weight"].view(-1)[0].fill_(float("nan")))
    with pytest.raises(CheckpointError, match="pred_proj.net.0.weight holds NaN"):
        import_upstream(ck)
    ck = _copy(FOLDERS["transformers-5"], tmp_path, "mixed")
    v4 = _weights(FOLDERS["transformers-4"])

    def mix(w):
        layer0 = {k: v for k, v in v4.items() if k.startswith("encoder.encoder.layer.0.")}
        w = {k: v for k, v in w.items() if not k.startswith("encoder.layers.0.")}
        return {**w, **layer0}

    _edit_weights(ck, mix)
    with pytest.raises(CheckpointError, match="mixes transformers 4.x and 5.x"):
        import_upstream(ck)


def test_wrapped_and_prefixed_state_dicts_and_half_precision(tmp_path):
    base = import_upstream(FOLDERS["transformers-5"])
    ck = _copy(FOLDERS["transformers-5"], tmp_path)
    _edit_weights(ck, lambda w: {"state_dict": {f"model.{k}": v for k, v in w.items()}})
    assert torch.equal(
        import_upstream(ck).state_dict()["predictor.pos_embedding"],
        base.state_dict()["predictor.pos_embedding"],
    )
    ck = _copy(FOLDERS["transformers-5"], tmp_path, "bf16")
    _edit_weights(
        ck, lambda w: {k: v.bfloat16() if v.is_floating_point() else v for k, v in w.items()}
    )
    m = import_upstream(ck)
    assert m.state_dict()["predictor.pos_embedding"].dtype == torch.float32


def test_pickled_objects_and_truncated_files_are_refused(tmp_path):
    ck = _copy(FOLDERS["transformers-5"], tmp_path)
    torch.save({"weights": _weights(ck), "opt": Normalizer()}, ck / "weights.pt")
    with pytest.raises(CheckpointError, match="weights_only=True"):
        read_upstream_weights(ck / "weights.pt")
    data = (FOLDERS["transformers-5"] / "weights.pt").read_bytes()
    (ck / "weights.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        import_upstream(ck)
    torch.save([1, 2, 3], ck / "weights.pt")
    with pytest.raises(CheckpointError, match="no state_dict"):
        import_upstream(ck)


def test_mask_token_is_dropped_only_when_the_config_has_one(tmp_path):
    ck = _copy(FOLDERS["transformers-5"], tmp_path)
    _edit_weights(ck, lambda w: w.__setitem__(MASK_TOKEN, torch.zeros(1, 1, 24)))
    with pytest.raises(CheckpointError, match="mask_token"):
        import_upstream(ck)  # config says use_mask_token: false
    cfg = _config(ck)
    del cfg["encoder"]["use_mask_token"]  # vit_hf's default: a mask token
    _write_config(ck, cfg)
    import_upstream(ck)


def test_frameskip_splits_the_action_block(tmp_path):
    m = import_upstream(FOLDERS["transformers-5"], frameskip=2)
    assert (m.frameskip, m.action_dim) == (2, 5)
    assert m.metadata["imported_from"]["frameskip_assumed"] is False
    with pytest.raises(CheckpointError, match="not a multiple of frameskip 3"):
        import_upstream(FOLDERS["transformers-5"], frameskip=3)


def test_folder_forms(tmp_path):
    ck = _copy(FOLDERS["transformers-5"], tmp_path)
    (ck / "weights.pt").rename(ck / "weights_epoch_3.pt")
    import_upstream(ck)  # one .pt file
    import_upstream(ck / "weights_epoch_3.pt")  # the file itself
    shutil.copy(ck / "weights_epoch_3.pt", ck / "weights_epoch_4.pt")
    with pytest.raises(CheckpointError, match="2 .pt files"):
        import_upstream(ck)
    (ck / "config.json").unlink()
    with pytest.raises(CheckpointError, match="no config.json"):
        import_upstream(ck / "weights_epoch_4.pt")
    assert is_upstream_checkpoint(FOLDERS["transformers-4"])
    assert not is_upstream_checkpoint(tmp_path)


def test_lewm_load_on_an_authors_folder_says_how_to_convert():
    with pytest.raises(CheckpointError, match="lewm import"):
        load(FOLDERS["transformers-5"])


# -- export ------------------------------------------------------------------------------------


def _vit_model(seed: int = 0) -> LeWM:
    torch.manual_seed(seed)
    cfg = LeWMConfig(
        latent_dim=16,
        projector_hidden=32,
        action_dim=3,
        frameskip=2,
        action_smooth_dim=6,
        action_hidden=48,
        encoder=EncoderConfig(
            kind="vit", image_size=28, width=24, patch_size=14, depth=2, heads=2, mlp_dim=40
        ),
        predictor=PredictorConfig(history=2, depth=1, heads=2, head_dim=8, mlp_dim=32),
    )
    model = LeWM(cfg)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.randn(t.shape) * 0.05)
    model.normalizer = Normalizer.fit({"action": np.random.default_rng(0).normal(size=(50, 3))})
    model.metadata = {"env": "toy", "step": 12}
    return model.eval()


@pytest.mark.parametrize("naming", ["v5", "v4"])
def test_export_import_round_trip(tmp_path, naming):
    model = _vit_model()
    out = export_upstream(model, tmp_path / "up", vit_naming=naming)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "lewm.json", "weights.pt"]
    cfg = _config(out)
    assert cfg["_target_"] == "stable_worldmodel.wm.lewm.LeWM"
    assert cfg["action_encoder"]["input_dim"] == 6
    assert cfg["encoder"]["intermediate_size"] == 40  # not a named ViT size: explicit fields
    back = import_upstream(out)
    assert back.config == model.config
    for k, v in model.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    assert back.normalizer.to_dict() == model.normalizer.to_dict()
    assert back.metadata["env"] == "toy"
    assert back.metadata["imported_from"]["frameskip"] == 2
    # without the sidecar (what the authors' own files look like) the frameskip must be given
    (out / "lewm.json").unlink()
    with pytest.raises(CheckpointError, match="not a multiple of frameskip 5"):
        import_upstream(out)
    assert import_upstream(out, frameskip=2).config == model.config


def test_export_names_a_paper_size_encoder_by_size():
    from lewm.config import preset

    cfg = upstream_config(preset("paper").model)
    assert cfg["encoder"]["size"] == "tiny" and "hidden_size" not in cfg["encoder"]
    assert cfg["encoder"]["patch_size"] == 14 and cfg["encoder"]["image_size"] == 224


def test_export_refuses_what_their_code_cannot_hold_and_keeps_folders(tmp_path):
    from lewm.models.lewm import tiny_config

    with pytest.raises(CheckpointError, match="ViT encoder"):
        export_upstream(LeWM(tiny_config()), tmp_path / "cnn")
    assert not (tmp_path / "cnn").exists()
    model = _vit_model()
    export_upstream(model, tmp_path / "up")
    with pytest.raises(FileExistsError):
        export_upstream(model, tmp_path / "up")
    export_upstream(_vit_model(1), tmp_path / "up", overwrite=True)
    (tmp_path / "up" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"):
        export_upstream(model, tmp_path / "up", overwrite=True)
    assert (tmp_path / "up" / "notes.txt").read_text() == "mine"


def test_every_key_has_one_upstream_name():
    model = _vit_model()
    for naming in ("v5", "v4"):
        names = [upstream_key(k, naming) for k in model.state_dict()]
        assert len(set(names)) == len(names)


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_import_with_data_then_export(tmp_path, capsys):
    from lewm.data.hdf5 import EpisodeDataset
    from lewm.data.synthetic import make_toy_dataset

    data = tmp_path / "toy.h5"
    make_toy_dataset(data, episodes=3, length=12, resolution=28)
    ck = tmp_path / "ck"
    assert (
        main(["import", str(FOLDERS["transformers-4"]), "--out", str(ck), "--data", str(data)]) == 0
    )
    model = load(ck)
    ds = EpisodeDataset(data)
    actions = np.asarray(ds.column("action"), np.float64)
    actions = actions[np.isfinite(actions).all(1)]
    np.testing.assert_allclose(model.normalizer.stats["action"][0], actions.mean(0), rtol=1e-5)
    np.testing.assert_allclose(model.normalizer.stats["action"][1], actions.std(0), rtol=1e-5)
    assert model.metadata["env"] == "toy-square"
    assert model.metadata["imported_from"]["vit_key_names"] == "transformers-4"
    # refused: an existing folder, a folder that is not lewm's, the source itself
    assert main(["import", str(FOLDERS["transformers-4"]), "--out", str(ck)]) == 2
    assert "already exists" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    assert main(["import", str(FOLDERS["transformers-4"]), "--out", str(other), "--overwrite"]) == 2
    assert "not a lewm checkpoint" in capsys.readouterr().err
    assert (other / "keep.txt").exists()
    # export: their folder again (5.x names by default)
    up = tmp_path / "up"
    assert main(["export", str(ck), "--out", str(up)]) == 0
    assert any(k.startswith("encoder.layers.") for k in _weights(up))
    assert main(["import", str(up), "--out", str(tmp_path / "ck2")]) == 0
    again = load(tmp_path / "ck2")
    for k, v in model.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k
    assert again.normalizer.to_dict() == model.normalizer.to_dict()


def test_an_imported_checkpoint_plans_in_lewm(tmp_path, capsys):
    """import --data on an episode file, then lewm eval plans with it (random weights of the
    authors' fixture: the plumbing is checked, not success)."""
    data, ck = tmp_path / "tr.h5", tmp_path / "ck"
    assert main(["collect", "tworoom", "--episodes", "3", "--out", str(data)]) == 0
    assert (
        main(["import", str(FOLDERS["transformers-5"]), "--out", str(ck), "--data", str(data)]) == 0
    )
    capsys.readouterr()
    args = ["eval", str(ck), "--env", "tworoom", "--data", str(data), "--episodes", "2"]
    args += ["--budget", "6", "--goal-offset", "6", "--samples", "8", "--iterations", "1"]
    args += ["--elites", "2", "--split", "all", "--no-progress"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["episodes"] == 2 and report["plans"] >= 2
