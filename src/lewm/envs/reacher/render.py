"""Reacher rendering: MuJoCo offscreen from dm_control's fixed top-down camera, at any
resolution, for any state, without an env (goal images, latent maps, collection).

One renderer per resolution and process, shared by every env of the process (creating GL
contexts over and over is slow and, with some drivers, unreliable). The default look turns off
shadows and floor reflections: on a CPU (Mesa llvmpipe) that renders ~7x faster at 64 px;
``dmc_look=True`` keeps dm_control's own look.

Axes: N states, r image resolution.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lewm.envs.reacher.backend import import_mujoco, offscreen_renderer
from lewm.envs.reacher.physics import reacher_model, set_state

CAMERA = 0  # dm_control's "fixed" camera, looking straight down on the arena
ARM_MATERIAL = "self"  # the two links' material

_renderers: dict[Any, Any] = {}  # (resolution, samples) -> mujoco.Renderer of this process
_scratch: list[Any] = []  # the MjData states are placed in to be drawn


def check_colour(c: Any) -> tuple[int, int, int]:
    """An RGB colour as three ints in 0-255, or one ValueError."""
    t = tuple(int(v) for v in np.asarray(c).reshape(-1))
    if len(t) != 3 or not all(0 <= v <= 255 for v in t):
        raise ValueError(f"a colour is three 0-255 RGB values, got {c!r}")
    return t  # type: ignore[return-value]


def _renderer(resolution: int) -> Any:
    import_mujoco()
    return offscreen_renderer(_renderers, reacher_model(), resolution)


def render_batch(
    states: np.ndarray,
    resolution: int = 64,
    *,
    arm_colour: tuple[int, int, int] | None = None,
    dmc_look: bool = False,
) -> np.ndarray:
    """States (N, >= 2) -> frames (N, r, r, 3) uint8, top-down. Only qpos (the first two
    values) changes a frame. ``arm_colour``: RGB 0-255 of the two links (default dm_control's);
    ``dmc_look``: shadows and floor reflections on (slower)."""
    mujoco = import_mujoco()
    states = np.asarray(states, np.float64)
    if states.ndim != 2 or states.shape[1] < 2:
        raise ValueError(f"Reacher renders states (N, >= 2), got shape {states.shape}")
    if int(resolution) != resolution or resolution < 8:
        raise ValueError(f"resolution must be an integer >= 8, got {resolution}")
    resolution = int(resolution)
    model = reacher_model()
    r = _renderer(resolution)
    if not _scratch:
        _scratch.append(mujoco.MjData(model))
    data = _scratch[0]
    flags = r.scene.flags
    flags[mujoco.mjtRndFlag.mjRND_SHADOW] = bool(dmc_look)
    flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = bool(dmc_look)
    mat = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_MATERIAL, ARM_MATERIAL)
    rgba = model.mat_rgba[mat].copy()
    if arm_colour is not None:
        model.mat_rgba[mat, :3] = np.asarray(check_colour(arm_colour)) / 255.0
    out = np.empty((len(states), resolution, resolution, 3), np.uint8)
    state = np.zeros(4)
    try:
        for i, s in enumerate(states):
            state[:2] = s[:2]
            set_state(data, state)
            r.update_scene(data, camera=CAMERA)
            out[i] = r.render()
    finally:
        model.mat_rgba[mat] = rgba
    return out


def render_state(state: np.ndarray, resolution: int = 64, **style: Any) -> np.ndarray:
    """The frame (r, r, 3) uint8 of one state (>= 2 values); ``style`` as :func:`render_batch`."""
    return render_batch(np.asarray(state, np.float64).reshape(1, -1), resolution, **style)[0]
