"""The paper's goal-reaching evaluation (App. F.1), on any registered environment.

Start = a random step of a dataset episode; goal = the state ``goal_offset`` steps later in the
same episode. The environment is reset to the start state, the goal image is *rendered by the
environment* from the goal state (``env.render_state``; an env without one, or whose
``render_state`` is None, gets the dataset frame of the goal row instead), and an episode
succeeds if the environment reports success at any step within ``budget`` steps.

Environments are built by :func:`lewm.envs.make_env`: a registered name (``"tworoom"``) or any
Gymnasium id as ``"gym:ID"``, whose gymnasium.make kwargs and adapter settings come in
``env_options`` (``{"make": {...}, "adapter": {...}}``, see :mod:`lewm.envs.gym_adapter`).

Every action sent to an environment lies in its action space: the random policy draws inside the
bounds, planned actions are clipped to them (the executed action, not the planned one, is the
context of the next plan), and the replay policy sends the dataset's own actions. An episode ends
at success, termination or truncation; the two last are recorded apart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lewm.data.clips import split_episodes
from lewm.data.config import DataConfig
from lewm.data.hdf5 import DataError, EpisodeDataset
from lewm.data.multi import canonical
from lewm.envs.registry import data_env_options
from lewm.models import model_device
from lewm.planning.config import EvalConfig
from lewm.planning.mpc import MPCController, Planner
from lewm.planning.objective import GoalCost
from lewm.planning.solvers import make_solver
from lewm.utils.config import to_dict
from lewm.utils.distributed import DistInfo, broadcast_object, gather_objects
from lewm.utils.io import check_can_create, write_json
from lewm.utils.progress import progress_bar

log = logging.getLogger(__name__)


def sample_tasks(
    dataset: EpisodeDataset,
    episodes: np.ndarray,
    n: int,
    goal_offset: int,
    seed: int,
    min_start: int = 0,
    skip: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[tuple[int, int]]:
    """``n`` (episode, start step) pairs, uniform over valid rows (so long episodes weigh more).
    ``min_start``: steps an episode must have before the start (offline context frames); with
    0 every row whose goal lies inside the episode is valid. ``skip``: (K, 2) candidate pairs ->
    bool (K,), True for pairs that may not be drawn (e.g. :func:`solved_at_start`); without it
    the draw is the paper's (and the same as before the option existed)."""
    valid = []
    for ep in episodes:
        L = int(dataset.ep_len[ep])
        if L - 1 >= goal_offset + min_start:
            first = np.arange(min_start, L - goal_offset)
            valid.append(np.stack([np.full(len(first), ep), first], 1))
    if not valid:
        more = f" plus {min_start} steps of context" if min_start else ""
        raise DataError(
            f"no episode in the evaluation split is longer than the goal offset {goal_offset}{more}"
        )
    rows = np.concatenate(valid)
    if len(rows) < n:
        raise DataError(
            f"eval.episodes={n} (--episodes), but the evaluation split has only {len(rows)} valid "
            "start steps: ask for fewer or use a larger file"
        )
    rng = np.random.default_rng(seed)
    if skip is None:
        pick = np.sort(rng.choice(len(rows), size=n, replace=False))
        return [(int(e), int(s)) for e, s in rows[pick]]
    order, kept, seen = rng.permutation(len(rows)), [], 0
    block = max(4 * n, 256)  # candidates checked at a time (reading states costs)
    while len(kept) < n and seen < len(order):
        cand = order[seen : seen + block]
        seen += len(cand)
        kept.extend(cand[~np.asarray(skip(rows[cand]), bool)].tolist())
    if len(kept) < n:
        raise DataError(
            f"eval.episodes={n} (--episodes), but only {len(kept)} of the evaluation split's "
            f"{len(rows)} valid start steps are not already solved at the start: ask for fewer, "
            "use a larger file, or set eval.exclude_solved=false"
        )
    pick = np.sort(np.asarray(kept[:n]))
    return [(int(e), int(s)) for e, s in rows[pick]]


