"""The amortised planner: a goal-conditioned policy trained on a frozen world model's latents.

A small MLP maps (z_t, z_goal) - the encoding of the current frame and of a goal frame - to the
next H action blocks in the model's normalised action space, the same (H, Ab) plan the solvers
search. It learns from the model's own offline data (hindsight relabelling): for a random
(episode, t) and a goal k env steps later in the same episode, the target is the logged actions
from t; steps at or after the goal are masked out of the loss (success counts at any step, so
what a plan does after reaching the goal does not matter). The world model is frozen (eval
mode, no gradient): every frame of the chosen episodes is encoded once, then the MLP trains on
the cached latents, in seconds on a CPU.

It plans three ways (see :mod:`lewm.planning.solvers.policy`): alone (``--solver policy``, one
forward pass per plan), or as the proposal that warm-starts a searching solver
(``eval.proposal=policy``: CEM/iCEM/MPPI start their Gaussian at its plan).

    CKPT/policy/{policy.json, policy.safetensors}      (CKPT: RUN/model for a run folder)

``policy.json`` records the architecture, the sha256 of the ``model.safetensors`` it was trained
against (a policy is refused for any other model), the data file, its episode split, the
settings and the final losses. The folder is written atomically (a temporary folder, synced,
renamed into place) and replaces only another policy folder; the checkpoint's own files are
only read, and loading the world model ignores the folder.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lewm.data.hdf5 import DataError
from lewm.models import CheckpointError, model_device
from lewm.models.checkpoint import weights_sha256
from lewm.models.heads import (
    HeadFormat,
    check_head_for,
    check_head_out,
    head_episodes,
    is_head_dir,
    load_head,
    save_head,
)
from lewm.utils.config import check, check_seed
from lewm.utils.progress import progress_bar

log = logging.getLogger(__name__)

POLICY_FORMAT, POLICY_VERSION = "lewm-policy", 1
POLICY_DIR = "policy"  # inside the checkpoint folder it belongs to
CONFIG_NAME, WEIGHTS_NAME = "policy.json", "policy.safetensors"


class PolicyError(CheckpointError):
    """A policy folder is missing, broken, or belongs to another world model."""


POLICY = HeadFormat(
    what="policy",
    format=POLICY_FORMAT,
    version=POLICY_VERSION,
    config_name=CONFIG_NAME,
    weights_name=WEIGHTS_NAME,
    folder=POLICY_DIR,
    train_command="lewm policy RUN",
    error=PolicyError,
)


# -- the network ----------------------------------------------------------------------------------


@dataclass
class PolicyConfig:
    latent_dim: int  # D of the world model
    action_block_dim: int  # Ab = frameskip x action_dim of the world model
    horizon: int = 5  # H: action blocks it outputs (the planner's horizon)
    hidden: int = 512  # width of the MLP
    depth: int = 3  # hidden layers (Linear, LayerNorm, GELU)

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            check(
                isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1 << 14,
                f"policy {f.name} must be an integer in [1, 16384], got {v!r}",
            )


class GoalPolicy(nn.Module):
    """pi(z_t, z_goal) -> H normalised action blocks.

    Both latents are standardised with the training latents' statistics; the MLP reads
    [z_t, z_goal, z_goal - z_t]. As a :class:`~lewm.planning.protocol.Proposal` it reads the
    last context latent (the predictor's earlier context frames and blocks are not used).
    """

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.config = config
        D, W = config.latent_dim, config.hidden
        layers: list[nn.Module] = []
        width = 3 * D
        for _ in range(config.depth):
            layers += [nn.Linear(width, W), nn.LayerNorm(W), nn.GELU()]
            width = W
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, config.horizon * config.action_block_dim)
        self.register_buffer("z_mean", torch.zeros(D))
        self.register_buffer("z_std", torch.ones(D))

    def forward(self, z: Tensor, z_goal: Tensor) -> Tensor:
        """z (N, D), z_goal (N, D) -> plan (N, H, Ab)."""
        a = (z - self.z_mean) / self.z_std  # (N, D)
        g = (z_goal - self.z_mean) / self.z_std  # (N, D)
        out = self.head(self.body(torch.cat([a, g, g - a], dim=-1)))  # (N, H*Ab)
        return out.view(len(z), self.config.horizon, self.config.action_block_dim)

    def propose(
        self, z_ctx: Tensor, z_goal: Tensor, history_actions: Tensor | None, horizon: int
    ) -> Tensor:
        """The Proposal protocol: z_ctx (B, C, D), z_goal (B, D) -> (B, horizon, Ab). A horizon
        beyond the policy's is padded with zeros (the solvers' prior mean); a shorter one keeps
        the first blocks."""
        p = next(self.parameters())
        plan = self(z_ctx[:, -1].to(p), z_goal.to(p))  # (B, H_pi, Ab)
        H = self.config.horizon
        if horizon <= H:
            return plan[:, :horizon]
        pad = plan.new_zeros(len(plan), horizon - H, plan.shape[-1])
        return torch.cat([plan, pad], dim=1)  # (B, horizon, Ab)


# -- training data: the frozen model's latents of whole episodes ----------------------------------


@dataclass
class PolicyTrainConfig:
    steps: int = 4000  # optimiser steps
    batch_size: int = 256  # (start, goal) pairs per step
    lr: float = 1e-3  # AdamW, cosine decay to 0 after a 5 % warm-up
    weight_decay: float = 1e-4
    horizon: int = 5  # action blocks predicted (eval.horizon: 5 in the paper's protocol)
    hidden: int = 512
    depth: int = 3
    # goals k env steps ahead, k uniform in [goal_min, goal_max]; None: 1 block and 2 x H blocks
    # (the paper's protocol puts the goal 25 steps = H blocks ahead at frameskip 5)
    goal_min: int | None = None
    goal_max: int | None = None
    max_frames: int = 150_000  # frames of training episodes encoded (whole episodes, drawn)
    val_frames: int = 20_000  # frames of held-out episodes encoded for the validation score
    val_pairs: int = 4096  # held-out pairs scored
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "horizon", "hidden", "depth", "max_frames"):
            v = getattr(self, name)
            check(v >= 1, f"policy {name} must be >= 1, got {v}")
        for name in ("val_frames", "val_pairs"):
            check(getattr(self, name) >= 1, f"policy {name} must be >= 1")
        check(
            math.isfinite(self.lr) and 0 < self.lr <= 1, f"policy lr must be in (0, 1]: {self.lr}"
        )
        check(
            math.isfinite(self.weight_decay) and self.weight_decay >= 0,
            f"policy weight_decay must be >= 0, got {self.weight_decay}",
        )
        for name in ("goal_min", "goal_max"):
            v = getattr(self, name)
            check(v is None or v >= 1, f"policy {name} must be >= 1 env step, got {v}")
        if self.goal_min is not None and self.goal_max is not None:
            check(
                self.goal_min <= self.goal_max,
                f"policy goal_min ({self.goal_min}) exceeds goal_max ({self.goal_max})",
            )
        check_seed(self.seed, "policy seed (--seed)")

    def goal_range(self, frameskip: int) -> tuple[int, int]:
        lo = self.goal_min if self.goal_min is not None else frameskip
        hi = self.goal_max if self.goal_max is not None else 2 * self.horizon * frameskip
        return lo, max(lo, hi)


def policy_episodes(
    model: Any, data: Any, seed: int, val_fraction: float = 0.1
) -> tuple[np.ndarray, np.ndarray, str]:
    """(train, val) episode ids of ``data``: the world model's own split ("model") when ``data``
    is its training file with a recorded split (its validation episodes stay unseen by the
    policy too), else a split of the file drawn with ``seed`` ("own")."""
    return head_episodes(model, data, seed, val_fraction, "policy")


@dataclass
class LatentEpisodes:
    """Cached latents and normalised actions of whole episodes, concatenated.

    z (N, D) float32, action (N, A) normalised (NaN -> 0: an episode's last action is never a
    target), remaining (N,) env steps from each row to its episode's last row.
    """

    z: Tensor
    action: Tensor
    remaining: np.ndarray
    episodes: np.ndarray

    def __len__(self) -> int:
        return len(self.z)


def pick_episodes(data: Any, episodes: np.ndarray, max_frames: int, seed: int) -> np.ndarray:
    """Episodes (sorted) holding at most ``max_frames`` frames: all when they fit, else a random
    subset (at least one)."""
    lens = np.asarray(data.ep_len)[episodes]
    if lens.sum() <= max_frames:
        return np.asarray(episodes)
    order = np.random.default_rng(seed).permutation(len(episodes))
    keep = order[: max(1, int(np.searchsorted(np.cumsum(lens[order]), max_frames, "right")))]
    return np.sort(np.asarray(episodes)[keep])


@torch.no_grad()
def encode_episodes(
    model: Any,
    data: Any,
    episodes: np.ndarray,
    batch_size: int = 256,
    progress: bool | None = False,
    label: str = "encode",
) -> LatentEpisodes:
    """Encode every frame of ``episodes`` with the frozen model (batched, no grad) and read
    their actions, normalised with the model's action statistics."""
    dev = model_device(model)
    norm = model.action_normalizer()
    lens = np.asarray(data.ep_len)[episodes].astype(np.int64)
    offs = np.asarray(data.ep_offset)[episodes].astype(np.int64)
    zs, buf = [], []
    bar = progress_bar(int(lens.sum()), label, progress, unit="frame")

    def flush() -> None:
        px = torch.from_numpy(np.ascontiguousarray(np.concatenate(buf))).to(dev)
        zs.append(model.encode(px[:, None])[:, 0].float().cpu())  # (b, D)
        bar.update(len(px))
        buf.clear()

    acts, remaining = [], []
    pending = 0
    for s, L in zip(offs, lens, strict=True):
        rows = np.arange(s, s + L)  # any reader (HDF5, several files, LeRobot) gathers rows
        buf.append(np.asarray(data.rows("pixels", rows)))  # (L, h, w, 3)
        acts.append(np.asarray(data.rows("action", rows), dtype=np.float32))  # (L, A)
        remaining.append(np.arange(L - 1, -1, -1))
        pending += int(L)
        if pending >= batch_size:
            flush()
            pending = 0
    if buf:
        flush()
    bar.close()
    act = norm.normalize("action", torch.from_numpy(np.concatenate(acts)))  # (N, A)
    act = torch.nan_to_num(torch.as_tensor(act, dtype=torch.float32), nan=0.0)
    z = torch.cat(zs)  # (N, D)
    if not torch.isfinite(z).all():
        raise FloatingPointError(
            "the world model encodes some frames to NaN/inf; nothing was written - check the "
            "checkpoint (`lewm info`) and the data"
        )
    return LatentEpisodes(z=z, action=act, remaining=np.concatenate(remaining), episodes=episodes)


