import pytest
import torch

from lewm.config import preset
from lewm.losses import LeWMObjective, SIGReg
from lewm.models import CheckpointError, LeWM


def _batch(cfg, B=4):
    s = cfg.model.encoder.image_size
    N = cfg.model.predictor.history
    px = torch.randint(0, 256, (B, N + 1, s, s, 3), dtype=torch.uint8)
    act = torch.randn(B, N, cfg.model.action_block_dim)
    return px, act


@pytest.mark.parametrize("name", ["tiny", "cpu", "paper"])
def test_shapes_for_presets(name):
    cfg = preset(name)
    model = LeWM(cfg.model)
    px, act = _batch(cfg, B=2)
    out = model(px, act)
    D, N = cfg.model.latent_dim, cfg.model.predictor.history
    assert out["z"].shape == (2, N + 1, D)
    assert out["pred"].shape == (2, N, D)
    model.eval()
    with torch.inference_mode():
        r = model.rollout(out["z"][:, :1], torch.randn(2, 7, 5, cfg.model.action_block_dim))
    assert r.shape == (2, 7, 5, D)


def test_paper_preset_parameter_split():
    counts = LeWM(preset("paper").model).param_counts()
    assert 15e6 <= counts["total"] <= 19e6 and counts["trainable"] == counts["total"]
    # exact split of the released architecture (paper.md section 1.5)
    assert counts["encoder"] == 5_501_376
    assert counts["predictor"] == 10_791_360
    assert counts["projector"] == counts["pred_projector"] == 792_768
    assert counts["action_encoder"] == 156_206


def test_vit_state_dict_keys_match_hf_vitmodel_names():
    keys = set(LeWM(preset("paper").model).encoder.state_dict())
    for k in [
        "embeddings.cls_token",
        "embeddings.position_embeddings",
        "embeddings.patch_embeddings.projection.weight",
        "encoder.layer.0.attention.attention.query.weight",
        "encoder.layer.11.attention.output.dense.bias",
        "encoder.layer.5.intermediate.dense.weight",
        "encoder.layer.5.output.dense.weight",
        "encoder.layer.3.layernorm_before.weight",
        "encoder.layer.3.layernorm_after.bias",
        "layernorm.weight",
    ]:
        assert k in keys
    assert len(keys) == 4 + 16 * 12 + 2


def test_vit_interpolates_positions_to_other_sizes():
    cfg = preset("paper").model
    enc = LeWM(cfg).encoder.eval()
    with torch.no_grad():
        assert enc(torch.randn(1, 3, 112, 112)).shape == (1, 192)


def test_gradients_reach_encoder_through_both_terms(tiny_config):
    model = LeWM(tiny_config.model)
    px, act = _batch(tiny_config, B=8)
    obj = LeWMObjective(1.0, SIGReg(num_proj=16))
    first_conv = model.encoder.convs[0].weight
    adaln = model.predictor.blocks[0].adaLN_modulation[1].weight
    for term in ("pred_loss", "sigreg"):
        model.zero_grad()
        out = model(px, act)
        obj(out["z"], out["pred"])[term].backward()
        assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0, term
        if term == "pred_loss":
            # the zero-initialised action modulation still receives gradient
            assert adaln.grad is not None and adaln.grad.abs().sum() > 0
        else:
            assert adaln.grad is None  # SIGReg sees only encoder latents


def test_adaln_zero_starts_as_identity(tiny_config):
    model = LeWM(tiny_config.model).eval()
    z = torch.randn(2, 3, tiny_config.model.latent_dim)
    a1, a2 = torch.randn(2, 3, 16), torch.randn(2, 3, 16)
    with torch.no_grad():
        h1 = model.predictor(z, a1)
        h2 = model.predictor(z, a2)
    assert torch.allclose(h1, h2)  # actions have no effect before training


