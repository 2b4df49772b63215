"""Episode storage in HDF5, in the reference (stable-worldmodel) layout.

One dataset per column with the steps of all episodes concatenated along axis 0, plus
``ep_len`` (E,) and ``ep_offset`` (E,) int64. Row t of an episode holds frame t and the action
taken *from* frame t, so the last row of every episode has a NaN action.

Columns: ``pixels`` uint8 (N, H, W, 3) and ``action`` float32 (N, A) are required; ``proprio``,
``state`` and anything else numeric are optional.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lewm.utils.io import (
    check_writable,
    ensure_output_file,
    error_code,
    fsync_dir,
    fsync_file,
    os_error,
    refuse_existing,
    write_error,
)

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("pixels", "action")
INDEX_COLUMNS = ("ep_len", "ep_offset")
# free space kept beyond an episode's uncompressed size: HDF5 metadata, the chunk cache flushed
# at close, the index -- and room for whatever else writes to the same disk
DISK_MARGIN = 32 * 2**20


# HDF5 compression filters outside h5py's built-ins (gzip, lzf, szip, shuffle, fletcher32,
# scale-offset) that the hdf5plugin package registers; id -> name (also read from the file)
PLUGIN_FILTERS = {
    307: "bzip2",
    32001: "blosc",
    32004: "lz4",
    32008: "bitshuffle",
    32013: "zfp",
    32015: "zstd",
    32017: "sz",
    32018: "fcidecomp",
    32024: "sz3",
    32026: "blosc2",
}


def register_compression_filters() -> bool:
    """Make hdf5plugin's decompression filters (Blosc, Zstd, LZ4, bitshuffle, ...) available to
    h5py if the package is installed (``pip install 'lewm[hdf5]'``); True if it is."""
    try:
        import hdf5plugin  # noqa: F401  (registers its filters with HDF5 on import)
    except ImportError:
        return False
    return True


def missing_filters(ds: h5py.Dataset) -> list[tuple[int, str]]:
    """The compression filters of one HDF5 dataset this process cannot decode: (id, name)."""
    try:
        plist = ds.id.get_create_plist()
        n = plist.get_nfilters()
    except (AttributeError, RuntimeError, ValueError):  # virtual or external datasets
        return []
    out = []
    for i in range(n):
        code, _flags, _values, name = plist.get_filter(i)
        if not h5py.h5z.filter_avail(code):
            label = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
            out.append((int(code), PLUGIN_FILTERS.get(int(code), label or "unknown")))
    return out


def first_bad_action(
    action: np.ndarray, ep_offset: np.ndarray, ep_len: np.ndarray
) -> tuple[int, int] | None:
    """(row, episode) of the first non-finite action that is not the last row of its episode
    (the only place an episode may hold one), or None."""
    bad = ~np.isfinite(action).all(axis=1)
    bad[ep_offset + ep_len - 1] = False
    if not bad.any():
        return None
    row = int(np.flatnonzero(bad)[0])
    return row, int(np.searchsorted(ep_offset, row, side="right") - 1)


class DataError(ValueError):
    """A dataset file is missing, corrupt, or does not have the expected layout."""


class EpisodeWriter:
    """Write episodes to ``path`` atomically (a temp file renamed on :meth:`close`).

    >>> with EpisodeWriter("out.h5") as w:
    ...     w.add_episode(pixels=frames, action=actions, state=states)

    An existing ``path`` is never touched unless ``overwrite=True``; if writing fails the
    temporary file is removed and any previous file stays as it was. The output folder is
    checked for writing at construction, and the free space before every episode (its
    uncompressed size plus :data:`DISK_MARGIN`): a full disk stops the writer with one
    ``OSError`` (errno ENOSPC) instead of an HDF5 error half-way through a write. The finished
    file is synced to disk before the rename, and its folder after.
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
        self._file: h5py.File | None = None
        self._lengths: list[int] = []
        self._rows = 0
        self._schema: dict[str, tuple[tuple[int, ...], np.dtype]] | None = None
        # open handles, kept for the writer's life: releasing a dataset flushes its chunk cache,
        # and a failure there (ENOSPC) is only printed by h5py, leaving HDF5 in a state that
        # can crash the process on the next call
        self._datasets: dict[str, h5py.Dataset] = {}
        refuse_existing(self.path, overwrite, "dataset")
        ensure_output_file(self.path)  # a folder in the way, or a file where the folder goes
        check_writable(self.path.parent)  # read-only, no permission, no space: before any work
        try:
            fd, tmp = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
            )
        except OSError as e:
            raise self._write_error(e, removed=False) from e
        os.close(fd)
        self._tmp = Path(tmp)
        try:
            self._file = h5py.File(self._tmp, "w")
        except OSError as e:
            self._tmp.unlink(missing_ok=True)
            raise self._write_error(e) from e
        try:  # now: a value HDF5 cannot store fails before any episode is simulated
            for k, v in (attrs or {}).items():
                self._file.attrs[k] = v
        except BaseException:
            self.abort()
            raise

    def _write_error(self, e: BaseException, removed: bool = True) -> OSError:
        """One clear error for a failed write (the temporary file already removed)."""
        if "no space left" in str(e).lower() and error_code(e) is None:
            e = OSError(errno.ENOSPC, "no space left on device")
        note = f" (after {len(self._lengths)} episode(s))"
        return write_error(
            f"cannot write {self.path}", e, note + ("; the partial file was removed" * removed)
        )

    def _check_space(self, nbytes: int) -> None:
        """Stop before a write that the disk cannot hold (HDF5 fails badly on ENOSPC)."""
        folder = self.path.parent
        free = shutil.disk_usage(folder).free
        need = nbytes + DISK_MARGIN
        if free < need:
            self.abort()
            raise os_error(
                f"disk full: {free / 1e6:.0f} MB free in {folder}, the episode needs "
                f"~{nbytes / 1e6:.0f} MB plus a {DISK_MARGIN / 1e6:.0f} MB margin (after "
                f"{len(self._lengths)} episode(s)); the partial file was removed - free some "
                f"space or choose another --out for {self.path.name}",
                errno.ENOSPC,
            )

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
        if self._file is None:
            raise DataError(f"the writer of {self.path} is closed (or was aborted by an error)")
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
            try:
                self._create(arrays)
            except (OSError, RuntimeError) as e:
                self.abort()
                raise self._write_error(e) from e
        assert self._schema is not None
        if set(arrays) != set(self._schema):
            raise DataError(
                f"episode columns {sorted(arrays)} differ from the first episode's "
                f"{sorted(self._schema)}"
            )
        for name, a in arrays.items():
            shape, _ = self._schema[name]
            if a.shape[1:] != shape:
                raise DataError(f"column {name!r}: per-step shape {a.shape[1:]} != {shape}")
        self._check_space(sum(a.size * self._schema[k][1].itemsize for k, a in arrays.items()))
        try:
            for name, a in arrays.items():
                ds = self._datasets[name]
                ds.resize(self._rows + L, axis=0)
                ds[self._rows : self._rows + L] = a.astype(self._schema[name][1], copy=False)
            # write the chunk cache out now, where a failure raises here; left to the dataset's
            # release, h5py could only print the error and HDF5 would go on in a broken state
            self._file.flush()
        except (OSError, RuntimeError) as e:  # h5py's errors for a failed write (ENOSPC, EIO)
            self.abort()
            raise self._write_error(e) from e
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
            self._datasets[name] = self._file.create_dataset(
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
        """Write the episode index, sync the file and move it into place."""
        if self._file is None:
            return
        if not self._lengths:
            self.abort()
            raise DataError("no episodes were written")
        lengths = np.asarray(self._lengths, dtype=np.int64)
        try:
            offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
            for name, data in (("ep_len", lengths), ("ep_offset", offsets)):
                self._datasets[name] = self._file.create_dataset(name, data=data)
            self._file.flush()  # a failure raises here, not while the handles are released
            self._datasets.clear()
            self._file.close()
            self._file = None
            fsync_file(self._tmp)
            os.chmod(self._tmp, 0o644)  # mkstemp creates 0600; a dataset is meant to be shared
            os.replace(self._tmp, self.path)
        except (OSError, RuntimeError) as e:
            self.abort()
            raise self._write_error(e) from e
        except BaseException:
            self.abort()
            raise
        fsync_dir(self.path.parent)
        log.info("wrote %d episodes (%d steps) to %s", len(lengths), self._rows, self.path)

    def abort(self) -> None:
        """Discard everything written so far (safe to call more than once)."""
        if self._file is not None:
            f, self._file = self._file, None
            _discard_pending_writes(f)
            self._datasets.clear()
            try:
                f.close()
            except Exception:  # nothing to save: the file is deleted below
                log.debug("closing the partial file %s failed", self._tmp, exc_info=True)
        if hasattr(self, "_tmp"):
            self._tmp.unlink(missing_ok=True)


# rows read per call when a column is loaded into memory: one read of a whole column stored a
# frame per chunk costs several KB of transient memory per chunk on top of the data
SLAB_ROWS = 4096


def _read_in_slabs(d: h5py.Dataset) -> np.ndarray:
    """The whole of ``d`` in one preallocated array, read ``SLAB_ROWS`` rows at a time."""
    out = np.empty(d.shape, dtype=d.dtype)
    for i in range(0, d.shape[0], SLAB_ROWS):
        j = min(d.shape[0], i + SLAB_ROWS)
        d.read_direct(out, np.s_[i:j], np.s_[i:j])
    return out


def _reopen(path: str, in_memory: bool) -> EpisodeDataset:
    return EpisodeDataset(path, in_memory=in_memory)


def _discard_pending_writes(f: h5py.File) -> None:
    """Point an HDF5 file's descriptor at the null device, so that whatever HDF5 still writes
    while it is closed (its chunk and metadata caches) succeeds and vanishes.

    After a write failed on a full disk, closing the file with unwritable data still cached
    crashes the process inside HDF5 (a segfault, seen with h5py 3.16 on a full tmpfs); the file
    is being discarded anyway. Skipped where there is no descriptor to redirect (other drivers,
    no ``/dev/null``).
    """
    try:
        fd = f.id.get_vfd_handle()
        null = os.open(os.devnull, os.O_RDWR)
    except Exception:  # a driver without a POSIX descriptor, or no null device
        return
    try:
        os.dup2(null, fd)
    except OSError:
        pass
    finally:
        os.close(null)


class EpisodeDataset:
    """Read an episode HDF5 file, validating its layout.

    With ``in_memory=True`` (default) every column is loaded into RAM once: random clip reads
    then cost microseconds. Otherwise pixels are read frame by frame from the file.
    """

    def __init__(self, path: str | os.PathLike, *, in_memory: bool = True) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DataError(f"dataset {self.path} does not exist; create one with `lewm collect`")
        register_compression_filters()  # compressed files (e.g. the authors' Blosc ones)
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as e:
            raise DataError(
                f"dataset {self.path} is not a readable HDF5 file ({e}); it may be truncated or "
                "corrupt — re-create it with `lewm collect`"
            ) from e
        try:
            self._read_layout(in_memory)
        except DataError:
            self._file.close()
            raise
        except (OSError, RuntimeError, KeyError, TypeError, ValueError, AttributeError) as e:
            # h5py reports damaged metadata with several exception types and messages that do
            # not name the file
            self._file.close()
            raise DataError(
                f"dataset {self.path} is truncated or corrupt ({' '.join(str(e).split())}); "
                "re-create it with `lewm collect`"
            ) from e

    def _read_layout(self, in_memory: bool) -> None:
        """Check every column and the episode index, and load what is kept in memory."""
        f = self._file
        missing = [c for c in (*REQUIRED_COLUMNS, *INDEX_COLUMNS) if c not in f]
        if missing:
            raise DataError(
                f"dataset {self.path} lacks column(s) {missing}; an episode file needs "
                f"{list(REQUIRED_COLUMNS)} plus the index {list(INDEX_COLUMNS)}"
            )
        not_arrays = [k for k in f.keys() if not isinstance(f[k], h5py.Dataset)]
        if not_arrays:
            raise DataError(
                f"dataset {self.path}: {not_arrays} must be arrays (HDF5 datasets), found groups"
            )
        for name in f.keys():
            missing = missing_filters(f[name])
            if missing:
                code, filt = missing[0]
                have = (
                    "hdf5plugin is installed but does not provide it"
                    if register_compression_filters()
                    else "install hdf5plugin: pip install 'lewm[hdf5]' (or pip install hdf5plugin)"
                )
                raise DataError(
                    f"dataset {self.path}: column {name!r} is compressed with the HDF5 filter "
                    f"{filt!r} (id {code}), which this installation cannot decode; {have}"
                )
        for name in INDEX_COLUMNS:
            d = f[name]
            if d.ndim != 1 or not np.issubdtype(d.dtype, np.integer):
                raise DataError(
                    f"dataset {self.path}: {name} must be a vector of integers, got {d.dtype} "
                    f"{d.shape}"
                )
        self.ep_len = np.asarray(f["ep_len"][:], dtype=np.int64)
        self.ep_offset = np.asarray(f["ep_offset"][:], dtype=np.int64)
        self.columns = [k for k in f.keys() if k not in INDEX_COLUMNS]
        px = f["pixels"]
        if px.dtype != np.uint8 or px.ndim != 4 or px.shape[-1] != 3:
            raise DataError(
                f"dataset {self.path}: pixels must be uint8 (N, H, W, 3), got {px.dtype} {px.shape}"
            )
        n_rows = int(px.shape[0])
        self._check_index(n_rows)
        for name in self.columns:
            if f[name].ndim < 1 or f[name].shape[0] != n_rows:
                raise DataError(
                    f"dataset {self.path}: column {name!r} has shape {f[name].shape}, pixels "
                    f"has {n_rows} rows"
                )
        act = f["action"]
        if act.ndim != 2 or act.shape[1] < 1:
            raise DataError(f"dataset {self.path}: action must be (N, A), got {act.shape}")
        if not (np.issubdtype(act.dtype, np.floating) or np.issubdtype(act.dtype, np.integer)):
            raise DataError(
                f"dataset {self.path}: action must hold real numbers, got dtype {act.dtype}"
            )
        self.attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
        self._cache: dict[str, np.ndarray] = {}
        self.in_memory = False
        action = np.asarray(act[:], dtype=np.float32)
        self._cache["action"] = action
        self._check_actions(action)
        if in_memory:
            self.to_memory()

    def to_memory(self) -> None:
        """Read every column into RAM (random clip reads then cost microseconds)."""
        for name in self.columns:
            if name not in self._cache:
                try:
                    self._cache[name] = _read_in_slabs(self._file[name])
                except (OSError, RuntimeError, ValueError) as e:
                    raise DataError(
                        f"dataset {self.path}: cannot read column {name!r} "
                        f"({' '.join(str(e).split())}); the file may be truncated or corrupt - "
                        "re-create it"
                    ) from e
        self.in_memory = True

    @property
    def nbytes(self) -> int:
        """Bytes of all columns once in memory (uncompressed)."""
        f = self._file
        return int(sum(f[c].size * f[c].dtype.itemsize for c in self.columns))

    def __reduce__(self) -> tuple[Any, ...]:
        # a worker process opens the file again: h5py handles do not cross processes
        return (_reopen, (str(self.path), self.in_memory))

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
        found = first_bad_action(action, self.ep_offset, self.ep_len)
        if found is not None:
            row, ep = found
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
        try:  # per-row reads: h5py fancy/strided selection is 30x slower than this
            out = np.stack([col[int(r)] for r in flat])
        except (OSError, RuntimeError, ValueError) as e:
            raise DataError(
                f"dataset {self.path}: cannot read column {name!r} "
                f"({' '.join(str(e).split())}); the file may be corrupt - re-create it"
            ) from e
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