class PairSampler:
    """(start row, goal offset k) pairs inside one episode, k uniform in [lo, hi] (clipped to
    the longest remaining span), the start uniform over the rows with >= k steps left; and the
    H-block action targets from the start with a mask of the steps before the goal."""

    def __init__(self, lat: LatentEpisodes, lo: int, hi: int, horizon: int, frameskip: int):
        self.lat, self.H, self.f = lat, horizon, frameskip
        self.order = np.argsort(lat.remaining, kind="stable")  # rows by steps left, ascending
        self.sorted_rem = lat.remaining[self.order]
        longest = int(self.sorted_rem[-1]) if len(self.sorted_rem) else 0
        if longest < lo:
            raise DataError(
                f"no episode is longer than the smallest goal offset ({lo} env steps): collect "
                "longer episodes or lower the goal offset range"
            )
        self.lo, self.hi = lo, min(hi, longest)

    def sample(self, n: int, rng: np.random.Generator, k: int | None = None) -> dict[str, Tensor]:
        N = len(self.sorted_rem)
        ks = (
            rng.integers(self.lo, self.hi + 1, size=n)
            if k is None
            else np.full(n, min(max(k, self.lo), self.hi))
        )
        first = np.searchsorted(self.sorted_rem, ks, side="left")  # rows with >= k steps left
        pick = first + (rng.random(n) * (N - first)).astype(np.int64)
        rows = self.order[np.minimum(pick, N - 1)]  # (n,)
        steps = self.H * self.f
        j = np.arange(steps)  # (H*f,)
        act_rows = rows[:, None] + np.minimum(j[None], self.lat.remaining[rows][:, None])
        A = self.lat.action.shape[1]
        target = self.lat.action[torch.from_numpy(act_rows)]  # (n, H*f, A)
        mask = torch.from_numpy(j[None] < ks[:, None]).float()  # (n, H*f): before the goal
        return {
            "z": self.lat.z[torch.from_numpy(rows)],  # (n, D)
            "z_goal": self.lat.z[torch.from_numpy(rows + ks)],  # (n, D)
            "target": target.reshape(n, self.H, self.f * A),  # (n, H, Ab)
            "mask": mask[:, :, None].expand(n, steps, A).reshape(n, self.H, self.f * A),
        }


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error over the unmasked entries."""
    return ((pred - target).pow(2) * mask).sum() / mask.sum().clamp_min(1.0)


@torch.no_grad()
def _score(policy: GoalPolicy, batch: dict[str, Tensor], chunk: int = 2048) -> float:
    dev = next(policy.parameters()).device
    num = den = 0.0
    for i in range(0, len(batch["z"]), chunk):
        b = {k: v[i : i + chunk].to(dev) for k, v in batch.items()}
        pred = policy(b["z"], b["z_goal"])
        num += float(((pred - b["target"]).pow(2) * b["mask"]).sum())
        den += float(b["mask"].sum())
    return num / max(den, 1.0)


def _zero_score(batch: dict[str, Tensor]) -> float:
    """The masked MSE of the all-zero plan (the solvers' prior mean)."""
    return float((batch["target"].pow(2) * batch["mask"]).sum() / batch["mask"].sum().clamp_min(1))


def fit_policy(
    train: LatentEpisodes,
    val: LatentEpisodes,
    action_block_dim: int,
    frameskip: int,
    cfg: PolicyTrainConfig,
    device: torch.device | str = "cpu",
    progress: bool | None = False,
) -> tuple[GoalPolicy, dict[str, float]]:
    """Fit a policy on cached latents; returns it (eval mode) and its masked MSEs (normalised
    action units): on training pairs, on held-out pairs (goal offsets over the whole range, and
    exactly H blocks ahead) and, for scale, the all-zero plan's on the same held-out pairs."""
    dev = torch.device(device)
    lo, hi = cfg.goal_range(frameskip)
    torch.manual_seed(cfg.seed)
    pcfg = PolicyConfig(
        latent_dim=int(train.z.shape[1]),
        action_block_dim=action_block_dim,
        horizon=cfg.horizon,
        hidden=cfg.hidden,
        depth=cfg.depth,
    )
    policy = GoalPolicy(pcfg).to(dev)
    policy.z_mean.copy_(train.z.mean(0))
    policy.z_std.copy_(train.z.std(0).clamp_min(1e-6 * float(train.z.std(0).max()) + 1e-12))
    tr = PairSampler(train, lo, hi, cfg.horizon, frameskip)
    va = PairSampler(val, lo, hi, cfg.horizon, frameskip)
    rng = np.random.default_rng(cfg.seed)
    val_rng = np.random.default_rng([cfg.seed, 1])
    val_batch = va.sample(cfg.val_pairs, val_rng)
    val_at_h = va.sample(cfg.val_pairs, val_rng, k=cfg.horizon * frameskip)
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, cfg.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / cfg.steps)))
        ),
    )
    bar = progress_bar(cfg.steps, "policy", progress, unit="step")
    policy.train()
    first = None
    for step in range(cfg.steps):
        b = {k: v.to(dev) for k, v in tr.sample(cfg.batch_size, rng).items()}
        loss = masked_mse(policy(b["z"], b["z_goal"]), b["target"], b["mask"])
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"policy training diverged at step {step} (loss {float(loss)}); nothing was "
                "written - lower --lr"
            )
        first = float(loss.detach()) if first is None else first
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.update(1)
        if step % 100 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    bar.close()
    policy.eval()
    train_batch = tr.sample(cfg.val_pairs, np.random.default_rng([cfg.seed, 2]))
    losses = {
        "first_train_mse": float(first),
        "train_mse": _score(policy, train_batch),
        "val_mse": _score(policy, val_batch),
        "val_zero_plan_mse": _zero_score(val_batch),
        "val_mse_at_horizon": _score(policy, val_at_h),
        "val_zero_plan_mse_at_horizon": _zero_score(val_at_h),
    }
    return policy, losses


