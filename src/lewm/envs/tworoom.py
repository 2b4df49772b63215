"""Two-Room: a dot agent in two rooms joined by one door (the LeWM / PLDM navigation task).

Pure numpy, no physics engine. Everything is in *world units* on a 224-unit square canvas:

- a 14-unit border (drawn as a 4-unit black line just inside it, at [10, 14) and [210, 214));
  agent centres are clamped to [21, 203] (border + agent radius 7);
- a vertical wall at x = 112, 10 units thick (x in [107, 117]), with one door centred at
  y = 49 of half-extent 14 (y in [35, 63]);
- actions are velocities in [-1, 1]^2 (clipped), moving the agent ``action * 5`` units per step;
- success is being within 16 units of the target; the reward is always 0.

Collisions follow the reference (stable-worldmodel ``TwoRoom``): after the border clamp, a step
that would bring the agent's centre within ``radius`` of the wall is stopped half a unit short of
it, unless the centre is inside the door span (+- 1.75 slack) at both the start and the end of
the step. Requiring both ends (the reference checks only the end) makes the whole segment of the
step lie in the door span, so the agent can never cross the wall outside the door.

Images are rendered directly at any resolution: the static scene is the exact area coverage of the
border/wall rectangles per pixel (precomputed once per resolution), the agent a red Gaussian dot
``exp(-d^2 / (2 sigma^2))`` (sigma = 7 units) sampled at pixel centres. The target is not drawn
(the reference's default). 64-px training data and 224-px paper-size data come from one code path.

Axes: N environments (or frames), r image resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import gymnasium as gym
import numpy as np

WORLD = 224.0  # canvas side, world units
BORDER = 14.0  # free space starts here
BORDER_LINE = 4.0  # the border is drawn as a black line this thick just inside BORDER
RADIUS = 7.0  # agent radius (collisions) and the rendered dot's sigma
SPEED = 5.0  # units per step at |action| = 1 per axis
SUCCESS_DIST = 16.0  # success: ||agent - target|| < 16
LO, HI = BORDER + RADIUS, WORLD - BORDER - RADIUS  # 21, 203: reachable agent centres
BLOCK_GAP = 0.5  # a blocked agent stops this far short of the wall's reach
AGENT_COLOUR = (255.0, 0.0, 0.0)


@dataclass(frozen=True)
class TwoRoomLayout:
    """Wall and door geometry (world units); the defaults are the reference's."""

    wall_x: float = 112.0  # centre line of the vertical wall
    wall_thickness: float = 10.0  # wall spans wall_x +- thickness / 2
    door_center: float = 49.0  # door centre along the wall (y)
    door_half_extent: float = 14.0  # door spans door_center +- half_extent
    door_slack: float = 1.75  # the agent centre may be this far outside the span and still pass

    def __post_init__(self) -> None:
        reach = self.wall_thickness / 2 + RADIUS
        if not self.wall_thickness > 0:
            raise ValueError(f"wall_thickness must be > 0, got {self.wall_thickness}")
        if not (LO + 2 * RADIUS < self.wall_x - reach and self.wall_x + reach < HI - 2 * RADIUS):
            raise ValueError(
                f"wall_x={self.wall_x} with thickness {self.wall_thickness} leaves no room on one "
                f"side; the wall must stay clear of [{LO}, {HI}] by its thickness/2 + {3 * RADIUS}"
            )
        if self.door_half_extent < 1.1 * RADIUS:
            raise ValueError(
                f"door_half_extent={self.door_half_extent} is too narrow for the agent "
                f"(needs >= {1.1 * RADIUS:.2f} = 1.1 x radius, as in the reference)"
            )
        if not LO <= self.door_center <= HI:
            raise ValueError(f"door_center={self.door_center} must lie in [{LO}, {HI}]")
        if self.door_slack < 0:
            raise ValueError(f"door_slack must be >= 0, got {self.door_slack}")

    @property
    def wall_half(self) -> float:
        return self.wall_thickness / 2

    @property
    def left_limit(self) -> float:
        """Largest agent x that does not touch the wall from the left (100 by default)."""
        return self.wall_x - self.wall_half - RADIUS

    @property
    def right_limit(self) -> float:
        """Smallest agent x that does not touch the wall from the right (124 by default)."""
        return self.wall_x + self.wall_half + RADIUS

    def in_door(self, y: np.ndarray) -> np.ndarray:
        """Whether agent centre heights ``y`` are inside the door span (with the slack)."""
        return np.abs(np.asarray(y) - self.door_center) <= self.door_half_extent + self.door_slack

    def in_wall(self, xy: np.ndarray) -> np.ndarray:
        """Whether agent centres ``xy`` (..., 2) would overlap the wall outside the door."""
        xy = np.asarray(xy)
        x, y = xy[..., 0], xy[..., 1]
        return (x > self.left_limit) & (x < self.right_limit) & ~self.in_door(y)

    def is_free(self, xy: np.ndarray) -> np.ndarray:
        """Whether ``xy`` (..., 2) is a valid agent position (inside the arena, not in the wall)."""
        xy = np.asarray(xy)
        inside = ((xy >= LO) & (xy <= HI)).all(axis=-1)
        return inside & ~self.in_wall(xy)

    def right_side(self, x: np.ndarray) -> np.ndarray:
        """True for the right room (x >= wall_x), False for the left one."""
        return np.asarray(x) >= self.wall_x


