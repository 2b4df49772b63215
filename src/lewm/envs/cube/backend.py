"""Imports for Cube: ``mujoco``, ``dm_control`` and ``ogbench`` with an error that says what to
install, after the OpenGL backend of offscreen rendering is chosen (shared with Reacher:
:func:`lewm.envs.reacher.backend.select_gl_backend`)."""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

from lewm.envs.reacher.backend import INSTALL_HINT, select_gl_backend

OGBENCH_VERSION = "1.2.2"  # the version the state layout and the look were checked against


def import_ogbench_cube() -> Any:
    """OGBench's ``CubeEnv`` class (``ogbench.manipspace.envs.cube_env``), with ``MUJOCO_GL``
    chosen first; an ImportError naming ``pip install 'lewm[mujoco]'`` when a package is
    missing."""
    missing = [n for n in ("mujoco", "dm_control", "ogbench") if find_spec(n) is None]
    if missing:
        raise ImportError(
            f"Cube needs MuJoCo, dm_control and OGBench ({', '.join(missing)} missing): "
            f"{INSTALL_HINT}"
        )
    select_gl_backend()
    try:
        from ogbench.manipspace.envs.cube_env import CubeEnv
    except ImportError as e:
        raise ImportError(
            f"Cube could not import OGBench's cube environment ({e}); it needs "
            f"ogbench=={OGBENCH_VERSION} with mujoco==3.17.0 and dm_control==1.0.50: "
            f"{INSTALL_HINT}"
        ) from e
    return CubeEnv


def import_mujoco() -> Any:
    """The ``mujoco`` module, imported after the cube's checks and the backend choice."""
    import_ogbench_cube()
    import mujoco

    return mujoco
