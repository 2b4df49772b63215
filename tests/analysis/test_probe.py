import json

import numpy as np
import pytest
import torch
from torch import nn

from lewm.analysis.probe import (
    ProbeConfig,
    fit_linear,
    probe_model,
    run_probe,
    score,
    write_probe_report,
)
from lewm.data.hdf5 import EpisodeDataset, EpisodeWriter
from lewm.models import LeWM


class _PlantedEncoder(nn.Module):
    """Latent = a fixed random linear map of the (x, y) state written into pixel (0, 0) + noise."""

    def __init__(self, dim: int = 24, noise: float = 0.05, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.randn(2, dim, generator=g), requires_grad=False)
        self.noise, self.g = noise, torch.Generator().manual_seed(seed + 1)

    def encode(self, px):  # (B, T, h, w, 3) uint8 -> (B, T, D)
        xy = px[..., 0, 0, :2].float() / 255.0  # (B, T, 2)
        z = xy @ self.w
        return z + self.noise * torch.randn(z.shape, generator=self.g)


def _planted_file(path, episodes=12, length=50, seed=0):
    rng = np.random.default_rng(seed)
    with EpisodeWriter(path, attrs={"env": "planted"}) as w:
        for _ in range(episodes):
            xy = rng.integers(0, 256, size=(length, 2))
            px = np.zeros((length, 4, 4, 3), np.uint8)
            px[:, 0, 0, :2] = xy
            act = rng.uniform(-1, 1, (length, 2)).astype(np.float32)
            act[-1] = np.nan
            w.add_episode(pixels=px, action=act, state=xy.astype(np.float32))
    return EpisodeDataset(path)


def test_linear_probe_recovers_a_planted_signal(tmp_path):
    data = _planted_file(tmp_path / "p.h5")
    cfg = ProbeConfig(max_frames=600, mlp_epochs=20)
    res = probe_model(_PlantedEncoder(), data, "planted", cfg)
    assert set(res) == {"state[0]", "state[1]"}  # unknown env: every state column
    for q in res.values():
        assert q["linear"]["r"] > 0.99 and q["linear"]["mse"] < 0.02
        assert q["mlp"]["r"] > 0.95
    # the same probe on features that carry no signal finds none
    blind = _PlantedEncoder()
    blind.w.data.zero_()
    res0 = probe_model(blind, data, "planted", cfg)
    assert all(abs(q["linear"]["r"]) < 0.3 and q["linear"]["mse"] > 0.8 for q in res0.values())


def test_split_is_by_episode(tmp_path):
    from lewm.analysis.probe import _sample_frames

    data = _planted_file(tmp_path / "p.h5", episodes=10, length=20)
    tr, te, ep = _sample_frames(data, ProbeConfig(max_frames=150, test_fraction=0.3))
    assert len(tr) + len(te) == 150
    assert not set(ep[tr]) & set(ep[te])
    assert len(set(ep[te])) == 3


def test_fit_linear_and_score_are_exact_on_a_linear_map():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 6))
    y = x @ rng.standard_normal((6, 2)) + 3.0
    pred = fit_linear(x[:300], y[:300], x[300:], ridge=0.0)
    s = score(y[300:], pred)
    assert s["mse"] < 1e-12 and s["r"] == pytest.approx(1.0)


def test_run_probe_on_a_tiny_model_writes_table_json_and_plot(
    tmp_path, tiny_config, toy_h5, picture
):
    model = LeWM(tiny_config.model).eval()
    rep = run_probe(model, EpisodeDataset(toy_h5), "toy", ProbeConfig(max_frames=300, mlp_epochs=3))
    assert set(rep) >= {"trained", "random_init"}
    files = write_probe_report(rep, tmp_path / "probe")
    picture(files["png"])
    saved = json.loads(files["json"].read_text())
    for key in ("trained", "random_init"):
        for name, q in rep[key].items():
            assert saved[key][name]["linear"] == q["linear"] and "_pred" not in saved[key][name]
    lin = rep["trained"]["state[0]"]["linear"]
    assert f"| state[0] | LeWM (ours) | {lin['mse']:.3f}" in files["md"].read_text()


def test_probe_needs_a_state_column(tmp_path, tiny_config):
    with EpisodeWriter(tmp_path / "ns.h5") as w:
        w.add_episode(
            pixels=np.zeros((5, 16, 16, 3), np.uint8), action=np.zeros((5, 2), np.float32)
        )
    with pytest.raises(ValueError, match="no 'state' column"):
        probe_model(LeWM(tiny_config.model), EpisodeDataset(tmp_path / "ns.h5"), "x", ProbeConfig())
