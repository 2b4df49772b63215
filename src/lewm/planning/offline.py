"""Evaluation without a simulator (``lewm eval RUN --offline --data FILE``): judge a world model
and its planner on logged episodes alone, e.g. a robot's logs, where no environment can be reset.

Tasks are drawn as in the online protocol (:func:`lewm.planning.evaluate.sample_tasks`, same
seed, so the same (episode, start) pairs when the context is one frame): a start row ``s`` of a
held-out episode and the goal row ``s + goal_offset`` of the same episode. With frameskip ``f``
the logged segment between them is ``K = goal_offset / f`` action blocks. Two questions:

1. **Does the model predict the logged future?** From the context (the start frame, and the
   ``context - 1`` block-start frames and blocks before it) the predictor rolls the *logged*
   blocks out open-loop; per block k = 1..K, the squared distance ``||z_hat_k - z_k||^2`` to the
   encoded logged frame, beside copying the last context latent (``||z_s - z_k||^2``).
2. **Does planning recover what was done?** The planner (the eval's solver, horizon ``K``, the
   terminal cost to the encoded goal frame) plans once from the start toward the logged goal;
   its blocks are compared with the logged ones in the model's z-scored action units (1.0 = the
   variance of the training actions), per block and for the whole segment's sum (the net
   command, which is determined even where single steps are not). Baselines on the same tasks:
   the mean action (zeros), another task's logged actions (same distribution, unrelated goal)
   and uniform random actions in the training action range. The model's terminal cost of the
   logged blocks stands beside that of the plan: a plan much cheaper than the logged actions
   that does not resemble them points at a model the planner can exploit.

Many action sequences reach a goal, so even a perfect planner does not score zero; the
baselines say what "no recovery" looks like.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lewm.data.config import DataConfig
from lewm.data.hdf5 import DataError, EpisodeDataset
from lewm.models import model_device
from lewm.planning.config import EvalConfig
from lewm.planning.evaluate import eval_episodes, prepare_eval_dir, sample_tasks
from lewm.planning.mpc import Planner
from lewm.planning.objective import GoalCost
from lewm.planning.solvers import make_solver
from lewm.utils.config import to_dict
from lewm.utils.io import check_can_create, write_json
from lewm.utils.progress import progress_bar

log = logging.getLogger(__name__)

OFFLINE_FILE = "offline.json"
OFFLINE_PLOT = "offline.png"

# eval settings that only the online protocol reads (an environment runs them)
ONLINE_ONLY = {
    "budget": "--budget (env steps allowed)",
    "receding": "--receding (blocks executed before replanning)",
    "policy": "--policy (offline, the random baseline is always reported)",
    "num_gifs": "--gifs (offline writes no episode GIFs)",
}


@dataclass
class OfflineResult:
    """What :func:`evaluate_offline` measured; every list of per-block numbers has K entries."""

    tasks: list[tuple[int, int]]  # (episode, start step)
    blocks: int  # K: action blocks from start to goal, the rollout and plan length
    context: int  # frames given to the model
    # 1. open-loop prediction along the logged actions, squared latent distances per block
    rollout_error: list[float]
    rollout_error_std: list[float]
    copy_last_error: list[float]
    start_goal_distance: float  # mean ||z_start - z_goal||^2: the scale of the task
    # 2. planned vs logged actions, z-scored action units, mean over tasks and action values
    action_error: dict[str, list[float]]  # per block: planned / mean_action / other_task / random
    net_action_error: dict[str, float]  # ||sum of blocks - logged sum||^2 / (K f A), same keys
    # R^2 of the planned actions: 1 - planned error / mean-action error (0: no better than the
    # training mean action; negative: worse), over all blocks, the first block (what MPC would
    # execute) and the segment's net command
    action_r2: float
    first_block_r2: float
    net_action_r2: float
    cost_planned: float  # mean terminal cost of the plan (the solver's own)
    cost_logged: float  # mean terminal cost of the logged blocks under the model
    cost_planned_median: float  # the medians (the means are dominated by the failures)
    cost_logged_median: float
    plan_cheaper_fraction: float  # tasks whose plan costs less than the logged blocks
    plan_seconds_mean: float  # per task
    wall_seconds: float
    settings: dict[str, Any]
    per_task: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def offline_folder_name(cfg: EvalConfig, data: str | os.PathLike) -> str:
    """``offline_SOLVER_DIGEST``: a digest of every setting and the data file, so evaluations
    with other settings never share a folder."""
    settings = {"data": str(Path(data).resolve()), **to_dict(cfg)}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    what = cfg.solver.kind
    if cfg.proposal != "none" and cfg.solver.kind != cfg.proposal:
        what += f"-from-{cfg.proposal}"
    return f"offline_{what}_{digest.hexdigest()[:8]}"


def _check_shapes(model: Any, dataset: EpisodeDataset, cfg: EvalConfig) -> tuple[int, int, int]:
    """(K blocks, frameskip, context frames), or one clear error."""
    f, history = int(model.frameskip), int(model.history)
    if dataset.action_dim != model.action_dim:
        raise DataError(
            f"{dataset.path} has actions of {dataset.action_dim} values, the model takes "
            f"{model.action_dim}: give episodes of the environment the model was trained on"
        )
    if tuple(dataset.image_shape) != tuple(model.metadata.get("image_shape", dataset.image_shape)):
        raise DataError(
            f"{dataset.path} has frames of shape {tuple(dataset.image_shape)}, the model was "
            f"trained on {tuple(model.metadata['image_shape'])}: give frames of that size"
        )
    if cfg.goal_offset % f:
        raise DataError(
            f"eval.goal_offset={cfg.goal_offset} (--goal-offset) is not a multiple of the model's "
            f"frameskip {f}: offline, the goal must be a frame the model predicts (one every "
            f"{f} steps)"
        )
    K = cfg.goal_offset // f
    if cfg.horizon != K:
        raise DataError(
            f"offline, the plan must end at the logged goal: eval.horizon={cfg.horizon} "
            f"(--horizon) blocks of {f} steps != eval.goal_offset={cfg.goal_offset} "
            f"(--goal-offset) steps; pass --horizon {K} or --goal-offset {cfg.horizon * f}"
        )
    return K, f, min(int(cfg.context), history)


@torch.inference_mode()
def _encode_rows(model: Any, dataset: EpisodeDataset, rows: np.ndarray, device) -> torch.Tensor:
    """Latents (N, T, D) of the frames at ``rows`` (N, T)."""
    px = torch.as_tensor(np.asarray(dataset.rows("pixels", rows))).to(device)
    return model.encode(px).float()


def evaluate_offline(
    model: Any,
    data: str | os.PathLike,
    cfg: EvalConfig,
    out_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    overwrite: bool = False,
    proposal: Any | None = None,
    batch: int = 50,
) -> OfflineResult:
    """Open-loop prediction error and action recovery on the logged episodes of ``data``
    (module docstring). Writes ``offline.json`` and ``offline.png`` into ``out_dir`` if given;
    an ``out_dir`` holding an earlier offline evaluation is refused unless ``overwrite``.
    ``proposal``: the trained policy that ``eval.proposal=policy`` / ``eval.solver.kind=policy``
    plan with. ``batch``: tasks planned together in one solver call. ``device``: where the model
    plans (default: where it is)."""
    t0 = time.perf_counter()
    if cfg.uses_policy() and proposal is None:
        from lewm.planning.policy import PolicyError

        raise PolicyError(
            f"eval.solver.kind={cfg.solver.kind} with eval.proposal={cfg.proposal} plans with the "
            "checkpoint's trained policy, and none was given: run `lewm policy RUN` first"
        )
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if out_dir is not None:
        prepare_eval_dir(out_dir, overwrite, (OFFLINE_FILE, OFFLINE_PLOT), "an offline evaluation")
        check_can_create(out_dir)
    data_path = Path(data)
    metadata = getattr(model, "metadata", {}) or {}
    dataset = DataConfig.recorded(metadata).open(data_path, in_memory=False, recorded=True)
    K, f, C = _check_shapes(model, dataset, cfg)
    episodes = eval_episodes(dataset, data_path, metadata, cfg.split)
    tasks = sample_tasks(
        dataset, episodes, cfg.episodes, cfg.goal_offset, cfg.seed, min_start=(C - 1) * f
    )
    n = len(tasks)
    norm = model.action_normalizer()
    model = model.to(model_device(model) if device is None else device).eval()

    # rows: context frames, then the K block-start frames up to the goal; raw action rows
    starts = np.array([int(dataset.ep_offset[e]) + s for e, s in tasks])  # (n,)
    frame_rows = starts[:, None] + np.arange(-(C - 1), K + 1) * f  # (n, C+K)
    act_rows = starts[:, None] + np.arange(-(C - 1) * f, K * f)  # (n, (C-1+K) f)
    raw = np.asarray(dataset.rows("action", act_rows), np.float32)  # (n, (C-1+K) f, A)
    if not np.isfinite(raw).all():
        raise DataError(f"{data_path}: the logged actions of the sampled tasks hold NaN or inf")
    A = raw.shape[-1]
    logged_all = torch.as_tensor(norm.normalize("action", raw)).float()
    logged_all = logged_all.reshape(n, C - 1 + K, f * A)  # (n, C-1+K, Ab) z-scored blocks
    hist_all = logged_all[:, : C - 1] if C > 1 else None  # (n, C-1, Ab)
    logged = logged_all[:, C - 1 :]  # (n, K, Ab)

    solver = make_solver(
        cfg.solver.kind,
        **{**{k: v for k, v in asdict(cfg.solver).items() if k != "kind"}, "seed": cfg.seed},
    )
    objective = GoalCost(cfg.cost)
    planner = Planner(model, solver, objective=objective, horizon=K, receding=K, proposal=proposal)
    gen = torch.Generator(device=planner.device).manual_seed(cfg.seed)
    z_all, pred_logged, planned, cost_plan, plan_time = [], [], [], [], 0.0
    bar = progress_bar(n, "offline eval", progress, unit="task")
    for lo in range(0, n, batch):
        sl = slice(lo, min(n, lo + batch))
        z = _encode_rows(model, dataset, frame_rows[sl], planner.device)  # (b, C+K, D)
        hist = hist_all[sl].to(planner.device) if hist_all is not None else None
        with torch.inference_mode():
            pred = model.rollout(z[:, :C], logged[sl][:, None].to(planner.device), hist)[:, 0]
        tp = time.perf_counter()  # the context was encoded above, with the rest of the window
        result = planner.plan_from_goal_latents(None, z[:, -1], hist, None, gen, z[:, :C])
        plan_time += time.perf_counter() - tp
        z_all.append(z.cpu())
        pred_logged.append(pred.float().cpu())
        planned.append(result.actions.detach().float().cpu())
        cost_plan.append(result.cost.detach().float().cpu())
        bar.update(sl.stop - sl.start)
    bar.close()
    z, pred = torch.cat(z_all), torch.cat(pred_logged)  # (n, C+K, D), (n, K, D)
    plan = torch.cat(planned)  # (n, K, Ab) z-scored
    # the executed plan would be clipped into the training action range (as online, to the env's)
    span = metadata.get("action_range")
    if span is not None:
        lo_, hi_ = (torch.as_tensor(np.asarray(b, np.float32)) for b in span)
        raw_plan = norm.denormalize("action", plan.reshape(n, K * f, A))
        raw_plan = torch.maximum(torch.minimum(torch.as_tensor(raw_plan), hi_), lo_)
        plan = torch.as_tensor(norm.normalize("action", raw_plan)).float().reshape(n, K, f * A)

    real = z[:, C:]  # (n, K, D)
    roll_err = (pred - real).square().sum(-1)  # (n, K)
    copy_err = (z[:, C - 1 : C] - real).square().sum(-1)  # (n, K)
    cost_logged = objective(pred[:, None], z[:, -1]).reshape(n)  # (n,)
    cost_planned = torch.cat(cost_plan).reshape(n)

    rng = np.random.default_rng([cfg.seed, 1])
    if span is not None:
        rand_raw = rng.uniform(np.asarray(span[0]), np.asarray(span[1]), size=(n, K * f, A))
    else:  # no recorded range: uniform over +-sqrt(3) std, the z-scored unit variance box
        rand_raw = norm.denormalize(
            "action", rng.uniform(-np.sqrt(3), np.sqrt(3), size=(n, K * f, A)).astype(np.float32)
        )
    random = torch.as_tensor(norm.normalize("action", np.asarray(rand_raw, np.float32)))
    candidates = {
        "planned": plan,
        "mean_action": torch.zeros_like(logged),
        "other_task": logged.roll(1, 0) if n > 1 else torch.zeros_like(logged),
        "random": random.float().reshape(n, K, f * A),
    }
    per_block = {k: (v - logged).square().mean(-1) for k, v in candidates.items()}  # (n, K)
    net = {
        k: (v.reshape(n, K * f, A).sum(1) - logged.reshape(n, K * f, A).sum(1)).square().sum(-1)
        / (K * f * A)
        for k, v in candidates.items()
    }  # (n,)
    mean_err = per_block["mean_action"]

    def r2(planned: torch.Tensor, baseline: torch.Tensor) -> float:
        return float(1 - planned.mean() / baseline.mean().clamp_min(1e-12))

    result = OfflineResult(
        tasks=[(int(e), int(s)) for e, s in tasks],
        blocks=K,
        context=C,
        rollout_error=roll_err.mean(0).tolist(),
        rollout_error_std=roll_err.std(0, unbiased=False).tolist(),
        copy_last_error=copy_err.mean(0).tolist(),
        start_goal_distance=float(copy_err[:, -1].mean()),
        action_error={k: v.mean(0).tolist() for k, v in per_block.items()},
        net_action_error={k: float(v.mean()) for k, v in net.items()},
        action_r2=r2(per_block["planned"], mean_err),
        first_block_r2=r2(per_block["planned"][:, 0], mean_err[:, 0]),
        net_action_r2=r2(net["planned"], net["mean_action"]),
        cost_planned=float(cost_planned.mean()),
        cost_logged=float(cost_logged.mean()),
        cost_planned_median=float(cost_planned.median()),
        cost_logged_median=float(cost_logged.median()),
        plan_cheaper_fraction=float((cost_planned < cost_logged).float().mean()),
        plan_seconds_mean=plan_time / n,
        wall_seconds=time.perf_counter() - t0,
        settings={
            **to_dict(cfg),
            "data": str(data_path),
            "frameskip": f,
            "action_units": "z-scored with the model's training statistics",
            "threads": torch.get_num_threads(),
        },
        per_task={
            "rollout_error_at_goal": roll_err[:, -1].tolist(),
            "copy_last_error_at_goal": copy_err[:, -1].tolist(),
            "planned_action_error": per_block["planned"].mean(1).tolist(),
            "mean_action_error": mean_err.mean(1).tolist(),
            "cost_planned": cost_planned.tolist(),
            "cost_logged": cost_logged.tolist(),
        },
    )
    if not np.isfinite([result.cost_planned, result.cost_logged, *result.rollout_error]).all():
        raise FloatingPointError(
            "the model gave NaN or inf latents on these episodes: check the checkpoint (lewm "
            "train writes finite weights) and the frames"
        )
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / OFFLINE_FILE, result.to_dict())
        plot_offline(result, out / OFFLINE_PLOT)
    return result


def plot_offline(result: OfflineResult, path: str | os.PathLike) -> None:
    """Two panels: open-loop error per block beside copy-last, and action error per block of
    the plan beside the baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = np.arange(1, result.blocks + 1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    m, s = np.array(result.rollout_error), np.array(result.rollout_error_std)
    a.plot(k, m, "o-", label="open loop, logged actions")
    a.fill_between(k, m - s, m + s, alpha=0.2)
    a.plot(k, result.copy_last_error, "s--", label="copy last context latent")
    a.set_xlabel("blocks ahead")
    a.set_ylabel(r"$\|\hat z - z\|^2$")
    a.set_title("prediction of the logged future")
    a.legend(fontsize=8)
    styles = {"planned": "o-", "other_task": "s--", "mean_action": "^:", "random": "x:"}
    for name, err in result.action_error.items():
        b.plot(k, err, styles.get(name, "-"), label=name.replace("_", " "))
    b.set_xlabel("block")
    b.set_ylabel("MSE to the logged actions (z-scored)")
    b.set_title(f"action recovery (R$^2$ {result.action_r2:.2f})")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


__all__ = [
    "OFFLINE_FILE",
    "ONLINE_ONLY",
    "OfflineResult",
    "evaluate_offline",
    "offline_folder_name",
    "plot_offline",
]
