"""Two-Room data: the noisy scripted expert, vectorised over episodes, into the episode HDF5
format (:class:`lewm.data.hdf5.EpisodeWriter`, imported when a collection runs)."""

from __future__ import annotations

import logging
import os
import time
from functools import partial
from typing import Any

import numpy as np

from lewm.envs.registry import check_collection
from lewm.envs.tworoom.dynamics import (
    DEFAULT_LAYOUT,
    EPISODE_STEPS,
    SPEED,
    SUCCESS_DIST,
    sample_free,
    step_dynamics,
    success,
)
from lewm.envs.tworoom.expert import TwoRoomExpert
from lewm.envs.tworoom.render import render_batch

log = logging.getLogger(__name__)


def _episode_rng(seed: int, index: int) -> np.random.Generator:
    """Episode ``index``'s own generator: the data do not depend on how episodes are batched."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def _tasks(seed: int, first: int, n: int, max_steps: int) -> tuple[np.ndarray, ...]:
    """Start (n, 2), target (n, 2) and standard-normal action noise (n, max_steps, 2).

    Targets are uniform in the free space of either room, redrawn while the start is already
    a success (so every episode has at least one action).
    """
    starts = np.empty((n, 2), np.float32)
    targets = np.empty((n, 2), np.float32)
    noise = np.empty((n, max_steps, 2), np.float32)
    for i in range(n):
        rng = _episode_rng(seed, first + i)
        starts[i] = sample_free(rng, 1, DEFAULT_LAYOUT)[0]
        targets[i] = sample_free(rng, 1, DEFAULT_LAYOUT)[0]
        while np.linalg.norm(targets[i] - starts[i]) < SUCCESS_DIST:
            targets[i] = sample_free(rng, 1, DEFAULT_LAYOUT)[0]
        noise[i] = rng.standard_normal((max_steps, 2), dtype=np.float32)
    return starts, targets, noise


BLOCK_BYTES = 32 << 20  # frames of one block of episodes at most (what a worker hands back)


def block_size(episodes: int, num_envs: int, workers: int, max_steps: int, resolution: int) -> int:
    """Episodes per block: at most ``num_envs``, frames of at most :data:`BLOCK_BYTES` (an
    episode at its longest), and with several workers at least four blocks per worker."""
    per_episode = (max_steps + 1) * resolution * resolution * 3
    block = min(num_envs, max(1, BLOCK_BYTES // per_episode))
    if workers > 1:
        block = min(block, -(-episodes // (4 * workers)))
    return max(1, block)


def collect_block(
    first: int, n: int, *, seed: int, max_steps: int, resolution: int, noise_std: float
) -> list[dict[str, np.ndarray]]:
    """Episodes ``first .. first + n - 1`` of a collection with ``seed``, simulated at once: one
    dict of columns per episode (``pixels``, ``action``, ``state``, ``proprio``,
    ``goal_state``). The arrays depend on the seed and the episode index only, not on ``n``."""
    expert = TwoRoomExpert(0.0, layout=DEFAULT_LAYOUT)  # noise comes from the episode generators
    starts, targets, noise = _tasks(seed, first, n, max_steps)
    states = np.empty((n, max_steps + 1, 2), np.float32)  # (n, T+1, 2)
    actions = np.full((n, max_steps + 1, 2), np.nan, np.float32)  # (n, T+1, 2)
    states[:, 0] = starts
    frames = np.full(n, max_steps + 1)  # frames per episode until it ends
    active = np.ones(n, dtype=bool)
    pos = starts.copy()  # (n, 2)
    for t in range(max_steps):
        idx = np.flatnonzero(active)
        if len(idx) == 0:
            break
        u = expert.direction(pos[idx], targets[idx])  # (k, 2)
        a = np.clip(u + np.float32(noise_std) * noise[idx, t], -1.0, 1.0)  # (k, 2)
        actions[idx, t] = a
        pos[idx] = step_dynamics(pos[idx], a, DEFAULT_LAYOUT, SPEED)
        states[idx, t + 1] = pos[idx]
        done = success(pos[idx], targets[idx])  # (k,)
        frames[idx[done]] = t + 2
        active[idx[done]] = False
    episodes = []
    for i in range(n):
        L = int(frames[i])
        st = states[i, :L]  # (L, 2)
        episodes.append(
            {
                "pixels": render_batch(st, resolution, DEFAULT_LAYOUT),  # (L, r, r, 3)
                "action": actions[i, :L],
                "state": st,
                "proprio": st,
                "goal_state": np.repeat(targets[i : i + 1], L, axis=0),  # (L, 2)
            }
        )
    return episodes


def collect_tworoom(
    out: str | os.PathLike,
    episodes: int,
    *,
    resolution: int = 64,
    seed: int = 0,
    max_steps: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    workers: int = 1,
    noise_std: float = 2.0,
    num_envs: int = 256,
) -> dict[str, Any]:
    """Write ``episodes`` noisy-expert Two-Room episodes to the HDF5 file ``out``.

    Each episode has a random start and a random target (either room). It ends at the first
    success (that frame is its last row) or after ``max_steps`` actions (default 100;
    ``max_steps + 1`` frames). Row t holds frame t and the action taken from it; the last action
    is NaN. Columns: ``pixels`` uint8 (L, r, r, 3), ``action`` float32 (L, 2) (clipped, as
    executed), ``state`` and ``proprio`` float32 (L, 2) agent xy, ``goal_state`` float32 (L, 2)
    the target.

    Episodes are simulated in blocks of at most ``num_envs`` at once (fewer when a block's
    frames would pass :data:`BLOCK_BYTES`, or to give each of ``workers`` processes several
    blocks) and written in order as their block finishes. Every episode draws from its own
    seeded generator (tasks and action noise are pre-drawn per episode), so a seed gives
    byte-identical arrays whatever ``num_envs`` and ``workers`` are. Returns ``episodes``,
    ``steps`` (rows, i.e. frames), ``mean_length``/``min_length``/``max_length`` (frames per
    episode), ``success_fraction``, ``workers``, ``seconds`` and ``steps_per_s``.
    """
    from lewm.data.hdf5 import EpisodeWriter
    from lewm.envs.parallel import check_workers, ordered_map
    from lewm.utils.progress import progress_bar

    max_steps = EPISODE_STEPS if max_steps is None else max_steps
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    workers = check_workers(workers)
    check_collection(
        out, episodes, resolution, max_steps, overwrite, noise_std=noise_std, seed=seed
    )
    attrs = {
        "env": "tworoom",
        "resolution": int(resolution),
        "seed": int(seed),
        "noise_std": float(noise_std),
        "max_steps": int(max_steps),
        "policy": "TwoRoomExpert",
        "speed": SPEED,
        "success_dist": SUCCESS_DIST,
    }
    block = block_size(episodes, num_envs, workers, max_steps, resolution)
    jobs = [(first, min(block, episodes - first)) for first in range(0, episodes, block)]
    workers = min(workers, len(jobs))
    run = partial(
        _block_job, seed=seed, max_steps=max_steps, resolution=resolution, noise_std=noise_std
    )
    t0 = time.perf_counter()
    lengths: list[int] = []
    successes: list[bool] = []
    with (
        EpisodeWriter(out, overwrite=overwrite, attrs=attrs) as writer,
        progress_bar(episodes, "collect tworoom", progress, unit="ep") as bar,
        ordered_map(run, jobs, workers) as blocks,
    ):
        for eps in blocks:  # in episode order
            for ep in eps:
                writer.add_episode(**ep)
                lengths.append(len(ep["state"]))
                successes.append(bool(success(ep["state"][-1], ep["goal_state"][-1])))
            bar.update(len(eps))
    seconds = time.perf_counter() - t0
    lens = np.asarray(lengths)
    stats = {
        "episodes": len(lens),
        "steps": int(lens.sum()),
        "mean_length": float(lens.mean()),
        "min_length": int(lens.min()),
        "max_length": int(lens.max()),
        "success_fraction": float(np.mean(successes)),
        "workers": workers,
        "seconds": round(seconds, 2),
        "steps_per_s": round(float(lens.sum()) / max(seconds, 1e-9), 1),
    }
    log.info("collected tworoom into %s: %s", out, stats)
    return stats


def _block_job(job: tuple[int, int], **kwargs: Any) -> list[dict[str, np.ndarray]]:
    first, n = job
    return collect_block(first, n, **kwargs)
