"""Two-Room rendering, directly at any resolution (64-px training data and 224-px paper-size data
come from one code path). Pure numpy.

The static scene is the exact area coverage of the border/wall rectangles per pixel (precomputed
once per resolution), the agent a red Gaussian dot ``exp(-d^2 / (2 sigma^2))`` (sigma = 7 units)
sampled at pixel centres. The target is not drawn (the reference's default).

Axes: N frames (or states), r image resolution.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from lewm.envs.tworoom.dynamics import (
    BORDER,
    BORDER_LINE,
    DEFAULT_LAYOUT,
    RADIUS,
    WORLD,
    TwoRoomLayout,
)

AGENT_COLOUR = (255.0, 0.0, 0.0)


def _coverage(lo: float, hi: float, resolution: int) -> np.ndarray:
    """Fraction (r,) of each pixel's extent covered by the world interval [lo, hi)."""
    edges = np.arange(resolution + 1) * (WORLD / resolution)
    overlap = np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo)
    return np.clip(overlap, 0.0, None) / (WORLD / resolution)


def _rect(x0: float, x1: float, y0: float, y1: float, resolution: int) -> np.ndarray:
    """Area coverage (r, r) of an axis-aligned rectangle; rows are y, columns x."""
    return np.outer(_coverage(y0, y1, resolution), _coverage(x0, x1, resolution))


@lru_cache(maxsize=16)
def _background(
    resolution: int, layout: TwoRoomLayout
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Static scene as grey level g (r, r): returns (g, g + 0.5, 255 - g), float32, read-only.

    Darkness is the exact coverage of disjoint rectangles: the border ring, and the wall between
    the border lines minus the door gap.
    """
    lo, hi = BORDER - BORDER_LINE, WORLD - BORDER + BORDER_LINE  # 10, 214
    ring = _rect(lo, hi, lo, hi, resolution) - _rect(
        BORDER, WORLD - BORDER, BORDER, WORLD - BORDER, resolution
    )
    wx0, wx1 = layout.wall_x - layout.wall_half, layout.wall_x + layout.wall_half
    wall = _rect(wx0, wx1, BORDER, WORLD - BORDER, resolution)
    d0 = max(layout.door_center - layout.door_half_extent, BORDER)
    d1 = min(layout.door_center + layout.door_half_extent, WORLD - BORDER)
    door = _rect(wx0, wx1, d0, d1, resolution)
    grey = 255.0 * (1.0 - np.clip(ring + wall - door, 0.0, 1.0))  # (r, r)
    arrays = (grey, grey + 0.5, 255.0 - grey)
    arrays = tuple(a.astype(np.float32) for a in arrays)
    for a in arrays:
        a.flags.writeable = False
    return arrays


def _pixel_centres(resolution: int) -> np.ndarray:
    return ((np.arange(resolution) + 0.5) * (WORLD / resolution)).astype(np.float32)


def render_batch(
    states: np.ndarray,
    resolution: int = 64,
    layout: TwoRoomLayout = DEFAULT_LAYOUT,
    *,
    chunk: int | None = None,
    agent_colour: tuple[int, int, int] = AGENT_COLOUR,
) -> np.ndarray:
    """Agent positions (N, 2) -> frames (N, r, r, 3) uint8 (HWC; the target is not drawn).

    The dot is separable, alpha = g_y g_x^T per frame, blended over the static grey scene:
    channel = g + (c - g) alpha for the agent colour c (default red: red = g + (255 - g) alpha,
    green = blue = g - g alpha), rounded to nearest. Frames are processed ``chunk`` at a time
    (default: about 256k pixels, so temporaries stay in cache). ``agent_colour`` is an RGB
    override (the surprise experiments' visual perturbation).
    """
    agent_colour = tuple(int(c) for c in agent_colour)
    if len(agent_colour) != 3 or not all(0 <= c <= 255 for c in agent_colour):
        raise ValueError(f"agent_colour must be 3 integers in [0, 255], got {agent_colour}")
    if agent_colour != AGENT_COLOUR:
        return _render_coloured(np.asarray(states), int(resolution), layout, agent_colour)
    states = np.asarray(states, np.float32).reshape(-1, 2)  # (N, 2)
    resolution = int(resolution)
    if resolution < 1:
        raise ValueError(f"resolution must be >= 1, got {resolution}")
    grey, plus_half, to_red = _background(resolution, layout)  # (r, r) each
    c = _pixel_centres(resolution)  # (r,)
    inv = np.float32(-0.5 / RADIUS**2)
    n = len(states)
    chunk = chunk or max(4, (1 << 18) // (resolution * resolution))
    out = np.empty((n, resolution, resolution, 3), np.uint8)
    buf = np.empty((min(chunk, max(n, 1)), resolution, resolution), np.float32)
    tmp = np.empty_like(buf)
    for s in range(0, n, chunk):
        st = states[s : s + chunk]  # (n_c, 2)
        m = len(st)
        gx = np.exp(np.square(c[None, :] - st[:, :1]) * inv)  # (n_c, r) along columns
        gy = np.exp(np.square(c[None, :] - st[:, 1:]) * inv)  # (n_c, r) along rows
        alpha = np.multiply(gy[:, :, None], gx[:, None, :], out=buf[:m])  # (n_c, r, r)
        red = np.multiply(alpha, to_red, out=tmp[:m])
        red += plus_half
        out[s : s + m, :, :, 0] = red  # float -> uint8 truncates: round half up
        rest = np.multiply(alpha, grey, out=tmp[:m])
        np.subtract(plus_half, rest, out=rest)
        out[s : s + m, :, :, 1] = rest
        out[s : s + m, :, :, 2] = rest
    return out


def _render_coloured(
    states: np.ndarray, resolution: int, layout: TwoRoomLayout, colour: tuple[int, int, int]
) -> np.ndarray:
    """General-colour path of :func:`render_batch` (same blend, any RGB agent colour)."""
    states = np.asarray(states, np.float32).reshape(-1, 2)  # (N, 2)
    grey, plus_half, _ = _background(resolution, layout)  # (r, r)
    c = _pixel_centres(resolution)  # (r,)
    inv = np.float32(-0.5 / RADIUS**2)
    gx = np.exp(np.square(c[None, :] - states[:, :1]) * inv)  # (N, r)
    gy = np.exp(np.square(c[None, :] - states[:, 1:]) * inv)  # (N, r)
    alpha = gy[:, :, None] * gx[:, None, :]  # (N, r, r)
    out = np.empty((len(states), resolution, resolution, 3), np.uint8)
    for ch, value in enumerate(colour):
        out[..., ch] = plus_half + alpha * (np.float32(value) - grey)
    return out
