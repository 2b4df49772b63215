"""Two-Room geometry and dynamics: a dot agent in two rooms joined by one door. Pure numpy.

Everything is in *world units* on a 224-unit square canvas:

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

Axes: N environments (or states).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WORLD = 224.0  # canvas side, world units
BORDER = 14.0  # free space starts here
BORDER_LINE = 4.0  # the border is drawn as a black line this thick just inside BORDER
RADIUS = 7.0  # agent radius (collisions) and the rendered dot's sigma
SPEED = 5.0  # units per step at |action| = 1 per axis
SUCCESS_DIST = 16.0  # success: ||agent - target|| < 16
LO, HI = BORDER + RADIUS, WORLD - BORDER - RADIUS  # 21, 203: reachable agent centres
BLOCK_GAP = 0.5  # a blocked agent stops this far short of the wall's reach
EPISODE_STEPS = 100  # actions per episode: gymnasium's TimeLimit and the collector's default


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


def step_dynamics(
    pos: np.ndarray,
    action: np.ndarray,
    layout: TwoRoomLayout = DEFAULT_LAYOUT,
    speed: float = SPEED,
) -> np.ndarray:
    """One step for N agents: pos (N, 2), action (N, 2) -> new pos (N, 2) float32.

    Computed in float32, so replaying stored float32 states and actions reproduces stored next
    states exactly. Shared by the env, :class:`TwoRoomBatch` and the collector.
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


def distance(states: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """Agent-to-target distance (...,) of agents (..., 2) and targets (..., 2), in float32 as the
    env stores positions."""
    return np.linalg.norm(np.asarray(states, np.float32) - np.asarray(goals, np.float32), axis=-1)


def success(states: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """Bool (...,): agent within SUCCESS_DIST of its target (states and goals (..., 2))."""
    return distance(states, goals) < SUCCESS_DIST


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


def state_grid(n: int = 16) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The agent on the free cells of an n x n grid: states (M, 2), positions (M, 2) (the same),
    the axis names (for latent maps)."""
    g = np.linspace(LO, HI, n, dtype=np.float32)
    xy = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)  # (n * n, 2)
    xy = xy[DEFAULT_LAYOUT.is_free(xy)]  # (M, 2)
    return xy, xy, ["agent x", "agent y"]


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
        return success(self.states, self.targets)

    def step(
        self, actions: np.ndarray, active: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Move all agents (or only those where ``active``); returns (states (N, 2), success)."""
        new = step_dynamics(self.states, actions, self.layout, self.speed)  # (N, 2)
        if active is not None:
            new = np.where(np.asarray(active, bool)[:, None], new, self.states)
        self.states = new
        return self.states.copy(), self.success()
