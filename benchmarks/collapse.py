"""SIGReg prevents collapse: train the tiny preset on the generated toy dataset with lambda=0.09
and with lambda=0 and compare the prediction loss and the per-dimension latent std.

    python benchmarks/collapse.py --steps 300 --seed 0
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from lewm.config import apply_overrides, preset
from lewm.data.synthetic import make_toy_dataset
from lewm.training.trainer import train


def run(lam: float, steps: int, seed: int, workdir: Path, data: str) -> dict:
    cfg = apply_overrides(
        preset("tiny"),
        [
            f"train.sigreg_weight={lam}",
            f"train.steps={steps}",
            f"train.seed={seed}",
            "train.batch_size=32",
            "train.lr=3e-3",
            f"train.log_every={max(1, steps // 6)}",
            f"train.val_every={max(1, steps // 3)}",
        ],
    )
    t = time.perf_counter()
    train(cfg, data, workdir / f"lambda_{lam}", progress=False)
    recs = [
        json.loads(x)
        for x in (workdir / f"lambda_{lam}" / "metrics.jsonl").read_text().splitlines()
    ]
    tr = [r for r in recs if "train/pred_loss" in r]
    return {
        "lambda": lam,
        "pred_loss_first": tr[0]["train/pred_loss"],
        "pred_loss_last": tr[-1]["train/pred_loss"],
        "sigreg_first": tr[0]["train/sigreg"],
        "sigreg_last": tr[-1]["train/sigreg"],
        "z_std_last": tr[-1]["train/z_std"],
        "seconds": round(time.perf_counter() - t, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        data = make_toy_dataset(Path(d) / "toy.h5", episodes=32, length=60, seed=a.seed)
        rows = [run(lam, a.steps, a.seed, Path(d), data) for lam in (0.09, 0.0)]
    print("| lambda | pred loss first -> last | SIGReg first -> last | latent std (last) |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['lambda']} | {r['pred_loss_first']:.4f} -> {r['pred_loss_last']:.4f} | "
            f"{r['sigreg_first']:.2f} -> {r['sigreg_last']:.2f} | {r['z_std_last']:.4f} |"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
