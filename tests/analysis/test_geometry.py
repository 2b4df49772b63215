import json

import numpy as np
import pytest
import torch

from lewm.analysis.geometry import (
    dataset_straightness,
    embed_2d,
    latent_map,
    open_loop,
    straightness,
    write_viz,
)
from lewm.data.hdf5 import EpisodeDataset, EpisodeWriter
from lewm.data.normalize import Normalizer
from lewm.envs import get_spec


def test_straightness_of_known_paths():
    t = torch.arange(6.0)[None, :, None]  # (1, 6, 1)
    line = torch.cat([t, 2 * t], dim=-1)  # constant velocity
    assert straightness(line).item() == pytest.approx(1.0)
    zigzag = torch.tensor([[[0.0], [1.0], [0.0], [1.0], [0.0]]])  # velocity flips every step
    assert straightness(zigzag).item() == pytest.approx(-1.0)
    both = torch.cat([line[:, :5, :1], zigzag], dim=0)  # (2, 5, 1)
    assert straightness(both, per_sequence=True).tolist() == pytest.approx([1.0, -1.0])
    with pytest.raises(ValueError, match="T >= 3"):
        straightness(torch.zeros(1, 2, 4))


def test_pca_map_keeps_a_planted_plane():
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 1, (100, 2))
    z = np.c_[pos, 1e-3 * rng.standard_normal((100, 6))] @ np.linalg.qr(rng.normal(size=(8, 8)))[0]
    xy = embed_2d(z, "pca")
    d_map = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    d_pos = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    assert np.allclose(d_map, d_pos, atol=1e-2)  # PCA recovers the plane up to rotation


class _Planted:
    """A world model whose latent is what the planted data writes into pixel (0, 0) (channels
    red and green), with exact dynamics z' = z + sum of the block's raw actions."""

    history, frameskip, action_dim, image_size = 2, 2, 2, 64
    action_block_dim = 4

    def __init__(self) -> None:
        self.normalizer = Normalizer({"action": (np.zeros(2), np.ones(2))})  # identity

    def action_normalizer(self) -> Normalizer:
        return self.normalizer

    def encode(self, px):  # (B, T, h, w, 3) -> (B, T, 2)
        return px[..., 0, 0, :2].float()

    def rollout(self, z_ctx, actions, history_actions=None):  # -> (B, S, H, 2)
        B, S, H, _ = actions.shape
        moves = actions.reshape(B, S, H, self.frameskip, 2).sum(3).cumsum(2)  # (B, S, H, 2)
        return z_ctx[:, -1][:, None, None] + moves


