"""Checkpoints are validated before use: a bad config.json, absurd sizes, weights that do not fit
the model, NaN weights and a wrong normaliser are each one CheckpointError naming the file (and
the key or tensor), raised before anything big is allocated and without touching a model."""

from __future__ import annotations

import json
import resource
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from lewm.data.normalize import Normalizer
from lewm.models import CheckpointError, LeWM, load
from lewm.models import checkpoint as ckpt_mod
from lewm.models.checkpoint import load_weights, read_config
from lewm.models.lewm import tiny_config
from lewm.models.registry import MODELS


@pytest.fixture
def saved(tmp_path):
    """A tiny LeWM checkpoint with an action normaliser; returns (model, folder)."""
    model = LeWM(tiny_config()).eval()
    model.normalizer = Normalizer.fit({"action": np.random.default_rng(0).normal(size=(20, 2))})
    return model, model.save_pretrained(tmp_path / "ckpt")


def _edit_config(path, edit):
    cfg = json.loads((path / "config.json").read_text())
    edit(cfg)
    (path / "config.json").write_text(json.dumps(cfg))


def _set(*keys, value):
    def edit(cfg):
        node = cfg
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value

    return edit


def test_a_saved_checkpoint_round_trips_with_its_normaliser(saved):
    model, path = saved
    loaded = load(path)
    px = torch.randint(0, 256, (2, 1, 16, 16, 3), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(loaded.encode(px), model.encode(px))
    a = np.ones((3, 2), np.float32)
    np.testing.assert_allclose(
        loaded.normalizer.normalize("action", a), model.normalizer.normalize("action", a)
    )


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda c: c.clear() or c.update({"x": 1}), "not a lewm checkpoint"),
        (_set("version", value=True), "version True"),
        (_set("version", value="2"), "version '2'"),
        (_set("model", value=[1, 2]), "'model' must be a mapping .* got a list"),
        (_set("metadata", value="notes"), "'metadata' must be a mapping .* got a string"),
        (_set("model", "kind", value=3), "model.kind must be a string"),
        (_set("model", "latent_dim", value=True), r"model\.latent_dim: expected an integer"),
        (_set("model", "latent_dim", value="16"), r"model\.latent_dim: expected an integer"),
        (_set("model", "latent_dim", value=16.5), r"model\.latent_dim: expected an integer"),
        (_set("model", "latent_dim", value=-1), r"model\.latent_dim must be >= 1"),
        (_set("model", "encoder", value="cnn"), r"model\.encoder: expected a mapping"),
        (_set("model", "encoder", "channels", value=["a"]), r"model\.encoder\.channels\[0\]"),
        (_set("model", "encoder", "channels", value=8), r"model\.encoder\.channels: expected"),
        (_set("model", "predictor", "dropout", value=float("nan")), "dropout is nan"),
        (_set("model", "encoder", "mean", value=[0.5, float("inf"), 0.5]), r"mean\[1\] is inf"),
        (_set("model", "nonsense", value=1), r"unknown config key.*model\.nonsense"),
        (_set("model", "kind", value="nope"), "unknown model.kind 'nope'"),
        # a CNN loads the same weights at any image size: a missing size must not default
        (
            lambda c: c["model"]["encoder"].pop("image_size"),
            r"model\.encoder\.image_size is missing",
        ),
        (lambda c: c["model"].pop("frameskip"), r"model\.frameskip is missing"),
    ],
)
def test_a_bad_config_is_one_checkpoint_error_naming_the_file_and_key(saved, edit, match):
    _, path = saved
    _edit_config(path, edit)
    with pytest.raises(CheckpointError, match=match) as info:
        load(path)
    assert str(path) in str(info.value)
    with pytest.raises(CheckpointError, match=match):
        read_config(path)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b"[1, 2, 3]", "must hold a JSON object, got a list"),
        (b"null", "must hold a JSON object, got null"),
        (b"[" * 100_000, "not valid JSON"),
    ],
)
def test_config_json_that_is_not_a_json_object_is_refused(saved, content, match):
    _, path = saved
    (path / "config.json").write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        load(path)


@pytest.mark.parametrize(
    "keys, value",
    [
        (("latent_dim",), 10**8),
        (("projector_hidden",), 10**9),
        (("encoder", "width"), 10**8),
        (("predictor", "depth"), 10**7),  # ten million layers: refused by the module count
        (("predictor", "mlp_dim"), 10**12),
    ],
)
def test_absurd_sizes_fail_fast_without_allocating(saved, keys, value):
    _, path = saved
    load(path)  # once in this process: PyTorch's one-time set-up of the meta device (~1 s)
    _edit_config(path, _set("model", *keys, value=value))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="config.json|model.safetensors") as info:
        load(path)
    seconds = time.perf_counter() - t0
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    assert seconds < 2.0, f"took {seconds:.1f} s"
    assert grown_mb < 200, f"peak memory grew by {grown_mb:.0f} MB"
    assert str(path) in str(info.value)


def test_a_model_larger_than_the_memory_bound_is_refused_naming_its_size(saved, monkeypatch):
    _, path = saved
    monkeypatch.setattr(ckpt_mod, "memory_bound", lambda: 10_000)  # bytes
    with pytest.raises(CheckpointError, match=r"needs .* GB .*parameters.*largest tensor"):
        load(path)


