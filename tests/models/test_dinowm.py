"""The frozen-encoder world model (DINO-WM style, lewm.models.dinowm): its encoder never
changes in training, a saved model loads without its source, each source and feature option
works, and bad settings are one clear error. (The generic contract: test_model_contract.py.)"""

import shutil
from pathlib import Path

import pytest
import torch

from lewm.config import apply_overrides, preset
from lewm.models import load
from lewm.models.pretrained import load_hf_vit
from lewm.training.trainer import train
from lewm.utils.config import ConfigError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "hf_vit"
STEPS = ["train.steps=3", "train.val_every=0", "train.ckpt_every=0", "train.batch_size=8"]


def _train(toy_h5, out, *overrides):
    cfg = preset("tiny", ["model.kind=dinowm", *overrides, *STEPS])  # the tiny sizes kept
    train(cfg, toy_h5, out, progress=False)
    return load(out)


def _frames(n=4, size=16):
    return torch.randint(
        0, 256, (1, n, size, size, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )


@pytest.mark.parametrize(
    ("features", "pool", "dim"),
    [("cls", 1, 16), ("mean", 1, 16), ("patches", 1, 64), ("patches", 2, 16)],
)
def test_hf_source_trains_the_predictor_only_and_loads_without_the_folder(
    toy_h5, tmp_path, features, pool, dim
):
    source = tmp_path / "dino"
    shutil.copytree(FIXTURES / "dinov2", source)
    model = _train(
        toy_h5,
        tmp_path / "run",
        f"model.source=hf:{source}",
        f"model.features={features}",
        f"model.patch_pool={pool}",
        "model.input_size=16",
    )  # 16 px = a 2x2 patch grid
    assert model.latent_dim == dim and model.config.source_config["model_type"] == "dinov2"
    ref = load_hf_vit(FIXTURES / "dinov2").state_dict()
    for name, value in model.encoder.net.state_dict().items():
        assert torch.equal(value, ref[name]), f"the frozen encoder changed: {name}"
    assert not any(p.requires_grad for p in model.encoder.parameters())
    counts = model.param_counts()
    assert counts["trainable"] == counts["total"] - counts["encoder"] > 0
    z = model.encode(_frames())
    shutil.rmtree(source)  # the source is gone: the checkpoint holds the encoder
    again = load(tmp_path / "run")
    torch.testing.assert_close(again.eval().encode(_frames()), z)
    assert z.shape == (1, 4, dim) and torch.isfinite(z).all()


def test_a_lewm_source_keeps_its_encoding(toy_h5, tmp_path):
    cfg = apply_overrides(preset("tiny"), STEPS)
    train(cfg, toy_h5, tmp_path / "lewm", progress=False)
    src = load(tmp_path / "lewm").eval()
    model = _train(toy_h5, tmp_path / "run", f"model.source=lewm:{tmp_path / 'lewm'}").eval()
    assert model.latent_dim == src.latent_dim
    assert not hasattr(model.encoder.net, "predictor")  # only the encoder and projector kept
    with torch.no_grad():
        torch.testing.assert_close(model.encode(_frames()), src.encode(_frames()))


def test_layer_norm_standardises_each_frames_features(toy_h5, tmp_path):
    raw = _train(toy_h5, tmp_path / "raw").eval()
    normed = _train(toy_h5, tmp_path / "normed", "model.feature_norm=layer").eval()
    with torch.no_grad():
        z_raw, z = raw.encode(_frames()), normed.encode(_frames())
    assert (z_raw.mean(-1).abs() > 1e-3).any()  # a CNN's features are not standardised
    torch.testing.assert_close(z.std(-1), torch.ones(1, 4), atol=0.05, rtol=0)
    torch.testing.assert_close(z.mean(-1), torch.zeros(1, 4), atol=1e-5, rtol=0)


def test_a_random_encoder_is_frozen_in_training_too(toy_h5, tmp_path):
    cfg = preset("tiny", ["model.kind=dinowm"])
    assert cfg.model.encoder.kind == "cnn" and cfg.model.encoder.image_size == 16
    torch.manual_seed(0)
    from lewm.models import build_model

    before = {k: v.clone() for k, v in build_model(cfg.model).encoder.state_dict().items()}
    model = _train(toy_h5, tmp_path / "run")
    after = model.encoder.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before), "BatchNorm or weights moved"
    model.train()
    assert not model.encoder.training  # train() leaves the frozen encoder in eval mode


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.source=hf:"], "model.source must be one of"),
        (["model.source=dino"], "model.source must be one of"),
        (["model.features=patches"], "needs patch tokens: only an hf:FOLDER source"),
        (["model.features=max"], "model.features must be one of"),
        (["model.patch_pool=0"], "model.patch_pool must be >= 1"),
        (["model.feature_norm=batch"], "model.feature_norm must be one of"),
        (["model.input_size=4"], "model.input_size must be 0"),
    ],
)
def test_bad_settings_are_one_config_error(overrides, message):
    with pytest.raises(ConfigError, match=message):
        preset("tiny", ["model.kind=dinowm", *overrides])


