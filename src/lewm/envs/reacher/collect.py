"""Reacher data: a data policy (:mod:`.policy`) into the episode HDF5 format
(:class:`lewm.data.hdf5.EpisodeWriter`, imported when a collection runs), with worker processes
for the rendering, which costs far more than the physics on a CPU."""

from __future__ import annotations

import logging
import os
from functools import partial
from typing import Any

import numpy as np

from lewm.envs.reacher.physics import (
    ACTION_DIM,
    ACTION_REPEAT,
    COLLECT_STEPS,
    PHYSICS_DT,
    STATE_DIM,
    SUCCESS_TOL,
    get_state,
    joint_error,
    new_data,
    sample_state,
    step,
    success,
)
from lewm.envs.reacher.policy import POLICY_KINDS, make_policy
from lewm.envs.registry import check_collection, window_pairs

log = logging.getLogger(__name__)

WINDOW = 25  # env steps: the evaluation's goal offset, over which the stats measure motion


def _episode_rng(seed: int, index: int) -> np.random.Generator:
    """Episode ``index``'s own generator: the data do not depend on the worker count."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def collect_episode(
    seed: int, index: int, max_steps: int, resolution: int, policy_kind: str, noise_std: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Episode ``index`` of a collection with ``seed``: frames (T+1, r, r, 3) uint8, actions
    (T+1, 2) float32 (last row NaN) and states (T+1, 4) float32. The frames are drawn from the
    float32 states, so rendering a stored state gives its stored frame."""
    from lewm.envs.reacher.render import render_batch

    rng = _episode_rng(seed, index)
    data = new_data(sample_state(rng))  # a random pose at rest
    policy = make_policy(policy_kind, rng, noise_std)
    states = np.empty((max_steps + 1, STATE_DIM))  # (T+1, 4)
    actions = np.full((max_steps + 1, ACTION_DIM), np.nan, np.float32)  # (T+1, 2)
    states[0] = get_state(data)
    for t in range(max_steps):
        actions[t] = policy.act(states[t])
        step(data, actions[t])
        states[t + 1] = get_state(data)
    st = states.astype(np.float32)
    return render_batch(st, resolution), actions, st


def _job(index: int, **kwargs: Any) -> dict[str, np.ndarray]:
    pixels, actions, states = collect_episode(index=index, **kwargs)
    return {"pixels": pixels, "action": actions, "state": states, "proprio": states}


def collect_reacher(
    out: str | os.PathLike,
    episodes: int,
    *,
    resolution: int = 64,
    seed: int = 0,
    max_steps: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    policy_kind: str = "random",
    noise_std: float = 0.3,
    workers: int = 1,
) -> dict[str, Any]:
    """``episodes`` Reacher episodes of ``max_steps`` actions (default 200; ``max_steps + 1``
    rows) each, written to the HDF5 file ``out``.

    Every episode starts from a random pose at rest and is driven by ``policy_kind``:
    ``"random"`` (uniform commands, the authors' released data) or ``"pd"`` (noisy PD control
    toward random goal configurations, noise ``noise_std``; ``random`` ignores it). Columns:
    ``pixels`` (L, r, r, 3) uint8, ``action`` (L, 2) in [-1, 1] (last row NaN), ``state`` (L, 4)
    = qpos + qvel, and ``proprio`` (L, 4) = the state (the arm is all proprioception).

    ``workers`` processes simulate and render episodes in parallel (:mod:`lewm.envs.parallel`;
    1 = this process). Every episode draws from its own seeded generator, so a seed gives identical
    arrays whatever ``workers`` is. The returned stats include how far the arm moves over
    25-step windows (the evaluation's goal offset); ``steps_per_s`` counts frames.
    """
    from lewm.envs.parallel import check_workers, write_episodes
    from lewm.envs.reacher.backend import import_dm_control_reacher

    max_steps = COLLECT_STEPS if max_steps is None else max_steps
    if policy_kind not in POLICY_KINDS:
        raise ValueError(
            f"policy_kind (--policy-kind) must be one of {POLICY_KINDS}, got {policy_kind!r}"
        )
    workers = min(check_workers(workers), episodes)
    check_collection(
        out, episodes, resolution, max_steps, overwrite, noise_std=noise_std, seed=seed
    )
    import_dm_control_reacher()  # a clear ImportError, and the GL backend, before any worker
    attrs = {
        "env": "reacher",
        "resolution": int(resolution),
        "seed": int(seed),
        "policy": policy_kind,
        "noise_std": float(noise_std),
        "max_steps": int(max_steps),
        "physics_dt": PHYSICS_DT,
        "action_repeat": ACTION_REPEAT,
        "success_tol": SUCCESS_TOL,
        "state_layout": "shoulder, wrist (rad), shoulder_vel, wrist_vel (rad/s)",
    }
    run = partial(
        _job,
        seed=seed,
        max_steps=max_steps,
        resolution=resolution,
        policy_kind=policy_kind,
        noise_std=noise_std,
    )
    all_states, stats = write_episodes(
        out,
        run,
        range(episodes),
        episodes=episodes,
        workers=workers,
        attrs=attrs,
        name="reacher",
        overwrite=overwrite,
        progress=progress,
    )
    if max_steps > WINDOW:
        stats.update(motion_stats(all_states, WINDOW))
    log.info("collected reacher into %s: %s", out, stats)
    return stats


def motion_stats(episodes: list[np.ndarray], window: int = WINDOW) -> dict[str, float]:
    """How far the arm moves over ``window`` steps, pooled over episodes' states (L, >= 2):
    the largest joint change per window (median, mean) and ``trivial_fraction``, the windows
    whose start already passes the success test for the state ``window`` steps later (an
    evaluation task solved before it starts)."""
    starts, ends = window_pairs(episodes, window)
    e = joint_error(starts, ends)
    return {
        "window": window,
        "joint_change_median": float(np.median(e)),
        "joint_change_mean": float(e.mean()),
        "trivial_fraction": float(np.mean(success(starts, ends))),
    }
