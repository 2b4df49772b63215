"""A tiny generated dataset for tests and smoke runs: a bright square moved by 2-D velocity
actions on a dark canvas (no simulator needed)."""

from __future__ import annotations

import os

import numpy as np

from lewm.data.hdf5 import EpisodeWriter


def render_square(pos: np.ndarray, resolution: int, size: int = 3) -> np.ndarray:
    """Positions (L, 2) in [0, 1] -> frames uint8 (L, res, res, 3)."""
    L = len(pos)
    frames = np.zeros((L, resolution, resolution, 3), np.uint8)
    px = np.clip(np.round(pos * (resolution - size)).astype(int), 0, resolution - size)
    for t, (x, y) in enumerate(px):
        frames[t, y : y + size, x : x + size] = (255, 200, 50)
    return frames


def make_toy_dataset(
    path: str | os.PathLike,
    episodes: int = 16,
    length: int = 40,
    resolution: int = 16,
    seed: int = 0,
    overwrite: bool = False,
) -> str:
    """Write ``episodes`` random-walk episodes of ``length`` steps; returns the path."""
    rng = np.random.default_rng(seed)
    with EpisodeWriter(path, overwrite=overwrite, attrs={"env": "toy-square"}) as w:
        for _ in range(episodes):
            act = rng.uniform(-1, 1, size=(length, 2)).astype(np.float32)
            pos = np.empty((length, 2), np.float32)
            pos[0] = rng.uniform(0, 1, 2)
            for t in range(1, length):
                pos[t] = np.clip(pos[t - 1] + 0.08 * act[t - 1], 0, 1)
            act[-1] = np.nan  # no action leaves the last frame
            w.add_episode(pixels=render_square(pos, resolution), action=act, state=pos, proprio=pos)
    return str(path)