def test_sources_that_cannot_be_built_say_why(tmp_path):
    from lewm.models import build_model
    from lewm.models.checkpoint import CheckpointError

    def build(*o):
        return build_model(preset("tiny", ["model.kind=dinowm", *o]).model)

    with pytest.raises(CheckpointError, match="does not exist"):
        build(f"model.source=hf:{tmp_path / 'none'}")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        build(f"model.source=lewm:{tmp_path / 'none'}")
    with pytest.raises(ConfigError, match="patch_pool 2 must divide the 3x3 patch grid"):
        build(
            f"model.source=hf:{FIXTURES / 'dinov2'}", "model.features=patches", "model.patch_pool=2"
        )
    with pytest.raises(ConfigError, match="input_size 20 must be a multiple of the source's patch"):
        build(f"model.source=hf:{FIXTURES / 'dinov2'}", "model.input_size=20")


def _patch_model(toy_h5, tmp_path, *overrides):
    return _train(
        toy_h5,
        tmp_path / "run",
        f"model.source=hf:{FIXTURES / 'dinov2'}",
        "model.features=patches",
        "model.input_size=16",  # a 2x2 grid of 16-wide patches: latent 64
        "model.predictor_tokens=patch",
        *overrides,
    )


def test_patch_tokens_attend_within_a_frame_and_causally_across_frames(toy_h5, tmp_path):
    from lewm.models.dinowm import PatchPredictor

    model = _patch_model(toy_h5, tmp_path).eval()
    assert isinstance(model.predictor, PatchPredictor) and model.latent_dim == 64
    assert (model.predictor.patches, model.predictor.width) == (4, 16)
    z = torch.randn(2, 3, 64, generator=torch.Generator().manual_seed(1))
    a = torch.randn(2, 3, model.action_block_dim, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        base = model.predict(z, model.embed_actions(a))  # (2, 3, 64)
        later = z.clone()
        later[:, 2] += 1.0  # the last frame changes: predictions from frames 0-1 must not
        out = model.predict(later, model.embed_actions(a))
        torch.testing.assert_close(out[:, :2], base[:, :2])
        assert (out[:, 2] - base[:, 2]).abs().max() > 1e-3
        one_patch = z.clone()
        one_patch[:, 0, :16] += 1.0  # patch 0 of frame 0: every patch of frame 0 sees it
        out = model.predict(one_patch, model.embed_actions(a)).view(2, 3, 4, 16)
        moved = (out - base.view(2, 3, 4, 16)).abs().amax(dim=(0, 3))  # (frames, patches)
        assert (moved > 1e-4).all()
    assert base.shape == (2, 3, 64) and torch.isfinite(base).all()


def test_patch_predictor_rolls_out_plans_saves_and_loads(toy_h5, tmp_path):
    model = _patch_model(toy_h5, tmp_path).eval()
    g = torch.Generator().manual_seed(3)
    z = torch.randn(2, 2, 64, generator=g)
    acts = torch.randn(2, 5, 4, model.action_block_dim, generator=g)
    hist = torch.randn(2, 1, model.action_block_dim, generator=g)
    with torch.no_grad():
        out = model.rollout(z, acts, hist)
        # by hand: the window grows, then slides; each step feeds back its prediction
        seq = z[:, None].expand(2, 5, 2, 64).reshape(10, 2, 64)
        blocks = torch.cat([hist[:, None].expand(2, 5, 1, -1), acts], 2).reshape(10, 5, -1)
        emb = model.embed_actions(blocks)
        for _ in range(4):
            n = seq.shape[1]
            lo = max(0, n - model.history)
            nxt = model.predict(seq[:, lo:], emb[:, lo:n])[:, -1]
            seq = torch.cat([seq, nxt[:, None]], 1)
        torch.testing.assert_close(out, seq[:, 2:].reshape(2, 5, 4, 64))
        again = load(tmp_path / "run").eval()
        torch.testing.assert_close(again.rollout(z, acts, hist), out)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.predictor_tokens=pixel"], "model.predictor_tokens must be one of"),
        (["model.predictor_tokens=patch"], "needs model.features=patches"),
    ],
)
def test_patch_tokens_need_patch_features(overrides, message):
    with pytest.raises(ConfigError, match=message):
        preset("tiny", ["model.kind=dinowm", *overrides])
