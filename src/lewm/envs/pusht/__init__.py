"""Push-T: a round agent pushes a T-shaped block to a target pose (the DINO-WM / LeWM task).

The environment is :mod:`.physics` (pymunk, imported when a space is built; geometry and the
success test are numpy), :mod:`.render` (OpenCV, imported when a frame is drawn) and :mod:`.env`
(the gymnasium env); its data policy is :mod:`.expert` (the scripted pusher) and :mod:`.collect`
(the dataset collector and block-motion statistics); :mod:`.perturb` makes the surprise test's
matched trajectories. pymunk and OpenCV come with ``pip install 'lewm[pusht]'``.
"""

from __future__ import annotations

import numpy as np

from lewm.envs.pusht.collect import COLLECT_STEPS, block_motion, collect_pusht, motion_stats
from lewm.envs.pusht.env import PushTEnv
from lewm.envs.pusht.expert import PushTExpert
from lewm.envs.pusht.perturb import surprise_triplets
from lewm.envs.pusht.physics import (
    ACTION_SCALE,
    AGENT_HI,
    AGENT_LO,
    AGENT_RADIUS,
    BAR_VERTS,
    BLOCK_MASS,
    BLOCK_MOMENT,
    COG_Y,
    DT,
    KP,
    KV,
    STEM_VERTS,
    SUBSTEPS,
    SUCCESS_ANGLE,
    SUCCESS_DIST,
    TEE_OUTLINE,
    TEE_SYMMETRY,
    WALL_HI,
    WALL_LO,
    WALL_RADIUS,
    WORLD,
    block_vertices,
    pusht_success,
    rotation,
    sample_state,
    state_grid,
    success,
    tee_distance,
    wrap_angle,
)
from lewm.envs.pusht.render import (
    AGENT_COLOUR,
    BACKGROUND,
    BLOCK_COLOUR,
    WALL_COLOUR,
    render_batch,
    render_state,
)
from lewm.envs.registry import EnvSpec, register

SPEC = register(
    EnvSpec(
        name="pusht",
        id="lewm/PushT-v0",
        entry_point="lewm.envs.pusht:PushTEnv",
        max_episode_steps=300,  # gymnasium's TimeLimit (collected episodes: COLLECT_STEPS)
        collect=collect_pusht,
        collect_options=("noise_std", "explore", "targets", "max_turn"),
        render=render_batch,
        success=success,
        quantities={
            "agent": lambda s: s[:, 0:2],
            "block": lambda s: s[:, 2:4],
            "angle": lambda s: np.stack([np.sin(s[:, 4]), np.cos(s[:, 4])], axis=1),
        },
        surprise=surprise_triplets,
        state_grid=state_grid,
        extra="pusht",
    )
)

__all__ = [
    "ACTION_SCALE",
    "AGENT_COLOUR",
    "AGENT_HI",
    "AGENT_LO",
    "AGENT_RADIUS",
    "BACKGROUND",
    "BAR_VERTS",
    "BLOCK_COLOUR",
    "BLOCK_MASS",
    "BLOCK_MOMENT",
    "COG_Y",
    "DT",
    "COLLECT_STEPS",
    "KP",
    "KV",
    "SPEC",
    "STEM_VERTS",
    "SUBSTEPS",
    "SUCCESS_ANGLE",
    "SUCCESS_DIST",
    "TEE_OUTLINE",
    "TEE_SYMMETRY",
    "WALL_COLOUR",
    "WALL_HI",
    "WALL_LO",
    "WALL_RADIUS",
    "WORLD",
    "PushTEnv",
    "PushTExpert",
    "block_motion",
    "block_vertices",
    "collect_pusht",
    "motion_stats",
    "pusht_success",
    "render_batch",
    "render_state",
    "rotation",
    "sample_state",
    "state_grid",
    "success",
    "surprise_triplets",
    "tee_distance",
    "wrap_angle",
]
