"""Several episode HDF5 files read as one dataset (``--data 'shards/*.h5'`` or ``a.h5,b.h5``).

The files' episodes follow one another in the order given (a glob is sorted), so episode ``i`` of
the whole is an episode of exactly one file and a clip never spans two files. The files must
agree on what a model sees: the frame shape, the action size and the environment they were
collected in; columns present in only some files are left out (with a warning).
"""

from __future__ import annotations

import glob
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from lewm.data.hdf5 import DataError, EpisodeDataset

log = logging.getLogger(__name__)

GLOB_CHARS = "*?["


def split_spec(spec: str | os.PathLike) -> list[Path]:
    """The files a data argument names: one path, a glob (sorted), a comma-separated list of
    either, or a folder of ``.h5`` files (sorted). An existing path is taken as it is, commas
    and all. Raises :class:`DataError` for a pattern that matches nothing."""
    text = os.fspath(spec)
    if Path(text).exists() and not Path(text).is_dir():
        return [Path(text)]
    if Path(text).is_dir():
        files = sorted(Path(text).glob("*.h5"))
        if not files:
            raise DataError(
                f"{text} is a folder without .h5 files (and without meta/info.json, so not a "
                "LeRobot dataset); give an episode HDF5 file, a glob such as 'shards/*.h5', or "
                "the root folder of a LeRobot dataset"
            )
        return files
    out: list[Path] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if any(c in part for c in GLOB_CHARS):
            found = sorted(glob.glob(os.path.expanduser(part)))
            if not found:
                raise DataError(f"--data pattern {part!r} matches no file")
            out.extend(Path(f) for f in found)
        else:
            out.append(Path(os.path.expanduser(part)))
    if not out:
        raise DataError(f"--data {text!r} names no file")
    return out


def is_multi(spec: str | os.PathLike) -> bool:
    """True when ``spec`` names more than one file (a list, a glob or a folder of .h5 files)."""
    text = os.fspath(spec)
    if Path(text).exists() and not Path(text).is_dir():
        return False
    if Path(text).is_dir():
        return True
    return "," in text or any(c in text for c in GLOB_CHARS)


def canonical(spec: str | os.PathLike) -> str:
    """One string for the files ``spec`` names (resolved, comma-joined): what a checkpoint
    records as its dataset, and what two specs are compared by."""
    try:
        paths = split_spec(spec)
    except DataError:
        return str(Path(spec).resolve())
    return ",".join(str(p.resolve()) for p in paths)


