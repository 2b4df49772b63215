"""Reacher: dm_control's two-link planar arm, moved to a goal joint configuration (the LeWM /
DINO-WM Reacher task).

Task variant: the authors plan on their ``qpos_match`` variant of dm_control's ``reacher``, not
on the suite's ``easy``/``hard`` reach-the-target tasks: a goal is a joint configuration, shown
by a goal image of the arm in that pose, and an episode succeeds when every joint is within
0.05 rad of it (their success test; the shoulder, a free hinge, compared modulo 2 pi). The
target sphere is not drawn (their default, ``render_target=0``), so frames show only the arm.
Actions are the two motor commands in [-1, 1], each held for two 0.02 s physics steps (their
``action_repeat=2``).

State (4,): ``[shoulder, wrist, shoulder_vel, wrist_vel]`` = qpos (rad) + qvel (rad/s); goals
have the same layout (their qpos counts). Probe quantities: ``joints`` (sin, cos of both
angles), ``fingertip`` (xy in metres, forward kinematics) and ``velocity`` (qvel).

The environment is :mod:`.physics` (dm_control's MJCF simulated with the MuJoCo bindings; state
layout, sampling and success in numpy), :mod:`.render` (MuJoCo offscreen, any resolution) and
:mod:`.env` (the gymnasium env); :mod:`.backend` chooses the OpenGL backend (EGL, then OSMesa)
before MuJoCo is imported. Its data policies are :mod:`.policy` (``random``, the authors'
released data; ``pd``, our noisy PD reaches) and :mod:`.collect` (the parallel collector);
:mod:`.perturb` makes the surprise test's matched trajectories. MuJoCo and dm_control come with
``pip install 'lewm[mujoco]'`` and are imported only when a Reacher function runs.
"""

from __future__ import annotations

import numpy as np

from lewm.envs.reacher.collect import collect_reacher, motion_stats
from lewm.envs.reacher.env import ReacherEnv
from lewm.envs.reacher.perturb import surprise_triplets
from lewm.envs.reacher.physics import (
    ACTION_REPEAT,
    COLLECT_STEPS,
    EPISODE_STEPS,
    PHYSICS_DT,
    SUCCESS_TOL,
    WRIST_LIMIT,
    fingertip,
    joint_delta,
    joint_error,
    sample_state,
    state_grid,
    success,
    wrap_angle,
)
from lewm.envs.reacher.policy import POLICY_KINDS, PDPolicy, RandomPolicy
from lewm.envs.reacher.render import render_batch, render_state
from lewm.envs.registry import EnvSpec, register


def _joints(s: np.ndarray) -> np.ndarray:
    return np.concatenate([np.sin(s[:, 0:2]), np.cos(s[:, 0:2])], axis=1)  # (N, 4)


SPEC = register(
    EnvSpec(
        name="reacher",
        id="lewm/Reacher-v0",
        entry_point="lewm.envs.reacher:ReacherEnv",
        max_episode_steps=EPISODE_STEPS,  # dm_control's 20 s (collected episodes: 200 steps)
        collect=collect_reacher,
        collect_options=("policy_kind", "noise_std"),
        render=render_batch,
        success=success,
        quantities={
            "joints": _joints,
            "fingertip": fingertip,
            "velocity": lambda s: s[:, 2:4],
        },
        surprise=surprise_triplets,
        state_grid=state_grid,
        extra="mujoco",
    )
)

__all__ = [
    "ACTION_REPEAT",
    "COLLECT_STEPS",
    "EPISODE_STEPS",
    "PHYSICS_DT",
    "POLICY_KINDS",
    "SPEC",
    "SUCCESS_TOL",
    "WRIST_LIMIT",
    "PDPolicy",
    "RandomPolicy",
    "ReacherEnv",
    "collect_reacher",
    "fingertip",
    "joint_delta",
    "joint_error",
    "motion_stats",
    "render_batch",
    "render_state",
    "sample_state",
    "state_grid",
    "success",
    "surprise_triplets",
    "wrap_angle",
]
