"""The Push-T scripted pusher: random target poses for the block, reached by pushing it."""

from __future__ import annotations

import numpy as np

from lewm.envs.pusht.physics import (
    AGENT_HI,
    AGENT_LO,
    AGENT_RADIUS,
    COG_Y,
    rotation,
    tee_distance,
    wrap_angle,
)
from lewm.envs.segments import RandomSegments


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
    ``[target_low, target_high]^2``, and a turn of up to ``max_turn``). With ``first_target``
    (x, y, angle) the episode's first target is that pose instead - the task's goal, the way the
    human demonstrations push the T onto one fixed pose, turning it as they go - held for up to
    ``3 * timeout`` steps; random targets follow once it is reached. Every candidate face point
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
        first_target: tuple[float, float, float] | np.ndarray | None = None,
    ) -> None:
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        self.rng = rng if rng is not None else np.random.default_rng()
        self._segments = RandomSegments(self.rng, explore, 2, explore_len, std=(0.2, 0.6))
        self.explore, self.explore_len = self._segments.fraction, self._segments.length
        self.noise_std, self.push_speed, self.move_speed = noise_std, push_speed, move_speed
        self.timeout, self.rotation_weight, self.cone = timeout, rotation_weight, cone
        self.target_low, self.target_high = target_low, target_high
        self.max_shift, self.max_turn = max_shift, max_turn
        if first_target is not None:
            first_target = np.asarray(first_target, np.float64).reshape(-1)
            if first_target.shape != (3,) or not np.isfinite(first_target).all():
                raise ValueError(
                    f"first_target must be 3 finite numbers (x, y, angle), got {first_target}"
                )
        self.first_target = first_target
        self.reset()

    def reset(self) -> None:
        self.target: np.ndarray | None = None  # (x, y, angle) for the block
        self._contact: int | None = None
        self._pushing = False
        self._age = 0
        self._segments.reset()
        self.exploring = False
        self._first = self.first_target is not None  # the fixed first target is still ahead

    def _timeout(self) -> int:
        return 3 * self.timeout if self._first else self.timeout

    def _new_target(self, block: np.ndarray, angle: float) -> None:
        if self._first and self.target is None:  # the episode's fixed first target
            self.target = self.first_target.copy()
            self._contact, self._pushing, self._age = None, False, 0
            return
        self._first = False
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
        a = self._segments.step()
        self.exploring = a is not None  # this action comes from a random segment
        if a is not None:
            if not self._segments.active:  # back to pushing: the contact afresh from here
                self._contact, self._pushing = None, False
            return a
        agent, block, angle = s[:2], s[2:4], s[4]
        if self.target is None or self._age >= self._timeout() or self._reached(block, angle):
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

    def _reached(self, block: np.ndarray, angle: float) -> bool:
        assert self.target is not None
        close = np.linalg.norm(self.target[:2] - block) < 15.0
        return bool(close and abs(wrap_angle(self.target[2] - angle)) < np.pi / 12)
