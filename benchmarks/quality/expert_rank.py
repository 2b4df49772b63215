"""Does the world model recognise the expert's plan? A planning-free sanity check.

For held-out tasks (start = a dataset step, goal = the frame `--goal-offset` steps later, as in
`lewm eval`) the dataset holds the expert's own action sequence that reached the goal. This
script scores that sequence with the model's goal cost (one context frame, horizon =
goal_offset / frameskip blocks) among `--samples` random candidates drawn like CEM's first
iteration (N(0, 1) in normalised action space) and reports its rank. If the expert plan is
not near the top, CEM cannot be expected to find it: the model (not the search) is the limit.

    python benchmarks/quality/expert_rank.py runs/pusht/s0 [--tasks 50] [--samples 300]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from lewm.data.hdf5 import EpisodeDataset
from lewm.models import load
from lewm.planning import GoalCost
from lewm.planning.config import SPLITS, EvalConfig
from lewm.planning.evaluate import eval_episodes, sample_tasks
from lewm.planning.objective import COSTS


@torch.inference_mode()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ev = EvalConfig()  # defaults: the paper's protocol, as `lewm eval`
    p.add_argument("checkpoint", help="run directory or checkpoint folder")
    p.add_argument("--data", default=None, help="episode file (default: the training dataset)")
    p.add_argument("--tasks", type=int, default=ev.episodes)
    p.add_argument("--samples", type=int, default=ev.solver.num_samples, help="random candidates")
    p.add_argument("--goal-offset", type=int, default=ev.goal_offset)
    p.add_argument("--split", default=ev.split, choices=SPLITS)
    p.add_argument("--cost", default=ev.cost, choices=COSTS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--context", type=int, default=1, help="observed frames (tasks need history)")
    a = p.parse_args()
    model = load(a.checkpoint)  # any registered world model, in eval mode
    if a.data is None and "dataset" not in model.metadata:
        p.error("--data is required: the checkpoint does not record its dataset")
    path = Path(a.data or model.metadata["dataset"])
    ds = EpisodeDataset(path, in_memory=False)
    eps = eval_episodes(ds, path, model.metadata, a.split)
    tasks = sample_tasks(ds, eps, a.tasks, a.goal_offset, a.seed)
    f, A = model.frameskip, model.action_dim
    cost_fn = GoalCost(a.cost)
    H = a.goal_offset // f
    g = torch.Generator().manual_seed(a.seed)
    C = a.context
    ranks, gaps = [], []
    for ep, s in tasks:
        if s < (C - 1) * f:
            continue  # not enough history before the start for C context frames
        row = int(ds.ep_offset[ep]) + s
        frames = row + np.arange(-(C - 1), 1) * f  # (C,) context rows
        px = torch.as_tensor(ds.rows("pixels", np.r_[frames, row + H * f]))  # (C+1, h, w, 3)
        z = model.encode(px[None])  # (1, C+1, D)
        act = ds.rows("action", np.arange(frames[0], row + H * f)).astype(np.float32)
        act = model.action_normalizer().normalize("action", act)
        blocks = torch.as_tensor(act).reshape(1, -1, f * A)
        hist = blocks[:, : C - 1] if C > 1 else None  # (1, C-1, fA)
        expert = blocks[:, C - 1 :][:, None]  # (1, 1, H, fA)
        rand = torch.randn(1, a.samples, H, f * A, generator=g)
        cand = torch.cat([expert, rand], dim=1)  # (1, 1+S, H, fA)
        cost = cost_fn(model.rollout(z[:, :C], cand, hist), z[:, C])[0]  # (1+S,)
        ranks.append(int((cost[1:] < cost[0]).sum()))  # 0 = the expert plan is the best
        gaps.append(float(cost[0] / cost[1:].min()))
    ranks = np.array(ranks)
    print(
        json.dumps(
            {
                "checkpoint": a.checkpoint,
                "tasks": len(ranks),
                "samples": a.samples,
                "context": C,
                "cost": a.cost,
                "expert_best_fraction": float(np.mean(ranks == 0)),
                "expert_top5pct_fraction": float(np.mean(ranks < 0.05 * a.samples)),
                "expert_rank_median": float(np.median(ranks)),
                "expert_cost_over_best_random_median": float(np.median(gaps)),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
