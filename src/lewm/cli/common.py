"""Checks and helpers shared by the subcommands."""

from __future__ import annotations

from typing import Any


def check_env(model: Any, env: str, any_env: bool) -> None:
    """Refuse to run a model on an environment other than the one its training data came from
    (recorded in its metadata), unless the user says so with ``--any-env``."""
    recorded = (getattr(model, "metadata", None) or {}).get("env")
    if recorded and recorded != env and not any_env:
        raise ValueError(
            f"the model was trained on {recorded!r} data, not {env!r}: its numbers there would "
            "mean nothing; pass --any-env to run it anyway"
        )


def given(**options: Any) -> dict[str, Any]:
    """The options the user gave (flags default to None, so the library's defaults apply)."""
    return {k: v for k, v in options.items() if v is not None}
