"""Which parts of a dataset to read: the ``data`` section of a run's config.

An episode HDF5 file has fixed columns; a LeRobot dataset folder holds several cameras and
named feature columns, chosen here. The section is recorded with the run (``run.json``) and the
model (``metadata.data_options``), so resuming, evaluation and analysis read the same columns.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from lewm.utils.config import check


@dataclass
class DataConfig:
    camera: str | None = None  # LeRobot: the camera feature (None: the first RGB camera)
    action_key: str | None = None  # LeRobot: the action column (None: "action")
    state_key: str | None = None  # LeRobot: the state column (None: "observation.state")

    def __post_init__(self) -> None:
        for name in ("camera", "action_key", "state_key"):
            value = getattr(self, name)
            check(
                value is None or (isinstance(value, str) and value.strip() != ""),
                f"data.{name} must be a feature name or null, got {value!r}",
            )

    def options(self) -> dict[str, str]:
        """The options that were set (for :func:`lewm.data.open.open_dataset`)."""
        return {k: v for k, v in vars(self).items() if v is not None}

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
        return cls(**{k: opts[k] for k in ("camera", "action_key", "state_key") if k in opts})


__all__ = ["DataConfig"]
