"""Open any episode dataset lewm reads: an episode HDF5 file or a LeRobot v3.0 dataset folder.

Both have the same interface (:class:`lewm.data.hdf5.EpisodeDataset`'s): ``ep_len``,
``ep_offset``, ``column``, ``rows``, ``episode``, ... so the trainer, evaluation and analysis
need not know which one they got.
"""

from __future__ import annotations

import os
from pathlib import Path

from lewm.data.hdf5 import DataError, EpisodeDataset
from lewm.data.lerobot import INFO_PATH, LeRobotDataset


def is_lerobot(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder with ``meta/info.json`` (a LeRobot dataset)."""
    return Path(path).is_dir() and (Path(path) / INFO_PATH).is_file()


def open_dataset(
    path: str | os.PathLike,
    *,
    in_memory: bool = True,
    camera: str | None = None,
    action_key: str | None = None,
    state_key: str | None = None,
) -> EpisodeDataset | LeRobotDataset:
    """An :class:`EpisodeDataset` for an HDF5 file, a :class:`LeRobotDataset` for a LeRobot
    folder. ``camera``, ``action_key`` and ``state_key`` choose LeRobot features (None: the
    first RGB camera, ``action``, ``observation.state``); an HDF5 file has fixed columns, so
    they are refused there."""
    p = Path(path)
    if not p.exists():
        raise DataError(
            f"dataset {p} does not exist; give an episode HDF5 file (create one with "
            f"`lewm collect`) or a LeRobot v3.0 dataset folder (with {INFO_PATH})"
        )
    if is_lerobot(p):
        keys = {"action_key": action_key, "state_key": state_key}
        return LeRobotDataset(
            p,
            camera=camera,
            in_memory=in_memory,
            **{k: v for k, v in keys.items() if v is not None},
        )
    if p.is_dir():
        raise DataError(
            f"{p} is a folder without {INFO_PATH}, so not a LeRobot dataset; give the dataset's "
            "root folder (the one holding meta/, data/, videos/) or an episode HDF5 file"
        )
    given = [
        name
        for name, value in (
            ("camera", camera),
            ("action_key", action_key),
            ("state_key", state_key),
        )
        if value is not None
    ]
    if given:
        raise DataError(
            f"{p} is an episode HDF5 file, whose columns are fixed (pixels, action, state, "
            f"proprio); {', '.join(given)} apply only to LeRobot dataset folders - leave them unset"
        )
    return EpisodeDataset(p, in_memory=in_memory)


__all__ = ["is_lerobot", "open_dataset"]
