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
"""

from __future__ import annotations

from typing import Any

from lewm.envs import pusht, tworoom  # noqa: F401  (each registers its spec)
from lewm.envs.registry import ENVS, EnvSpec, get_spec, make_env, register, register_envs


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
    "EnvSpec",
    "get_spec",
    "make_env",
    "register",
    "register_envs",
]
