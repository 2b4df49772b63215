"""Push-T data collection with the scripted pushing policy into the episode HDF5 format."""

from __future__ import annotations

import os
import time

import numpy as np
from tqdm.auto import tqdm

from lewm.data.hdf5 import EpisodeWriter
from lewm.envs.pusht import PushTEnv, PushTExpert, motion_stats, render_batch
from lewm.utils.io import refuse_existing


def collect_pusht(
    out: str | os.PathLike,
    episodes: int,
    *,
    resolution: int = 64,
    seed: int = 0,
    max_steps: int = 200,
    noise_std: float = 0.1,
    explore: float = 0.0,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """``episodes`` Push-T episodes of ``max_steps`` actions (``max_steps + 1`` rows) each.

    Every episode starts from a random state (agent in [50, 450]^2, block in [100, 400]^2, any
    angle) and is driven by :class:`~lewm.envs.pusht.PushTExpert`; episodes never end early (the
    policy keeps drawing new block targets). Columns: ``pixels`` (L, res, res, 3) uint8,
    ``action`` (L, 2) in the env's [-1, 1] units (last row NaN), ``state`` (L, 7) and ``proprio``
    (L, 4) = agent xy + agent vxy. The same seed gives identical arrays. The returned stats include
    how far the block moves and turns over 25-step windows (the evaluation's goal offset).
    """
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    if resolution < 8:
        raise ValueError(f"--resolution must be >= 8, got {resolution}")
    if max_steps < 1:
        raise ValueError(f"--max-steps must be >= 1, got {max_steps}")
    refuse_existing(out, overwrite, "dataset")
    env = PushTEnv(resolution=resolution)  # raises a clear ImportError without pymunk
    ep_seeds = np.random.SeedSequence(seed).generate_state(episodes)  # one seed per episode
    attrs = {
        "env": "pusht",
        "resolution": resolution,
        "seed": seed,
        "noise_std": noise_std,
        "explore": explore,
        "max_steps": max_steps,
        "policy": "PushTExpert",
    }
    t0 = time.perf_counter()
    all_states = []
    bar = tqdm(total=episodes, disable=not progress, desc="collect pusht", unit="ep")
    with EpisodeWriter(out, overwrite=overwrite, attrs=attrs) as writer:
        for ep_seed in ep_seeds:
            env.reset(seed=int(ep_seed))
            expert = PushTExpert(
                np.random.default_rng(int(ep_seed)), noise_std=noise_std, explore=explore
            )
            states = np.empty((max_steps + 1, 7), np.float64)
            actions = np.full((max_steps + 1, 2), np.nan, np.float32)
            states[0] = env.state
            for t in range(max_steps):
                actions[t] = expert.act(states[t])
                env.step(actions[t])
                states[t + 1] = env.state
            st = states.astype(np.float32)
            writer.add_episode(
                pixels=render_batch(st, resolution),
                action=actions,
                state=st,
                proprio=st[:, [0, 1, 5, 6]],
            )
            all_states.append(st)
            bar.update(1)
    bar.close()
    seconds = time.perf_counter() - t0
    steps = episodes * (max_steps + 1)
    stats = {
        "episodes": episodes,
        "steps": steps,
        "mean_length": float(max_steps + 1),
        "seconds": round(seconds, 2),
        "steps_per_s": round(steps / seconds),
    }
    if max_steps > 25:
        stats.update(motion_stats(all_states, window=25))
    return stats
