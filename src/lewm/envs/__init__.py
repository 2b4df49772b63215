"""Environments, registered with gymnasium on import (``gymnasium.make("lewm/TwoRoom-v0")``).

``make_env(name, **kwargs)`` builds one by its short name.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

ENV_IDS = {"tworoom": "lewm/TwoRoom-v0"}
ENV_NAMES = tuple(ENV_IDS)
_ENTRY_POINTS = {"lewm/TwoRoom-v0": "lewm.envs.tworoom:TwoRoomEnv"}


def register_envs() -> None:
    """Register every lewm environment with gymnasium (idempotent)."""
    for env_id, entry in _ENTRY_POINTS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry)


def make_env(name: str, **kwargs: Any) -> gym.Env:
    """An environment by short name (``tworoom``) with constructor kwargs (e.g. resolution)."""
    if name not in ENV_IDS:
        raise ValueError(f"unknown environment {name!r}; available: {', '.join(ENV_NAMES)}")
    return gym.make(ENV_IDS[name], disable_env_checker=True, **kwargs).unwrapped


register_envs()
