"""A short real training run: the prediction loss falls and the latent stays spread out with
SIGReg, and collapses without it (lambda = 0)."""

import json

from lewm.config import apply_overrides
from lewm.data.synthetic import make_toy_dataset
from lewm.training.trainer import train


def _run(tmp_path, data, cfg, lam):
    cfg = apply_overrides(
        cfg,
        [
            f"train.sigreg_weight={lam}",
            "train.steps=200",
            "train.batch_size=32",
            "train.lr=3e-3",
            "train.log_every=40",
            "train.val_every=0",
        ],
    )
    train(cfg, data, tmp_path / f"run{lam}", progress=False)
    lines = (tmp_path / f"run{lam}" / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "train/pred_loss" in r]


def test_sigreg_prevents_collapse(tmp_path, tiny_config):
    data = make_toy_dataset(tmp_path / "toy.h5", episodes=32, length=60)
    with_reg = _run(tmp_path, data, tiny_config, 0.09)
    without = _run(tmp_path, data, tiny_config, 0.0)
    assert with_reg[-1]["train/pred_loss"] < 0.5 * with_reg[0]["train/pred_loss"]
    assert with_reg[-1]["train/sigreg"] < with_reg[0]["train/sigreg"]
    assert with_reg[-1]["train/z_std"] > 0.3  # spread out
    assert without[-1]["train/z_std"] < 0.1  # collapsed
    assert without[-1]["train/sigreg"] > 3 * with_reg[-1]["train/sigreg"]