def solved_at_start(
    env_name: str, dataset: EpisodeDataset, goal_offset: int
) -> Callable[[np.ndarray], np.ndarray] | None:
    """(K, 2) (episode, start) pairs -> bool (K,): whether the start state already passes the
    environment's success test against the goal state ``goal_offset`` steps later (a task solved
    before it starts). None for an environment without a registered success test (gym:ID)."""
    from lewm.envs import ENVS

    spec = ENVS.get(env_name)
    if spec is None:
        return None

    def solved(tasks: np.ndarray) -> np.ndarray:
        tasks = np.asarray(tasks, np.int64).reshape(-1, 2)
        rows = np.asarray(dataset.ep_offset, np.int64)[tasks[:, 0]] + tasks[:, 1]
        starts = dataset.rows("state", rows)
        goals = dataset.rows("state", rows + goal_offset)
        return np.asarray(spec.success(starts, goals), bool).reshape(len(tasks))

    return solved


def eval_episodes(
    dataset: EpisodeDataset, data_path: Path, metadata: dict, split: str
) -> np.ndarray:
    """Episode ids for ``split``. A dataset other than the training file counts as held out."""
    all_eps = np.arange(dataset.num_episodes)
    trained_on = metadata.get("dataset")
    same_file = trained_on is not None and canonical(trained_on) == canonical(data_path)
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
    # the env's numeric errors (distance, pos_error, angle_error, joint_error) at the last step
    final_errors: list[dict[str, float]] = field(default_factory=list)
    terminated: list[bool] = field(default_factory=list)  # the env ended the episode itself
    truncated: list[bool] = field(default_factory=list)  # the env cut the episode short
    # env steps at which a planned action lay outside the action space and was clipped to it
    clipped_steps: int = 0
    # tasks of the paper's draw (before any exclusion) whose start already passes the success
    # test against the goal; None when the env has no registered success test
    solved_at_start: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_ERROR_KEYS = ("distance", "pos_error", "angle_error", "joint_error", "cube_error")


def logged_actions(
    dataset: EpisodeDataset, tasks: Sequence[tuple[int, int]], budget: int
) -> np.ndarray:
    """The dataset's own actions (E, budget, A) float64 from each task's start: row s + t of the
    episode for step t, NaN where the episode has no action left (its last row has none)."""
    ep_len = np.asarray(dataset.ep_len, np.int64)
    ep_offset = np.asarray(dataset.ep_offset, np.int64)
    out = np.full((len(tasks), budget, dataset.action_dim), np.nan)
    for i, (ep, s) in enumerate(tasks):
        n = int(min(budget, ep_len[ep] - 1 - s))  # actions left before the episode's last row
        if n > 0:
            rows = ep_offset[ep] + s + np.arange(n)
            out[i, :n] = dataset.rows("action", rows)
    return out


def _make_envs(env_name: str, n: int, resolution: int, **options: Any):
    """``n`` environments ``env_name`` at ``resolution``; ``options``: more keyword arguments of
    :func:`lewm.envs.make_env` (for ``gym:ID`` names: ``make`` and ``adapter``)."""
    from lewm.envs import make_env

    return [make_env(env_name, resolution=resolution, **options) for _ in range(n)]


def _goal_frame(dataset: EpisodeDataset, row: int, shape: tuple[int, ...]) -> np.ndarray:
    """The dataset frame of ``row`` as the goal image, resized to the env's frame ``shape``
    (r, r, 3) if it differs."""
    frame = np.asarray(dataset.rows("pixels", np.asarray(row)))  # (h, w, 3)
    if frame.shape == tuple(shape):
        return frame
    from lewm.envs.gym_adapter import resize_frame

    return resize_frame(frame, int(shape[0]), "the dataset's goal frame")


