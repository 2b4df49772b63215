"""Where Cube planning fails: the search, the model's dynamics, or the goal cost.

On the tasks `lewm eval` draws (the paper's protocol: goal 25 steps ahead, seed 42, tasks solved
at the start excluded), for one trained model:

1. **The goal cost.** Four images of each task are encoded: the start, the goal, the goal with the
   cube put back where it starts ("arm done, cube not"), and the start with the cube put where the
   goal has it ("cube done, arm not"). If the latent distance of "arm done, cube not" to the goal
   is the smaller, the planner's cost rewards matching the arm's pose over moving the cube.
2. **The search.** The model's cost of the dataset's own 25 actions (5 blocks, the expert that
   made the goal) against the cost of the first plan of the paper's CEM (300 x 30). A plan that
   the model scores better than the expert but that fails in the simulator means the model is
   exploited; a plan scored worse than the expert means the search is short.
3. **The dynamics.** A linear probe (ridge, fitted on training-file latents) reads the cube's
   position from predicted latents: after the expert's 5 blocks (against where the cube really is
   25 steps on) and after the plan's (against where executing the plan really puts it).

    python benchmarks/quality/cube_diagnose.py runs/cube_e2e/s0/run \\
        --data runs/cube_e2e/s0/heldout.h5 --train runs/cube_e2e/s0/train.h5 --out DIR

Writes DIR/diagnose.json and prints a summary (medians and fractions over the tasks).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from lewm.analysis.probe import ProbeConfig, embed_frames, fit_linear
from lewm.data.hdf5 import EpisodeDataset
from lewm.envs import make_env
from lewm.envs.cube import physics
from lewm.envs.registry import data_env_options
from lewm.models import load
from lewm.planning.config import EvalConfig
from lewm.planning.evaluate import (
    _build_controller,
    action_bounds,
    logged_actions,
    sample_tasks,
    solved_at_start,
)

CUBE_POSE = slice(physics.CUBE_POS.start, physics.CUBE_QUAT.stop)  # xyz + quaternion in qpos


def fit_cube_probe(model, train: EpisodeDataset, frames: int, seed: int):
    """A ridge map latent (D,) -> cube xyz (3,) in metres (``lewm probe``'s linear probe), fitted
    on ``frames`` training frames; returns it and its held-out error (m, median) on a fifth."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(train.num_steps, min(frames, train.num_steps), replace=False))
    z = embed_frames(model, train.rows("pixels", rows))  # (N, D)
    y = physics.cube_pos(train.rows("state", rows))  # (N, 3)
    test = rng.random(len(rows)) < 0.2

    def probe(x: np.ndarray) -> np.ndarray:
        return fit_linear(z[~test], y[~test], np.asarray(x, np.float64), ProbeConfig.ridge)

    err = np.linalg.norm(probe(z[test]) - y[test], axis=1)
    return probe, float(np.median(err))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run")
    p.add_argument("--data", required=True, help="the held-out file lewm eval draws tasks from")
    p.add_argument("--train", required=True, help="the training file (for the cube probe)")
    p.add_argument("--out", required=True)
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--probe-frames", type=int, default=20_000)
    args = p.parse_args()
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = load(args.run)
    data = EpisodeDataset(args.data)
    cfg = EvalConfig(episodes=args.episodes, seed=args.seed, split="all", exclude_solved=True)
    skip = solved_at_start("cube", data, cfg.goal_offset)
    tasks = sample_tasks(
        data, np.arange(data.num_episodes), cfg.episodes, cfg.goal_offset, cfg.seed, skip=skip
    )
    env = make_env("cube", resolution=data.image_shape[0], **data_env_options("cube", data))
    low, high = action_bounds(env.action_space, "cube")
    states = data.column("state")
    rows = np.array([int(data.ep_offset[e]) + s for e, s in tasks])
    start, goal = states[rows].astype(np.float64), states[rows + cfg.goal_offset].astype(np.float64)

    # 1. the goal cost: four images per task
    arm_done = goal.copy()
    arm_done[:, CUBE_POSE] = start[:, CUBE_POSE]  # the goal's arm, the start's cube
    cube_done = start.copy()
    cube_done[:, CUBE_POSE] = goal[:, CUBE_POSE]  # the start's arm, the goal's cube
    images = {
        name: np.stack([env.render_state(s) for s in st])
        for name, st in (("start", start), ("goal", goal), ("arm_done", arm_done))
        + (("cube_done", cube_done),)
    }
    z = {k: torch.from_numpy(embed_frames(model, v)) for k, v in images.items()}  # (E, D) each

    def dist(a):
        return ((a - z["goal"]) ** 2).sum(-1).numpy()

    d_start, d_arm_done, d_cube_done = dist(z["start"]), dist(z["arm_done"]), dist(z["cube_done"])

    # 2. the search: the expert's 5 blocks against CEM's first plan, both scored by the model
    norm = model.action_normalizer()
    f, A = model.frameskip, env.action_space.shape[0]
    H = cfg.horizon
    expert_raw = logged_actions(data, tasks, H * f)  # (E, 25, A)
    expert = norm.normalize("action", torch.as_tensor(expert_raw, dtype=torch.float32))
    expert = expert.reshape(len(tasks), 1, H, f * A)  # (E, 1, H, Ab)
    ctrl = _build_controller(model, replace(cfg, policy="plan"), low, high, "cpu")
    planner = ctrl.planner
    t_plan = time.perf_counter()
    result = planner.plan(images["start"][:, None], images["goal"])
    plan_s = time.perf_counter() - t_plan
    plan = result.actions[:, None]  # (E, 1, H, Ab)
    with torch.inference_mode():
        z0 = z["start"][:, None]  # (E, 1, D)
        pred_expert = model.rollout(z0, expert)[:, 0]  # (E, H, D)
        pred_plan = model.rollout(z0, plan)[:, 0]
        cost_expert = planner.objective(pred_expert[:, None], z["goal"])[:, 0].numpy()
        cost_plan = planner.objective(pred_plan[:, None], z["goal"])[:, 0].numpy()

    # execute the plan (clipped, as the controller would) and the expert's actions in the env
    plan_raw = norm.denormalize("action", plan[:, 0].reshape(len(tasks), H * f, A)).numpy()
    plan_raw = np.clip(plan_raw, low, high)
    reached = {"plan": [], "expert": []}
    reached_px = {"plan": [], "expert": []}
    for i in range(len(tasks)):
        for name, acts in (("plan", plan_raw[i]), ("expert", expert_raw[i])):
            env.reset(options={"state": start[i], "goal_state": goal[i]})
            for a in acts:
                env.step(a)
            reached[name].append(env.state.copy())
            reached_px[name].append(env.render())
    reached = {k: np.stack(v) for k, v in reached.items()}
    z_reached = {
        k: torch.from_numpy(embed_frames(model, np.stack(v))) for k, v in reached_px.items()
    }

    # 3. the dynamics, read through a cube probe
    probe, probe_err = fit_cube_probe(model, EpisodeDataset(args.train), args.probe_frames, 0)
    cube_goal = physics.cube_pos(goal)
    true_err = {k: physics.cube_error(v, goal) for k, v in reached.items()}  # m, (E,)
    pred_cube = {
        "expert": probe(pred_expert[:, -1].numpy()),
        "plan": probe(pred_plan[:, -1].numpy()),
    }
    pred_vs_real = {
        k: np.linalg.norm(pred_cube[k] - physics.cube_pos(reached[k]), axis=1) for k in reached
    }
    latent_err = {
        k: ((p[:, -1] - z_reached[k]) ** 2).sum(-1).numpy()
        for k, p in (("expert", pred_expert), ("plan", pred_plan))
    }
    held = physics.cube_pos(start)[:, 2] > physics.CUBE_HALF + 0.01  # the cube off the table
    moved = np.linalg.norm(physics.cube_pos(start) - cube_goal, axis=1)

    def med(x):
        return float(np.median(x))

    summary = {
        "tasks": len(tasks),
        "cube_lifted_at_start": int(held.sum()),
        "cube_start_to_goal_cm_median": 100 * med(moved),
        "goal_cost": {
            "start": med(d_start),
            "arm_done_cube_not": med(d_arm_done),
            "cube_done_arm_not": med(d_cube_done),
            "fraction_arm_done_scores_better": float((d_arm_done < d_cube_done).mean()),
            "arm_share_of_start_distance": med(d_cube_done / d_start),
        },
        "search": {
            "model_cost_expert": med(cost_expert),
            "model_cost_plan": med(cost_plan),
            "fraction_plan_scored_better_than_expert": float((cost_plan < cost_expert).mean()),
            "plan_seconds_per_task": plan_s / len(tasks),
        },
        "outcome_after_25_steps": {
            "expert_success": float((true_err["expert"] <= physics.SUCCESS_TOL).mean()),
            "plan_success": float((true_err["plan"] <= physics.SUCCESS_TOL).mean()),
            "plan_success_where_scored_better": float(
                (true_err["plan"][cost_plan < cost_expert] <= physics.SUCCESS_TOL).mean()
            )
            if (cost_plan < cost_expert).any()
            else None,
            "cube_error_cm_expert": 100 * med(true_err["expert"]),
            "cube_error_cm_plan": 100 * med(true_err["plan"]),
        },
        "dynamics": {
            "probe_error_cm_on_encoded_frames": 100 * probe_err,
            "predicted_vs_real_cube_cm_expert": 100 * med(pred_vs_real["expert"]),
            "predicted_vs_real_cube_cm_plan": 100 * med(pred_vs_real["plan"]),
            "latent_error_expert": med(latent_err["expert"]),
            "latent_error_plan": med(latent_err["plan"]),
        },
        "seconds": time.perf_counter() - t0,
    }
    per_task = {
        "tasks": [list(t) for t in tasks],
        "d_start": d_start.tolist(),
        "d_arm_done": d_arm_done.tolist(),
        "d_cube_done": d_cube_done.tolist(),
        "cost_expert": cost_expert.tolist(),
        "cost_plan": cost_plan.tolist(),
        "cube_error_expert": true_err["expert"].tolist(),
        "cube_error_plan": true_err["plan"].tolist(),
        "pred_vs_real_expert": pred_vs_real["expert"].tolist(),
        "pred_vs_real_plan": pred_vs_real["plan"].tolist(),
        "lifted": held.tolist(),
        "moved": moved.tolist(),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "diagnose.json").write_text(
        json.dumps({"summary": summary, "per_task": per_task}, indent=1)
    )
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
