"""Push-T: a round agent pushes a T-shaped block to a target pose (the DINO-WM / LeWM task).

Physics with pymunk (imported when an env is built); rendering with OpenCV (imported when a frame
is drawn), directly at any resolution, so it needs no pymunk. Both are optional dependencies.
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
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import gymnasium as gym
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

AGENT_COLOUR = (65, 105, 225)  # RoyalBlue
BLOCK_COLOUR = (119, 136, 153)  # LightSlateGray
BACKGROUND = (242, 242, 242)
WALL_COLOUR = (200, 200, 200)

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


def _import_pymunk():
    try:
        import pymunk
    except ImportError as e:
        raise ImportError("Push-T needs pymunk: pip install 'lewm[pusht]'") from e
    return pymunk


def _import_cv2():
    try:
        import cv2
    except ImportError as e:
        raise ImportError(
            "Push-T rendering needs OpenCV: pip install 'lewm[pusht]' (opencv-python-headless)"
        ) from e
    return cv2


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


# --- rendering --------------------------------------------------------------------------------
_SHIFT = 4  # cv2 sub-pixel bits: coordinates are drawn with 1/16-pixel precision


def _to_px(xy: np.ndarray, scale: float) -> np.ndarray:
    # world -> cv2 pixel coordinates (pixel i covers [i, i+1) so its centre is i + 0.5)
    return np.round((np.asarray(xy) * scale - 0.5) * (1 << _SHIFT)).astype(np.int32)


@lru_cache(maxsize=16)
def _background(resolution: int, colour: tuple[int, int, int]) -> np.ndarray:
    """The static scene (res, res, 3) uint8: floor and the wall square (read-only, cached)."""
    cv2 = _import_cv2()
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
    """The image (res, res, 3) uint8 of one state (>= 5 values); row = y, column = x."""
    cv2 = _import_cv2()
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
    """States (N, >=5) -> images (N, res, res, 3) uint8."""
    states = np.asarray(states, np.float64)
    out = np.empty((len(states), resolution, resolution, 3), np.uint8)
    for i, s in enumerate(states):
        out[i] = render_state(s, resolution, **colours)
    return out


# --- environment ------------------------------------------------------------------------------
def _check_state(name: str, value: Any) -> np.ndarray:
    s = np.asarray(value, np.float64).reshape(-1) if value is not None else np.empty(0)
    if s.shape not in ((5,), (7,)) or not np.isfinite(s).all():
        raise ValueError(
            f"options[{name!r}] must be 5 or 7 finite numbers (agent x, y, block x, y, angle"
            f"[, agent vx, vy]), got {value!r}"
        )
    if not ((0.0 <= s[:4]) & (s[:4] <= WORLD)).all():
        raise ValueError(
            f"options[{name!r}] positions {s[:4].tolist()} lie outside the arena [0, {WORLD:g}]^2"
        )
    return s


def _colour(c: Any) -> tuple[int, int, int]:
    t = tuple(int(v) for v in np.asarray(c).reshape(-1))
    if len(t) != 3 or not all(0 <= v <= 255 for v in t):
        raise ValueError(f"a colour is three 0-255 RGB values, got {c!r}")
    return t  # type: ignore[return-value]


class PushTEnv(gym.Env):
    """Gymnasium Push-T. obs = the 7-d state; info has state/goal_state/success/errors.

    ``reset(options={"state": s, "goal_state": g})`` places the agent and block exactly (``s`` has
    5 or 7 values; 5 means the agent starts at rest) and sets the goal pose (agent xy, block xy,
    angle; extra values are ignored). :meth:`render_state` renders any state without touching the
    env (goal images). No goal overlay is drawn.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        resolution: int = 64,
        render_mode: str | None = "rgb_array",
        agent_colour: tuple[int, int, int] = AGENT_COLOUR,
        block_colour: tuple[int, int, int] = BLOCK_COLOUR,
        background_colour: tuple[int, int, int] = BACKGROUND,
    ) -> None:
        if resolution < 8:
            raise ValueError(f"resolution must be >= 8 pixels, got {resolution}")
        self._pm = _import_pymunk()
        self.resolution, self.render_mode = resolution, render_mode
        self.agent_colour, self.block_colour = _colour(agent_colour), _colour(block_colour)
        self.background_colour = _colour(background_colour)
        self.observation_space = gym.spaces.Box(
            np.array([0, 0, 0, 0, 0, -np.inf, -np.inf], np.float32),
            np.array([WORLD, WORLD, WORLD, WORLD, 2 * np.pi, np.inf, np.inf], np.float32),
            dtype=np.float32,
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.goal_state = np.array([256.0, 256.0, 256.0, 256.0, np.pi / 4])
        self._build(np.array([100.0, 100.0, 256.0, 256.0, 0.0, 0.0, 0.0]))

    # -- physics -------------------------------------------------------------------------------
    def _build(self, s: np.ndarray) -> None:
        """A fresh space at state ``s`` (7,): no contact history carries over between resets."""
        pm = self._pm
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
        self._space, self._agent, self._block = space, agent, block

    @property
    def state(self) -> np.ndarray:
        """Current state (7,) float64: agent xy, block xy, block angle mod 2 pi, agent vxy."""
        a, b, v = self._agent.position, self._block.position, self._agent.velocity
        angle = float(np.mod(self._block.angle, 2 * np.pi))
        if angle >= 2 * np.pi:  # np.mod of a tiny negative angle rounds up to 2 pi
            angle = 0.0
        return np.array([a[0], a[1], b[0], b[1], angle, v[0], v[1]], np.float64)

    def _sample_state(self) -> np.ndarray:
        """Agent in [50, 450]^2, block in [100, 400]^2, any angle; agent not touching the T."""
        rng = self.np_random
        while True:
            agent = rng.uniform(50, 450, size=2)
            block = rng.uniform(100, 400, size=2)
            angle = rng.uniform(0, 2 * np.pi)
            local = (agent - block) @ rotation(angle)  # world -> body frame
            if tee_distance(local[None])[0] > AGENT_RADIUS + 2:
                return np.array([*agent, *block, angle, 0.0, 0.0])

    def _info(self) -> dict[str, Any]:
        s = self.state
        ok, pos_err, ang_err = pusht_success(s, self.goal_state)
        return {
            "state": s.astype(np.float32),
            "goal_state": self.goal_state.astype(np.float32),
            "proprio": s[[0, 1, 5, 6]].astype(np.float32),
            "pos_error": float(pos_err),
            "angle_error": float(ang_err),
            "success": bool(ok),
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        unknown = set(options) - {"state", "goal_state"}
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {sorted(unknown)}; use 'state', 'goal_state'"
            )
        if "state" in options:
            s = _check_state("state", options["state"])
            s = np.concatenate([s, np.zeros(2)]) if len(s) == 5 else s
        else:
            s = self._sample_state()
        goal = (
            _check_state("goal_state", options["goal_state"])
            if "goal_state" in options
            else self._sample_state()
        )
        self.goal_state = goal[:5].copy()
        self._build(s)
        return self.state.astype(np.float32), self._info()

    def step(self, action):
        a = np.asarray(action, np.float64).reshape(-1)
        if a.shape != (2,):
            raise ValueError(f"Push-T actions are (2,) in [-1, 1], got shape {np.shape(action)}")
        a = np.clip(np.nan_to_num(a), -1.0, 1.0)
        pos = np.asarray(self._agent.position, np.float64)
        tx, ty = np.clip(pos + ACTION_SCALE * a, AGENT_LO, AGENT_HI)
        agent, space = self._agent, self._space
        for _ in range(SUBSTEPS):
            (px, py), (vx, vy) = agent.position, agent.velocity
            ax, ay = KP * (tx - px) - KV * vx, KP * (ty - py) - KV * vy
            agent.velocity = (vx + ax * DT, vy + ay * DT)
            space.step(DT)
        info = self._info()
        return self.state.astype(np.float32), 0.0, info["success"], False, info

    # -- rendering -----------------------------------------------------------------------------
    def set_colours(
        self,
        agent: tuple[int, int, int] | None = None,
        block: tuple[int, int, int] | None = None,
    ) -> None:
        """Change the agent and/or block colour (RGB 0-255) for every later render."""
        if agent is not None:
            self.agent_colour = _colour(agent)
        if block is not None:
            self.block_colour = _colour(block)

    def render(self) -> np.ndarray:
        return self.render_state(self.state)

    def render_state(self, state: np.ndarray) -> np.ndarray:
        """The image (res, res, 3) uint8 of ``state`` (>= 5 values), without changing the env."""
        return render_state(
            state, self.resolution, self.agent_colour, self.block_colour, self.background_colour
        )


# --- scripted pushing policy ------------------------------------------------------------------
def _contact_candidates() -> tuple[np.ndarray, np.ndarray]:
    """Push points on the T's faces (K, 2) and their outward normals (K, 2), body frame.

    Points sit where the agent disc fits without touching another face (e.g. not in the inner
    corners between bar and stem).
    """
    pts, nrm = [], []
    for x in (-50.0, -25.0, 0.0, 25.0, 50.0):  # top of the bar
        pts.append((x, 0.0)), nrm.append((0.0, -1.0))
    for x in (-45.0, 45.0):  # underside of the bar, either side of the stem
        pts.append((x, 30.0)), nrm.append((0.0, 1.0))
    for sx in (-1.0, 1.0):
        pts.append((60.0 * sx, 15.0)), nrm.append((sx, 0.0))  # bar ends
        for y in (60.0, 90.0, 110.0):  # stem sides
            pts.append((15.0 * sx, y)), nrm.append((sx, 0.0))
    pts.append((0.0, 120.0)), nrm.append((0.0, 1.0))  # stem end
    return np.array(pts) - np.array([0.0, COG_Y]), np.array(nrm)


_CAND_P, _CAND_N = _contact_candidates()
_TAU_MAX = float(np.linalg.norm(_CAND_P, axis=1).max())  # largest torque of a unit push


class PushTExpert:
    """Scripted pusher: random target poses for the block, reached by pushing it.

    A target is drawn relative to the block (a shift of up to ``max_shift`` per axis, clipped to
    ``[target_low, target_high]^2``, and a turn of up to ``max_turn``). Every candidate face point
    is scored by how well a push into it moves the block toward the target position (translation)
    and turns it the right way (torque), minus a small travel cost. The
    agent walks to a stand-off point in front of the best face point, going around the block when
    the straight path crosses it, then pushes into the face while tracking the point as the block
    moves. A new target is drawn when the pose is reached (15 units, pi/12) or after ``timeout``
    steps; Gaussian noise N(0, noise_std^2) is added to every action before clipping to [-1, 1].

    ``explore`` > 0 interleaves random segments (about that fraction of all steps, each
    ``explore_len`` steps long): an AR(1) action sequence a_t = rho a_{t-1} + sqrt(1 - rho^2) e_t,
    e_t ~ N(0, s^2), with rho ~ U(0, 0.9) and s ~ U(0.2, 0.6) drawn per segment, so the data spans
    white-noise jitter to smooth drifts - the kind of action sequences a sampling planner
    proposes - starting wherever the pusher happens to be (mostly at or near the block).
    Stateful: call :meth:`reset` at the start of each episode.
    """

    def __init__(
        self,
        rng: np.random.Generator | None = None,
        noise_std: float = 0.1,
        *,
        push_speed: float = 0.2,  # action magnitude while pushing (block moves ~5-6 units/step)
        move_speed: float = 0.6,  # cap on the action magnitude while walking to a contact
        timeout: int = 60,
        target_low: float = 120.0,
        target_high: float = 392.0,
        rotation_weight: float = 1.0,
        cone: float = np.radians(35.0),
        max_shift: float = 150.0,
        max_turn: float = np.pi / 2,
        explore: float = 0.0,
        explore_len: tuple[int, int] = (5, 20),
    ) -> None:
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        if not 0.0 <= explore < 1.0:
            raise ValueError(f"explore must be in [0, 1), got {explore}")
        if not 1 <= explore_len[0] <= explore_len[1]:
            raise ValueError(f"explore_len must be (lo, hi) with 1 <= lo <= hi, got {explore_len}")
        self.explore, self.explore_len = float(explore), (int(explore_len[0]), int(explore_len[1]))
        # start probability per expert step so that segments fill ~`explore` of all steps
        mean_len = 0.5 * (self.explore_len[0] + self.explore_len[1])
        self._explore_start = self.explore / (mean_len * (1.0 - self.explore))
        self.rng = rng if rng is not None else np.random.default_rng()
        self.noise_std, self.push_speed, self.move_speed = noise_std, push_speed, move_speed
        self.timeout, self.rotation_weight, self.cone = timeout, rotation_weight, cone
        self.target_low, self.target_high = target_low, target_high
        self.max_shift, self.max_turn = max_shift, max_turn
        self.reset()

    def reset(self) -> None:
        self.target: np.ndarray | None = None  # (x, y, angle) for the block
        self._contact: int | None = None
        self._pushing = False
        self._age = 0
        self._segment = 0  # steps left in the current random segment
        self._seg_params = (0.0, 0.0)  # (rho, s) of that segment
        self._prev = np.zeros(2)
        self.exploring = False

    def _new_target(self, block: np.ndarray, angle: float) -> None:
        step = self.rng.uniform(-self.max_shift, self.max_shift, size=2)
        xy = np.clip(block + step, self.target_low, self.target_high)
        turn = self.rng.uniform(-self.max_turn, self.max_turn)
        self.target = np.array([*xy, np.mod(angle + turn, 2 * np.pi)])
        self._contact, self._pushing, self._age = None, False, 0

    def _plan(self, agent, block, angle, P, N) -> tuple[np.ndarray, np.ndarray]:
        """Scores (K,) of every candidate face point and the push direction (K, 2) for each.

        The push direction leans from the face normal toward the wanted translation by at most
        ``cone`` (friction 1 allows 45 degrees before the agent slides along the face).
        """
        assert self.target is not None
        d = self.target[:2] - block
        dist = np.linalg.norm(d)
        u = d / max(dist, 1e-8)  # wanted translation direction
        w_t = min(dist / 40.0, 1.0)
        w_r = float(np.clip(wrap_angle(self.target[2] - angle) / (np.pi / 4), -1.0, 1.0))
        inward = -N  # (K, 2)
        # signed angle from the inward normal to u, limited to the cone
        cross = inward[:, 0] * u[1] - inward[:, 1] * u[0]
        lean = np.clip(np.arctan2(cross, inward @ u), -self.cone, self.cone) * (w_t > 0.25)
        c, s = np.cos(lean), np.sin(lean)
        f = np.stack([c * inward[:, 0] - s * inward[:, 1], s * inward[:, 0] + c * inward[:, 1]], 1)
        r = P - block  # (K, 2) lever arms
        tau = (r[:, 0] * f[:, 1] - r[:, 1] * f[:, 0]) / _TAU_MAX  # (K,) normalised torque
        trans = (f @ u) * w_t
        rot = tau * w_r - 0.5 * np.abs(tau) * (1.0 - abs(w_r))  # wanted turn, else no turn
        stand = P + N * (AGENT_RADIUS + 8.0)  # (K, 2) where the agent waits before pushing
        travel = np.linalg.norm(stand - agent, axis=1)
        score = trans + self.rotation_weight * rot - 0.002 * travel
        inside = ((stand >= AGENT_LO + 5) & (stand <= AGENT_HI - 5)).all(axis=1)
        return np.where(inside, score, -np.inf), f

    def _route(self, agent, goal, block, R) -> np.ndarray:
        """Next waypoint toward ``goal``: straight if clear, otherwise around the block."""
        ts = np.linspace(0.1, 1.0, 12)[:, None]
        local = (agent + ts * (goal - agent) - block) @ R  # (12, 2) body frame
        if tee_distance(local).min() > AGENT_RADIUS + 3:
            return goal
        rel_a, rel_g = agent - block, goal - block
        phi = np.arctan2(rel_a[1], rel_a[0])
        dphi = float(wrap_angle(np.arctan2(rel_g[1], rel_g[0]) - phi))
        phi += np.sign(dphi) * min(abs(dphi), 0.7)
        wp = block + 105.0 * np.array([np.cos(phi), np.sin(phi)])  # clear of the T (72 + 15)
        return np.clip(wp, AGENT_LO, AGENT_HI)

    def act(self, state: np.ndarray) -> np.ndarray:
        """Action (2,) float32 in [-1, 1] for one 7-d (or 5-d) state."""
        s = np.asarray(state, np.float64).reshape(-1)
        if self.explore > 0 and self._segment == 0 and self.rng.random() < self._explore_start:
            lo, hi = self.explore_len
            self._segment = int(self.rng.integers(lo, hi + 1))
            self._seg_params = (self.rng.uniform(0.0, 0.9), self.rng.uniform(0.2, 0.6))
            self._prev = np.zeros(2)
        self.exploring = self._segment > 0  # this action comes from a random segment
        if self.exploring:
            return self._random_step()
        agent, block, angle = s[:2], s[2:4], s[4]
        if self.target is None or self._age >= self.timeout or self._reached(block, angle):
            self._new_target(block, angle)
        self._age += 1
        R = rotation(angle)
        P, N = block + _CAND_P @ R.T, _CAND_N @ R.T  # (K, 2) world points / normals
        scores, F = self._plan(agent, block, angle, P, N)
        best = int(np.argmax(scores))
        c = self._contact
        if c is None or scores[c] < 0 or scores[best] > scores[c] + 0.3:
            if best != c:
                self._contact, self._pushing = best, False
            c = best
        contact = P[c] + N[c] * AGENT_RADIUS  # agent centre when touching the face
        if self._pushing and np.linalg.norm(contact - agent) > 25.0:
            self._pushing = False  # slid off the face: walk back
        if not self._pushing:
            stand = P[c] + N[c] * (AGENT_RADIUS + 8.0)
            self._pushing = bool(np.linalg.norm(stand - agent) < 6.0)
        if self._pushing:  # hold the face point, push along the planned direction
            a = (contact - agent) / 60.0 + F[c] * self.push_speed
        else:  # walk to the stand-off point, around the block if needed
            delta = (self._route(agent, stand, block, R) - agent) / 60.0
            a = delta * min(1.0, self.move_speed / max(float(np.linalg.norm(delta)), 1e-8))
        if self.noise_std > 0:
            a = a + self.rng.normal(0.0, self.noise_std, size=2)
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    def _random_step(self) -> np.ndarray:
        rho, sd = self._seg_params
        a = rho * self._prev + np.sqrt(1.0 - rho**2) * self.rng.normal(0.0, sd, size=2)
        self._prev = np.clip(a, -1.0, 1.0)
        self._segment -= 1
        if self._segment == 0:  # back to pushing: choose the contact afresh from where we are
            self._contact, self._pushing = None, False
        return self._prev.astype(np.float32)

    def _reached(self, block: np.ndarray, angle: float) -> bool:
        assert self.target is not None
        close = np.linalg.norm(self.target[:2] - block) < 15.0
        return bool(close and abs(wrap_angle(self.target[2] - angle)) < np.pi / 12)


def block_motion(states: np.ndarray, window: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Block displacement and |rotation| (each (W,)) over every ``window``-step span of one
    episode's states (L, >=5), stride 1; empty when the episode is shorter than the window."""
    s = np.asarray(states, np.float64)
    if len(s) <= window:
        return np.zeros(0), np.zeros(0)
    disp = np.linalg.norm(s[window:, 2:4] - s[:-window, 2:4], axis=1)
    rot = np.abs(wrap_angle(s[window:, 4] - s[:-window, 4]))
    return disp, rot


def motion_stats(episodes: list[np.ndarray], window: int = 25) -> dict[str, float]:
    """How much the block moves over ``window`` steps, pooled over episodes' states (L, >=5).

    ``moved_fraction``: windows where the block moved > 20 units or turned > pi/9 (the success
    tolerances); ``trivial_fraction``: windows whose start already meets the success criterion
    for the state ``window`` steps later (an evaluation task that is solved before it starts).
    """
    disp, rot, trivial = [], [], []
    for s in episodes:
        d, r = block_motion(s, window)
        disp.append(d)
        rot.append(r)
        if len(d):
            s = np.asarray(s, np.float64)
            trivial.append(pusht_success(s[:-window], s[window:])[0])
    d, r = np.concatenate(disp), np.concatenate(rot)
    if len(d) == 0:
        raise ValueError(f"no episode is longer than the {window}-step window")
    return {
        "window": window,
        "block_disp_mean": float(d.mean()),
        "block_disp_median": float(np.median(d)),
        "block_rot_mean": float(r.mean()),
        "block_rot_median": float(np.median(r)),
        "moved_fraction": float(np.mean((d > SUCCESS_DIST) | (r > SUCCESS_ANGLE))),
        "trivial_fraction": float(np.mean(np.concatenate(trivial))),
    }
