"""The Two-Room scripted expert: the reference's door-seeking policy plus action noise."""

from __future__ import annotations

import numpy as np

from lewm.envs.tworoom.dynamics import DEFAULT_LAYOUT, TwoRoomLayout


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
