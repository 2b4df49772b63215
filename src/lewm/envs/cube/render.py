"""Cube rendering: MuJoCo offscreen from OGBench's ``front_pixels`` camera (the authors' view),
at any resolution, for any state, without an env (goal images, collection, surprise).

Three looks (``look``), measured on 2 EPYC cores with Mesa llvmpipe at 64 px
(docs/results.md, "Cube data"):

- ``"fast"``: the arm and gripper drawn with their collision meshes (70 k
  triangles) instead of the visual ones (193 k), shadows and reflections off. The cube, the
  gripper's fingers and the arm's pose stay visible; ~5x faster than ``"ogbench"``.
- ``"draft"`` (the default): ``"fast"`` without anti-aliasing (no multisampling: edges are a
  pixel's step, ~1.4/255 mean difference from ``"fast"``); ~2.6x faster again (18 vs 48 ms a
  64-px frame), what lets the CPU recipe collect its data in time. Files record their look
  (``look`` attribute) and evaluation draws in it, so data in another look still plan right.
- ``"ogbench"``: MuJoCo's default look of OGBench's scene (visual meshes, shadows, reflections),
  what the authors' data look like (their arm is opaque: OGBench's transparent-arm pixel mode is
  not used by them either).

The target marker is never drawn (OGBench's pixel setting): the goal is shown by a goal image.
One renderer per resolution, anti-aliasing and process
(:func:`lewm.envs.reacher.backend.offscreen_renderer`).

Axes: N states, r image resolution.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lewm.envs.cube.backend import import_mujoco
from lewm.envs.cube.physics import QPOS, model, ogbench_env
from lewm.envs.reacher.backend import offscreen_renderer
from lewm.envs.reacher.render import check_colour

CAMERA = "front_pixels"
LOOKS = ("fast", "draft", "ogbench")
DEFAULT_LOOK = "draft"  # what `lewm collect cube` and CubeEnv draw unless told otherwise
VISUAL, COLLISION = 2, 3  # MuJoCo geom groups of the arm's visual and collision meshes

_renderers: dict[Any, Any] = {}  # (resolution, samples) -> mujoco.Renderer of this process
_scratch: list[Any] = []  # the MjData states are placed in to be drawn


def check_look(look: str) -> str:
    if look not in LOOKS:
        raise ValueError(f"look must be one of {LOOKS}, got {look!r}")
    return look


def _renderer(resolution: int, look: str) -> Any:
    import_mujoco()
    return offscreen_renderer(_renderers, model(), resolution, 0 if look == "draft" else None)


def _scene_option(look: str) -> Any:
    mujoco = import_mujoco()
    opt = mujoco.MjvOption()
    if look != "ogbench":
        opt.geomgroup[VISUAL], opt.geomgroup[COLLISION] = 0, 1
    return opt


def cube_geoms() -> np.ndarray:
    """Geom ids of the cube (the ones a colour change repaints)."""
    env = ogbench_env()
    return np.asarray(env._cube_geom_ids_list[0], np.int64)


def render_batch(
    states: np.ndarray,
    resolution: int = 64,
    *,
    look: str = DEFAULT_LOOK,
    cube_colour: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """States (N, >= 21) -> frames (N, r, r, 3) uint8 from the front camera. Only qpos (the first
    21 values) changes a frame. ``cube_colour``: RGB 0-255 of the cube (default OGBench's red)."""
    mujoco = import_mujoco()
    states = np.asarray(states, np.float64)
    if states.ndim != 2 or states.shape[1] < QPOS.stop:
        raise ValueError(f"Cube renders states (N, >= {QPOS.stop}), got shape {states.shape}")
    if int(resolution) != resolution or resolution < 8:
        raise ValueError(f"resolution must be an integer >= 8, got {resolution}")
    check_look(look)
    resolution = int(resolution)
    m = model()
    r = _renderer(resolution, look)
    if not _scratch:
        _scratch.append(mujoco.MjData(m))
    data = _scratch[0]
    opt = _scene_option(look)
    geoms = cube_geoms()
    rgba = m.geom_rgba[geoms].copy()
    if cube_colour is not None:
        m.geom_rgba[geoms, :3] = np.asarray(check_colour(cube_colour)) / 255.0
    flags = r.scene.flags  # kept by the scene across update_scene calls
    flags[mujoco.mjtRndFlag.mjRND_SHADOW] = look == "ogbench"
    flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = look == "ogbench"
    out = np.empty((len(states), resolution, resolution, 3), np.uint8)
    try:
        for i, s in enumerate(states):
            data.qpos[:] = s[QPOS]
            mujoco.mj_kinematics(m, data)
            mujoco.mj_camlight(m, data)
            r.update_scene(data, camera=CAMERA, scene_option=opt)
            out[i] = r.render()
    finally:
        m.geom_rgba[geoms] = rgba
    return out


def render_state(state: np.ndarray, resolution: int = 64, **style: Any) -> np.ndarray:
    """The frame (r, r, 3) uint8 of one state (>= 21 values); ``style`` as :func:`render_batch`."""
    return render_batch(np.asarray(state, np.float64).reshape(1, -1), resolution, **style)[0]