def action_bounds(space: Any, env_name: str) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of a continuous (Box) action space, each (A,) float64."""
    low, high = getattr(space, "low", None), getattr(space, "high", None)
    shape = getattr(space, "shape", None)
    if low is None or high is None or shape is None or len(shape) != 1:
        raise DataError(
            f"environment {env_name!r} has action space {space}; evaluation needs a "
            "one-dimensional continuous (Box) action space"
        )
    return np.asarray(low, np.float64).reshape(-1), np.asarray(high, np.float64).reshape(-1)


EVAL_FILE = "eval.json"


def eval_folder_name(
    env_name: str,
    cfg: EvalConfig,
    data: str | os.PathLike,
    env_options: Mapping[str, Any] | None = None,
) -> str:
    """A folder name that reflects the evaluation: env, policy, solver and a digest of every
    setting (the env's options among them) and the task file, so runs with other settings never
    share a folder. An env name such as ``gym:ns/Name-v0`` is written ``gym-ns-Name-v0``."""
    settings = {"env": env_name, "data": str(Path(data).resolve()), **to_dict(cfg)}
    for key, default in (
        ("proposal", "none"),
        ("exclude_solved", False),
        ("bounded_search", False),
    ):
        if settings.get(key) == default:  # defaults added later: folder names from before stay
            del settings[key]
    if env_options:
        settings["env_options"] = env_options
    text = json.dumps(settings, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    what = cfg.policy if cfg.policy != "plan" else f"plan_{cfg.solver.kind}"
    if cfg.policy == "plan" and cfg.proposal != "none" and cfg.solver.kind != cfg.proposal:
        what += f"-from-{cfg.proposal}"
    env_part = re.sub(r"[^A-Za-z0-9_.-]+", "-", env_name).strip("-.") or "env"
    return f"eval_{env_part}_{what}_{digest}"


def prepare_eval_dir(
    out_dir: str | os.PathLike,
    overwrite: bool,
    outputs: tuple[str, ...] = (EVAL_FILE, "episode_*.gif"),
    what: str = "an evaluation",
) -> Path:
    """An output folder for one evaluation: never one holding an earlier one (any file matching
    ``outputs``, the names and globs that evaluation writes) unless ``overwrite``, which then
    removes only those files, after checking that the folder is writable."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file, not a folder; choose another --out")
    earlier = [p for pattern in outputs for p in out.glob(pattern)] if out.is_dir() else []
    if earlier and not overwrite:
        raise FileExistsError(
            f"{out} already holds {what} ({earlier[0].name}); pass --overwrite to replace "
            "it or choose another --out"
        )
    if earlier:
        check_can_create(out)
    for p in earlier:
        p.unlink()
    return out


