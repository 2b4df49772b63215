"""Two-Room: a dot agent in two rooms joined by one door (the LeWM / PLDM navigation task).

Pure numpy, no physics engine. World units: a 224-unit square canvas with a 14-unit border, a
vertical wall at x = 112 (10 units thick) with one door centred at y = 49 (half-extent 14).
Actions are velocities in [-1, 1]^2 times 5 units per step; success is being within 16 units of
the target. Images are rendered directly at any resolution (the pixel grid is evaluated in world
units), so 64-px data and 224-px paper-size data come from the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import gymnasium as gym
import numpy as np

WORLD = 224.0
BORDER = 14.0
RADIUS = 7.0  # agent radius (and the rendered dot's sigma)
SPEED = 5.0
SUCCESS_DIST = 16.0
LO, HI = BORDER + RADIUS, WORLD - BORDER - RADIUS  # 21, 203: reachable agent centres
AGENT_COLOUR = np.array([255, 0, 0], np.float32)


@dataclass(frozen=True)
class Layout:
    wall_x: float = 112.0
    wall_half: float = 5.0  # wall spans x in [107, 117]
    door_y: float = 49.0
    door_half: float = 14.0  # door spans y in [35, 63]
    door_slack: float = 1.75  # the reference checks the agent centre against the span +- 1.75

    def in_door(self, y: np.ndarray) -> np.ndarray:
        return np.abs(y - self.door_y) <= self.door_half + self.door_slack

    def in_wall(self, xy: np.ndarray) -> np.ndarray:
        """Agent centres that would overlap the wall (outside the door)."""
        xy = np.asarray(xy, np.float64)
        near = np.abs(xy[..., 0] - self.wall_x) < self.wall_half + RADIUS
        return near & ~self.in_door(xy[..., 1])

    def side(self, x: np.ndarray) -> np.ndarray:
        """-1 left room, +1 right room."""
        return np.where(np.asarray(x) < self.wall_x, -1, 1)


DEFAULT_LAYOUT = Layout()


def step_dynamics(
    pos: np.ndarray, action: np.ndarray, layout: Layout = DEFAULT_LAYOUT, speed: float = SPEED
) -> np.ndarray:
    """Vectorised move: pos (N, 2), action (N, 2) -> new pos (N, 2).

    Clip the action, move, clamp to the arena, then stop at the wall unless the agent is in the
    door span both where it starts and where it ends (so no step crosses the wall outside it).
    """
    pos = np.asarray(pos, np.float64)
    a = np.clip(np.nan_to_num(np.asarray(action, np.float64)), -1.0, 1.0)
    new = np.clip(pos + a * speed, LO, HI)
    left_lim = layout.wall_x - layout.wall_half - RADIUS  # 100: rightmost free x on the left
    right_lim = layout.wall_x + layout.wall_half + RADIUS  # 124: leftmost free x on the right
    passable = layout.in_door(new[:, 1]) & layout.in_door(pos[:, 1])
    from_left = pos[:, 0] < layout.wall_x
    block_l = from_left & (new[:, 0] > left_lim) & ~passable
    block_r = ~from_left & (new[:, 0] < right_lim) & ~passable
    new[block_l, 0] = left_lim - 0.5
    new[block_r, 0] = right_lim + 0.5
    return new


@lru_cache(maxsize=8)
def _background(resolution: int, layout: Layout) -> np.ndarray:
    """Static scene (res, res, 3) float32: white floor, black border band and wall, door gap."""
    c = (np.arange(resolution) + 0.5) * (WORLD / resolution)  # pixel centres in world units
    X, Y = np.meshgrid(c, c)  # (res, res), row = y
    img = np.full((resolution, resolution, 3), 255.0, np.float32)
    border = (X < BORDER) | (X > WORLD - BORDER) | (Y < BORDER) | (Y > WORLD - BORDER)
    wall = (np.abs(X - layout.wall_x) <= layout.wall_half) & (
        np.abs(Y - layout.door_y) > layout.door_half
    )
    img[border | wall] = 0.0
    return img


def render_batch(
    states: np.ndarray, resolution: int = 64, layout: Layout = DEFAULT_LAYOUT
) -> np.ndarray:
    """Agent positions (N, 2) -> images (N, res, res, 3) uint8 (the target is not drawn)."""
    states = np.asarray(states, np.float32).reshape(-1, 2)
    bg = _background(int(resolution), layout)
    c = (np.arange(resolution, dtype=np.float32) + 0.5) * (WORLD / resolution)
    inv = 1.0 / (2 * RADIUS**2)
    gx = np.exp(-((c[None, :] - states[:, :1]) ** 2) * inv)  # (N, res) along x (columns)
    gy = np.exp(-((c[None, :] - states[:, 1:]) ** 2) * inv)  # (N, res) along y (rows)
    alpha = gy[:, :, None] * gx[:, None, :]  # (N, res, res), separable Gaussian dot, max 1
    alpha = alpha[..., None]
    img = bg[None] * (1.0 - alpha) + AGENT_COLOUR * alpha  # (N, res, res, 3)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def sample_free(rng: np.random.Generator, n: int, layout: Layout = DEFAULT_LAYOUT) -> np.ndarray:
    """n uniform agent positions in the free space (not overlapping the wall)."""
    out = np.empty((n, 2))
    filled = 0
    while filled < n:
        cand = rng.uniform(LO, HI, size=(2 * (n - filled) + 4, 2))
        cand = cand[~layout.in_wall(cand)][: n - filled]
        out[filled : filled + len(cand)] = cand
        filled += len(cand)
    return out


def _check_xy(name: str, value: Any, layout: Layout) -> np.ndarray:
    xy = np.asarray(value, np.float64)
    if xy.shape != (2,) or not np.isfinite(xy).all():
        raise ValueError(f"options[{name!r}] must be a finite (x, y) pair, got {value!r}")
    if not ((LO <= xy) & (xy <= HI)).all():
        raise ValueError(f"options[{name!r}] = {xy.tolist()} lies outside the arena [{LO}, {HI}]^2")
    if layout.in_wall(xy):
        raise ValueError(f"options[{name!r}] = {xy.tolist()} lies inside the wall")
    return xy


class TwoRoomEnv(gym.Env):
    """Gymnasium Two-Room. obs = (agent x, y, target x, y); info has state/goal_state/success.

    ``reset(options={"state": xy, "goal_state": xy})`` places the agent and the target exactly;
    :meth:`render_state` renders any agent position (used for goal images).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        resolution: int = 64,
        render_mode: str | None = "rgb_array",
        layout: Layout = DEFAULT_LAYOUT,
        speed: float = SPEED,
    ) -> None:
        if resolution < 8:
            raise ValueError(f"resolution must be >= 8 pixels, got {resolution}")
        self.resolution, self.render_mode, self.layout, self.speed = (
            resolution,
            render_mode,
            layout,
            speed,
        )
        self.observation_space = gym.spaces.Box(0.0, WORLD, shape=(4,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.state = np.array([LO, LO])
        self.goal_state = np.array([HI, HI])

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.state, self.goal_state]).astype(np.float32)

    def _info(self) -> dict[str, Any]:
        d = float(np.linalg.norm(self.state - self.goal_state))
        return {
            "state": self.state.astype(np.float32),
            "goal_state": self.goal_state.astype(np.float32),
            "distance": d,
            "success": d < SUCCESS_DIST,
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        unknown = set(options) - {"state", "goal_state"}
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {sorted(unknown)}; use 'state', 'goal_state'"
            )
        self.state = (
            _check_xy("state", options["state"], self.layout)
            if "state" in options
            else sample_free(self.np_random, 1, self.layout)[0]
        )
        self.goal_state = (
            _check_xy("goal_state", options["goal_state"], self.layout)
            if "goal_state" in options
            else sample_free(self.np_random, 1, self.layout)[0]
        )
        return self._obs(), self._info()

    def step(self, action):
        a = np.asarray(action, np.float64).reshape(-1)
        if a.shape != (2,):
            raise ValueError(f"Two-Room actions are (2,) velocities, got shape {np.shape(action)}")
        self.state = step_dynamics(self.state[None], a[None], self.layout, self.speed)[0]
        info = self._info()
        return self._obs(), 0.0, bool(info["success"]), False, info

    def render(self) -> np.ndarray:
        return self.render_state(self.state)

    def render_state(self, state: np.ndarray) -> np.ndarray:
        """The image (res, res, 3) uint8 of the agent at ``state``, without changing the env."""
        return render_batch(np.asarray(state)[None], self.resolution, self.layout)[0]


