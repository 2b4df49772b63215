"""The paper's goal-reaching evaluation (App. F.1), on any registered environment.

Start = a random step of a dataset episode; goal = the state ``goal_offset`` steps later in the
same episode. The environment is reset to the start state, the goal image is *rendered by the
environment* from the goal state (no dataset frame needed), and an episode succeeds if the
environment reports success at any step within ``budget`` steps.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lewm.data.clips import split_episodes
from lewm.data.hdf5 import DataError, EpisodeDataset
from lewm.utils.io import write_json

log = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    episodes: int = 50  # start/goal pairs
    goal_offset: int = 25  # env steps between start and goal
    budget: int = 50  # env steps allowed
    split: str = "heldout"  # "heldout" (the model's validation episodes), "train", or "all"
    policy: str = "plan"  # "plan" (CEM + MPC with the world model) or "random"
    solver: str = "cem"
    num_samples: int = 300
    num_elites: int = 30
    iterations: int = 30
    horizon: int = 5  # action blocks per plan
    receding: int = 5  # blocks executed before replanning (the paper: the whole plan)
    context: int = 1  # observed frames given to the predictor (the reference plans with 1)
    cost: str = "terminal"  # "terminal" (paper: last predicted latent) or "path" (mean over H)
    seed: int = 42
    num_gifs: int = 4

    def __post_init__(self) -> None:
        from lewm.config import ConfigError

        if self.episodes < 1:
            raise ConfigError(f"--episodes must be >= 1, got {self.episodes}")
        if self.goal_offset < 1:
            raise ConfigError(f"--goal-offset must be >= 1, got {self.goal_offset}")
        if self.budget < self.goal_offset:
            raise ConfigError(
                f"--budget ({self.budget}) is smaller than --goal-offset ({self.goal_offset}): the "
                "goal would be unreachable by construction"
            )
        if self.split not in ("heldout", "train", "all"):
            raise ConfigError(f"--split must be heldout, train or all, got {self.split!r}")
        if self.policy not in ("plan", "random"):
            raise ConfigError(f"--policy must be plan or random, got {self.policy!r}")
        if not 1 <= self.receding <= self.horizon:
            raise ConfigError(
                f"--receding must be in [1, horizon={self.horizon}], got {self.receding}"
            )
        if self.context < 1:
            raise ConfigError(f"--context must be >= 1, got {self.context}")
        from lewm.planning.objective import COSTS

        if self.cost not in COSTS:
            raise ConfigError(f"--cost must be one of {', '.join(COSTS)}, got {self.cost!r}")


def sample_tasks(
    dataset: EpisodeDataset, episodes: np.ndarray, n: int, goal_offset: int, seed: int
) -> list[tuple[int, int]]:
    """``n`` (episode, start step) pairs, uniform over valid rows (so long episodes weigh more)."""
    valid = []
    for ep in episodes:
        L = int(dataset.ep_len[ep])
        if L - 1 >= goal_offset:
            valid.append(np.stack([np.full(L - goal_offset, ep), np.arange(L - goal_offset)], 1))
    if not valid:
        raise DataError(
            f"no episode in the evaluation split is longer than the goal offset {goal_offset}"
        )
    rows = np.concatenate(valid)
    if len(rows) < n:
        raise DataError(f"only {len(rows)} valid start steps for {n} evaluation episodes")
    pick = np.sort(np.random.default_rng(seed).choice(len(rows), size=n, replace=False))
    return [(int(e), int(s)) for e, s in rows[pick]]


def eval_episodes(
    dataset: EpisodeDataset, data_path: Path, metadata: dict, split: str
) -> np.ndarray:
    """Episode ids for ``split``. A dataset other than the training file counts as held out."""
    all_eps = np.arange(dataset.num_episodes)
    trained_on = metadata.get("dataset")
    same_file = trained_on is not None and Path(trained_on).resolve() == data_path.resolve()
    if split == "all" or not same_file:
        return all_eps
    sp = metadata.get("split")
    if not sp:
        raise DataError("the checkpoint does not record its episode split; use --split all")
    train, val = split_episodes(dataset.num_episodes, sp["val_fraction"], sp["seed"])
    chosen = val if split == "heldout" else train
    if len(chosen) == 0:
        raise DataError(f"the checkpoint's {split} split is empty; use --split all or another file")
    return chosen


@dataclass
class EvalResult:
    success_rate: float
    successes: list[bool]
    tasks: list[tuple[int, int]]
    steps_to_success: list[int | None]
    plan_seconds_mean: float | None  # per episode-plan: batched call time / episodes in it
    plans: int  # episode-plans (one per episode per replanning)
    plan_calls: int  # batched solver calls (episodes replanning together share one)
    plan_call_seconds_mean: float | None
    plan_seconds_total: float
    wall_seconds: float
    settings: dict[str, Any]
    task_index: list[int]  # position of each task in the full sampled list (for merging shards)
    # the env's numeric errors (distance, pos_error, angle_error) at the last step of each task
    final_errors: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_ERROR_KEYS = ("distance", "pos_error", "angle_error")


def _make_envs(env_name: str, n: int, resolution: int):
    from lewm.envs import make_env

    return [make_env(env_name, resolution=resolution) for _ in range(n)]


def evaluate(
    model: Any | None,
    env_name: str,
    data: str | os.PathLike,
    cfg: EvalConfig,
    out_dir: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
    shard: tuple[int, int] | None = None,
) -> EvalResult:
    """Run the protocol; write ``eval.json`` and GIFs into ``out_dir`` if given.

    ``shard=(k, n)`` runs only tasks k, k+n, k+2n, ... of the sampled list (one process of n)
    and writes only their GIFs; :func:`merge_results` joins the shards and the caller writes
    ``eval.json``. The random policy draws from one generator per task, so its result does not
    depend on sharding; planning batches the episodes of a shard together, so sharded and
    unsharded planning runs are statistically, not bitwise, equivalent.
    """
    t0 = time.perf_counter()
    data_path = Path(data)
    dataset = EpisodeDataset(data_path, in_memory=False)
    if not dataset.has("state"):
        raise DataError(
            f"dataset {data_path} has no 'state' column: evaluation resets the environment to "
            "dataset states (collect with `lewm collect`, which records it)"
        )
    metadata = getattr(model, "metadata", {}) or {}
    episodes = eval_episodes(dataset, data_path, metadata, cfg.split)
    all_tasks = sample_tasks(dataset, episodes, cfg.episodes, cfg.goal_offset, cfg.seed)
    k, n = shard if shard is not None else (0, 1)
    if not 0 <= k < n:
        raise ValueError(f"shard must be (k, n) with 0 <= k < n, got {shard}")
    index = list(range(k, len(all_tasks), n))  # positions of this shard's tasks in all_tasks
    tasks = [all_tasks[i] for i in index]
    if not tasks:
        raise ValueError(f"{n} evaluation processes for {len(all_tasks)} episodes: use fewer")
    states = dataset.column("state")
    res = dataset.image_shape[0]
    envs = _make_envs(env_name, len(tasks), res)
    action_dim = int(envs[0].action_space.shape[0])
    if model is not None and model.config.action_dim != action_dim:
        raise DataError(
            f"the checkpoint was trained with action_dim {model.config.action_dim}, environment "
            f"{env_name!r} has {action_dim}: evaluate with the environment the model was trained on"
        )
    if dataset.action_dim != action_dim:
        raise DataError(
            f"dataset {data_path} has action_dim {dataset.action_dim}, environment {env_name!r} "
            f"has {action_dim}"
        )
    goals, frames0 = [], []
    for env, (ep, s) in zip(envs, tasks, strict=True):
        row = int(dataset.ep_offset[ep]) + s
        start, goal = np.asarray(states[row]), np.asarray(states[row + cfg.goal_offset])
        env.reset(seed=cfg.seed, options={"state": start, "goal_state": goal})
        goals.append(env.render_state(goal))
        frames0.append(env.render())
    goal_px = np.stack(goals)  # (E, h, w, 3)

    task_rngs = [np.random.default_rng([cfg.seed, i]) for i in index]  # random policy
    controller = None
    if cfg.policy == "plan":
        if model is None:
            raise ValueError("policy 'plan' needs a model")
        controller = _build_controller(model, cfg, action_dim, device)
        controller.reset(torch.from_numpy(goal_px))
    E = len(tasks)
    success = np.zeros(E, dtype=bool)
    steps_to = [None] * E
    frames = [[f] for f in frames0]  # observation frames per env, one per env step
    final_errors: list[dict[str, float]] = [{} for _ in range(E)]
    for t in range(cfg.budget):
        active = ~success
        if not active.any():
            break
        if controller is None:
            actions = np.stack([r.uniform(-1, 1, size=action_dim) for r in task_rngs])
            actions = actions.astype(np.float32)  # (E, A)
        else:
            actions = controller.act(frames, active)
        for i, env in enumerate(envs):
            if not active[i]:
                continue
            _, _, terminated, _, info = env.step(actions[i])
            frames[i].append(env.render())
            final_errors[i] = {k: float(info[k]) for k in _ERROR_KEYS if k in info}
            if terminated or info.get("success", False):
                success[i] = True
                steps_to[i] = t + 1
    wall = time.perf_counter() - t0
    plan_times = list(getattr(controller, "plan_times", []) or [])
    plan_sizes = list(getattr(controller, "plan_batch_sizes", []) or [])
    result = EvalResult(
        success_rate=float(success.mean()),
        successes=[bool(x) for x in success],
        tasks=[tuple(t) for t in tasks],
        steps_to_success=steps_to,
        plan_seconds_mean=float(np.sum(plan_times) / np.sum(plan_sizes)) if plan_times else None,
        plans=int(np.sum(plan_sizes)) if plan_sizes else 0,
        plan_calls=len(plan_times),
        plan_call_seconds_mean=float(np.mean(plan_times)) if plan_times else None,
        plan_seconds_total=float(np.sum(plan_times)),
        wall_seconds=wall,
        settings={
            **asdict(cfg),
            "env": env_name,
            "data": str(data_path),
            "threads": torch.get_num_threads(),
            "processes": n,
        },
        task_index=index,
        final_errors=final_errors,
    )
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if shard is None:
            write_json(out / "eval.json", result.to_dict())
        for i, g in enumerate(index):
            if g < cfg.num_gifs:
                write_gif(out / f"episode_{g:02d}.gif", frames[i], goal_px[i], bool(success[i]))
    return result


def merge_results(parts: list[EvalResult]) -> EvalResult:
    """Join the results of evaluation shards into one, in the original task order."""
    rows = sorted(
        (
            (g, tuple(t), ok, n, err)
            for p in parts
            for g, t, ok, n, err in zip(
                p.task_index,
                p.tasks,
                p.successes,
                p.steps_to_success,
                p.final_errors or [{}] * len(p.tasks),
                strict=True,
            )
        ),
        key=lambda r: r[0],
    )
    if [r[0] for r in rows] != list(range(len(rows))):
        raise ValueError("evaluation shards overlap or leave tasks out")
    plans = sum(p.plans for p in parts)
    calls = sum(p.plan_calls for p in parts)
    total = sum(p.plan_seconds_total for p in parts)
    successes = [r[2] for r in rows]
    return EvalResult(
        success_rate=float(np.mean(successes)),
        successes=successes,
        tasks=[r[1] for r in rows],
        steps_to_success=[r[3] for r in rows],
        plan_seconds_mean=total / plans if plans else None,
        plans=plans,
        plan_calls=calls,
        plan_call_seconds_mean=total / calls if calls else None,
        plan_seconds_total=total,
        wall_seconds=max(p.wall_seconds for p in parts),
        settings={**parts[0].settings, "processes": len(parts)},
        task_index=[r[0] for r in rows],
        final_errors=[r[4] for r in rows],
    )


def evaluate_distributed(model, env_name: str, data, cfg: EvalConfig, out_dir, info) -> EvalResult:
    """One torchrun worker's part of :func:`evaluate`: evaluate this rank's shard of the tasks,
    gather every shard, and (rank 0) write the merged ``eval.json``. Returns the merged result on
    every rank."""
    from lewm.training.distributed import gather_objects

    if model is not None:
        model = model.to(info.device)
    local = evaluate(
        model,
        env_name,
        data,
        cfg,
        out_dir=out_dir,
        device=info.device,
        shard=(info.rank, info.world_size),
    )
    merged = merge_results(gather_objects(local, info))
    if info.is_main and out_dir is not None:
        write_json(Path(out_dir) / "eval.json", merged.to_dict())
    return merged


def _build_controller(model, cfg: EvalConfig, action_dim: int, device):
    from lewm.planning.mpc import MPCController, Planner
    from lewm.planning.objective import GoalCost
    from lewm.planning.solvers import make_solver

    norm = model.action_normalizer()
    solver = make_solver(
        cfg.solver,
        num_samples=cfg.num_samples,
        num_elites=cfg.num_elites,
        iterations=cfg.iterations,
        seed=cfg.seed,
    )
    planner = Planner(
        model.to(device).eval(),
        solver,
        objective=GoalCost(cfg.cost),
        horizon=cfg.horizon,
        receding=cfg.receding,
    )
    return MPCController(
        planner,
        frameskip=model.config.frameskip,
        action_dim=action_dim,
        denormalize=lambda a: norm.denormalize("action", a),
        seed=cfg.seed,
        context=cfg.context,
    )


def write_gif(
    path: Path, frames: list[np.ndarray], goal: np.ndarray, success: bool, scale: int = 3
) -> None:
    """Side-by-side GIF: the episode (left) and the goal image (right), border green on success."""
    import imageio.v3 as iio

    colour = np.array([40, 180, 60] if success else [200, 40, 40], np.uint8)
    out = []
    for f in frames:
        pane = np.concatenate([f, np.full((f.shape[0], 2, 3), 255, np.uint8), goal], axis=1)
        pane = np.pad(pane, ((2, 2), (2, 2), (0, 0)))
        pane[:2], pane[-2:], pane[:, :2], pane[:, -2:] = colour, colour, colour, colour
        out.append(np.kron(pane, np.ones((scale, scale, 1), np.uint8)))
    iio.imwrite(path, np.stack(out), duration=80, loop=0)
