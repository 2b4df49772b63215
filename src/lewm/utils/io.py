"""Durable, atomic file writes and the checks made before long work.

Every write goes to a temporary name beside its target (``.<name>.<random>.tmp`` for a file,
``.<name>.<random>`` for a folder), is flushed to disk (``fsync``), renamed into place and the
rename itself made durable by syncing the folder. A failure removes the temporary and leaves the
previous target untouched; temporaries a killed process left behind are removed by
:func:`clean_stale_temps`.

Write problems surface as one ``OSError`` whose message names the folder and says what to do
(``check_writable``, ``ensure_output_dir``, ``ensure_output_file``), before any work is done.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# lewm's own temporary names, as made by tempfile.mkstemp/mkdtemp (8 random characters from
# [a-z0-9_]) with the prefix ".<target name>." -- see atomic_path, replace_dir and the writers
_TEMP_FILE = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}(?:\.\w+)*\.tmp$")
_TEMP_DIR = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}$")
_OLD_DIR = re.compile(r"^\.(?P<target>.+)\.old$")  # the previous folder during replace_dir

# errno -> (reason, what to do), for messages a user can act on
_REASONS = {
    errno.EROFS: ("read-only file system", "choose another --out"),
    errno.EACCES: ("permission denied", "fix its permissions or choose another --out"),
    errno.EPERM: ("permission denied", "fix its permissions or choose another --out"),
    errno.ENOSPC: ("no space left on device", "free some space or choose another --out"),
    getattr(errno, "EDQUOT", errno.ENOSPC): (
        "disk quota exceeded",
        "free some space or choose another --out",
    ),
}


def os_error(message: str, code: int | None = None) -> OSError:
    """An ``OSError`` (``PermissionError`` for EACCES/EPERM) whose text is exactly ``message``
    (no ``[Errno N]`` prefix: the CLI prints it as one line) and whose ``errno`` is ``code``."""
    cls = PermissionError if code in (errno.EACCES, errno.EPERM) else OSError
    err = cls(message)
    err.errno = code
    return err


def error_code(e: BaseException) -> int | None:
    """The errno of an ``OSError``, or one written as ``errno = N`` / ``os error N`` in the
    message of an error from a C or Rust library (HDF5, safetensors)."""
    if isinstance(e, OSError) and e.errno is not None:
        return e.errno
    m = re.search(r"(?:errno\s*=\s*|os error\s+)(\d+)", str(e))
    return int(m.group(1)) if m else None


def reason(e: BaseException) -> str:
    """A short human reason for a write error: "read-only file system", "no space left on
    device", ... or the error's own text."""
    code = error_code(e)
    if code in _REASONS:
        return _REASONS[code][0]
    if isinstance(e, OSError) and e.strerror:
        return e.strerror.lower()
    return str(e)


def write_error(action: str, e: BaseException, note: str = "") -> OSError:
    """One clear error for a failed write: ``"<action>: <reason><note>; <what to do>"``, e.g.
    ``write_error(f"cannot write {path}", e, "; the partial file was removed")``. Keeps the
    errno of ``e`` (see :func:`os_error`)."""
    code = error_code(e)
    advice = _REASONS[code][1] if code in _REASONS else "choose another --out"
    return os_error(f"{action}: {reason(e)}{note}; {advice}", code)


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a written file's data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Make the entries of folder ``path`` (a rename, a new file) durable. File systems or
    platforms that cannot sync a folder (EINVAL, ENOTSUP; Windows) are skipped silently."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (PermissionError, IsADirectoryError):  # Windows cannot open a folder
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def ensure_output_dir(path: str | os.PathLike) -> Path:
    """Create folder ``path`` (and its parents) if needed; a file in the way is an
    ``NotADirectoryError`` naming it. Other failures: an ``OSError`` naming the folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(
            f"{path} is a file, but a folder is needed here; remove it or choose another --out"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), path)
        raise NotADirectoryError(
            f"cannot create folder {path}: {blocker} is a file; remove it or choose another --out"
        ) from None
    except OSError as e:
        raise write_error(f"cannot create folder {path}", e) from e
    return path


def ensure_output_file(path: str | os.PathLike) -> Path:
    """Make sure ``path`` can become a file: a folder in its place is an ``IsADirectoryError``
    naming it; its parent folder is created (see :func:`ensure_output_dir`)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            f"{path} is a folder, but a file is needed here; remove it or choose another --out"
        )
    ensure_output_dir(path.parent)
    return path


