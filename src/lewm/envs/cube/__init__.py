"""Cube: OGBench's single-cube pick-and-place (a UR5e arm with a Robotiq gripper, MuJoCo), the
LeWM paper's 3-D manipulation task, planned from pixels.

Task: bring the cube to where it is in the goal image; success when the cube is within 0.04 m
of the goal's cube position (the authors' and OGBench's test; a failed grasp that pushes the cube
there counts too, as in theirs). Evaluation excludes tasks already solved at the start
(``eval.exclude_solved``, on in the Cube presets): in the oracle's data the cube often rests for
25 steps while the arm approaches, and counting those tasks inflated the authors' Cube numbers.

The environment is :mod:`.physics` (OGBench's scene, controller and sampling, one instance per
process, lent each env's own MjData), :mod:`.render` (MuJoCo offscreen, OGBench's front camera,
a fast look and OGBench's own) and :mod:`.env` (the gymnasium env). Its data policy is OGBench's
noisy Markov oracle (:mod:`.collect`, the parallel collector); :mod:`.perturb` makes the surprise
test's matched trajectories. MuJoCo, dm_control and OGBench come with
``pip install 'lewm[mujoco]'`` and are imported only when a Cube function runs.

Probe quantities: ``cube`` (xyz, m), ``effector`` (pinch-site xyz, m), ``gripper`` (opening,
0-1), ``arm_joints`` (the 6 arm angles, rad), ``cube_yaw`` (sin, cos of 4x the yaw: a cube looks
the same every 90 degrees).
"""

from __future__ import annotations

import numpy as np

from lewm.envs.cube.collect import NOISE_STD, OraclePolicy, collect_cube, motion_stats
from lewm.envs.cube.env import CubeEnv
from lewm.envs.cube.perturb import surprise_triplets
from lewm.envs.cube.physics import (
    ACTION_DIM,
    ARM,
    CONTROL_DT,
    CUBE_POS,
    CUBE_QUAT,
    EFFECTOR,
    EPISODE_STEPS,
    GRIPPER,
    STATE_DIM,
    STATE_LAYOUT,
    SUCCESS_TOL,
    cube_error,
    cube_pos,
    simulate,
    state_grid,
    success,
    yaw_of_quat,
)
from lewm.envs.cube.render import LOOKS, render_batch, render_state
from lewm.envs.registry import EnvSpec, register


def _cube_yaw(s: np.ndarray) -> np.ndarray:
    yaw4 = 4 * yaw_of_quat(s[:, CUBE_QUAT])
    return np.stack([np.sin(yaw4), np.cos(yaw4)], axis=1)


SPEC = register(
    EnvSpec(
        name="cube",
        id="lewm/Cube-v0",
        entry_point="lewm.envs.cube:CubeEnv",
        max_episode_steps=EPISODE_STEPS,
        collect=collect_cube,
        collect_options=("noise_std", "look", "explore"),
        render=render_batch,
        success=success,
        quantities={
            "cube": lambda s: s[:, CUBE_POS],
            "effector": lambda s: s[:, EFFECTOR],
            "gripper": lambda s: s[:, GRIPPER : GRIPPER + 1],
            "arm_joints": lambda s: s[:, ARM],
            "cube_yaw": _cube_yaw,
        },
        surprise=surprise_triplets,
        state_grid=state_grid,
        extra="mujoco",
        eval_defaults=("eval.exclude_solved=true",),
        data_attrs=("look",),
    )
)

__all__ = [
    "ACTION_DIM",
    "CONTROL_DT",
    "EPISODE_STEPS",
    "LOOKS",
    "NOISE_STD",
    "SPEC",
    "STATE_DIM",
    "STATE_LAYOUT",
    "SUCCESS_TOL",
    "CubeEnv",
    "OraclePolicy",
    "collect_cube",
    "cube_error",
    "cube_pos",
    "motion_stats",
    "render_batch",
    "render_state",
    "simulate",
    "state_grid",
    "success",
    "surprise_triplets",
]
