"""One progress bar for long work: tqdm on stderr, on by default only when stderr is a terminal."""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm


def progress_enabled(progress: bool | None) -> bool:
    """``None`` (the default of every long command): on when stderr is a TTY."""
    return sys.stderr.isatty() if progress is None else bool(progress)


def progress_bar(total: int | None, desc: str, progress: bool | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar over ``total`` items, shown when :func:`progress_enabled` says so
    (``--no-progress`` passes False)."""
    return tqdm(
        total=total,
        desc=desc,
        disable=not progress_enabled(progress),
        dynamic_ncols=True,
        **kwargs,
    )


__all__ = ["progress_bar", "progress_enabled"]