def test_a_huge_latent_dim_names_the_memory_it_would_need(saved):
    _, path = saved
    _edit_config(path, _set("model", "latent_dim", value=10**8))
    with pytest.raises(CheckpointError, match="half of this machine's memory") as info:
        load(path)
    assert "model.latent_dim" in str(info.value)  # says where to look


def test_memory_bound_is_half_the_physical_memory():
    import os

    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert ckpt_mod.memory_bound() == ram // 2


def test_config_and_weights_of_different_models_name_the_tensor_and_both_shapes(saved):
    _, path = saved
    _edit_config(path, _set("model", "projector_hidden", value=48))  # weights were saved at 32
    with pytest.raises(CheckpointError, match=r"tensor 'projector\.net\.0\.weight'") as info:
        load(path)
    msg = str(info.value)
    assert "[32, 32]" in msg and "[48, 32]" in msg and "model.safetensors" in msg


def test_missing_and_unexpected_tensors_are_named(saved):
    _, path = saved
    state = load_file(str(path / "model.safetensors"))
    state.pop("predictor.pos_embedding")
    state["extra.weight"] = torch.zeros(2)
    save_file(state, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="1 tensor.* missing") as info:
        load(path)
    assert "predictor.pos_embedding" in str(info.value) and "extra.weight" in str(info.value)


def test_load_weights_checks_shapes_from_the_header_and_leaves_the_model_alone(saved):
    _, path = saved
    other = LeWM(tiny_config())
    other_cfg = tiny_config()
    other_cfg.projector_hidden = 48
    mismatched = LeWM(other_cfg)
    before = {k: v.clone() for k, v in mismatched.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"tensor 'projector\.net\.0\.weight' has shape"):
        load_weights(mismatched, path)
    after = mismatched.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    load_weights(other, path)  # the matching model loads


def _poison(path, name="predictor.pos_embedding", value=float("nan")):
    state = load_file(str(path / "model.safetensors"))
    state[name][0, 0, 0] = value
    save_file(state, str(path / "model.safetensors"))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(saved, value):
    _, path = saved
    _poison(path, value=value)
    with pytest.raises(CheckpointError, match="'predictor.pos_embedding' holds NaN") as info:
        load(path)
    assert "diverged" in str(info.value) and "earlier checkpoint" in str(info.value)
    inspect = load(path, allow_nonfinite=True)  # callers that want to look at it may
    assert not torch.isfinite(inspect.predictor.pos_embedding).all()


def test_load_weights_refuses_non_finite_weights_before_touching_the_model(saved):
    model, path = saved
    _poison(path)
    target = LeWM(tiny_config())
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointError, match="diverged"):
        load_weights(target, path)
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())
    load_weights(target, path, allow_nonfinite=True)
    assert not torch.isfinite(target.predictor.pos_embedding).all()


def test_integer_buffers_are_not_checked_for_finiteness(saved):
    _, path = saved
    state = load_file(str(path / "model.safetensors"))
    assert any(not t.is_floating_point() for t in state.values())  # num_batches_tracked
    load(path)


@pytest.mark.parametrize(
    "content, match",
    [
        ("[1, 2]", "expected a JSON object"),
        ('{"action": [0, 1]}', "'action' needs 'mean' and 'std'"),
        ('{"action": {"mean": [0, 0, 0], "std": [1, 1, 1]}}', "3 values.*action_dim is 2"),
        ('{"action": {"mean": [0, 0], "std": [1]}}', "equal length"),
        ('{"action": {"mean": [[0, 0]], "std": [[1, 1]]}}', "equal length"),
        ('{"action": {"mean": [0, NaN], "std": [1, 1]}}', "finite with std > 0"),
        ('{"action": {"mean": [0, 0], "std": [1, 0]}}', "finite with std > 0"),
        ('{"action": {"mean": [0, 1e39], "std": [1, 1]}}', "finite with std > 0"),
        ('{"action": {"mean": ["a", 0], "std": [1, 1]}}', "cannot read"),
        ('{"proprio": {"mean": [0], "std": [Infinity]}}', "'proprio' statistics must be finite"),
        ("{", "not valid JSON"),
    ],
)
def test_a_bad_normaliser_is_refused(saved, content, match):
    _, path = saved
    (path / "normalizer.json").write_text(content)
    with pytest.raises(CheckpointError, match=match) as info:
        load(path)
    assert "normalizer.json" in str(info.value)


def test_garbage_weights_are_a_checkpoint_error(saved):
    _, path = saved
    (path / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(CheckpointError, match="cannot read .*model.safetensors"):
        load(path)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_every_registered_model_stays_far_under_the_module_limit(kind, monkeypatch, tmp_path):
    # the limit refusing a corrupt depth is 8 modules per tensor in the weight file: a real
    # model must build far fewer (every kind builds about one per tensor), so the loader's own
    # count with a limit of 2 per tensor must pass
    config = MODELS[kind].config()
    with torch.device("meta"):
        tensors = len(MODELS[kind].model(config).state_dict())
    monkeypatch.setattr(ckpt_mod, "MIN_MODULE_LIMIT", 0)
    shapes = ckpt_mod._planned_shapes(config, tmp_path / "model.safetensors", tensors // 4)
    assert len(shapes) == tensors
