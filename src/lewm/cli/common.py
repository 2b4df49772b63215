"""Checks and helpers shared by the subcommands."""

from __future__ import annotations

from typing import Any


def same_env(a: str, b: str) -> bool:
    """Whether two environment names mean the same environment: equal names, or ``gym:`` names
    with the same gymnasium id (``gym:MODULE:ID`` is ``gym:ID``), or ``gym:`` + the id of a
    registered environment and its short name (``gym:lewm/TwoRoom-v0`` is ``tworoom``)."""
    from lewm.envs import ENVS, gym_id, is_gym_name

    def canonical(name: str) -> str:
        if not is_gym_name(name):
            return name
        env_id = gym_id(name)
        return next((s.name for s in ENVS.values() if s.id == env_id), f"gym:{env_id}")

    return a == b or canonical(a) == canonical(b)


def check_env(model: Any, env: str, any_env: bool) -> None:
    """Refuse to run a model on an environment other than the one its training data came from
    (recorded in its metadata: ``lewm collect gym:ID`` data records ``gym:ID``), unless the user
    says so with ``--any-env``."""
    recorded = (getattr(model, "metadata", None) or {}).get("env")
    if recorded and not same_env(recorded, env) and not any_env:
        raise ValueError(
            f"--env {env!r}: the model was trained on {recorded!r} data, not {env!r}: its "
            "numbers there would mean nothing; pass --any-env to run it anyway"
        )


def given(**options: Any) -> dict[str, Any]:
    """The options the user gave (flags default to None, so the library's defaults apply)."""
    return {k: v for k, v in options.items() if v is not None}


SEED_MAX = 2**32 - 1  # numpy and torch both take seeds in [0, 2**32)


def integer(lo: int, hi: int | None = None):
    """An argparse ``type``: an integer in [lo, hi]; argparse names the option on error."""
    import argparse

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            span = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
            raise argparse.ArgumentTypeError(f"must be an integer {span}, got {text}")
        return value

    parse.__name__ = "integer"
    return parse


def number(lo: float, hi: float | None = None, *, below_hi: bool = False):
    """An argparse ``type``: a finite number in [lo, hi] (or [lo, hi) with ``below_hi``)."""
    import argparse
    import math

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        too_high = hi is not None and (value >= hi if below_hi else value > hi)
        if not math.isfinite(value) or value < lo or too_high:
            span = f">= {lo:g}" if hi is None else f"in [{lo:g}, {hi:g}{')' if below_hi else ']'}"
            raise argparse.ArgumentTypeError(f"must be a finite number {span}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def seed_arg():
    return integer(0, SEED_MAX)


def device_arg(value: str) -> Any:
    """The torch device of a ``--device`` value (cpu, cuda, cuda:N, or auto: CUDA when
    available), with one clear error for a device this machine lacks."""
    from lewm.training.trainer import resolve_device

    try:
        return resolve_device(value)
    except (RuntimeError, ValueError) as e:
        msg = f"--device {value}: {e}".replace("use device=cpu", "use --device cpu")
        raise ValueError(msg) from None
