"""Can the CPU preset's encoder see the Push-T block angle at all? A supervised control.

The probes (docs/results.md, Push-T) find no block angle in any LeWM latent trained on 2 cores.
That is either a limit of the architecture and resolution (a 64-px CNN cannot resolve a 15-px T's
orientation) or of the objective (JEPA + SIGReg never asks for it). This script separates the
two: it trains the *same* encoder architecture plus a linear head, from scratch and with plain
supervision, to regress (sin, cos) of the block angle from single frames, and reports Pearson r
on frames of held-out episodes - the number the probes report.

    python benchmarks/quality/angle_capacity.py --data runs/pusht/data_1k_n03.h5 --steps 600

r near 1 within a few hundred steps means the architecture can represent the angle and the
self-supervised objective is what drops it.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch import nn

from lewm.analysis.probe import score
from lewm.config import PRESETS, apply_overrides, preset
from lewm.data.hdf5 import EpisodeDataset
from lewm.envs import get_spec
from lewm.models import build_model


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", required=True, help="Push-T episode file (pixels + state)")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--test-frames", type=int, default=4000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--preset", default="cpu", choices=list(PRESETS), help="the encoder's preset")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. model.encoder.width=512")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)

    ds = EpisodeDataset(a.data, in_memory=False)
    n_ep = len(ds.ep_len)
    test_eps = rng.permutation(n_ep)[: max(1, n_ep // 10)]
    is_test = np.zeros(int(ds.ep_len.sum()), bool)
    for e in test_eps:
        is_test[ds.ep_offset[e] : ds.ep_offset[e] + ds.ep_len[e]] = True
    train_rows, test_rows = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    test_rows = np.sort(rng.choice(test_rows, min(a.test_frames, len(test_rows)), replace=False))

    angle = get_spec("pusht").quantities["angle"]  # (sin, cos), the target the probes use

    def batch(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        rows = np.sort(rows)
        px = torch.as_tensor(ds.rows("pixels", rows))[:, None]  # (N, 1, h, w, 3)
        y = torch.as_tensor(angle(ds.rows("state", rows).astype(np.float64)), dtype=torch.float32)
        return px, y  # (N, 1, h, w, 3), (N, 2)

    cfg = apply_overrides(preset(a.preset), a.overrides)
    # only ``encode`` is trained (for LeWM: encoder + projector, the latent the probes read);
    # AdamW skips the parameters that get no gradient (the predictor)
    model = build_model(cfg.model)
    head = nn.Linear(model.latent_dim, 2)
    opt = torch.optim.AdamW([*model.parameters(), *head.parameters()], lr=a.lr, weight_decay=1e-3)

    def evaluate() -> float:
        model.eval()
        preds, ys = [], []
        with torch.no_grad():
            for i in range(0, len(test_rows), 256):
                px, y = batch(test_rows[i : i + 256])
                preds.append(head(model.encode(px)[:, 0]).numpy())
                ys.append(y.numpy())
        model.train()
        return score(np.concatenate(ys), np.concatenate(preds))["r"]  # the probes' Pearson r

    curve, t0 = [], time.perf_counter()
    r0 = evaluate()
    for step in range(1, a.steps + 1):
        px, y = batch(rng.choice(train_rows, a.batch_size, replace=False))
        loss = nn.functional.mse_loss(head(model.encode(px)[:, 0]), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % max(1, a.steps // 6) == 0 or step == a.steps:
            curve.append(
                {"step": step, "train_mse": round(float(loss.detach()), 4), "test_r": evaluate()}
            )
            print(json.dumps(curve[-1]), flush=True)
    out = {
        "data": a.data,
        "steps": a.steps,
        "batch_size": a.batch_size,
        "preset": a.preset,
        "overrides": a.overrides,
        "test_frames": len(test_rows),
        "test_r_at_init": r0,
        "test_r": curve[-1]["test_r"],
        "seconds": round(time.perf_counter() - t0, 1),
        "curve": curve,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
