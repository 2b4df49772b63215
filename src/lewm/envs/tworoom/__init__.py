"""Two-Room: a dot agent in two rooms joined by one door (the LeWM / PLDM navigation task).

Pure numpy. The environment is :mod:`.dynamics` (geometry, collisions, success), :mod:`.render`
(frames at any resolution) and :mod:`.env` (the gymnasium env); its data policy is
:mod:`.expert` (the scripted door-seeking expert) and :mod:`.collect` (the dataset collector);
:mod:`.perturb` makes the surprise test's matched trajectories.
"""

from __future__ import annotations

from lewm.envs.registry import EnvSpec, register
from lewm.envs.tworoom.collect import collect_tworoom
from lewm.envs.tworoom.dynamics import (
    BLOCK_GAP,
    BORDER,
    BORDER_LINE,
    DEFAULT_LAYOUT,
    EPISODE_STEPS,
    HI,
    LO,
    RADIUS,
    SPEED,
    SUCCESS_DIST,
    WORLD,
    TwoRoomBatch,
    TwoRoomLayout,
    distance,
    sample_free,
    state_grid,
    step_dynamics,
    success,
)
from lewm.envs.tworoom.env import TwoRoomEnv
from lewm.envs.tworoom.expert import TwoRoomExpert
from lewm.envs.tworoom.perturb import surprise_triplets
from lewm.envs.tworoom.render import AGENT_COLOUR, render_batch

SPEC = register(
    EnvSpec(
        name="tworoom",
        id="lewm/TwoRoom-v0",
        entry_point="lewm.envs.tworoom:TwoRoomEnv",
        max_episode_steps=EPISODE_STEPS,
        collect=collect_tworoom,
        collect_options=("noise_std", "num_envs"),
        render=render_batch,
        success=success,
        quantities={"agent": lambda s: s[:, 0:2]},
        surprise=surprise_triplets,
        state_grid=state_grid,
    )
)

__all__ = [
    "AGENT_COLOUR",
    "BLOCK_GAP",
    "BORDER",
    "BORDER_LINE",
    "DEFAULT_LAYOUT",
    "EPISODE_STEPS",
    "HI",
    "LO",
    "RADIUS",
    "SPEC",
    "SPEED",
    "SUCCESS_DIST",
    "WORLD",
    "TwoRoomBatch",
    "TwoRoomEnv",
    "TwoRoomExpert",
    "TwoRoomLayout",
    "collect_tworoom",
    "distance",
    "render_batch",
    "sample_free",
    "state_grid",
    "step_dynamics",
    "success",
    "surprise_triplets",
]
