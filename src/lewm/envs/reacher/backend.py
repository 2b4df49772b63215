"""MuJoCo for Reacher: the OpenGL backend of offscreen rendering, chosen before ``mujoco`` is
imported, and the imports of ``mujoco`` / ``dm_control`` with an error that says what to install.

MuJoCo reads ``MUJOCO_GL`` once, when it is imported, so the backend cannot be changed by trying
it in this process. :func:`select_gl_backend` therefore tries each candidate (EGL, then OSMesa)
in a short subprocess that renders one 8x8 frame, and sets ``MUJOCO_GL`` (and
``PYOPENGL_PLATFORM``) for this process and the workers it starts. A ``MUJOCO_GL`` the user set
is respected and not tried.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
from typing import Any

BACKENDS = ("egl", "osmesa")  # tried in this order
INSTALL_HINT = "pip install 'lewm[mujoco]'"
NO_BACKEND = (
    "Reacher and Cube render with MuJoCo offscreen; lewm found no working OpenGL backend: "
    "MUJOCO_GL=egl and MUJOCO_GL=osmesa both failed ({details}). Install one of them: "
    "EGL with Mesa (Debian/Ubuntu: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri) or a "
    "GPU driver, or OSMesa (apt-get install libosmesa6); or set MUJOCO_GL to a backend that "
    "works here."
)
# renders one frame of an empty scene: exit status 0 iff the backend works
_PROBE = (
    "import mujoco\n"
    'm = mujoco.MjModel.from_xml_string(\'<mujoco><worldbody><geom size="1"/></worldbody>'
    "</mujoco>')\n"
    "r = mujoco.Renderer(m, 8, 8)\n"
    "d = mujoco.MjData(m)\n"
    "mujoco.mj_forward(m, d)\n"
    "r.update_scene(d)\n"
    "assert r.render().shape == (8, 8, 3)\n"
    "r.close()\n"
)

_chosen: str | None = None  # the backend this process uses, once chosen


class RenderBackendError(RuntimeError):
    """No OpenGL backend for MuJoCo's offscreen rendering works on this machine."""


def _backend_works(backend: str, timeout: float = 60.0) -> tuple[bool, str]:
    """Whether rendering with ``MUJOCO_GL=backend`` works, tried in a subprocess, and why not."""
    env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
    try:
        res = subprocess.run(
            [sys.executable, "-c", _PROBE],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"{type(e).__name__}: {e}"
    lines = (res.stderr or res.stdout).strip().splitlines()
    return res.returncode == 0, (lines[-1] if lines else f"exit status {res.returncode}")


def select_gl_backend() -> str:
    """The OpenGL backend of MuJoCo's offscreen rendering in this process, chosen once: the
    user's ``MUJOCO_GL`` if set, else the first of EGL, OSMesa that renders a frame. Sets
    ``MUJOCO_GL`` / ``PYOPENGL_PLATFORM``; raises :class:`RenderBackendError` naming the
    system packages to install when neither works."""
    global _chosen
    if _chosen is not None:
        return _chosen
    given = os.environ.get("MUJOCO_GL", "").strip().lower()
    if given or "mujoco" in sys.modules:  # the user's choice, or too late to choose
        _chosen = given or "default"
        return _chosen
    details = []
    for backend in BACKENDS:
        ok, why = _backend_works(backend)
        if ok:
            os.environ["MUJOCO_GL"] = backend
            os.environ["PYOPENGL_PLATFORM"] = backend
            _chosen = backend
            return backend
        details.append(f"{backend}: {why}")
    raise RenderBackendError(NO_BACKEND.format(details="; ".join(details)))


def import_mujoco() -> Any:
    """The ``mujoco`` module, imported after :func:`select_gl_backend`; an ImportError naming
    the extra to install when it (or dm_control) is missing."""
    import_dm_control_reacher()  # checks both packages before choosing a backend
    import mujoco

    return mujoco


def import_dm_control_reacher() -> Any:
    """``dm_control.suite.reacher`` (the model's MJCF and assets), with ``MUJOCO_GL`` chosen
    first; an ImportError naming ``pip install 'lewm[mujoco]'`` when a package is missing."""
    from importlib.util import find_spec

    missing = [name for name in ("mujoco", "dm_control") if find_spec(name) is None]
    if missing:
        raise ImportError(
            f"Reacher needs MuJoCo and dm_control ({', '.join(missing)} missing): {INSTALL_HINT}"
        )
    select_gl_backend()
    try:
        from dm_control.suite import reacher
    except ImportError as e:
        raise ImportError(
            f"Reacher could not import dm_control ({e}); it needs mujoco==3.17.0 with "
            f"dm_control==1.0.50: {INSTALL_HINT}"
        ) from e
    return reacher


_render_caches: list[dict[Any, Any]] = []  # every cache offscreen_renderer has filled


def offscreen_renderer(
    cache: dict[Any, Any], model: Any, resolution: int, samples: int | None = None
) -> Any:
    """``cache[resolution, samples]``: this process's ``mujoco.Renderer`` of ``model`` at
    ``resolution``, made on first use (creating GL contexts over and over is slow and, with some
    drivers, unreliable). ``samples``: multisample anti-aliasing of its offscreen buffer (MuJoCo's
    ``offsamples``; None keeps the model's, 4 by default; 0 draws aliased edges, ~2.6x faster on
    Mesa llvmpipe). The model's offscreen buffer is enlarged to hold the frame; a backend that
    cannot render raises one RuntimeError saying which ``MUJOCO_GL`` to try. Every renderer is
    closed at exit, before MuJoCo's own exit hook ends the GL display."""
    if samples is not None and (int(samples) != samples or samples < 0):
        raise ValueError(f"samples must be an integer >= 0 or None, got {samples!r}")
    key = (resolution, samples)
    r = cache.get(key)
    if r is not None:
        return r
    import mujoco  # the caller imported it after choosing the backend

    model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), resolution)
    model.vis.global_.offheight = max(int(model.vis.global_.offheight), resolution)
    kept = int(model.vis.quality.offsamples)
    if samples is not None:  # read when the GL context is made, so set it just for this one
        model.vis.quality.offsamples = int(samples)
    try:
        r = mujoco.Renderer(model, resolution, resolution)
    except Exception as e:  # the backend's own errors vary (EGL, OSMesa, GLFW)
        raise RuntimeError(
            f"MuJoCo could not create an offscreen renderer with MUJOCO_GL="
            f"{select_gl_backend()!r} ({type(e).__name__}: {e}); set MUJOCO_GL=egl or "
            "osmesa before mujoco is imported, or leave it unset and let lewm import mujoco "
            "first (it then tries EGL, then OSMesa)"
        ) from e
    finally:
        model.vis.quality.offsamples = kept
    if not _render_caches:  # registered after mujoco's own exit hook (which ends EGL): runs first
        atexit.register(_close_renderers)
    if not any(c is cache for c in _render_caches):
        _render_caches.append(cache)
    cache[key] = r
    return r


def _close_renderers() -> None:
    # close while the GL display is still up (at interpreter teardown it may not be)
    for cache in _render_caches:
        while cache:
            _, r = cache.popitem()
            try:
                r.close()
            except Exception:  # noqa: S110 - nothing to do about a failing close at exit
                pass