class _RedDot(_Planted):
    """Latent = where the Two-Room agent's red dot is in the image (world units)."""

    def encode(self, px):  # (B, T, h, w, 3) -> (B, T, 2)
        B, T, h, w, _ = px.shape
        red = px[..., 0].float() - px[..., 1].float()  # (B, T, h, w)
        idx = red.reshape(B, T, h * w).argmax(-1)  # (B, T)
        return torch.stack([idx % w, idx // w], -1).float() * (224.0 / w)


def _planted_file(path, write) -> EpisodeDataset:
    """Episodes of 40 steps whose pixel (0, 0) holds write(t, positions) and whose actions are
    integer moves of the (red, green) position."""
    rng = np.random.default_rng(0)
    with EpisodeWriter(path) as w:
        for _ in range(6):
            act = rng.integers(-2, 3, (40, 2)).astype(np.float32)
            pos = 100 + np.concatenate([np.zeros((1, 2)), np.cumsum(act[:-1], 0)])  # (40, 2)
            px = np.zeros((40, 4, 4, 3), np.uint8)
            px[:, 0, 0, :2] = write(np.arange(40), pos)
            act[-1] = np.nan
            w.add_episode(pixels=px, action=act, state=pos.astype(np.float32))
    return EpisodeDataset(path)


def test_dataset_straightness_windows_are_strided_and_inside_episodes(tmp_path):
    """z_t = (t, 100 * ((t // f) % 2)): along the block-start frames of one episode the latent
    zig-zags, so every window has cos = (f^2 - 100^2) / (f^2 + 100^2) exactly. A wrong stride,
    or a window crossing into the next episode (t jumps back), gives another number."""
    f = _Planted.frameskip
    data = _planted_file(
        tmp_path / "zigzag.h5", lambda t, pos: np.stack([t, 100 * ((t // f) % 2)], 1)
    )
    st = dataset_straightness(_Planted(), data, max_windows=50)
    assert st["frames"] == 3 and st["windows"] == 50  # max(3, history + 1)
    assert st["straightness"] == pytest.approx((f**2 - 100**2) / (f**2 + 100**2), abs=1e-6)
    assert st["std_over_windows"] < 1e-6


def test_open_loop_of_a_perfect_model_has_zero_error(tmp_path):
    """Frames and the actions between them line up: exact dynamics predict every step exactly,
    while copying the last context frame does not."""
    data = _planted_file(tmp_path / "walk.h5", lambda t, pos: pos)
    ol = open_loop(_Planted(), data, horizon=4, episodes=16)
    assert ol["context"] == 2 and ol["horizon"] == 4 and ol["episodes"] == 16
    assert max(ol["rollout_error_mean"]) == 0.0
    assert min(ol["copy_last_error_mean"]) > 1.0


def test_latent_map_of_a_position_encoder_keeps_distances():
    lm = latent_map(_RedDot(), "tworoom", n=8, method="pca")
    assert lm["points"] == len(get_spec("tworoom").state_grid(8)[0])
    assert lm["_xy"].shape == (lm["points"], 2)
    assert lm["spearman_latent_vs_state_distance"] > 0.99
    assert lm["spearman_map_vs_state_distance"] > 0.99  # PCA of a 2-D latent is a rotation


def test_viz_writes_the_pictures_and_numbers_it_was_given(tmp_path, picture):
    lm = latent_map(_RedDot(), "tworoom", n=6, method="pca")
    ol = {
        "context": 2,
        "horizon": 3,
        "episodes": 8,
        "rollout_error_mean": [1.0, 2.0, 3.0],
        "rollout_error_std": [0.1, 0.2, 0.3],
        "copy_last_error_mean": [2.0, 4.0, 6.0],
    }
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(
        '{"step": 1, "train/pred_loss": 1.0, "train/sigreg": 2.0, "train/z_std": 1.0, '
        '"train/straightness": 0.1}\n{"step": 2, "train/pred_loss": 0.5, "train/sigreg": 1.0, '
        '"train/z_std": 1.0, "train/straightness": 0.2}\n'
    )
    files = write_viz(tmp_path / "viz", lm, ol, metrics)
    assert set(files) == {"latent_map", "open_loop", "training_curves", "json"}
    for key in ("latent_map", "open_loop", "training_curves"):
        picture(files[key])
    saved = json.loads(files["json"].read_text())
    assert saved["open_loop"] == ol
    np.testing.assert_allclose(saved["latent_map"]["xy"], np.round(lm["_xy"], 4))
    assert saved["latent_map"]["points"] == lm["points"]


def test_tsne_without_scikit_learn_says_how_to_fix(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        embed_2d(np.zeros((5, 3)), "tsne")


def test_tsne_map_keeps_neighbours_of_a_planted_plane():
    pytest.importorskip("sklearn")
    from scipy import stats
    from scipy.spatial.distance import pdist

    from lewm.analysis.geometry import resolve_method

    assert resolve_method("auto") == "tsne"
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 1, (80, 2))
    z = np.c_[pos, 1e-3 * rng.standard_normal((80, 6))]
    xy = embed_2d(z, "tsne")
    assert xy.shape == (80, 2)
    assert stats.spearmanr(pdist(xy), pdist(pos))[0] > 0.7
