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
from lewm.data.hdf5 import EpisodeDataset
from lewm.data.normalize import Normalizer
from lewm.models import LeWM


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


@pytest.fixture
def tiny_model(tiny_config):
    model = LeWM(tiny_config.model).eval()
    model.normalizer = Normalizer({"action": (np.zeros(2), np.ones(2))})
    return model


def test_viz_pieces_write_pngs_and_numbers(tmp_path, tiny_model, toy_h5):
    data = EpisodeDataset(toy_h5)
    lm = latent_map(tiny_model, "tworoom", n=6)
    assert lm["points"] > 20 and -1 <= lm["spearman_latent_vs_state_distance"] <= 1
    ol = open_loop(tiny_model, data, horizon=3, episodes=8)
    assert len(ol["rollout_error_mean"]) == 3 and ol["episodes"] == 8
    st = dataset_straightness(tiny_model, data, max_windows=16)
    assert -1 <= st["straightness"] <= 1 and st["frames"] == 4
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(
        '{"step": 1, "train/pred_loss": 1.0, "train/sigreg": 2.0, "train/z_std": 1.0, '
        '"train/straightness": 0.1}\n{"step": 2, "train/pred_loss": 0.5, "train/sigreg": 1.0, '
        '"train/z_std": 1.0, "train/straightness": 0.2}\n'
    )
    files = write_viz(tmp_path / "viz", lm, ol, metrics)
    assert set(files) == {"latent_map", "open_loop", "training_curves", "json"}
    for f in files.values():
        assert f.stat().st_size > 1000


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
