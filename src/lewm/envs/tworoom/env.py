"""The gymnasium Two-Room environment (``lewm/TwoRoom-v0``): :mod:`.dynamics` + :mod:`.render`."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from lewm.envs.registry import reset_options
from lewm.envs.tworoom.dynamics import (
    HI,
    LO,
    SPEED,
    SUCCESS_DIST,
    WORLD,
    TwoRoomLayout,
    sample_free,
    step_dynamics,
)
from lewm.envs.tworoom.render import render_batch


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
        options = reset_options(options)
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
