"""Episode storage in HDF5, in the reference (stable-worldmodel) layout.

One dataset per column with the steps of all episodes concatenated along axis 0, plus
``ep_len`` (E,) and ``ep_offset`` (E,) int64. Row t of an episode holds frame t and the action
taken *from* frame t, so the last row of every episode has a NaN action.

Columns: ``pixels`` uint8 (N, H, W, 3) and ``action`` float32 (N, A) are required; ``proprio``,
``state`` and anything else numeric are optional.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lewm.utils.io import refuse_existing

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("pixels", "action")
INDEX_COLUMNS = ("ep_len", "ep_offset")


class DataError(ValueError):
    """A dataset file is missing, corrupt, or does not have the expected layout."""


class EpisodeWriter:
    """Write episodes to ``path`` atomically (a temp file renamed on :meth:`close`).

    >>> with EpisodeWriter("out.h5") as w:
    ...     w.add_episode(pixels=frames, action=actions, state=states)

    An existing ``path`` is never touched unless ``overwrite=True``; if writing fails the
    temporary file is removed and any previous file stays as it was.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        overwrite: bool = False,
        attrs: dict[str, Any] | None = None,
        compression: str | None = "lzf",
    ) -> None:
        self.path = Path(path)
        # LZF (built into h5py, no plugin) on pixels: ~12x smaller Two-Room files for ~2x the
        # write time; None stores them raw
        self.compression = compression
        refuse_existing(self.path, overwrite, "dataset")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        os.close(fd)
        self._tmp = Path(tmp)
        self._file = h5py.File(self._tmp, "w")
        self._attrs = dict(attrs or {})
        self._lengths: list[int] = []
        self._rows = 0
        self._schema: dict[str, tuple[tuple[int, ...], np.dtype]] | None = None

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def add_episode(self, **columns: np.ndarray) -> None:
        """Append one episode; every column has the same length L along axis 0."""
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise DataError(f"episode is missing required column(s) {missing}")
        arrays = {k: np.asarray(v) for k, v in columns.items()}
        lengths = {k: a.shape[0] for k, a in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise DataError(f"columns of one episode must have equal length, got {lengths}")
        L = lengths["pixels"]
        if L < 1:
            raise DataError("an episode needs at least one step")
        px = arrays["pixels"]
        if px.dtype != np.uint8 or px.ndim != 4 or px.shape[-1] != 3:
            raise DataError(f"pixels must be uint8 (L, H, W, 3), got {px.dtype} {px.shape}")
        act = arrays["action"]
        if act.ndim != 2:
            raise DataError(f"action must be (L, action_dim), got shape {act.shape}")
        arrays["action"] = act.astype(np.float32)
        if self._schema is None:
            self._create(arrays)
        assert self._schema is not None
        if set(arrays) != set(self._schema):
            raise DataError(
                f"episode columns {sorted(arrays)} differ from the first episode's "
                f"{sorted(self._schema)}"
            )
        for name, a in arrays.items():
            shape, dtype = self._schema[name]
            if a.shape[1:] != shape:
                raise DataError(f"column {name!r}: per-step shape {a.shape[1:]} != {shape}")
            ds = self._file[name]
            ds.resize(self._rows + L, axis=0)
            ds[self._rows : self._rows + L] = a.astype(dtype, copy=False)
        self._rows += L
        self._lengths.append(L)

    def _create(self, arrays: dict[str, np.ndarray]) -> None:
        self._schema = {}
        for name, a in arrays.items():
            if name in INDEX_COLUMNS:
                raise DataError(f"column name {name!r} is reserved")
            dtype = (
                np.uint8
                if name == "pixels"
                else (np.float32 if np.issubdtype(a.dtype, np.floating) else a.dtype)
            )
            shape = a.shape[1:]
            # pixels: one chunk per frame, so random frame reads touch only what they need
            chunks = (
                (1, *shape)
                if name == "pixels"
                else (max(1, min(4096, 2**20 // max(1, a[0].nbytes))), *shape)
            )
            self._file.create_dataset(
                name,
                shape=(0, *shape),
                maxshape=(None, *shape),
                dtype=dtype,
                chunks=chunks,
                compression=self.compression if name == "pixels" else None,
            )
            self._schema[name] = (shape, np.dtype(dtype))

    @property
    def num_episodes(self) -> int:
        return len(self._lengths)

    def close(self) -> None:
        """Write the episode index and move the file into place."""
        if self._file is None:
            return
        if not self._lengths:
            self.abort()
            raise DataError("no episodes were written")
        lengths = np.asarray(self._lengths, dtype=np.int64)
        self._file.create_dataset("ep_len", data=lengths)
        self._file.create_dataset("ep_offset", data=np.concatenate([[0], np.cumsum(lengths)[:-1]]))
        for k, v in self._attrs.items():
            self._file.attrs[k] = v
        self._file.close()
        self._file = None
        os.chmod(self._tmp, 0o644)  # mkstemp creates 0600; a dataset is meant to be shared
        os.replace(self._tmp, self.path)
        log.info("wrote %d episodes (%d steps) to %s", len(lengths), self._rows, self.path)

    def abort(self) -> None:
        """Discard everything written so far."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._tmp.unlink(missing_ok=True)


class EpisodeDataset:
    """Read an episode HDF5 file, validating its layout.

    With ``in_memory=True`` (default) every column is loaded into RAM once: random clip reads
    then cost microseconds. Otherwise pixels are read frame by frame from the file.
    """

    def __init__(self, path: str | os.PathLike, *, in_memory: bool = True) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DataError(f"dataset {self.path} does not exist; create one with `lewm collect`")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as e:
            raise DataError(
                f"dataset {self.path} is not a readable HDF5 file ({e}); it may be truncated or "
                "corrupt — re-create it with `lewm collect`"
            ) from e
        f = self._file
        missing = [c for c in (*REQUIRED_COLUMNS, *INDEX_COLUMNS) if c not in f]
        if missing:
            raise DataError(
                f"dataset {self.path} lacks column(s) {missing}; an episode file needs "
                f"{list(REQUIRED_COLUMNS)} plus the index {list(INDEX_COLUMNS)}"
            )
        try:
            self.ep_len = np.asarray(f["ep_len"][:], dtype=np.int64)
            self.ep_offset = np.asarray(f["ep_offset"][:], dtype=np.int64)
        except OSError as e:
            raise DataError(f"dataset {self.path}: cannot read the episode index ({e})") from e
        self.columns = [k for k in f.keys() if k not in INDEX_COLUMNS]
        n_rows = int(f["pixels"].shape[0])
        self._check_index(n_rows)
        px = f["pixels"]
        if px.dtype != np.uint8 or px.ndim != 4 or px.shape[-1] != 3:
            raise DataError(
                f"dataset {self.path}: pixels must be uint8 (N, H, W, 3), got {px.dtype} {px.shape}"
            )
        for name in self.columns:
            if f[name].shape[0] != n_rows:
                raise DataError(
                    f"dataset {self.path}: column {name!r} has {f[name].shape[0]} rows, "
                    f"pixels has {n_rows}"
                )
        if f["action"].ndim != 2:
            raise DataError(f"dataset {self.path}: action must be (N, A), got {f['action'].shape}")
        self.attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
        self._cache: dict[str, np.ndarray] = {}
        self.in_memory = in_memory
        try:
            action = np.asarray(f["action"][:], dtype=np.float32)
            if in_memory:
                for name in self.columns:
                    self._cache[name] = f[name][:]
        except OSError as e:
            raise DataError(
                f"dataset {self.path} is truncated or corrupt ({e}); re-create it"
            ) from e
        self._cache["action"] = action
        self._check_actions(action)

    def _check_index(self, n_rows: int) -> None:
        if self.ep_len.ndim != 1 or self.ep_len.shape != self.ep_offset.shape:
            raise DataError(f"dataset {self.path}: ep_len/ep_offset must be equal-length vectors")
        if len(self.ep_len) == 0:
            raise DataError(f"dataset {self.path} holds no episodes")
        if (self.ep_len < 1).any():
            raise DataError(f"dataset {self.path}: ep_len has non-positive entries")
        expected = np.concatenate([[0], np.cumsum(self.ep_len)[:-1]])
        if not np.array_equal(expected, self.ep_offset) or int(self.ep_len.sum()) != n_rows:
            raise DataError(
                f"dataset {self.path}: ep_len/ep_offset do not tile the {n_rows} rows "
                "(file truncated or written by an incompatible tool)"
            )

    def _check_actions(self, action: np.ndarray) -> None:
        # NaN is allowed only on the last row of an episode (no action leaves the last frame).
        bad = ~np.isfinite(action).all(axis=1)
        last = np.zeros(len(action), dtype=bool)
        last[self.ep_offset + self.ep_len - 1] = True
        if (bad & ~last).any():
            row = int(np.flatnonzero(bad & ~last)[0])
            ep = int(np.searchsorted(self.ep_offset, row, side="right") - 1)
            raise DataError(
                f"dataset {self.path}: non-finite action at row {row} (episode {ep}, step "
                f"{row - self.ep_offset[ep]}); only the last step of an episode may be NaN"
            )

    # -- accessors ---------------------------------------------------------------------------
    @property
    def num_episodes(self) -> int:
        return len(self.ep_len)

    @property
    def num_steps(self) -> int:
        return int(self.ep_len.sum())

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self._file["pixels"].shape[1:])  # type: ignore[return-value]

    @property
    def action_dim(self) -> int:
        return int(self._file["action"].shape[1])

    def has(self, column: str) -> bool:
        return column in self.columns

    def column(self, name: str) -> np.ndarray | h5py.Dataset:
        """The whole column (an in-RAM array, or the h5py dataset when not in memory)."""
        if name not in self.columns:
            raise DataError(
                f"dataset {self.path} has no column {name!r}; columns: {sorted(self.columns)}"
            )
        if name in self._cache:
            return self._cache[name]
        return self._file[name]

    def rows(self, name: str, rows: np.ndarray) -> np.ndarray:
        """Gather rows (any shape of int indices) of a column."""
        col = self.column(name)
        rows = np.asarray(rows)
        if isinstance(col, np.ndarray):
            return col[rows]
        flat = rows.reshape(-1)
        # per-row reads: h5py fancy/strided selection is 30x slower than this
        out = np.stack([col[int(r)] for r in flat])
        return out.reshape(*rows.shape, *out.shape[1:])

    def episode(self, i: int) -> dict[str, np.ndarray]:
        """All columns of episode ``i``."""
        if not 0 <= i < self.num_episodes:
            raise IndexError(f"episode {i} out of range [0, {self.num_episodes})")
        s, L = int(self.ep_offset[i]), int(self.ep_len[i])
        return {name: np.asarray(self.column(name)[s : s + L]) for name in self.columns}

    def close(self) -> None:
        self._file.close()

    def __repr__(self) -> str:
        return (
            f"EpisodeDataset({str(self.path)!r}, episodes={self.num_episodes}, "
            f"steps={self.num_steps}, image={self.image_shape}, action_dim={self.action_dim}, "
            f"columns={sorted(self.columns)})"
        )