def train_policy(
    model: Any,
    data: Any,
    ckpt: str | os.PathLike,
    cfg: PolicyTrainConfig | None = None,
    progress: bool | None = False,
) -> tuple[GoalPolicy, dict[str, Any]]:
    """Train a policy on the frozen ``model``'s latents of ``data``; returns it and its record
    (what ``policy.json`` holds). ``ckpt``: the model's checkpoint folder (its weights file
    fingerprints the model)."""
    cfg = cfg or PolicyTrainConfig()
    t0 = time.perf_counter()
    fingerprint = weights_sha256(ckpt)
    model.eval()
    train_eps, val_eps, split = policy_episodes(model, data, cfg.seed)
    tr_eps = pick_episodes(data, train_eps, cfg.max_frames, cfg.seed)
    va_eps = pick_episodes(data, val_eps, cfg.val_frames, cfg.seed + 1)
    train = encode_episodes(model, data, tr_eps, progress=progress, label="encode train")
    val = encode_episodes(model, data, va_eps, progress=progress, label="encode held-out")
    t_enc = time.perf_counter() - t0
    f = int(model.frameskip)
    policy, losses = fit_policy(
        train, val, int(model.action_block_dim), f, cfg, model_device(model), progress
    )
    if not all(math.isfinite(v) for v in losses.values()):
        raise FloatingPointError("policy training ended with NaN losses; nothing was written")
    lo, hi = cfg.goal_range(f)
    record = {
        "format": POLICY_FORMAT,
        "version": POLICY_VERSION,
        "policy": asdict(policy.config),
        "model": {
            "sha256": fingerprint,
            "checkpoint": str(Path(ckpt).resolve()),
            "kind": getattr(model.config, "kind", None),
            "latent_dim": int(model.latent_dim),
            "action_block_dim": int(model.action_block_dim),
            "frameskip": f,
        },
        "data": {
            "path": str(Path(data.path).resolve()),
            "split": split,
            "train_episodes": len(tr_eps),
            "val_episodes": len(va_eps),
            "train_frames": len(train),
            "val_frames": len(val),
        },
        "training": {
            **{k: getattr(cfg, k) for k in ("steps", "batch_size", "lr", "weight_decay", "seed")},
            "goal_offset_range": [lo, hi],
            "loss": "MSE on normalised actions, steps before the goal",
            "encode_seconds": round(t_enc, 1),
            "seconds": round(time.perf_counter() - t0, 1),
        },
        "losses": losses,
    }
    return policy, record


