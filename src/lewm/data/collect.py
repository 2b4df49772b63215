"""Scripted-expert data collection into the episode HDF5 format (vectorised over episodes)."""

from __future__ import annotations

import os
import time

import numpy as np
from tqdm.auto import tqdm

from lewm.data.hdf5 import EpisodeWriter
from lewm.envs.tworoom import TwoRoomBatch, TwoRoomExpert, render_batch
from lewm.utils.io import refuse_existing


def collect_tworoom(
    out: str | os.PathLike,
    episodes: int,
    *,
    resolution: int = 64,
    seed: int = 0,
    max_steps: int = 100,
    noise_std: float = 2.0,
    num_envs: int = 256,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Noisy-expert Two-Room episodes (random start and target, either room).

    An episode ends when the agent reaches the target (that frame is its last row) or after
    ``max_steps`` actions. Waves of ``num_envs`` episodes run together; each wave is written as
    soon as it finishes. The same seed gives byte-identical files.
    """
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    if resolution < 8:
        raise ValueError(f"--resolution must be >= 8, got {resolution}")
    refuse_existing(out, overwrite, "dataset")
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    lengths, successes = [], []
    attrs = {
        "env": "tworoom",
        "resolution": resolution,
        "seed": seed,
        "noise_std": noise_std,
        "max_steps": max_steps,
        "policy": "TwoRoomExpert",
    }
    bar = tqdm(total=episodes, disable=not progress, desc="collect tworoom", unit="ep")
    with EpisodeWriter(out, overwrite=overwrite, attrs=attrs) as writer:
        done_eps = 0
        while done_eps < episodes:
            n = min(num_envs, episodes - done_eps)
            batch = TwoRoomBatch(n, rng)
            expert = TwoRoomExpert(noise_std, rng)
            states = [batch.pos.copy()]  # per step (n, 2)
            actions = []
            alive = ~batch.success()
            ended_at = np.where(alive, -1, 0)  # index of each episode's last frame
            for t in range(max_steps):
                if not alive.any():
                    break
                a = expert.act(batch.pos, batch.target)  # (n, 2)
                actions.append(a)
                succ = batch.step(a, mask=alive)
                states.append(batch.pos.copy())
                newly = alive & succ
                ended_at[newly] = t + 1
                alive &= ~succ
            ended_at[ended_at < 0] = len(states) - 1
            S = np.stack(states, 1).astype(np.float32)  # (n, T+1, 2)
            A = np.stack(actions, 1) if actions else np.zeros((n, 0, 2), np.float32)
            for i in range(n):
                L = int(ended_at[i]) + 1
                act = np.full((L, 2), np.nan, np.float32)
                act[: L - 1] = A[i, : L - 1]
                st = S[i, :L]
                writer.add_episode(
                    pixels=render_batch(st, resolution),
                    action=act,
                    state=st,
                    proprio=st,
                    goal_state=np.repeat(batch.target[i : i + 1].astype(np.float32), L, 0),
                )
                lengths.append(L)
                successes.append(bool(np.linalg.norm(st[-1] - batch.target[i]) < 16.0))
            done_eps += n
            bar.update(n)
    bar.close()
    seconds = time.perf_counter() - t0
    lengths_a = np.asarray(lengths)
    return {
        "episodes": len(lengths),
        "steps": int(lengths_a.sum()),
        "mean_length": float(lengths_a.mean()),
        "min_length": int(lengths_a.min()),
        "max_length": int(lengths_a.max()),
        "success_fraction": float(np.mean(successes)),
        "seconds": round(seconds, 2),
        "steps_per_s": round(float(lengths_a.sum()) / seconds),
    }


COLLECTORS = {"tworoom": collect_tworoom}
