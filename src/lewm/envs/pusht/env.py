"""The gymnasium Push-T environment (``lewm/PushT-v0``): :mod:`.physics` + :mod:`.render`."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from lewm.envs.pusht.physics import (
    WORLD,
    build_space,
    control_step,
    import_pymunk,
    pusht_success,
    read_state,
    sample_state,
)
from lewm.envs.pusht.render import AGENT_COLOUR, BACKGROUND, BLOCK_COLOUR, render_state
from lewm.envs.registry import reset_options


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
        import_pymunk()  # a clear ImportError now rather than at the first reset
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

    def _build(self, s: np.ndarray) -> None:
        """A fresh space at state ``s`` (7,): no contact history carries over between resets."""
        self._space, self._agent, self._block = build_space(s)

    @property
    def state(self) -> np.ndarray:
        """Current state (7,) float64: agent xy, block xy, block angle mod 2 pi, agent vxy."""
        return read_state(self._agent, self._block)

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
        options = reset_options(options)
        if "state" in options:
            s = _check_state("state", options["state"])
            s = np.concatenate([s, np.zeros(2)]) if len(s) == 5 else s
        else:
            s = sample_state(self.np_random)
        goal = (
            _check_state("goal_state", options["goal_state"])
            if "goal_state" in options
            else sample_state(self.np_random)
        )
        self.goal_state = goal[:5].copy()
        self._build(s)
        return self.state.astype(np.float32), self._info()

    def step(self, action):
        a = np.asarray(action, np.float64).reshape(-1)
        if a.shape != (2,):
            raise ValueError(f"Push-T actions are (2,) in [-1, 1], got shape {np.shape(action)}")
        control_step(self._space, self._agent, a)
        info = self._info()
        return self.state.astype(np.float32), 0.0, info["success"], False, info

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
        """The image (r, r, 3) uint8 of ``state`` (>= 5 values), without changing the env."""
        return render_state(
            state, self.resolution, self.agent_colour, self.block_colour, self.background_colour
        )