def test_rollout_matches_manual_window(tiny_config):
    model = LeWM(tiny_config.model).eval()
    D, Ab = tiny_config.model.latent_dim, tiny_config.model.action_block_dim
    with torch.no_grad():
        for blk in model.predictor.blocks:  # make actions matter
            torch.nn.init.normal_(blk.adaLN_modulation[1].weight, std=0.1)
        zc = torch.randn(1, 2, D)
        hist = torch.randn(1, 1, Ab)
        acts = torch.randn(1, 1, 4, Ab)
        out = model.rollout(zc, acts, hist)[0, 0]
        seq = [zc[0, 0], zc[0, 1]]
        all_a = [hist[0, 0]] + list(acts[0, 0])
        for _ in range(4):
            lo = max(0, len(seq) - 3)
            z_in = torch.stack(seq[lo:])[None]
            a_in = model.embed_actions(torch.stack(all_a[lo : len(seq)]))[None]
            seq.append(model.predict(z_in, a_in)[0, -1])
        assert torch.allclose(out, torch.stack(seq[2:]), atol=1e-5)


def test_save_load_identical_outputs(tmp_path, tiny_config):
    model = LeWM(tiny_config.model)
    px, act = _batch(tiny_config)
    model(px, act)  # move BatchNorm running stats off their init
    model.eval()
    model.metadata = {"note": "x"}
    path = model.save_pretrained(tmp_path / "ckpt")
    loaded = LeWM.from_pretrained(path)
    with torch.no_grad():
        a, b = model(px, act), loaded(px, act)
    assert torch.equal(a["z"], b["z"]) and torch.equal(a["pred"], b["pred"])
    assert loaded.metadata == {"note": "x"}
    with pytest.raises(FileExistsError):
        model.save_pretrained(path)


def test_bad_inputs_raise_clear_errors(tmp_path, tiny_config):
    model = LeWM(tiny_config.model)
    px, act = _batch(tiny_config)
    with pytest.raises(ValueError, match="uint8"):
        model.encode(px.float())
    with pytest.raises(ValueError, match=r"\(N, h, w, 3\)"):
        model.encode(px[..., :1])
    with pytest.raises(ValueError, match="action blocks have 4 values, the model expects 10"):
        model(px, act[..., :4])
    with pytest.raises(CheckpointError, match="does not exist"):
        LeWM.from_pretrained(tmp_path / "nope")
    (tmp_path / "bad").mkdir()
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        LeWM.from_pretrained(tmp_path / "bad")
    path = model.save_pretrained(tmp_path / "ok")
    (path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot read"):
        LeWM.from_pretrained(path)


def test_action_normalizer_round_trips_or_says_what_is_missing(tmp_path, tiny_config):
    import numpy as np

    from lewm.data.normalize import Normalizer

    model = LeWM(tiny_config.model)
    with pytest.raises(CheckpointError, match="no action normaliser"):
        model.action_normalizer()
    model.normalizer = Normalizer.fit({"proprio": np.ones((4, 2))})  # statistics, but not actions
    with pytest.raises(CheckpointError, match="no action normaliser"):
        model.action_normalizer()
    acts = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 2))
    model.normalizer = Normalizer.fit({"action": acts})
    loaded = LeWM.from_pretrained(model.save_pretrained(tmp_path / "ckpt"))
    z = loaded.action_normalizer().normalize("action", acts.astype(np.float32))
    assert abs(float(z.mean())) < 1e-5 and abs(float(z.std()) - 1.0) < 1e-3


def test_single_token_attention_fast_path_is_exact(tiny_config):
    from lewm.models.predictor import Attention

    attn = Attention(16, tiny_config.model.predictor).eval()
    x = torch.randn(5, 1, 16)
    with torch.no_grad():
        fast, kv = attn(x)
        assert kv is None  # nobody asked for keys/values
        q, k, v = attn.to_qkv(attn.norm(x)).view(5, 1, 3, 2, 8).permute(2, 0, 3, 1, 4)
        ref = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        ref = attn.to_out(ref.transpose(1, 2).reshape(5, 1, 16))
    assert torch.allclose(fast, ref, atol=1e-6)