DEFAULT_LAYOUT = TwoRoomLayout()


# -- dynamics ---------------------------------------------------------------------------------


def step_dynamics(
    pos: np.ndarray,
    action: np.ndarray,
    layout: TwoRoomLayout = DEFAULT_LAYOUT,
    speed: float = SPEED,
) -> np.ndarray:
    """One step for N agents: pos (N, 2), action (N, 2) -> new pos (N, 2) float32.

    Computed in float32, so replaying stored float32 states and actions reproduces stored next
    states exactly. Shared by :class:`TwoRoomEnv` and :class:`TwoRoomBatch`.
    """
    pos = np.asarray(pos, np.float32)
    a = np.asarray(action, np.float32)
    if pos.ndim != 2 or pos.shape[1] != 2 or a.shape != pos.shape:
        raise ValueError(f"expected pos and action of shape (N, 2), got {pos.shape} {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("actions must be finite")
    a = np.clip(a, -1.0, 1.0)
    new = np.clip(pos + a * np.float32(speed), LO, HI)  # (N, 2) border clamp
    passable = layout.in_door(pos[:, 1]) & layout.in_door(new[:, 1])  # whole segment in door
    from_left = ~layout.right_side(pos[:, 0])
    block_left = from_left & (new[:, 0] > layout.left_limit) & ~passable
    block_right = ~from_left & (new[:, 0] < layout.right_limit) & ~passable
    new[block_left, 0] = layout.left_limit - BLOCK_GAP
    new[block_right, 0] = layout.right_limit + BLOCK_GAP
    return new


def sample_free(
    rng: np.random.Generator, n: int, layout: TwoRoomLayout = DEFAULT_LAYOUT
) -> np.ndarray:
    """``n`` uniform agent positions (n, 2) float32 in the free space (either room or the door)."""
    out = np.empty((n, 2), np.float32)
    filled = 0
    while filled < n:
        cand = rng.uniform(LO, HI, size=(2 * (n - filled) + 4, 2)).astype(np.float32)
        cand = cand[layout.is_free(cand)][: n - filled]
        out[filled : filled + len(cand)] = cand
        filled += len(cand)
    return out


# -- rendering --------------------------------------------------------------------------------


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


# -- gymnasium environment --------------------------------------------------------------------


def _check_xy(name: str, value: Any, layout: TwoRoomLayout) -> np.ndarray:
    try:
        xy = np.asarray(value, np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"options[{name!r}] must be a finite (x, y) pair, got {value!r}") from e
    if xy.shape != (2,) or not np.isfinite(xy).all():
        raise ValueError(f"options[{name!r}] must be a finite (x, y) pair, got {value!r}")
    if not ((xy >= LO) & (xy <= HI)).all():
        raise ValueError(
            f"options[{name!r}] = {xy.tolist()} lies outside the arena: agent centres are in "
            f"[{LO}, {HI}]^2"
        )
    if layout.in_wall(xy):
        raise ValueError(f"options[{name!r}] = {xy.tolist()} lies inside the wall")
    return xy.astype(np.float32)


class TwoRoomEnv(gym.Env):
    """Gymnasium Two-Room (``lewm/TwoRoom-v0``).

    obs = (agent x, agent y, target x, target y) float32; info = {"state", "goal_state",
    "distance", "success"}. ``terminated`` is success; the reward is 0; the env never truncates
    (``gymnasium.make`` adds a 100-step TimeLimit; :func:`lewm.envs.make_env` returns the bare
    env and leaves the step budget to the caller).

    ``reset(options={"state": xy, "goal_state": xy})`` places the agent and/or the target
    exactly (either may be omitted and is then sampled uniformly in the free space; targets can
    be in either room). ``render()`` always returns the (r, r, 3) uint8 frame;
    :meth:`render_state` renders any agent position without changing the env (goal images).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        resolution: int = 64,
        render_mode: str | None = "rgb_array",
        *,
        wall_x: float = 112.0,
        wall_thickness: float = 10.0,
        door_center: float = 49.0,
        door_half_extent: float = 14.0,
        speed: float = SPEED,
    ) -> None:
        if int(resolution) != resolution or resolution < 8:
            raise ValueError(f"resolution must be an integer >= 8 pixels, got {resolution}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.resolution = int(resolution)
        self.render_mode = render_mode
        self.speed = float(speed)
        self.layout = TwoRoomLayout(wall_x, wall_thickness, door_center, door_half_extent)
        self.observation_space = gym.spaces.Box(0.0, WORLD, shape=(4,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.state = np.array([LO, LO], np.float32)  # agent xy
        self.goal_state = np.array([HI, HI], np.float32)  # target xy

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.state, self.goal_state]).astype(np.float32)  # (4,)

    def _info(self) -> dict[str, Any]:
        d = float(np.linalg.norm(self.state - self.goal_state))
        return {
            "state": self.state.copy(),
            "goal_state": self.goal_state.copy(),
            "distance": d,
            "success": d < SUCCESS_DIST,
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"state", "goal_state"}
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {sorted(unknown)}; TwoRoom accepts 'state' and "
                "'goal_state'"
            )
        # validate both before sampling, so a bad option never leaves a half-reset env
        state = _check_xy("state", options["state"], self.layout) if "state" in options else None
        goal = (
            _check_xy("goal_state", options["goal_state"], self.layout)
            if "goal_state" in options
            else None
        )
        self.state = state if state is not None else sample_free(self.np_random, 1, self.layout)[0]
        self.goal_state = (
            goal if goal is not None else sample_free(self.np_random, 1, self.layout)[0]
        )
        return self._obs(), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = np.asarray(action, np.float32)
        if a.shape != (2,):
            raise ValueError(f"TwoRoom actions are (2,) velocities, got shape {a.shape}")
        self.state = step_dynamics(self.state[None], a[None], self.layout, self.speed)[0]
        info = self._info()
        return self._obs(), 0.0, bool(info["success"]), False, info

    def render(self) -> np.ndarray:
        """The current frame (r, r, 3) uint8."""
        return self.render_state(self.state)

    def render_state(self, state: np.ndarray) -> np.ndarray:
        """The frame (r, r, 3) uint8 of the agent at ``state`` (x, y); the env is unchanged."""
        state = np.asarray(state, np.float32)
        if state.shape != (2,):
            raise ValueError(f"state must be an (x, y) pair, got shape {state.shape}")
        return render_batch(state[None], self.resolution, self.layout)[0]


# -- batched simulator and expert -------------------------------------------------------------


class TwoRoomBatch:
    """``num_envs`` Two-Room episodes stepped together with :func:`step_dynamics`.

    ``states`` and ``targets`` are (N, 2) float32 arrays; :meth:`reset` samples or sets them.
    """

    def __init__(
        self,
        num_envs: int,
        *,
        layout: TwoRoomLayout = DEFAULT_LAYOUT,
        speed: float = SPEED,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = int(num_envs)
        self.layout = layout
        self.speed = float(speed)
        self.rng = np.random.default_rng(rng)
        self.states = np.zeros((self.num_envs, 2), np.float32)
        self.targets = np.zeros((self.num_envs, 2), np.float32)
        self.reset()

    def reset(
        self, states: np.ndarray | None = None, targets: np.ndarray | None = None
    ) -> np.ndarray:
        """Set (or sample uniformly in the free space) all agents and targets; returns states."""
        for name, value in (("states", states), ("targets", targets)):
            if value is None:
                arr = sample_free(self.rng, self.num_envs, self.layout)
            else:
                arr = np.array(value, np.float32)
                if arr.shape != (self.num_envs, 2):
                    raise ValueError(f"{name} must be ({self.num_envs}, 2), got {arr.shape}")
                if not self.layout.is_free(arr).all():
                    raise ValueError(f"{name} contains positions outside the free space")
            setattr(self, name, arr)
        return self.states.copy()

    def success(self) -> np.ndarray:
        """(N,) bool: agent within SUCCESS_DIST of its target."""
        return np.linalg.norm(self.states - self.targets, axis=1) < SUCCESS_DIST

    def step(
        self, actions: np.ndarray, active: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Move all agents (or only those where ``active``); returns (states (N, 2), success)."""
        new = step_dynamics(self.states, actions, self.layout, self.speed)  # (N, 2)
        if active is not None:
            new = np.where(np.asarray(active, bool)[:, None], new, self.states)
        self.states = new
        return self.states.copy(), self.success()


class TwoRoomExpert:
    """Scripted expert (vectorised), the reference's door-seeking policy plus action noise.

    Target in the other room (the other side of ``wall_x``): head for the door centre on the wall
    line until within ``door_reach`` (10.5) of it, then head for the target. Target in the same
    room: head straight for it. Action = unit direction + N(0, noise_std^2) per component,
    clipped to [-1, 1]. (Near the door, heading for the target can hit the door jamb; the agent
    is then more than 10.5 from the door again and re-aims for it, so it wiggles through: the
    noiseless expert reaches every random target within 100 steps in our tests.)
    """

    def __init__(
        self,
        noise_std: float = 2.0,
        rng: np.random.Generator | int | None = None,
        *,
        layout: TwoRoomLayout = DEFAULT_LAYOUT,
        door_reach: float = 10.5,
    ) -> None:
        if not noise_std >= 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        self.noise_std = float(noise_std)
        self.rng = np.random.default_rng(rng)
        self.layout = layout
        self.door_reach = float(door_reach)

    def waypoints(self, states: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Where each agent heads now: (N, 2) float64."""
        L = self.layout
        states = np.asarray(states, np.float64)  # (N, 2)
        targets = np.asarray(targets, np.float64)  # (N, 2)
        cross = L.right_side(states[:, 0]) != L.right_side(targets[:, 0])  # (N,)
        door = np.array([L.wall_x, L.door_center])  # (2,)
        far = np.linalg.norm(states - door, axis=1) > self.door_reach  # (N,)
        return np.where((cross & far)[:, None], door, targets)

    def direction(self, states: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Noiseless unit directions (N, 2) float32 (zero when already at the waypoint)."""
        d = self.waypoints(states, targets) - np.asarray(states, np.float64)  # (N, 2)
        norm = np.linalg.norm(d, axis=1, keepdims=True)  # (N, 1)
        return (d / np.maximum(norm, 1e-9)).astype(np.float32)

    def act(self, states: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Actions (N, 2) float32 in [-1, 1] for agents at ``states`` heading to ``targets``."""
        u = self.direction(states, targets)  # (N, 2)
        if self.noise_std > 0:
            u = u + self.noise_std * self.rng.standard_normal(u.shape).astype(np.float32)
        return np.clip(u, -1.0, 1.0).astype(np.float32)