# -- saving and loading ---------------------------------------------------------------------------


def default_policy_dir(ckpt: str | os.PathLike) -> Path:
    """Where ``lewm policy`` saves the policy of a checkpoint folder, and ``lewm eval`` looks."""
    return Path(ckpt) / POLICY_DIR


def is_policy_dir(path: str | os.PathLike) -> bool:
    return is_head_dir(POLICY, path)


def check_policy_out(path: str | os.PathLike, overwrite: bool) -> Path:
    """Before training: ``path`` is free, or (with ``overwrite``) a policy folder or an empty
    one - never anything else (a run or checkpoint folder, a file)."""
    return check_head_out(POLICY, path, overwrite)


def save_policy(
    policy: GoalPolicy, record: dict[str, Any], path: str | os.PathLike, overwrite: bool = False
) -> Path:
    """Write ``policy.safetensors`` + ``policy.json`` into folder ``path``, atomically."""
    return save_head(POLICY, policy, record, path, overwrite)


def load_policy(path: str | os.PathLike) -> tuple[GoalPolicy, dict[str, Any]]:
    """The policy saved in folder ``path`` and its record, in eval mode on the CPU. Every
    problem is one :class:`PolicyError` naming the file."""
    policy, record = load_head(POLICY, path, lambda r: GoalPolicy(PolicyConfig(**r["policy"])))
    return policy, record  # type: ignore[return-value]