def evaluate(
    model: Any | None,
    env_name: str,
    data: str | os.PathLike,
    cfg: EvalConfig,
    out_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    shard: tuple[int, int] | None = None,
    overwrite: bool = False,
    env_options: Mapping[str, Any] | None = None,
    proposal: Any | None = None,
) -> EvalResult:
    """Run the protocol; write ``eval.json`` and GIFs into ``out_dir`` if given.

    ``model`` is any world model (:class:`lewm.models.WorldModel`); None only for the random and
    replay policies. ``shard=(k, n)`` runs only tasks k, k+n, k+2n, ... of the sampled list (one
    process of n) and writes only their GIFs; :func:`merge_results` joins the shards and the caller
    writes ``eval.json``. The random policy draws from one generator per task, so its result does
    not depend on sharding; planning batches the episodes of a shard together, so sharded and
    unsharded planning runs are statistically, not bitwise, equivalent. ``progress``: a bar over the
    step budget (None: when stderr is a terminal). An ``out_dir`` that already holds an evaluation
    is refused unless ``overwrite`` (checked before any work; shards leave the check to their
    caller, see :func:`evaluate_distributed`). ``env_options``: more keyword arguments of
    :func:`lewm.envs.make_env` (for ``gym:ID``: ``{"make": {...}, "adapter": {...}}``). ``device``:
    where the model plans (default: where it is; `lewm eval --device`, default auto). ``proposal``:
    the trained policy (a :class:`~lewm.planning.protocol.Proposal`, e.g.
    ``lewm.planning.policy.policy_for(ckpt, model)``) that ``eval.proposal=policy`` and
    ``eval.solver.kind=policy`` need; ignored otherwise.
    """
    t0 = time.perf_counter()
    if device is None:  # where the model is (the CPU for the random policy without a model)
        device = model_device(model) if model is not None else "cpu"
    if cfg.uses_policy() and proposal is None:
        from lewm.planning.policy import PolicyError

        raise PolicyError(
            f"eval.solver.kind={cfg.solver.kind} with eval.proposal={cfg.proposal} plans with the "
            "checkpoint's trained policy, and none was given: run `lewm policy RUN` first (the "
            "API: evaluate(..., proposal=lewm.planning.policy.policy_for(ckpt, model)))"
        )
    if out_dir is not None and shard is None:
        prepare_eval_dir(out_dir, overwrite)
    data_path = Path(data)
    # an HDF5 file or a LeRobot folder, read with the camera/columns the model was trained on
    dataset = DataConfig.recorded(getattr(model, "metadata", None)).open(
        data_path, in_memory=False, recorded=True
    )
    if not dataset.has("state"):
        raise DataError(
            f"dataset {data_path} has no 'state' column: evaluation resets the environment to "
            "dataset states (collect with `lewm collect`, which records it)"
        )
    metadata = getattr(model, "metadata", {}) or {}
    episodes = eval_episodes(dataset, data_path, metadata, cfg.split)
    all_tasks = sample_tasks(dataset, episodes, cfg.episodes, cfg.goal_offset, cfg.seed)
    solved = solved_at_start(env_name, dataset, cfg.goal_offset)
    n_solved = int(solved(np.asarray(all_tasks)).sum()) if solved is not None else None
    if cfg.exclude_solved:
        if solved is None:
            raise DataError(
                f"eval.exclude_solved needs the environment's success test on states, and "
                f"{env_name!r} has none registered: set eval.exclude_solved=false"
            )
        all_tasks = sample_tasks(
            dataset, episodes, cfg.episodes, cfg.goal_offset, cfg.seed, skip=solved
        )
    elif n_solved:
        log.warning(
            "%d of the %d tasks are already solved at the start (the success test passes before "
            "any action); eval.exclude_solved=true (--exclude-solved) leaves them out",
            n_solved,
            len(all_tasks),
        )
    k, n = shard if shard is not None else (0, 1)
    if not 0 <= k < n:
        raise ValueError(f"shard must be (k, n) with 0 <= k < n, got {shard}")
    index = list(range(k, len(all_tasks), n))  # positions of this shard's tasks in all_tasks
    tasks = [all_tasks[i] for i in index]
    if not tasks:
        raise ValueError(f"{n} evaluation processes for {len(all_tasks)} episodes: use fewer")
    states = dataset.column("state")
    res = dataset.image_shape[0]
    envs = _make_envs(env_name, len(tasks), res, **data_env_options(env_name, dataset, env_options))
    low, high = action_bounds(envs[0].action_space, env_name)  # (A,) each
    action_dim = len(low)
    if model is not None and model.action_dim != action_dim:
        raise DataError(
            f"the checkpoint was trained with action_dim {model.action_dim}, environment "
            f"{env_name!r} has {action_dim}: evaluate with the environment the model was trained on"
        )
    span = metadata.get("action_range") if model is not None else None
    if span is not None:  # the model's training actions must be actions of this environment
        lo, hi = np.asarray(span[0], np.float64), np.asarray(span[1], np.float64)
        tol = 1e-3 * np.maximum(high - low, 1.0)
        if ((lo < low - tol) | (hi > high + tol)).any():
            raise DataError(
                f"the model was trained on actions in [{lo.round(3).tolist()}, "
                f"{hi.round(3).tolist()}], outside {env_name!r}'s action space [{low.tolist()}, "
                f"{high.tolist()}]: it was trained for another environment"
            )
    if dataset.action_dim != action_dim:
        raise DataError(
            f"dataset {data_path} has action_dim {dataset.action_dim}, environment {env_name!r} "
            f"has {action_dim}"
        )
    goals, frames0 = [], []
    goal_source = "env"  # who made the goal images: the env (render_state) or the dataset
    for env, (ep, s) in zip(envs, tasks, strict=True):
        row = int(dataset.ep_offset[ep]) + s
        start, goal = np.asarray(states[row]), np.asarray(states[row + cfg.goal_offset])
        env.reset(seed=cfg.seed, options={"state": start, "goal_state": goal})
        frames0.append(env.render())
        render_state = getattr(env, "render_state", None)  # None: the env renders no states
        if render_state is not None:
            goals.append(render_state(goal))
        else:
            goals.append(_goal_frame(dataset, row + cfg.goal_offset, frames0[-1].shape))
            goal_source = "dataset"
    goal_px = np.stack(goals)  # (E, h, w, 3)
    if goal_source == "dataset":
        log.info("%s renders no states: the goal images are the dataset's frames", env_name)

    if out_dir is not None:  # a read-only or full disk fails now, not after the evaluation
        check_can_create(out_dir)
    task_rngs = [np.random.default_rng([cfg.seed, i]) for i in index]  # random policy
    controller, replay = None, None
    if cfg.policy == "plan":
        if model is None:
            raise ValueError("policy 'plan' needs a model")
        controller = _build_controller(
            model, cfg, low, high, device, proposal if cfg.uses_policy() else None
        )
        controller.reset(torch.from_numpy(goal_px))
    elif cfg.policy == "replay":
        replay = logged_actions(dataset, tasks, cfg.budget)  # (E, budget, A), NaN past the end
    elif not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise DataError(
            f"the random policy draws uniformly in the action space, but {env_name!r} has "
            f"unbounded actions (low {low.tolist()}, high {high.tolist()})"
        )
    E = len(tasks)
    success = np.zeros(E, dtype=bool)
    terminated, truncated = np.zeros(E, dtype=bool), np.zeros(E, dtype=bool)
    steps_to: list[int | None] = [None] * E
    frames = [[f] for f in frames0]  # observation frames per env, one per env step
    final_errors: list[dict[str, float]] = [{} for _ in range(E)]
    bar = progress_bar(cfg.budget, f"eval {env_name} ({cfg.policy})", progress, unit="step")
    for t in range(cfg.budget):
        active = ~(success | terminated | truncated)
        if not active.any():
            break
        if replay is not None:  # an episode whose logged actions ran out stops (truncated)
            ran_out = active & ~np.isfinite(replay[:, t]).all(axis=1)
            truncated |= ran_out
            active &= ~ran_out
            if not active.any():
                break
            actions = np.nan_to_num(replay[:, t]).astype(np.float32)  # (E, A)
        elif controller is None:
            actions = np.stack([r.uniform(low, high, size=action_dim) for r in task_rngs])
            actions = actions.astype(np.float32)  # (E, A)
        else:
            actions = controller.act(frames, active)  # (E, A), inside [low, high]
        for i, env in enumerate(envs):
            if not active[i]:
                continue
            _, _, term, trunc, info = env.step(actions[i])
            frames[i].append(env.render())
            final_errors[i] = {k: float(info[k]) for k in _ERROR_KEYS if k in info}
            # the env's success flag; an env without one succeeds when it terminates
            if bool(info["success"]) if "success" in info else bool(term):
                success[i] = True
                steps_to[i] = t + 1
            terminated[i], truncated[i] = bool(term), bool(trunc)
        bar.update(1)
        bar.set_postfix(success=f"{int(success.sum())}/{E}")
    bar.close()
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
            **to_dict(cfg),
            "env": env_name,
            "data": str(data_path),
            "threads": torch.get_num_threads(),
            "processes": n,
            "goal_image": goal_source,
            **({"env_options": dict(env_options)} if env_options else {}),
        },
        task_index=index,
        final_errors=final_errors,
        terminated=[bool(x) for x in terminated],
        truncated=[bool(x) for x in truncated],
        clipped_steps=int(getattr(controller, "clipped_steps", 0)),
        solved_at_start=n_solved,
    )
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if shard is None:
            write_json(out / EVAL_FILE, result.to_dict())
        for i, g in enumerate(index):
            if g < cfg.num_gifs:
                write_gif(out / f"episode_{g:02d}.gif", frames[i], goal_px[i], bool(success[i]))
    return result


