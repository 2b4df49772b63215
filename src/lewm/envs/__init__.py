"""Environments, registered with gymnasium when this package is imported.

>>> import gymnasium, lewm.envs
>>> env = gymnasium.make("lewm/TwoRoom-v0", resolution=64)  # with a 100-step TimeLimit

:func:`make_env` builds one by its short name and returns the bare environment (no TimeLimit,
no checker wrappers), so ``env.render_state`` and ``env.state`` are reachable and the caller owns
the step budget. Importing this package is cheap: it imports gymnasium only; an environment's
module is imported when the environment is built.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

# short name -> (gymnasium id, entry point, max_episode_steps used by gymnasium.make)
_SPECS: dict[str, tuple[str, str, int]] = {
    "tworoom": ("lewm/TwoRoom-v0", "lewm.envs.tworoom:TwoRoomEnv", 100),
    "pusht": ("lewm/PushT-v0", "lewm.envs.pusht:PushTEnv", 300),
}
ENV_IDS: dict[str, str] = {name: spec[0] for name, spec in _SPECS.items()}
ENV_NAMES: tuple[str, ...] = tuple(_SPECS)


def register_envs() -> None:
    """Register every lewm environment with gymnasium (idempotent)."""
    for env_id, entry_point, max_steps in _SPECS.values():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=max_steps)


def make_env(name: str, **kwargs: Any) -> gym.Env:
    """The bare environment ``name`` (e.g. ``"tworoom"``) built with constructor ``kwargs``."""
    if name not in _SPECS:
        raise ValueError(f"unknown environment {name!r}; available: {', '.join(ENV_NAMES)}")
    register_envs()
    return gym.make(ENV_IDS[name], disable_env_checker=True, **kwargs).unwrapped


register_envs()
