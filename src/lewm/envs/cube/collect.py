"""Cube data: OGBench's Markov pick-and-place oracle with per-episode Gaussian noise (the
authors' collection policy) into the episode HDF5 format, rendering in worker processes.

Policy, as the authors' ``ExpertPolicy`` runs it: each episode draws a noise level
``xi ~ U(0, noise_std)`` (their ``action_noise`` 0.1) and adds Gaussian noise with std
``[xi, xi, xi, 3 xi, 10 xi]`` to OGBench's ``CubeMarkovOracle`` (``min_norm`` 0.4), clipped to
[-1, 1]; when the oracle has placed the cube and moved away, a new random target is drawn.

``explore`` > 0 (our addition, default 0 = the authors' policy) interleaves random action
segments between the oracle's moves, about that fraction of all steps, each ``EXPLORE_LEN``
steps long: an AR(1) sequence a_t = rho a_{t-1} + sqrt(1 - rho^2) e_t per action component,
e_t ~ N(0, s^2), with rho ~ U(0, 0.9) and s ~ U(0.3, 1.0) drawn per segment - the kind of
sequences a sampling planner proposes, starting wherever the oracle left the arm (mostly at or
near the cube). The oracle is Markov in the scene, so it resumes from wherever a segment ends.
Everything random (scene, targets, the oracle's resting pose, noise) comes from the episode's
own generator, so a seed gives identical data for any number of workers.

Rendering costs ~50x the physics on a CPU; see :mod:`.render` for the looks and their speed.
"""

from __future__ import annotations

import logging
import os
from functools import partial
from typing import Any

import numpy as np

from lewm.envs.cube.physics import (
    ACTION_DIM,
    CONTROL_DT,
    EPISODE_STEPS,
    PROPRIO,
    STATE_DIM,
    STATE_LAYOUT,
    SUCCESS_TOL,
    get_state,
    new_data,
    new_target,
    ogbench_env,
    oracle_info,
    sample_scene,
    step,
    success,
)
from lewm.envs.cube.render import DEFAULT_LOOK
from lewm.envs.registry import check_collection, window_pairs
from lewm.envs.segments import RandomSegments

log = logging.getLogger(__name__)

WINDOW = 25  # env steps: the evaluation's goal offset
NOISE_STD = 0.1  # the authors' action_noise: the largest per-episode noise level
NOISE_SCALE = np.array([1.0, 1.0, 1.0, 3.0, 10.0])  # per action component (x, y, z, yaw, grip)
MIN_NORM = 0.4  # the oracle's minimum displacement norm (the authors' setting)
EXPLORE_LEN = (5, 25)  # env steps of one random segment (1 to 5 planner steps at frame skip 5)
EXPLORE_RHO = (0.0, 0.9)  # AR(1) coefficient range of a segment
EXPLORE_STD = (0.3, 1.0)  # innovation std range of a segment


def _episode_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


class OraclePolicy:
    """OGBench's ``CubeMarkovOracle`` with the authors' noise, drawing only from ``rng``, and
    random segments for a fraction ``explore`` of the steps (module docstring)."""

    def __init__(
        self, rng: np.random.Generator, noise_std: float = NOISE_STD, explore: float = 0.0
    ) -> None:
        from ogbench.manipspace.oracles.markov.cube_markov import CubeMarkovOracle

        check_explore(explore)
        self.rng = rng
        self._segments = RandomSegments(
            rng, explore, ACTION_DIM, EXPLORE_LEN, std=EXPLORE_STD, rho=EXPLORE_RHO
        )
        self.exploring = False  # whether the last action came from a random segment
        self.env = ogbench_env()
        self.oracle = CubeMarkovOracle(env=self.env, min_norm=MIN_NORM)
        self.xi = float(rng.uniform(0.0, noise_std)) if noise_std > 0 else 0.0
        self.started = False

    def _restart(self, info: dict[str, Any]) -> None:
        self.oracle.reset(None, info)
        # the oracle draws its resting pose from numpy's global generator: redraw it from ours
        self.oracle._final_pos = self.rng.uniform(*self.env._arm_sampling_bounds)
        self.oracle._final_yaw = self.rng.uniform(-np.pi, np.pi)

    def act(self, data: Any) -> np.ndarray:
        """The action (5,) float32 for the scene in ``data``; a finished pick-and-place draws a
        new target first."""
        a = self._segments.step()
        self.exploring = a is not None
        if a is not None:
            return a
        if self.started and self.oracle.done:
            new_target(data, self.rng)
            self.started = False
        info = oracle_info(data)
        if not self.started:
            self._restart(info)
            self.started = True
        a = np.asarray(self.oracle.select_action(None, info), np.float64)
        if self.xi > 0:
            a = a + self.rng.normal(0.0, self.xi * NOISE_SCALE)
        return np.clip(a, -1.0, 1.0).astype(np.float32)


def check_explore(explore: float) -> None:
    if not 0.0 <= explore < 1.0:
        raise ValueError(
            f"explore (--explore) is the fraction of steps in random action segments, in [0, 1); "
            f"got {explore}"
        )


