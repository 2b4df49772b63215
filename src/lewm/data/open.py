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
from lewm.data.multi import MultiEpisodeDataset, is_multi, split_spec


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
) -> EpisodeDataset | MultiEpisodeDataset | LeRobotDataset:
    """An :class:`EpisodeDataset` for an HDF5 file, a :class:`MultiEpisodeDataset` for several
    ('a.h5,b.h5', a glob 'shards/*.h5' or a folder of .h5 files), a :class:`LeRobotDataset` for
    a LeRobot folder. ``camera``, ``action_key`` and ``state_key`` choose LeRobot features
    (None: the first RGB camera, ``action``, ``observation.state``); an HDF5 file has fixed
    columns, so they are refused there."""
    p = Path(path)
    multi = is_multi(path)
    if not p.exists() and not multi:
        raise DataError(
            f"dataset {p} does not exist; give an episode HDF5 file (create one with "
            f"`lewm collect`), several ('a.h5,b.h5' or a glob 'shards/*.h5') or a LeRobot v3.0 "
            f"dataset folder (with {INFO_PATH})"
        )
    if is_lerobot(p):
        keys = {"action_key": action_key, "state_key": state_key}
        return LeRobotDataset(
            p,
            camera=camera,
            in_memory=in_memory,
            **{k: v for k, v in keys.items() if v is not None},
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
    if multi:
        paths = split_spec(path)
        lerobot = [q for q in paths if is_lerobot(q)]
        if lerobot:
            raise DataError(
                f"{lerobot[0]} is a LeRobot dataset folder: several datasets are read together "
                "only as episode HDF5 files; give one LeRobot folder"
            )
        missing = [q for q in paths if not q.is_file()]
        if missing:
            raise DataError(
                f"--data names {missing[0]}, which is not a file; give episode HDF5 files "
                "('a.h5,b.h5' or a glob such as 'shards/*.h5')"
            )
        if len(paths) > 1:
            return MultiEpisodeDataset(paths, in_memory=in_memory)
        p = paths[0]
    return EpisodeDataset(p, in_memory=in_memory)


__all__ = ["is_lerobot", "open_dataset"]
