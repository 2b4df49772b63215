"""Toy world models and solvers shared by the planning tests (fixtures: conftest.py).

The toys implement the planning protocols with a few lines each: a point mass seen through a
one-hot image (:class:`PointModel`, :class:`PointEnv`), a model whose latents are zeros
(:class:`NullModel`), one that records what it was asked (:class:`RecordingModel`), and a
solver that returns recognisable plans (:class:`SpySolver`); :func:`tiny_tworoom_run` trains a
tiny real LeWM on Two-Room for the tests that need one.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from lewm.config import apply_overrides, preset
from lewm.envs.tworoom import collect_tworoom
from lewm.planning import SolveResult
from lewm.training.trainer import train

IMG = 16  # toy image side


def render(pos) -> np.ndarray:
    """A one-hot image: one bright pixel at (row=y, col=x)."""
    img = np.zeros((IMG, IMG, 3), np.uint8)
    x, y = np.clip(np.rint(pos), 0, IMG - 1).astype(int)
    img[y, x] = 255
    return img


class PointModel:
    """z = 2-D position decoded from a one-hot image; each raw step moves by denorm(action)."""

    history = 1

    def __init__(self, frameskip: int, denorm=lambda a: a) -> None:
        self.frameskip, self.denorm = frameskip, denorm
        self.action_block_dim = frameskip * 2

    def encode(self, pixels):
        B, T = pixels.shape[:2]
        flat = pixels[..., 0].reshape(B, T, IMG * IMG).float()  # (B, T, h*w)
        idx = flat.argmax(dim=-1)  # (B, T)
        return torch.stack([idx % IMG, idx // IMG], dim=-1).float()  # (B, T, 2) = (x, y)

    def rollout(self, z_context, actions, history_actions=None):
        B, S, H, Ab = actions.shape
        steps = self.denorm(actions.reshape(B, S, H, self.frameskip, 2))  # (B, S, H, f, 2)
        moves = steps.sum(dim=3).cumsum(dim=2)  # (B, S, H, 2)
        return z_context[:, -1][:, None, None] + moves


class PointEnv:
    def __init__(self, start) -> None:
        self.pos = np.asarray(start, np.float64)

    def step(self, a) -> None:
        self.pos = np.clip(self.pos + a, 0, IMG - 1)

    def render(self) -> np.ndarray:
        return render(self.pos)


class NullModel:
    """Latents are zeros; used where only the controller's bookkeeping matters."""

    def __init__(self, history: int, block_dim: int) -> None:
        self.history, self.action_block_dim = history, block_dim

    def encode(self, pixels):
        return torch.zeros(*pixels.shape[:2], 2)

    def rollout(self, z_context, actions, history_actions=None):
        return torch.zeros(*actions.shape[:3], 2)


class RecordingModel:
    """encode: frame -> its step id (pixel [0, 0, 0]); rollout records what it was given."""

    def __init__(self, history: int, block_dim: int) -> None:
        self.history, self.action_block_dim = history, block_dim
        self.calls: list[tuple[torch.Tensor, torch.Tensor | None]] = []

    def encode(self, pixels):
        return pixels[..., 0, 0, :1].float()  # (B, T, 1)

    def rollout(self, z_context, actions, history_actions=None):
        self.calls.append(
            (z_context.clone(), None if history_actions is None else history_actions.clone())
        )
        return torch.zeros(*actions.shape[:3], 1)


class SpySolver:
    """Returns plan k with values 100*k + block + step/100; records what it was given.

    ``delay``: seconds each ``solve`` sleeps, so a caller's timing can be checked.
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[dict] = []

    def solve(
        self,
        cost_fn,
        batch,
        horizon,
        action_dim,
        *,
        init_mean=None,
        generator=None,
        device=None,
        dtype=torch.float32,
    ):
        probe = torch.zeros(batch, 1, horizon, action_dim)
        assert cost_fn(probe).shape == (batch, 1)
        if self.delay:
            time.sleep(self.delay)
        k = len(self.calls) + 1
        blk = torch.arange(horizon, dtype=dtype)[None, :, None]  # (1, H, 1)
        val = torch.arange(action_dim, dtype=dtype)[None, None] / 100  # (1, 1, Ab)
        actions = (100 * k + blk + val).expand(batch, horizon, action_dim).clone()
        self.calls.append({"batch": batch, "init_mean": init_mean, "actions": actions})
        return SolveResult(actions=actions, cost=torch.zeros(batch), iterations_run=1)


def tiny_tworoom_run(folder, episodes: int, history: int):
    """``folder``/tr.h5 (Two-Room, 16 px) and ``folder``/run, a tiny model (frameskip 5, the
    given history) trained 10 steps on it; returns ``folder``."""
    collect_tworoom(folder / "tr.h5", episodes, resolution=16, seed=0, progress=False)
    overrides = [f"model.predictor.history={history}", "train.steps=10", "train.val_every=0"]
    cfg = apply_overrides(preset("tiny"), [*overrides, "train.ckpt_every=0"])
    train(cfg, folder / "tr.h5", folder / "run", progress=False)
    return folder