def collect_episode(
    seed: int,
    index: int,
    max_steps: int,
    resolution: int,
    noise_std: float,
    look: str,
    explore: float = 0.0,
) -> dict[str, np.ndarray]:
    """Episode ``index`` of a collection with ``seed``: the columns of one episode (frames drawn
    from the float32 states, so rendering a stored state gives its stored frame)."""
    from lewm.envs.cube.render import render_batch

    rng = _episode_rng(seed, index)
    data = new_data()
    sample_scene(data, rng)
    policy = OraclePolicy(rng, noise_std, explore)
    states = np.empty((max_steps + 1, STATE_DIM))  # (T+1, S)
    targets = np.empty((max_steps + 1, 3))  # (T+1, 3) the oracle's current target
    actions = np.full((max_steps + 1, ACTION_DIM), np.nan, np.float32)  # (T+1, 5)
    states[0] = get_state(data)
    for t in range(max_steps):
        actions[t] = policy.act(data)
        targets[t] = data.mocap_pos[0]  # the target this action works toward
        step(data, actions[t])
        states[t + 1] = get_state(data)
    targets[max_steps] = data.mocap_pos[0]
    st = states.astype(np.float32)
    return {
        "pixels": render_batch(st, resolution, look=look),
        "action": actions,
        "state": st,
        "proprio": st[:, PROPRIO],  # effector xyz, yaw, gripper opening
        "target": targets.astype(np.float32),
    }


def _job(index: int, **kwargs: Any) -> dict[str, np.ndarray]:
    return collect_episode(index=index, **kwargs)


def collect_cube(
    out: str | os.PathLike,
    episodes: int,
    *,
    resolution: int = 64,
    seed: int = 0,
    max_steps: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    noise_std: float = NOISE_STD,
    look: str = DEFAULT_LOOK,
    workers: int = 1,
    explore: float = 0.0,
) -> dict[str, Any]:
    """``episodes`` Cube episodes of ``max_steps`` actions (default 200; ``max_steps + 1`` rows)
    each, from OGBench's noisy pick-and-place oracle, written to the HDF5 file ``out``.

    Columns: ``pixels`` (L, r, r, 3) uint8 from the front camera in ``look`` ("draft", "fast"
    or "ogbench", see :mod:`lewm.envs.cube.render`), ``action`` (L, 5) in [-1, 1] (last row
    NaN), ``state`` (L, 46) (:mod:`lewm.envs.cube.physics`), ``proprio`` (L, 5) = effector xyz, yaw,
    gripper opening, and ``target`` (L, 3), the oracle's current target for the cube.
    ``workers`` processes simulate and render episodes in parallel; a seed gives identical arrays
    whatever ``workers`` is. ``explore`` > 0 spends about that fraction of the steps in random
    action segments (module docstring; 0, the default, is the authors' policy). ``steps_per_s``
    in the returned stats counts stored frames.
    """
    from lewm.envs.cube.backend import import_ogbench_cube
    from lewm.envs.cube.render import check_look
    from lewm.envs.parallel import check_workers, write_episodes

    max_steps = EPISODE_STEPS if max_steps is None else max_steps
    check_look(look)
    workers = min(check_workers(workers), episodes)
    check_collection(
        out, episodes, resolution, max_steps, overwrite, noise_std=noise_std, seed=seed
    )
    if noise_std > 1:
        raise ValueError(
            f"noise_std (--noise) is the largest per-episode noise level on actions in [-1, 1] "
            f"(the authors' 0.1); {noise_std} would drown the oracle"
        )
    check_explore(explore)
    import_ogbench_cube()  # a clear ImportError, and the GL backend, before any worker
    attrs = {
        "env": "cube",
        "resolution": int(resolution),
        "seed": int(seed),
        "policy": "ogbench-markov-oracle",
        "noise_std": float(noise_std),
        "explore": float(explore),
        "look": look,
        "max_steps": int(max_steps),
        "control_dt": CONTROL_DT,
        "success_tol": SUCCESS_TOL,
        "state_layout": STATE_LAYOUT,
    }
    run = partial(
        _job,
        seed=seed,
        max_steps=max_steps,
        resolution=resolution,
        noise_std=noise_std,
        look=look,
        explore=explore,
    )
    all_states, stats = write_episodes(
        out,
        run,
        range(episodes),
        episodes=episodes,
        workers=workers,
        attrs=attrs,
        name="cube",
        overwrite=overwrite,
        progress=progress,
    )
    stats["look"] = look
    if max_steps > WINDOW:
        stats.update(motion_stats(all_states, WINDOW))
    log.info("collected cube into %s: %s", out, stats)
    return stats


def motion_stats(episodes: list[np.ndarray], window: int = WINDOW) -> dict[str, float]:
    """How far the cube moves over ``window`` steps, pooled over episodes' states (L, S): the
    cube's displacement (median, mean) and ``trivial_fraction``, the windows whose start already
    passes the success test for the state ``window`` steps later (a task solved before it
    starts: the cube did not move more than 4 cm)."""
    from lewm.envs.cube.physics import cube_error

    starts, ends = window_pairs(episodes, window)
    e = cube_error(starts, ends)
    return {
        "window": window,
        "cube_move_median": float(np.median(e)),
        "cube_move_mean": float(e.mean()),
        "trivial_fraction": float(np.mean(success(starts, ends))),
    }