def merge_results(parts: list[EvalResult]) -> EvalResult:
    """Join the results of evaluation shards into one, in the original task order."""

    def per_task(p: EvalResult, name: str, missing: Any) -> list:
        return getattr(p, name) or [missing] * len(p.tasks)

    rows = sorted(
        (
            row
            for p in parts
            for row in zip(
                p.task_index,
                (tuple(t) for t in p.tasks),
                p.successes,
                p.steps_to_success,
                per_task(p, "final_errors", {}),
                per_task(p, "terminated", False),
                per_task(p, "truncated", False),
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
        terminated=[r[5] for r in rows],
        truncated=[r[6] for r in rows],
        clipped_steps=sum(p.clipped_steps for p in parts),
        solved_at_start=parts[0].solved_at_start,  # every shard counts the same draw
    )


def evaluate_distributed(
    model: Any | None,
    env_name: str,
    data: str | os.PathLike,
    cfg: EvalConfig,
    out_dir: str | os.PathLike | None,
    info: DistInfo,
    progress: bool | None = None,
    overwrite: bool = False,
    env_options: Mapping[str, Any] | None = None,
    proposal: Any | None = None,
) -> EvalResult:
    """One torchrun worker's part of :func:`evaluate`: evaluate this rank's shard of the tasks,
    gather every shard, and (rank 0) write the merged ``eval.json``. Returns the merged result on
    every rank."""
    error = None
    if info.is_main and out_dir is not None:
        try:
            prepare_eval_dir(out_dir, overwrite)
        except FileExistsError as e:
            error = str(e)
    error = broadcast_object(error, info)  # every rank stops before any work
    if error is not None:
        raise FileExistsError(error)
    if model is not None:
        model = model.to(info.device)
    proposal = _on_device(proposal, info.device)
    local = evaluate(
        model,
        env_name,
        data,
        cfg,
        out_dir=out_dir,
        device=info.device,
        progress=progress if info.is_main else False,
        shard=(info.rank, info.world_size),
        env_options=env_options,
        proposal=proposal,
    )
    merged = merge_results(gather_objects(local, info))
    if info.is_main and out_dir is not None:
        write_json(Path(out_dir) / EVAL_FILE, merged.to_dict())
    return merged


def _on_device(proposal: Any | None, device: str | torch.device) -> Any | None:
    """A proposal that is a module, moved to ``device`` in eval mode; others as given."""
    if isinstance(proposal, torch.nn.Module):
        return proposal.to(device).eval()
    return proposal


def _build_controller(
    model: Any,
    cfg: EvalConfig,
    low: np.ndarray,
    high: np.ndarray,
    device: str | torch.device,
    proposal: Any | None = None,
) -> MPCController:
    """The solver of ``cfg.solver`` (seeded by ``cfg.seed``), the planner (with ``proposal``,
    the trained policy, when given) and the controller, which clips every executed action to
    [low, high]."""
    norm = model.action_normalizer()
    options = {k: v for k, v in asdict(cfg.solver).items() if k != "kind"}
    solver = make_solver(cfg.solver.kind, **{**options, "seed": cfg.seed})
    box = None
    if cfg.bounded_search:  # the env's box in normalised block units: one step's, frameskip times
        lo, hi = (
            norm.normalize("action", torch.as_tensor(np.asarray(b, np.float32)[None]))[0]
            for b in (low, high)
        )  # (A,) each
        box = (lo.repeat(model.frameskip), hi.repeat(model.frameskip))  # (f*A,) each
    planner = Planner(
        model.to(device).eval(),
        solver,
        objective=GoalCost(cfg.cost),
        horizon=cfg.horizon,
        receding=cfg.receding,
        proposal=_on_device(proposal, device),
        action_box=box,
    )
    return MPCController(
        planner,
        frameskip=model.frameskip,
        action_dim=len(low),
        denormalize=lambda a: norm.denormalize("action", a),
        normalize=lambda a: norm.normalize("action", a),
        action_low=low,
        action_high=high,
        seed=cfg.seed,
        context=cfg.context,
    )


def write_gif(
    path: Path, frames: list[np.ndarray], goal: np.ndarray, success: bool, scale: int | None = None
) -> None:
    """Side-by-side GIF: the episode (left) and the goal image (right), border green on success.
    ``scale`` (default: 3 for frames up to 64 px, 2 up to 96, 1 from 192: ~200 px on screen)
    enlarges small frames; at 224 px a 3x GIF took 2.6 s to write (palette quantisation), 1x a
    ninth of that."""
    import imageio.v3 as iio

    if scale is None:
        scale = min(3, max(1, 192 // max(1, frames[0].shape[0])))

    colour = np.array([40, 180, 60] if success else [200, 40, 40], np.uint8)
    out = []
    for f in frames:
        pane = np.concatenate([f, np.full((f.shape[0], 2, 3), 255, np.uint8), goal], axis=1)
        pane = np.pad(pane, ((2, 2), (2, 2), (0, 0)))
        pane[:2], pane[-2:], pane[:, :2], pane[:, -2:] = colour, colour, colour, colour
        out.append(np.kron(pane, np.ones((scale, scale, 1), np.uint8)))
    iio.imwrite(path, np.stack(out), duration=80, loop=0)
