"""Time one full CEM plan (300 samples x 30 iterations, horizon 5, 30 elites) with the real
Planner, for a preset: one episode at a time (median of --repeats after a warm-up), and batched
over --batch episodes (time per episode-plan). Random weights: planning cost does not depend
on them.

    python benchmarks/plan_speed.py --preset cpu model.predictor.history=1
    python benchmarks/plan_speed.py --preset cpu --context 3
    python benchmarks/plan_speed.py --preset paper --repeats 1 --batch 0
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from lewm.config import apply_overrides, preset
from lewm.models import LeWM
from lewm.planning.mpc import Planner
from lewm.planning.solvers import make_solver


def time_plan(planner: Planner, B: int, C: int, s: int, Ab: int, repeats: int) -> float:
    obs = torch.randint(0, 256, (B, C, s, s, 3), dtype=torch.uint8)
    goal = torch.randint(0, 256, (B, s, s, 3), dtype=torch.uint8)
    hist = torch.randn(B, C - 1, Ab) if C > 1 else None
    planner.plan(obs, goal, hist)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        planner.plan(obs, goal, hist)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--preset", default="cpu")
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--horizon", type=int, default=5)
    p.add_argument("--context", type=int, default=1, help="observed frames (<= history)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=50, help="episodes planned together (0: skip)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default=None, help="append the JSON record to this file")
    p.add_argument("overrides", nargs="*")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = apply_overrides(preset(a.preset), a.overrides)
    model = LeWM(cfg.model).eval()
    solver = make_solver("cem", num_samples=a.samples, iterations=a.iterations, num_elites=30)
    planner = Planner(model, solver, horizon=a.horizon, receding=a.horizon)
    s, Ab = cfg.model.encoder.image_size, cfg.model.action_block_dim
    rec = {
        "bench": "plan_speed",
        "preset": a.preset,
        "overrides": a.overrides,
        "samples": a.samples,
        "iterations": a.iterations,
        "horizon": a.horizon,
        "context": a.context,
        "history": cfg.model.predictor.history,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "s_per_plan_single": round(time_plan(planner, 1, a.context, s, Ab, a.repeats), 3),
    }
    if a.batch:
        t = time_plan(planner, a.batch, a.context, s, Ab, max(1, a.repeats // 3))
        rec.update(batch=a.batch, s_per_plan_batched=round(t / a.batch, 3))
    print(json.dumps(rec))
    if a.out:
        with open(a.out, "a") as f:
            f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
