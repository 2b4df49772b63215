"""Training throughput (clips/s) of a preset on this machine, with random uint8 clips.

    python benchmarks/speed/train_speed.py --preset cpu --batch 128 --precision bf16
    python benchmarks/speed/train_speed.py --preset paper --batch 16 --steps 3
    python benchmarks/speed/train_speed.py --preset tiny --batch 8 --steps 1     # smoke run

Model and objective come from the world-model registry (``model.kind``, as ``lewm train``). One
warm-up step, then the median of ``--steps`` timed optimizer steps (forward, objective, backward,
gradient clipping at ``train.grad_clip``, AdamW). Prints one JSON line; ``--out`` appends it to
a JSONL file.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from lewm.config import PRESETS, apply_overrides, preset
from lewm.models import build_model, build_objective


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--preset", default="cpu", choices=list(PRESETS))
    p.add_argument("--batch", type=int, default=128, help="clips per step")
    p.add_argument("--steps", type=int, default=5, help="timed steps (after one warm-up)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default=None, help="append the JSON record to this file")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. model.predictor.depth=4")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = apply_overrides(preset(a.preset), a.overrides)
    tc = cfg.train
    model = build_model(cfg.model).train()
    objective = build_objective(cfg.model, tc)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    s, N = model.image_size, model.history
    px = torch.randint(0, 256, (a.batch, N + 1, s, s, 3), dtype=torch.uint8)  # (B, N+1, s, s, 3)
    blocks = torch.randn(a.batch, N, model.action_block_dim)  # (B, N, Ab)
    times = []
    for i in range(a.steps + 1):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            loss = objective(**model(px, blocks))["loss"]
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        loss.item()
        if i:
            times.append(time.perf_counter() - t)
    step = statistics.median(times)
    rec = {
        "bench": "train_speed",
        "preset": a.preset,
        "overrides": a.overrides,
        "kind": cfg.model.kind,
        "params": sum(q.numel() for q in model.parameters()),
        "image": s,
        "frames_per_clip": N + 1,
        "batch": a.batch,
        "precision": a.precision,
        "threads": torch.get_num_threads(),
        "s_per_step": round(step, 4),
        "clips_per_s": round(a.batch / step, 1),
        "machine": f"{platform.processor() or platform.machine()} x{torch.get_num_threads()}",
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(rec))
    if a.out:
        with open(a.out, "a") as f:
            f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
