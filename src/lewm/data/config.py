"""Which parts of a dataset to read, and how: the ``data`` section of a run's config.

An episode HDF5 file has fixed columns; a LeRobot dataset folder holds several cameras and
named feature columns, chosen here. The section is recorded with the run (``run.json``) and the
feature choices with the model (``metadata.data_options``), so resuming, evaluation and analysis
read the same columns.

How training reads (see :mod:`lewm.data.loader`): ``mode`` auto | memory | stream, ``workers``
(loader processes when streaming; -1: auto), ``prefetch`` (batches read ahead per worker), and
``shuffle``: ``clips`` (every epoch a permutation of all clips) or ``episodes`` (a permutation
of blocks of ``block_episodes`` episodes, clips shuffled within a block: batches read from few
episodes at a time, for data on slow disks). Only ``shuffle``/``block_episodes`` change what a
run trains on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from lewm.utils.config import check

FEATURE_KEYS = ("camera", "action_key", "state_key")
MODES = ("auto", "memory", "stream")
SHUFFLES = ("clips", "episodes")


@dataclass
class DataConfig:
    camera: str | None = None  # LeRobot: the camera feature (None: the first RGB camera)
    action_key: str | None = None  # LeRobot: the action column (None: "action")
    state_key: str | None = None  # LeRobot: the state column (None: "observation.state")
    mode: str = "auto"  # auto | memory | stream (how training reads; not what it reads)
    workers: int = -1  # loader processes when streaming (-1: auto, 0: in the training thread)
    prefetch: int = 2  # batches each loader process reads ahead
    shuffle: str = "clips"  # clips | episodes (blocks of block_episodes episodes)
    block_episodes: int = 64  # episodes per block with shuffle=episodes

    def __post_init__(self) -> None:
        for name in FEATURE_KEYS:
            value = getattr(self, name)
            check(
                value is None or (isinstance(value, str) and value.strip() != ""),
                f"data.{name} must be a feature name or null, got {value!r}",
            )
        check(
            self.mode in MODES,
            f"data.mode must be one of {', '.join(MODES)}, got {self.mode!r} (auto: in memory "
            "when the data fit, else streamed from disk)",
        )
        check(
            self.shuffle in SHUFFLES,
            f"data.shuffle must be one of {', '.join(SHUFFLES)}, got {self.shuffle!r}",
        )
        for name, low in (("workers", -1), ("prefetch", 1), ("block_episodes", 1)):
            value = getattr(self, name)
            check(
                isinstance(value, int) and not isinstance(value, bool) and low <= value <= 4096,
                f"data.{name} must be an integer in [{low}, 4096], got {value!r}",
            )

    def options(self) -> dict[str, str]:
        """The feature choices that were set (for :func:`lewm.data.open.open_dataset`)."""
        return {k: getattr(self, k) for k in FEATURE_KEYS if getattr(self, k) is not None}

    def open(
        self, path: str | os.PathLike, *, in_memory: bool = True, recorded: bool = False
    ) -> Any:
        """The dataset at ``path`` (an episode HDF5 file or a LeRobot folder) read this way.

        ``recorded``: the options come from a model's metadata, not from the user, so an HDF5
        file (whose columns are fixed) ignores them instead of refusing them.
        """
        from lewm.data.open import is_lerobot, open_dataset

        options = self.options() if (not recorded or is_lerobot(path)) else {}
        return open_dataset(path, in_memory=in_memory, **options)

    @classmethod
    def recorded(cls, metadata: dict[str, Any] | None) -> DataConfig:
        """The options a model was trained with (``metadata.data_options``; none for models
        trained before the option existed)."""
        opts = (metadata or {}).get("data_options") or {}
        return cls(**{k: opts[k] for k in FEATURE_KEYS if k in opts})


__all__ = ["DataConfig"]