class MultiEpisodeDataset:
    """Episode HDF5 files concatenated by episode, with :class:`EpisodeDataset`'s interface."""

    def __init__(self, paths: list[str | os.PathLike], *, in_memory: bool = True) -> None:
        if len(paths) < 1:
            raise DataError("a multi-file dataset needs at least one file")
        seen: dict[Path, int] = {}
        for i, p in enumerate(paths):
            r = Path(p).resolve()
            if r in seen:
                raise DataError(
                    f"{p} is named twice in --data (files {seen[r]} and {i}); each file may "
                    "appear once"
                )
            seen[r] = i
        self.paths = [Path(p) for p in paths]
        self.path = Path(",".join(str(p) for p in self.paths))
        self.parts: list[EpisodeDataset] = []
        try:
            for p in self.paths:
                self.parts.append(EpisodeDataset(p, in_memory=in_memory))
            self._check_agree()
        except BaseException:
            self.close()
            raise
        self.in_memory = in_memory
        self.ep_len = np.concatenate([d.ep_len for d in self.parts])
        self.ep_offset = np.concatenate([[0], np.cumsum(self.ep_len)[:-1]]).astype(np.int64)
        sizes = [d.num_steps for d in self.parts]
        self._row_base = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)  # (F+1,)
        self.attrs = dict(self.parts[0].attrs)
        self.attrs["files"] = [str(p) for p in self.paths]

    def _check_agree(self) -> None:
        first = self.parts[0]
        for d in self.parts[1:]:
            for what, a, b in (
                ("frame shape", first.image_shape, d.image_shape),
                ("action size", first.action_dim, d.action_dim),
                ("environment", first.attrs.get("env"), d.attrs.get("env")),
            ):
                if a != b:
                    raise DataError(
                        f"--data files disagree on the {what}: {first.path} has {a!r}, {d.path} "
                        f"has {b!r}; train on files collected with the same settings"
                    )
        common = [c for c in first.columns if all(c in d.columns for d in self.parts)]
        dropped = sorted({c for d in self.parts for c in d.columns} - set(common))
        if dropped:
            log.warning("columns %s are not in every --data file: left out", dropped)
        self.columns = common

    # -- EpisodeDataset's interface ------------------------------------------------------------
    @property
    def num_episodes(self) -> int:
        return len(self.ep_len)

    @property
    def num_steps(self) -> int:
        return int(self.ep_len.sum())

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.parts[0].image_shape

    @property
    def action_dim(self) -> int:
        return self.parts[0].action_dim

    @property
    def nbytes(self) -> int:
        return sum(d.nbytes for d in self.parts)

    def has(self, column: str) -> bool:
        return column in self.columns

    def _check_column(self, name: str) -> None:
        if name not in self.columns:
            raise DataError(
                f"dataset {self.path} has no column {name!r} in every file; columns: "
                f"{sorted(self.columns)}"
            )

    def column(self, name: str) -> np.ndarray:
        """The whole column, concatenated over the files (read into memory: not for pixels of
        a dataset that does not fit; use :meth:`rows`)."""
        self._check_column(name)
        return np.concatenate([np.asarray(d.column(name)[:]) for d in self.parts])

    def rows(self, name: str, rows: np.ndarray) -> np.ndarray:
        """Gather rows (any shape of int indices, counted over all files) of a column."""
        self._check_column(name)
        rows = np.asarray(rows, dtype=np.int64)
        flat = rows.reshape(-1)
        if flat.size and (flat.min() < 0 or flat.max() >= self.num_steps):
            raise IndexError(f"row index out of range [0, {self.num_steps})")
        part = np.searchsorted(self._row_base, flat, side="right") - 1
        out: np.ndarray | None = None
        for k in np.unique(part):
            sel = part == k
            got = self.parts[int(k)].rows(name, flat[sel] - self._row_base[k])
            if out is None:
                out = np.empty((len(flat), *got.shape[1:]), dtype=got.dtype)
            out[sel] = got
        if out is None:  # no rows asked for
            col = self.parts[0].column(name)
            out = np.empty((0, *col.shape[1:]), dtype=col.dtype)
        return out.reshape(*rows.shape, *out.shape[1:])

    def episode(self, i: int) -> dict[str, np.ndarray]:
        if not 0 <= i < self.num_episodes:
            raise IndexError(f"episode {i} out of range [0, {self.num_episodes})")
        counts = np.cumsum([d.num_episodes for d in self.parts])
        k = int(np.searchsorted(counts, i, side="right"))
        local = i - (int(counts[k - 1]) if k else 0)
        ep = self.parts[k].episode(local)
        return {c: ep[c] for c in self.columns}

    def to_memory(self) -> None:
        for d in self.parts:
            d.to_memory()
        self.in_memory = True

    def close(self) -> None:
        for d in self.parts:
            d.close()

    def __reduce__(self) -> tuple[Any, ...]:
        # a worker process opens the files again (h5py handles do not cross processes)
        return (_reopen, ([str(p) for p in self.paths], self.in_memory))

    def __repr__(self) -> str:
        return (
            f"MultiEpisodeDataset({len(self.paths)} files, episodes={self.num_episodes}, "
            f"steps={self.num_steps}, image={self.image_shape}, action_dim={self.action_dim}, "
            f"columns={sorted(self.columns)})"
        )


def _reopen(paths: list[str], in_memory: bool) -> MultiEpisodeDataset:
    return MultiEpisodeDataset(paths, in_memory=in_memory)


__all__ = ["MultiEpisodeDataset", "canonical", "is_multi", "split_spec"]