def check_policy_for(
    record: dict[str, Any], ckpt: str | os.PathLike, where: str | os.PathLike
) -> None:
    """Refuse a policy trained against another world model than the checkpoint ``ckpt``."""
    check_head_for(POLICY, record, ckpt, where)


def policy_for(ckpt: str | os.PathLike, model: Any, folder: str | os.PathLike | None = None):
    """The policy of checkpoint folder ``ckpt`` (``CKPT/policy/`` unless ``folder``), checked
    against it and ``model``, on the model's device: one :class:`PolicyError` otherwise."""
    where = Path(folder) if folder is not None else default_policy_dir(ckpt)
    if folder is None and not where.exists():
        raise PolicyError(
            f"checkpoint {ckpt} has no trained policy ({POLICY_DIR}/ is missing): the policy "
            "solver and eval.proposal=policy need one - run `lewm policy RUN` first"
        )
    policy, record = load_policy(where)
    check_policy_for(record, ckpt, where)
    c = policy.config
    if c.latent_dim != int(model.latent_dim) or c.action_block_dim != int(model.action_block_dim):
        raise PolicyError(
            f"the policy {where} reads {c.latent_dim}-dim latents and writes "
            f"{c.action_block_dim}-dim action blocks; the model has {model.latent_dim} and "
            f"{model.action_block_dim}: it belongs to another model"
        )
    return policy.to(model_device(model))


__all__ = [
    "GoalPolicy",
    "LatentEpisodes",
    "PairSampler",
    "PolicyConfig",
    "PolicyError",
    "PolicyTrainConfig",
    "check_policy_for",
    "check_policy_out",
    "default_policy_dir",
    "encode_episodes",
    "fit_policy",
    "load_policy",
    "masked_mse",
    "policy_episodes",
    "policy_for",
    "save_policy",
    "train_policy",
]
