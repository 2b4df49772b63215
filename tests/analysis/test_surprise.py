import json

import numpy as np
import pytest
import torch

from lewm.analysis.surprise import (
    SurpriseConfig,
    paired_test,
    run_surprise,
    surprise_curve,
    write_surprise_report,
)
from lewm.data.normalize import Normalizer
from lewm.models import LeWM


class _PerfectModel:
    """z = the position written in pixel (0, 0); dynamics z' = z + a: predicts perfectly."""

    def encode(self, px):  # (B, T, h, w, 3) -> (B, T, 2)
        return px[..., 0, 0, :2].float()

    def rollout(self, z_ctx, actions, history_actions=None):  # -> (B, S, H, 2)
        z = z_ctx[:, -1][:, None]  # (B, 1, 2)
        return z[:, :, None] + actions.cumsum(2)


def _sequences(n=24, K=10, jump_at=None, seed=0):
    rng = np.random.default_rng(seed)
    acts = rng.integers(-3, 4, size=(n, K, 2)).astype(np.float32)
    pos = np.empty((n, K + 1, 2), np.float32)
    pos[:, 0] = 100
    for k in range(K):
        pos[:, k + 1] = pos[:, k] + acts[:, k]
        if jump_at == k + 1:
            pos[:, k + 1] += rng.choice([-40, 40], size=(n, 2))
    px = np.zeros((n, K + 1, 2, 2, 3), np.uint8)
    px[..., 0, 0, :2] = pos
    return torch.as_tensor(px), torch.as_tensor(acts)


@pytest.mark.parametrize("history", [1, 3])
def test_surprise_is_zero_when_prediction_is_perfect_and_spikes_on_a_jump(history):
    px, acts = _sequences()
    s = surprise_curve(_PerfectModel(), px, acts, history)
    assert np.isnan(s[:, 0]).all()
    assert np.abs(s[:, 1:]).max() < 1e-6
    px_j, acts_j = _sequences(jump_at=5)
    s_j = surprise_curve(_PerfectModel(), px_j, acts_j, history)
    assert np.allclose(s_j[:, 5], 2 * 40**2)  # only the jump is a surprise
    assert np.abs(np.delete(s_j[:, 1:], 4, axis=1)).max() < 1e-6
    t = paired_test(s_j[:, 5], s[:, 5] + 1e-3 * np.arange(len(s)))
    assert t["p_value"] < 1e-10 and t["cohens_dz"] > 10


def test_paired_test_finds_nothing_in_identical_noise():
    rng = np.random.default_rng(0)
    a = rng.normal(loc=5.0, size=40)
    t = paired_test(a + rng.normal(scale=0.01, size=40), a)
    assert t["p_value"] > 0.01 and abs(t["ratio"] - 1) < 0.05


@pytest.mark.parametrize("env", ["tworoom", "pusht", "reacher"])
def test_run_surprise_on_a_tiny_model_writes_curves(env, tmp_path, tiny_config, picture):
    model = LeWM(tiny_config.model).eval()
    model.normalizer = Normalizer({"action": (np.zeros(2), np.ones(2))})
    cfg = SurpriseConfig(trajectories=4, frames=4, perturb_frame=2)
    rep = run_surprise(model, env, cfg)
    assert set(rep["curves"]) == {"none", "colour", "teleport"}
    assert rep["curves"]["none"].shape == (4, 5)
    none, colour = rep["curves"]["none"], rep["curves"]["colour"]
    # twins agree before the perturbation
    assert np.allclose(none[:, :2], colour[:, :2], equal_nan=True)
    assert not np.allclose(none[:, 2], colour[:, 2])  # and the colour change is seen
    files = write_surprise_report(rep, tmp_path)
    picture(files["png"])
    saved = json.loads(files["json"].read_text())
    assert saved["tests"] == rep["tests"]
    np.testing.assert_allclose(
        saved["curves_from_frame_1"]["colour"]["mean"], colour[:, 1:].mean(0)
    )


def test_surprise_config_is_validated():
    with pytest.raises(ValueError, match="perturb_frame"):
        SurpriseConfig(frames=4, perturb_frame=5)
    with pytest.raises(ValueError, match="trajectories"):
        SurpriseConfig(trajectories=1)
