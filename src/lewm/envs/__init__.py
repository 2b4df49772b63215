"""Environments: one package per environment, each described by one :class:`EnvSpec` in one
registry (:mod:`lewm.envs.registry`), and registered with gymnasium when this package is imported.

>>> import gymnasium, lewm.envs
>>> env = gymnasium.make("lewm/TwoRoom-v0", resolution=64)  # with a 100-step TimeLimit
>>> spec = lewm.envs.get_spec("tworoom")  # collect, render, success, quantities, surprise, ...

:func:`make_env` builds one by its short name and returns the bare environment (no TimeLimit,
no checker wrappers), so ``env.render_state`` and ``env.state`` are reachable and the caller owns
the step budget. Importing this package is cheap (numpy and gymnasium): an environment's optional
dependencies, and h5py for collection, are imported when they are used.

A new environment is a folder here whose ``__init__`` calls ``register(EnvSpec(...))`` once, and
one import line below.

Any other Gymnasium environment needs no code: ``make_env("gym:ID", resolution=R, make={...},
adapter={...})`` wraps it in a :class:`GymAdapter` configured by data (:mod:`.gym_adapter`), and
``lewm collect gym:ID`` / ``lewm eval --env gym:ID`` use it.
"""

from __future__ import annotations

from typing import Any

from lewm.envs import cube, pusht, reacher, tworoom  # noqa: F401  (each registers its spec)
from lewm.envs.gym_adapter import (
    GYM_PREFIX,
    GymAdapter,
    GymAdapterConfig,
    collect_gym,
    gym_config,
    gym_id,
    is_gym_name,
    make_gym_env,
)
from lewm.envs.registry import (
    ENVS,
    FACTORIES,
    EnvSpec,
    get_spec,
    make_env,
    register,
    register_envs,
)

FACTORIES[GYM_PREFIX] = make_gym_env  # make_env("gym:ID", ...): any Gymnasium environment


def __getattr__(name: str) -> Any:
    # ENV_NAMES and ENV_IDS are views of the registry, so a later register() shows in them
    if name == "ENV_NAMES":
        return tuple(sorted(ENVS))
    if name == "ENV_IDS":
        return {n: spec.id for n, spec in sorted(ENVS.items())}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ENVS",
    "ENV_IDS",
    "ENV_NAMES",
    "FACTORIES",
    "GYM_PREFIX",
    "EnvSpec",
    "GymAdapter",
    "GymAdapterConfig",
    "collect_gym",
    "get_spec",
    "gym_config",
    "gym_id",
    "is_gym_name",
    "make_env",
    "make_gym_env",
    "register",
    "register_envs",
]
