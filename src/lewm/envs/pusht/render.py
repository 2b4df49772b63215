"""Push-T rendering with OpenCV (imported when a frame is drawn), directly at any resolution; it
needs no pymunk. Row = y, column = x; no goal overlay.

Axes: N states (or frames), r image resolution.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from lewm.envs.pusht.physics import (
    AGENT_RADIUS,
    WALL_HI,
    WALL_LO,
    WALL_RADIUS,
    WORLD,
    block_vertices,
)

AGENT_COLOUR = (65, 105, 225)  # RoyalBlue
BLOCK_COLOUR = (119, 136, 153)  # LightSlateGray
BACKGROUND = (242, 242, 242)
WALL_COLOUR = (200, 200, 200)
_SHIFT = 4  # cv2 sub-pixel bits: coordinates are drawn with 1/16-pixel precision


def import_cv2() -> Any:
    """The cv2 module, or an ImportError that says how to install it."""
    try:
        import cv2
    except ImportError as e:
        raise ImportError(
            "Push-T rendering needs OpenCV: pip install 'lewm[pusht]' (opencv-python-headless)"
        ) from e
    return cv2


def _to_px(xy: np.ndarray, scale: float) -> np.ndarray:
    # world -> cv2 pixel coordinates (pixel i covers [i, i+1) so its centre is i + 0.5)
    return np.round((np.asarray(xy) * scale - 0.5) * (1 << _SHIFT)).astype(np.int32)


@lru_cache(maxsize=16)
def _background(resolution: int, colour: tuple[int, int, int]) -> np.ndarray:
    """The static scene (r, r, 3) uint8: floor and the wall square (read-only, cached)."""
    cv2 = import_cv2()
    scale = resolution / WORLD
    img = np.empty((resolution, resolution, 3), np.uint8)
    img[:] = colour
    lo = tuple(_to_px(np.array([WALL_LO, WALL_LO]), scale).tolist())
    hi = tuple(_to_px(np.array([WALL_HI, WALL_HI]), scale).tolist())
    thick = max(1, int(round(2 * WALL_RADIUS * scale)))
    cv2.rectangle(img, lo, hi, WALL_COLOUR, thick, cv2.LINE_AA, _SHIFT)
    img.flags.writeable = False
    return img


def render_state(
    state: np.ndarray,
    resolution: int = 64,
    agent_colour: tuple[int, int, int] = AGENT_COLOUR,
    block_colour: tuple[int, int, int] = BLOCK_COLOUR,
    background: tuple[int, int, int] = BACKGROUND,
) -> np.ndarray:
    """The image (r, r, 3) uint8 of one state (>= 5 values); row = y, column = x."""
    cv2 = import_cv2()
    s = np.asarray(state, np.float64).reshape(-1)
    scale = resolution / WORLD
    img = _background(resolution, tuple(int(c) for c in background)).copy()
    tee = _to_px(block_vertices(s[2:4], s[4]), scale)  # (8, 2)
    cv2.fillPoly(img, [tee], tuple(int(c) for c in block_colour), cv2.LINE_AA, _SHIFT)
    centre = tuple(_to_px(s[:2], scale).tolist())
    radius = int(round(AGENT_RADIUS * scale * (1 << _SHIFT)))
    cv2.circle(img, centre, radius, tuple(int(c) for c in agent_colour), -1, cv2.LINE_AA, _SHIFT)
    return img


def render_batch(states: np.ndarray, resolution: int = 64, **colours: Any) -> np.ndarray:
    """States (N, >=5) -> images (N, r, r, 3) uint8; ``colours`` as :func:`render_state`'s."""
    states = np.asarray(states, np.float64)
    out = np.empty((len(states), resolution, resolution, 3), np.uint8)
    for i, s in enumerate(states):
        out[i] = render_state(s, resolution, **colours)
    return out
