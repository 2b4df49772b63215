"""The gymnasium Reacher environment (``lewm/Reacher-v0``): :mod:`.physics` + :mod:`.render`."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from lewm.envs.reacher.physics import (
    ACTION_DIM,
    STATE_DIM,
    SUCCESS_TOL,
    check_state,
    get_state,
    joint_error,
    new_data,
    sample_state,
    set_state,
    step,
)
from lewm.envs.reacher.render import check_colour, render_state
from lewm.envs.registry import reset_options


class ReacherEnv(gym.Env):
    """Gymnasium Reacher, the ``qpos_match`` task: move the two-link arm to a goal configuration.
    obs = the 4-d state (shoulder, wrist, their velocities); info has state, goal_state, proprio,
    joint_error and success (every joint within 0.05 rad of the goal's, angles wrapped).

    ``reset(options={"state": s, "goal_state": g})`` places qpos and qvel exactly (4 values each)
    and sets the goal (its qpos counts); either one not given is drawn at random (a pose at
    rest). Actions: 2 motor commands in [-1, 1], each held for two 0.02 s physics steps.
    :meth:`render_state` draws any state without touching the env (goal images).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}

    def __init__(
        self,
        resolution: int = 64,
        render_mode: str | None = "rgb_array",
        arm_colour: tuple[int, int, int] | None = None,
        dmc_look: bool = False,
    ) -> None:
        if int(resolution) != resolution or resolution < 8:
            raise ValueError(f"resolution must be an integer >= 8 pixels, got {resolution}")
        self.resolution, self.render_mode = int(resolution), render_mode
        self.arm_colour = None if arm_colour is None else check_colour(arm_colour)
        self.dmc_look = bool(dmc_look)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(ACTION_DIM,), dtype=np.float32)
        self._data = new_data(np.zeros(STATE_DIM))  # a clear ImportError now without MuJoCo
        self.goal_state = np.zeros(STATE_DIM)

    @property
    def state(self) -> np.ndarray:
        """Current state (4,) float64: shoulder, wrist (rad), shoulder_vel, wrist_vel (rad/s)."""
        return get_state(self._data)

    def _info(self) -> dict[str, Any]:
        s = self.state
        err = float(joint_error(s, self.goal_state))
        return {
            "state": s.astype(np.float32),
            "goal_state": self.goal_state.astype(np.float32),
            "proprio": s.astype(np.float32),
            "joint_error": err,
            "success": bool(err < SUCCESS_TOL),
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = reset_options(options)
        s = (
            check_state("options['state']", options["state"])
            if "state" in options
            else sample_state(self.np_random)
        )
        goal = (
            check_state("options['goal_state']", options["goal_state"])
            if "goal_state" in options
            else sample_state(self.np_random)
        )
        self.goal_state = goal.copy()
        set_state(self._data, s)
        return self.state.astype(np.float32), self._info()

    def step(self, action):
        a = np.asarray(action, np.float64).reshape(-1)
        if a.shape != (ACTION_DIM,) or not np.isfinite(a).all():
            raise ValueError(
                f"Reacher actions are 2 finite motor commands in [-1, 1], got {action!r}"
            )
        step(self._data, a)
        info = self._info()
        return self.state.astype(np.float32), 0.0, info["success"], False, info

    def set_colours(self, arm: tuple[int, int, int] | None = None) -> None:
        """Change the arm's colour (RGB 0-255) for every later render."""
        if arm is not None:
            self.arm_colour = check_colour(arm)

    def render(self) -> np.ndarray:
        return self.render_state(self.state)

    def render_state(self, state: np.ndarray) -> np.ndarray:
        """The image (r, r, 3) uint8 of ``state`` (>= 2 values), without changing the env."""
        return render_state(
            state, self.resolution, arm_colour=self.arm_colour, dmc_look=self.dmc_look
        )