def check_can_create(folder: str | os.PathLike) -> Path:
    """Before long work, without creating anything: ``folder`` is (or can become) a writable
    folder - it or its nearest existing parent is a folder this process may write to. One clear
    ``OSError`` otherwise (a full disk is only found by writing: see :func:`check_writable`)."""
    folder = Path(folder)
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise NotADirectoryError(
            f"{existing} is a file, but {folder} must be a folder; remove it or choose another "
            "--out"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        code = errno.EROFS if _read_only_fs(existing) else errno.EACCES
        why, fix = _REASONS[code]
        raise os_error(f"cannot write to {existing}: {why}; {fix}", code)
    return folder


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def check_writable(folder: str | os.PathLike) -> Path:
    """Before long work: create ``folder`` if needed and write, sync and remove a tiny probe
    file in it. A read-only file system, missing permission or full disk is one ``OSError``
    (``PermissionError`` for permissions) naming the folder and saying what to do."""
    folder = Path(folder)
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    folder = ensure_output_dir(folder)
    probe = None
    try:
        fd, probe = tempfile.mkstemp(prefix=".lewm-probe.", suffix=".tmp", dir=folder)
        try:
            os.write(fd, b"lewm")
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        if probe is not None:
            Path(probe).unlink(missing_ok=True)
        for p in created:  # leave no empty folders behind
            with contextlib.suppress(OSError):
                p.rmdir()
        raise write_error(f"cannot write to {folder}", e) from e
    Path(probe).unlink(missing_ok=True)
    return folder


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success sync it to disk, rename it
    onto ``path`` and sync the folder.

    On an exception the temporary file is removed and ``path`` is left untouched; a full disk,
    read-only folder or missing permission becomes one ``OSError`` naming ``path``.
    """
    path = ensure_output_file(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    except OSError as e:
        raise write_error(f"cannot write {path}", e) from e
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        fsync_file(tmp_path)
        os.replace(tmp_path, path)
    except BaseException as e:
        tmp_path.unlink(missing_ok=True)
        if isinstance(e, OSError) and error_code(e) in _REASONS:
            raise write_error(f"cannot write {path}", e, "; the partial file was removed") from e
        raise
    fsync_dir(path.parent)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically and durably (see :func:`atomic_path`)."""
    text = json.dumps(obj, indent=2, sort_keys=False) + "\n"  # a TypeError before any write
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def replace_dir(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Move the finished folder ``src`` onto ``dst`` (same parent folder), replacing an
    existing ``dst``, and sync the parent folder.

    A folder cannot be renamed over another, so an existing ``dst`` is first renamed to
    ``.<dst name>.old`` and removed afterwards; if the process dies in between,
    :func:`clean_stale_temps` puts it back. If the second rename fails, ``dst`` is restored.
    """
    src, dst = Path(src), Path(dst)
    old = dst.with_name(f".{dst.name}.old")
    if dst.exists() or dst.is_symlink():
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
        try:
            os.replace(src, dst)
        except BaseException:
            os.replace(old, dst)
            raise
    else:
        os.replace(src, dst)
    fsync_dir(dst.parent)
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    return dst


def publish_dir(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Make the finished folder ``src`` durable (every file in it, then the folder, synced) and
    move it onto ``dst`` with :func:`replace_dir`: readers see the old folder or the new one."""
    src = Path(src)
    for f in src.iterdir():
        if f.is_file():
            fsync_file(f)
    fsync_dir(src)
    return replace_dir(src, dst)


def clean_stale_temps(folder: str | os.PathLike, target: str) -> list[Path]:
    """Remove the temporaries a killed lewm writer left in ``folder`` for targets whose name
    matches the glob ``target`` (e.g. ``"step_*"``); returns the paths acted on.

    Only lewm's own temporary names are touched: files ``.<name>.<8 random>[.ext].tmp``,
    folders ``.<name>.<8 random>``, never a symbolic link, never anything else. A folder
    ``.<name>.old`` (a checkpoint being replaced) is removed when ``<name>`` exists and renamed
    back to ``<name>`` when it does not, so the previous checkpoint is never lost. Call it only
    when no other process writes into ``folder``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    acted: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink():
            continue
        name = entry.name
        if entry.is_file():
            m = _TEMP_FILE.match(name)
            if m and fnmatch.fnmatchcase(m.group("target"), target):
                entry.unlink(missing_ok=True)
                acted.append(entry)
                log.warning("removed %s, a temporary file left by an interrupted write", entry)
        elif entry.is_dir():
            old = _OLD_DIR.match(name)
            if old and fnmatch.fnmatchcase(old.group("target"), target):
                final = folder / old.group("target")
                if final.exists() or final.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                    log.warning("removed %s, left by an interrupted replacement", entry)
                else:
                    os.replace(entry, final)
                    fsync_dir(folder)
                    log.warning("restored %s from %s (an interrupted replacement)", final, entry)
                acted.append(entry)
                continue
            m = _TEMP_DIR.match(name)
            if m and fnmatch.fnmatchcase(m.group("target"), target):
                shutil.rmtree(entry, ignore_errors=True)
                acted.append(entry)
                log.warning("removed %s, a temporary folder left by an interrupted write", entry)
    return acted


def refuse_existing(path: str | os.PathLike, overwrite: bool, what: str = "file") -> None:
    """Raise FileExistsError if ``path`` exists and ``overwrite`` is false."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{what} {path} already exists; pass --overwrite (overwrite=True) to replace it, "
            "or choose another path"
        )


__all__ = [
    "atomic_path",
    "check_can_create",
    "check_writable",
    "clean_stale_temps",
    "ensure_output_dir",
    "ensure_output_file",
    "error_code",
    "fsync_dir",
    "fsync_file",
    "os_error",
    "reason",
    "refuse_existing",
    "replace_dir",
    "write_error",
    "write_json",
]
