"""Push-T physics: a round agent pushes a T-shaped block (pymunk, imported when a space is built).

World units: a 512-unit arena closed by four static wall segments. The agent is a kinematic disc
(radius 15) driven by a PD controller toward ``agent + 100 * action``; the block is a dynamic T
(mass 1, friction 1, top bar 120x30 and stem 30x90, uniform density). 10 Hz control, 10 physics
sub-steps of 0.01 s.

Floor friction: the space has ``damping = 0``. pymunk scales every dynamic body's velocity by
``damping ** dt`` before each sub-step's contact solve, so the block keeps no momentum: it moves
only while the agent pushes it (plus the one sub-step of motion already integrated) and stops as
soon as contact ends, like a heavy block sliding on a high-friction floor. The reference env uses
the same setting.

State (7,) = agent x, y, block x, y (its centre of gravity), block angle (mod 2 pi), agent vx, vy.
Success: ``||(agent xy, block xy) - goal[:4]|| < 20`` jointly AND ``|angle - goal angle| < pi/9``,
taken modulo the shape's rotational symmetry (2 pi for a T).

Deviation from the reference: the PD target is clamped to the arena interior, so the agent cannot
leave the image (the reference lets a kinematic agent fly through the walls).

Axes: N states (or points).
"""

from __future__ import annotations

from typing import Any

import numpy as np

WORLD = 512.0
WALL_LO, WALL_HI, WALL_RADIUS = 5.0, 506.0, 2.0  # wall segments along the square (5,5)-(506,506)
AGENT_RADIUS = 15.0
ACTION_SCALE = 100.0  # action (1, 0) puts the PD target 100 units to the right of the agent
KP, KV = 100.0, 20.0  # PD gains: accel = KP * (target - pos) + KV * (0 - vel)
DT, SUBSTEPS = 0.01, 10  # 10 Hz control
# reachable agent centres (the PD target is clamped to this box)
AGENT_LO = WALL_LO + WALL_RADIUS + AGENT_RADIUS
AGENT_HI = WALL_HI - WALL_RADIUS - AGENT_RADIUS
SUCCESS_DIST = 20.0
SUCCESS_ANGLE = np.pi / 9
TEE_SYMMETRY = 2 * np.pi  # a T only maps onto itself after a full turn

# --- T geometry ------------------------------------------------------------------------------
# Drawn in a frame with the origin at the middle of the bar's top edge and y pointing down the
# stem: bar x in [-60, 60], y in [0, 30]; stem x in [-15, 15], y in [30, 120]. The body frame is
# shifted so that its origin is the centre of gravity (area-weighted, uniform density).
BLOCK_MASS = 1.0
_BAR = (0.0, 15.0, 120.0, 30.0)  # centre x, centre y, width, height
_STEM = (0.0, 75.0, 30.0, 90.0)
_AREAS = np.array([_BAR[2] * _BAR[3], _STEM[2] * _STEM[3]])
COG_Y = float((_AREAS[0] * _BAR[1] + _AREAS[1] * _STEM[1]) / _AREAS.sum())  # 40.71


def _moment() -> float:
    total = 0.0
    for (cx, cy, w, h), area in zip((_BAR, _STEM), _AREAS, strict=True):
        m = BLOCK_MASS * area / _AREAS.sum()
        total += m * (w**2 + h**2) / 12.0 + m * (cx**2 + (cy - COG_Y) ** 2)  # parallel axis
    return total


BLOCK_MOMENT = _moment()


def _rect(cx: float, cy: float, w: float, h: float) -> np.ndarray:
    """Corners (4, 2) of an axis-aligned rectangle in the body (centre-of-gravity) frame."""
    x0, x1, y0, y1 = cx - w / 2, cx + w / 2, cy - h / 2 - COG_Y, cy + h / 2 - COG_Y
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


BAR_VERTS, STEM_VERTS = _rect(*_BAR), _rect(*_STEM)
# the T's outline (8, 2), body frame, for drawing as one polygon
TEE_OUTLINE = np.array(
    [[-60, 0], [60, 0], [60, 30], [15, 30], [15, 120], [-15, 120], [-15, 30], [-60, 30]], float
) - np.array([0.0, COG_Y])
# the two rectangles as (centre x, centre y, half width, half height), body frame
_RECTS = np.array([[cx, cy - COG_Y, w / 2, h / 2] for cx, cy, w, h in (_BAR, _STEM)])


def import_pymunk() -> Any:
    """The pymunk module, or an ImportError that says how to install it."""
    try:
        import pymunk
    except ImportError as e:
        raise ImportError("Push-T needs pymunk: pip install 'lewm[pusht]'") from e
    return pymunk


def rotation(angle: float) -> np.ndarray:
    """2x2 matrix taking body-frame vectors to world vectors (pymunk's convention)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def wrap_angle(a: np.ndarray | float, period: float = 2 * np.pi) -> np.ndarray:
    """Angle difference mapped to [-period/2, period/2)."""
    return (np.asarray(a, np.float64) + period / 2) % period - period / 2


def tee_distance(points: np.ndarray) -> np.ndarray:
    """Distance (N,) from body-frame points (N, 2) to the T (0 inside)."""
    p = np.asarray(points, np.float64)[:, None, :]  # (N, 1, 2)
    excess = np.abs(p - _RECTS[None, :, :2]) - _RECTS[None, :, 2:]  # (N, 2 rects, 2)
    return np.linalg.norm(np.maximum(excess, 0.0), axis=-1).min(axis=1)


def block_vertices(block_xy: np.ndarray, angle: float) -> np.ndarray:
    """World coordinates (8, 2) of the T's outline."""
    return np.asarray(block_xy, np.float64) + TEE_OUTLINE @ rotation(angle).T