@pytest.mark.parametrize("norm", ["batch", "group", "layer", "none"])
def test_cnn_encoder_norm_options(norm, tmp_path):
    from lewm.config import apply_overrides
    from lewm.models import build_model, load

    cfg = apply_overrides(preset("tiny"), [f"model.encoder.norm={norm}"]).model
    model = build_model(cfg)
    kinds = {type(m).__name__ for m in model.encoder.convs}
    expected = {"batch": "BatchNorm2d", "group": "GroupNorm", "layer": "GroupNorm"}.get(norm)
    assert (expected in kinds) if expected else not kinds & {"BatchNorm2d", "GroupNorm"}
    px = torch.randint(0, 256, (2, 3, 16, 16, 3), dtype=torch.uint8)
    model.train()
    z = model.encode(px)
    z.sum().backward()  # trains
    model.eval()
    model.save_pretrained(tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(load(tmp_path / "m").encode(px), model.encode(px))


def test_cnn_encoder_norm_errors_name_the_key():
    from lewm.config import apply_overrides
    from lewm.utils.config import ConfigError

    with pytest.raises(ConfigError, match="model.encoder.norm must be one of"):
        apply_overrides(preset("tiny"), ["model.encoder.norm=instance"])
    with pytest.raises(ConfigError, match="divisible by 8"):
        apply_overrides(
            preset("tiny"), ["model.encoder.norm=group", "model.encoder.channels=[4,8]"]
        )


def test_open_loop_training_rollout_is_the_planners_rollout(tiny_config):
    """forward(open_loop=True) rolls out from the clip's first frame alone: in eval mode its
    predictions equal rollout() from that frame with the clip's actions, steps 2..N."""
    model = LeWM(tiny_config.model).eval()
    N, Ab = model.history, tiny_config.model.action_block_dim
    with torch.no_grad():
        for blk in model.predictor.blocks:  # make actions matter
            torch.nn.init.normal_(blk.adaLN_modulation[1].weight, std=0.1)
        pixels = torch.randint(0, 256, (2, N + 1, 16, 16, 3), dtype=torch.uint8)
        blocks = torch.randn(2, N, Ab)
        out = model(pixels, blocks, open_loop=True)
        assert "pred_open" not in model(pixels, blocks)
        ref = model.rollout(out["z"][:, :1], blocks[:, None])[:, 0]  # (2, N, D)
    assert out["pred_open"].shape == (2, N - 1, tiny_config.model.latent_dim)
    assert torch.allclose(out["pred_open"], ref[:, 1:], atol=1e-5)
    assert torch.allclose(out["pred"][:, 0], ref[:, 0], atol=1e-5)
    # and it is not the teacher-forced prediction (which sees the true latents)
    assert not torch.allclose(out["pred_open"], out["pred"][:, 1:], atol=1e-3)


def test_open_loop_objective_term():
    z, pred, pred_open = torch.randn(4, 4, 8), torch.randn(4, 3, 8), torch.randn(4, 2, 8)
    plain = LeWMObjective(0.09, SIGReg(16, seed=0))(z, pred)
    both = LeWMObjective(0.09, SIGReg(16, seed=0), open_loop_weight=0.5)(z, pred, pred_open)
    expected = (pred_open - z[:, 2:]).pow(2).mean()
    assert torch.allclose(both["open_loop_loss"], expected)
    assert torch.allclose(both["loss"], plain["loss"] + 0.5 * expected)
    assert "open_loop_loss" not in plain
    with pytest.raises(ValueError, match="needs the model's open-loop rollout"):
        LeWMObjective(open_loop_weight=1.0)(z, pred)
    with pytest.raises(ValueError, match="open_loop_weight must be >= 0"):
        LeWMObjective(open_loop_weight=-1.0)
