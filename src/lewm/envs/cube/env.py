"""The gymnasium Cube environment (``lewm/Cube-v0``): :mod:`.physics` + :mod:`.render`."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from lewm.envs.cube.physics import (
    ACTION_DIM,
    CUBE_POS,
    PROPRIO,
    STATE_DIM,
    SUCCESS_TOL,
    check_state,
    cube_error,
    get_state,
    new_data,
    sample_scene,
    set_state,
    step,
)
from lewm.envs.cube.render import DEFAULT_LOOK, check_look, render_state
from lewm.envs.reacher.render import check_colour
from lewm.envs.registry import reset_options


class CubeEnv(gym.Env):
    """Gymnasium OGBench-Cube (single cube): the arm must bring the cube to the goal's cube
    position. obs = the 46-d state (:mod:`lewm.envs.cube.physics`); info has state, goal_state,
    proprio (effector xyz, yaw, gripper opening), cube_error (m) and success (the cube within
    0.04 m of the goal's, the authors' and OGBench's test).

    ``reset(options={"state": s, "goal_state": g})`` places qpos and qvel of ``s`` exactly (41
    or 46 values; the target marker, never drawn, goes to the goal's cube position); either one
    not given is drawn as OGBench's data collection draws a scene. Actions: 5 values in [-1, 1]
    (end-effector dx, dy, dz, yaw change, gripper change; OGBench's mapping), one step = 0.05 s.
    :meth:`render_state` draws any state without touching the env (goal images).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        resolution: int = 64,
        render_mode: str | None = "rgb_array",
        look: str = DEFAULT_LOOK,
        cube_colour: tuple[int, int, int] | None = None,
    ) -> None:
        if int(resolution) != resolution or resolution < 8:
            raise ValueError(f"resolution must be an integer >= 8 pixels, got {resolution}")
        self.resolution, self.render_mode = int(resolution), render_mode
        self.look = check_look(look)
        self.cube_colour = None if cube_colour is None else check_colour(cube_colour)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(ACTION_DIM,), dtype=np.float32)
        self._data = new_data()  # a clear ImportError now without MuJoCo / OGBench
        self.goal_state = np.zeros(STATE_DIM)

    @property
    def state(self) -> np.ndarray:
        """Current state (46,) float64 (layout in :mod:`lewm.envs.cube.physics`)."""
        return get_state(self._data)

    def _info(self) -> dict[str, Any]:
        s = self.state
        err = float(cube_error(s, self.goal_state))
        return {
            "state": s.astype(np.float32),
            "goal_state": self.goal_state.astype(np.float32),
            "proprio": s[PROPRIO].astype(np.float32),
            "cube_error": err,
            "success": bool(err <= SUCCESS_TOL),
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = reset_options(options)
        # both checked before the scene changes: a bad option never leaves a half-reset env
        start = check_state("options['state']", options["state"]) if "state" in options else None
        goal = (
            check_state("options['goal_state']", options["goal_state"])
            if "goal_state" in options
            else None
        )
        if goal is None:
            sample_scene(self._data, self.np_random)
            goal = get_state(self._data)
        elif len(goal) < STATE_DIM:  # qpos + qvel only: derive the tail
            set_state(self._data, goal)
            goal = get_state(self._data)
        if start is None:
            sample_scene(self._data, self.np_random)
        else:
            set_state(self._data, start)
        self.goal_state = goal.copy()
        self._data.mocap_pos[0] = goal[CUBE_POS]  # the target marker (never drawn)
        return self.state.astype(np.float32), self._info()

    def step(self, action):
        a = np.asarray(action, np.float64).reshape(-1)
        if a.shape != (ACTION_DIM,) or not np.isfinite(a).all():
            raise ValueError(
                "Cube actions are 5 finite values in [-1, 1] (end-effector dx, dy, dz, yaw "
                f"change, gripper change), got {action!r}"
            )
        step(self._data, a)
        info = self._info()
        return self.state.astype(np.float32), 0.0, info["success"], False, info

    def set_colours(self, cube: tuple[int, int, int] | None = None) -> None:
        """Change the cube's colour (RGB 0-255) for every later render."""
        if cube is not None:
            self.cube_colour = check_colour(cube)

    def render(self) -> np.ndarray:
        return self.render_state(self.state)

    def render_state(self, state: np.ndarray) -> np.ndarray:
        """The image (r, r, 3) uint8 of ``state`` (>= 21 values), without changing the env."""
        return render_state(state, self.resolution, look=self.look, cube_colour=self.cube_colour)
