"""Push-T data: the scripted pusher (:class:`.expert.PushTExpert`) into the episode HDF5 format
(:class:`lewm.data.hdf5.EpisodeWriter`, imported when a collection runs), and how much the block
moves in such data (:func:`motion_stats`)."""

from __future__ import annotations

import logging
import os
from functools import partial
from typing import Any

import numpy as np

from lewm.envs.pusht.expert import PushTExpert
from lewm.envs.pusht.physics import SUCCESS_ANGLE, SUCCESS_DIST, pusht_success, wrap_angle
from lewm.envs.pusht.render import render_batch
from lewm.envs.registry import check_collection

log = logging.getLogger(__name__)

COLLECT_STEPS = 200  # actions per collected episode (the default of max_steps)


def collect_episode(
    ep_seed: int,
    *,
    resolution: int,
    max_steps: int,
    noise_std: float,
    explore: float,
    max_turn: float,
    first_target: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """One episode from its own seed ``ep_seed`` (reset and pusher): the columns ``pixels``
    (T+1, r, r, 3) uint8, ``action`` (T+1, 2) (last row NaN), ``state`` (T+1, 7) and
    ``proprio`` (T+1, 4). ``max_turn`` is in degrees. Every reset builds a fresh pymunk space,
    so the episode does not depend on what ran before it in the process."""
    from lewm.envs.pusht.env import PushTEnv

    env = PushTEnv(resolution=resolution)
    env.reset(seed=int(ep_seed))
    expert = PushTExpert(
        np.random.default_rng(int(ep_seed)),
        noise_std=noise_std,
        explore=explore,
        max_turn=np.radians(max_turn),
        first_target=first_target,
    )
    states = np.empty((max_steps + 1, 7), np.float64)  # (T+1, 7)
    actions = np.full((max_steps + 1, 2), np.nan, np.float32)  # (T+1, 2)
    states[0] = env.state
    for t in range(max_steps):
        actions[t] = expert.act(states[t])
        env.step(actions[t])
        states[t + 1] = env.state
    st = states.astype(np.float32)
    return {
        "pixels": render_batch(st, resolution),  # (T+1, r, r, 3)
        "action": actions,
        "state": st,
        "proprio": st[:, [0, 1, 5, 6]],  # (T+1, 4)
    }


def collect_pusht(
    out: str | os.PathLike,
    episodes: int,
    *,
    resolution: int = 64,
    seed: int = 0,
    max_steps: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    workers: int = 1,
    noise_std: float = 0.1,
    explore: float = 0.0,
    targets: str = "random",
    max_turn: float = 90.0,
) -> dict[str, Any]:
    """``episodes`` Push-T episodes of ``max_steps`` actions (default 200; ``max_steps + 1`` rows)
    each, written to the HDF5 file ``out``.

    Every episode starts from a random state (agent in [50, 450]^2, block in [100, 400]^2, any
    angle) and is driven by :class:`~lewm.envs.pusht.PushTExpert` (action noise ``noise_std``,
    a fraction ``explore`` of steps in random segments); episodes never end early (the policy
    keeps drawing new block targets, each turning the block by up to ``max_turn`` degrees).
    ``targets="goal"`` makes the first target of every episode the task's goal pose (the human
    demonstrations' way: push the T onto one fixed pose, turning it as it goes); random targets
    follow once it is reached. Columns: ``pixels`` (L, r, r, 3) uint8, ``action`` (L, 2)
    in the env's [-1, 1] units (last row NaN), ``state`` (L, 7) and ``proprio`` (L, 4) = agent xy
    + agent vxy.

    ``workers`` processes simulate and render episodes in parallel (1 = this process). Episode
    i draws only from the i-th seed of ``SeedSequence(seed)``, so a seed gives identical arrays
    whatever ``workers`` is. The returned stats include how far the block moves and turns over
    25-step windows (the evaluation's goal offset).
    """
    from lewm.envs.parallel import check_workers, write_episodes
    from lewm.envs.pusht.env import PushTEnv

    max_steps = COLLECT_STEPS if max_steps is None else max_steps
    if not 0.0 <= explore < 1.0:
        raise ValueError(f"explore must be in [0, 1), got {explore}")
    if targets not in ("random", "goal"):
        raise ValueError(f"targets must be 'random' or 'goal', got {targets!r}")
    if not 0.0 <= max_turn <= 180.0:
        raise ValueError(f"max_turn must be in [0, 180] degrees, got {max_turn}")
    workers = min(check_workers(workers), episodes)
    check_collection(
        out, episodes, resolution, max_steps, overwrite, noise_std=noise_std, seed=seed
    )
    env = PushTEnv(resolution=resolution)  # raises a clear ImportError without pymunk
    ep_seeds = np.random.SeedSequence(seed).generate_state(episodes)  # one seed per episode
    attrs = {
        "env": "pusht",
        "resolution": resolution,
        "seed": seed,
        "noise_std": noise_std,
        "explore": explore,
        "targets": targets,
        "max_turn": max_turn,
        "max_steps": max_steps,
        "policy": "PushTExpert",
    }
    run = partial(
        collect_episode,
        resolution=resolution,
        max_steps=max_steps,
        noise_std=noise_std,
        explore=explore,
        max_turn=max_turn,
        first_target=env.goal_state[2:5].copy() if targets == "goal" else None,  # block x, y, angle
    )
    all_states, stats = write_episodes(
        out,
        run,
        (int(s) for s in ep_seeds),
        episodes=episodes,
        workers=workers,
        attrs=attrs,
        name="pusht",
        overwrite=overwrite,
        progress=progress,
    )
    if max_steps > 25:
        stats.update(motion_stats(all_states, window=25))
    log.info("collected pusht into %s: %s", out, stats)
    return stats


def block_motion(states: np.ndarray, window: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Block displacement and |rotation| (each (W,)) over every ``window``-step span of one
    episode's states (L, >=5), stride 1; empty when the episode is shorter than the window."""
    s = np.asarray(states, np.float64)
    if len(s) <= window:
        return np.zeros(0), np.zeros(0)
    disp = np.linalg.norm(s[window:, 2:4] - s[:-window, 2:4], axis=1)
    rot = np.abs(wrap_angle(s[window:, 4] - s[:-window, 4]))
    return disp, rot


def motion_stats(episodes: list[np.ndarray], window: int = 25) -> dict[str, float]:
    """How much the block moves over ``window`` steps, pooled over episodes' states (L, >=5).

    ``moved_fraction``: windows where the block moved > 20 units or turned > pi/9 (the success
    tolerances); ``trivial_fraction``: windows whose start already meets the success criterion
    for the state ``window`` steps later (an evaluation task that is solved before it starts).
    """
    disp, rot, trivial = [], [], []
    for s in episodes:
        d, r = block_motion(s, window)
        disp.append(d)
        rot.append(r)
        if len(d):
            s = np.asarray(s, np.float64)
            trivial.append(pusht_success(s[:-window], s[window:])[0])
    d, r = np.concatenate(disp), np.concatenate(rot)
    if len(d) == 0:
        raise ValueError(f"no episode is longer than the {window}-step window")
    return {
        "window": window,
        "block_disp_mean": float(d.mean()),
        "block_disp_median": float(np.median(d)),
        "block_rot_mean": float(r.mean()),
        "block_rot_median": float(np.median(r)),
        "moved_fraction": float(np.mean((d > SUCCESS_DIST) | (r > SUCCESS_ANGLE))),
        "trivial_fraction": float(np.mean(np.concatenate(trivial))),
    }