def pusht_success(
    state: np.ndarray, goal: np.ndarray, symmetry: float = TEE_SYMMETRY
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(success, position error, angle error) for states (..., >=5) against goals (..., >=5).

    Position error is the joint L2 norm over (agent xy, block xy); the angle error is taken modulo
    ``symmetry``.
    """
    s, g = np.asarray(state, np.float64), np.asarray(goal, np.float64)
    pos_err = np.linalg.norm(s[..., :4] - g[..., :4], axis=-1)
    ang_err = np.abs(wrap_angle(s[..., 4] - g[..., 4], symmetry))
    return (pos_err < SUCCESS_DIST) & (ang_err < SUCCESS_ANGLE), pos_err, ang_err


def success(states: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """Bool (...,): the success test of :func:`pusht_success` alone."""
    return pusht_success(states, goals)[0]


def sample_state(rng: np.random.Generator) -> np.ndarray:
    """A random state (7,): agent in [50, 450]^2, block in [100, 400]^2, any angle, the agent
    at rest and not touching the T."""
    while True:
        agent = rng.uniform(50, 450, size=2)
        block = rng.uniform(100, 400, size=2)
        angle = rng.uniform(0, 2 * np.pi)
        local = (agent - block) @ rotation(angle)  # world -> body frame
        if tee_distance(local[None])[0] > AGENT_RADIUS + 2:
            return np.array([*agent, *block, angle, 0.0, 0.0])


def state_grid(n: int = 16) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The block (angle pi/4) on an n x n grid with the agent parked in a corner, so a latent map
    shows how block position is laid out: states (n*n, 7), block positions (n*n, 2), axis names."""
    g = np.linspace(140.0, 372.0, n)
    bxy = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)  # (n * n, 2)
    st = np.zeros((len(bxy), 7))
    st[:, 0:2] = 40.0
    st[:, 2:4] = bxy
    st[:, 4] = np.pi / 4
    return st, bxy, ["block x", "block y"]


# --- the pymunk world ---------------------------------------------------------------------------
def build_space(s: np.ndarray) -> tuple[Any, Any, Any]:
    """A fresh space at state ``s`` (7,): (space, agent body, block body). No contact history
    carries over from an earlier space."""
    pm = import_pymunk()
    space = pm.Space()
    space.gravity = (0.0, 0.0)
    space.damping = 0.0  # no momentum: the block stops when not pushed (module docstring)
    corners = [(WALL_LO, WALL_LO), (WALL_LO, WALL_HI), (WALL_HI, WALL_HI), (WALL_HI, WALL_LO)]
    for a, b in zip(corners, corners[1:] + corners[:1], strict=True):
        wall = pm.Segment(space.static_body, a, b, WALL_RADIUS)
        wall.friction = 1.0
        space.add(wall)
    agent = pm.Body(body_type=pm.Body.KINEMATIC)
    agent.position = (float(s[0]), float(s[1]))
    agent.velocity = (float(s[5]), float(s[6]))
    disc = pm.Circle(agent, AGENT_RADIUS)
    disc.friction = 1.0
    block = pm.Body(BLOCK_MASS, BLOCK_MOMENT)
    block.position = (float(s[2]), float(s[3]))
    block.angle = float(s[4])
    parts = [pm.Poly(block, [tuple(v) for v in V]) for V in (BAR_VERTS, STEM_VERTS)]
    for p in parts:
        p.friction = 1.0
    space.add(agent, disc, block, *parts)
    return space, agent, block


def read_state(agent: Any, block: Any) -> np.ndarray:
    """The state (7,) float64 of the bodies: agent xy, block xy, block angle mod 2 pi, agent vxy."""
    a, b, v = agent.position, block.position, agent.velocity
    angle = float(np.mod(block.angle, 2 * np.pi))
    if angle >= 2 * np.pi:  # np.mod of a tiny negative angle rounds up to 2 pi
        angle = 0.0
    return np.array([a[0], a[1], b[0], b[1], angle, v[0], v[1]], np.float64)


def control_step(space: Any, agent: Any, action: np.ndarray) -> None:
    """One 0.1 s control step: PD toward ``agent + 100 * action`` (action (2,) float64, NaN -> 0,
    clipped to [-1, 1]; the target clamped to the reachable box) over the physics sub-steps."""
    a = np.clip(np.nan_to_num(action), -1.0, 1.0)
    pos = np.asarray(agent.position, np.float64)
    tx, ty = np.clip(pos + ACTION_SCALE * a, AGENT_LO, AGENT_HI)
    for _ in range(SUBSTEPS):
        (px, py), (vx, vy) = agent.position, agent.velocity
        ax, ay = KP * (tx - px) - KV * vx, KP * (ty - py) - KV * vy
        agent.velocity = (vx + ax * DT, vy + ay * DT)
        space.step(DT)