class TwoRoomBatch:
    """N Two-Room episodes stepped together (used by fast data collection)."""

    def __init__(self, n: int, rng: np.random.Generator, layout: Layout = DEFAULT_LAYOUT) -> None:
        self.layout = layout
        self.pos = sample_free(rng, n, layout)
        self.target = sample_free(rng, n, layout)

    def success(self) -> np.ndarray:
        return np.linalg.norm(self.pos - self.target, axis=1) < SUCCESS_DIST

    def step(self, actions: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        new = step_dynamics(self.pos, actions, self.layout)
        self.pos = new if mask is None else np.where(mask[:, None], new, self.pos)
        return self.success()


class TwoRoomExpert:
    """Noisy scripted expert: to the door (approach point, then exit point) when the target is in
    the other room, then straight to the target; unit direction + N(0, noise_std^2), clipped."""

    def __init__(
        self,
        noise_std: float = 2.0,
        rng: np.random.Generator | None = None,
        layout: Layout = DEFAULT_LAYOUT,
        door_offset: float = 20.0,
    ) -> None:
        self.noise_std, self.layout, self.door_offset = noise_std, layout, door_offset
        self.rng = rng if rng is not None else np.random.default_rng()

    def waypoints(self, states: np.ndarray, targets: np.ndarray) -> np.ndarray:
        L = self.layout
        own, goal_side = L.side(states[:, 0]), L.side(targets[:, 0])
        cross = own != goal_side
        aligned = np.abs(states[:, 1] - L.door_y) < 0.5 * L.door_half
        near_wall = np.abs(states[:, 0] - L.wall_x) < L.wall_half + RADIUS + self.door_offset
        wp = targets.astype(np.float64).copy()
        go_in = cross & ~(aligned & near_wall)  # line up with the door on our own side first
        wp[go_in] = np.stack(
            [L.wall_x + own[go_in] * self.door_offset, np.full(go_in.sum(), L.door_y)], 1
        )
        go_through = cross & aligned & near_wall  # then pass through to the other side
        wp[go_through] = np.stack(
            [L.wall_x - own[go_through] * self.door_offset, np.full(go_through.sum(), L.door_y)], 1
        )
        return wp

    def act(self, states: np.ndarray, targets: np.ndarray) -> np.ndarray:
        d = self.waypoints(states, targets) - states
        unit = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-8)
        noise = self.rng.normal(0.0, self.noise_std, size=unit.shape) if self.noise_std > 0 else 0.0
        return np.clip(unit + noise, -1.0, 1.0).astype(np.float32)
