"""A run directory: what lewm writes there, how it is recognised, locked, replaced and resumed.

    RUN/run.json          {"format": "lewm-run", "config": {...}, "data": ..., "data_fingerprint":
                           {...}, "resumes": [...]}
    RUN/metrics.jsonl     RUN/checkpoints/step_*/     RUN/model/     RUN/.lock

Nothing is deleted that lewm did not create: ``--overwrite`` clears a folder only if its
``run.json`` says it is a lewm run, every entry in it is one lewm writes, and it does not hold the
dataset being trained on. A resumed run takes the changes that are safe (schedule length, learning
rate, logging, evaluation settings) and records them; any other change is refused by name.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from lewm.utils import io
from lewm.utils.config import ConfigError

RUN_FILE = "run.json"
RUN_FORMAT = "lewm-run"
LOCK_FILE = ".lock"

# entries lewm writes into a run directory (and the analyses write next to the model)
_RUN_ENTRIES = {RUN_FILE, "metrics.jsonl", "checkpoints", "model", LOCK_FILE}
_RUN_PREFIXES = ("eval_", "probe_", "surprise_", "viz_", ".model.", f".{RUN_FILE}.", ".metrics")

# config keys a resumed run may change: they set how long and how fast it trains, what it logs
# and how it is evaluated, not what is being trained
SAFE_ON_RESUME = (
    "data.mode",  # how the clips are read, never which ones
    "data.workers",
    "data.prefetch",
    "train.steps",
    "train.lr",
    "train.warmup_frac",
    "train.warmup_steps",
    "train.schedule_steps",
    "train.log_every",
    "train.val_every",
    "train.val_batches",
    "train.ckpt_every",
    "train.keep_checkpoints",
    "train.num_threads",
    "train.precise_bn_clips",  # only what eval mode reads, never what is trained
    "train.device",
    "train.precision",
    "eval.",
)


def read_run(run_dir: Path) -> dict[str, Any]:
    """The parsed ``run.json`` of ``run_dir`` (a clear error when it is missing or broken)."""
    path = Path(run_dir) / RUN_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"cannot resume: {run_dir} has no {RUN_FILE} (start a new run without --resume)"
        )
    try:
        run = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not valid JSON ({e}); the run cannot be resumed") from e
    if not isinstance(run, dict) or not isinstance(run.get("config"), dict):
        raise ConfigError(f"{path} is not a lewm run record (no 'config' mapping)")
    return run


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` holds a run lewm wrote (today's run.json, or an older one with a config)."""
    try:
        run = json.loads((Path(path) / RUN_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(run, dict) and (
        run.get("format") == RUN_FORMAT or ("config" in run and "train_clips" in run)
    )


def _is_run_entry(name: str) -> bool:
    return name in _RUN_ENTRIES or name.startswith(_RUN_PREFIXES)


def _inside(path: Path, folder: Path) -> bool:
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
        return True
    except ValueError:
        return False


def check_owned(
    folder: Path,
    *,
    owned: bool,
    entry_ok: Any,
    keep: Iterable[Path] = (),
    what: str = "run directory",
) -> None:
    """Raise unless lewm may delete ``folder``: ``owned`` (its marker file says lewm wrote it),
    every entry passes ``entry_ok(name)``, and none of ``keep`` (input files) lies inside it.
    The FileExistsError says what is in the way; nothing is touched."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileExistsError(f"{what} {folder} exists and is not a folder; choose another --out")
    for path in keep:
        if _inside(path, folder):
            raise FileExistsError(
                f"--overwrite would delete {folder}, which holds the input {path}; move the input "
                "out or choose another --out"
            )
    if not owned:
        raise FileExistsError(
            f"--overwrite only replaces a {what} lewm wrote, and {folder} is not one (no lewm "
            "marker file); remove it yourself or choose another --out"
        )
    foreign = sorted(p.name for p in folder.iterdir() if not entry_ok(p.name))
    if foreign:
        raise FileExistsError(
            f"{folder} holds files lewm did not write ({', '.join(foreign[:5])}"
            f"{', ...' if len(foreign) > 5 else ''}); --overwrite will not delete them: remove "
            "them yourself or choose another --out"
        )


def clear_folder(folder: Path, keep_names: Iterable[str] = ()) -> None:
    """Delete every entry of ``folder`` except ``keep_names`` (call :func:`check_owned` first)."""
    keep_names = set(keep_names)
    for entry in Path(folder).iterdir():
        if entry.name in keep_names:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def start_new_run(run_dir: Path, overwrite: bool, data: Path) -> RunLock:
    """Prepare ``run_dir`` for a new run and lock it: missing or empty, or (with ``overwrite``) a
    lewm run that no other process is writing, cleared. Returns the held lock."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(f"--out {run_dir} is a file, not a folder; choose another --out")
    if run_dir.exists() and any(p.name != LOCK_FILE for p in run_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"run directory {run_dir} already exists and is not empty; pass --resume to "
                "continue it, --overwrite to replace it, or choose another --out"
            )
        check_owned(run_dir, owned=is_run_dir(run_dir), entry_ok=_is_run_entry, keep=[data])
        lock = RunLock(run_dir)
        lock.acquire()  # refuses while another process writes this run
        clear_folder(run_dir, keep_names=[LOCK_FILE])
        return lock
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run_dir)
    lock.acquire()
    return lock


def data_fingerprint(dataset: Any) -> dict[str, Any]:
    """What identifies a dataset's content cheaply: its sizes and a hash of its episode index and
    actions (pixels are not read)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(dataset.ep_len).tobytes())
    action = np.ascontiguousarray(dataset.column("action"), dtype=np.float32)
    h.update(np.nan_to_num(action, nan=0.0).tobytes())
    return {
        "episodes": int(dataset.num_episodes),
        "steps": int(dataset.num_steps),
        "image_shape": list(dataset.image_shape),
        "sha256": h.hexdigest()[:16],
    }


def check_same_data(run: dict[str, Any], data: Path, fingerprint: dict[str, Any]) -> str | None:
    """None when ``data`` is the dataset the run was trained on, else a description of the
    difference."""
    saved_fp = run.get("data_fingerprint")
    if saved_fp is not None:
        if saved_fp != fingerprint:
            return (
                f"the run was trained on {run.get('data')} ({saved_fp['episodes']} episodes, "
                f"{saved_fp['steps']} steps), --data {data} holds other data "
                f"({fingerprint['episodes']} episodes, {fingerprint['steps']} steps)"
            )
        return None
    saved = run.get("data")  # runs written before fingerprints: compare the paths
    if saved is not None and Path(saved).resolve() != Path(data).resolve():
        return f"the run was trained on {saved}, --data is {data}"
    return None


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def resume_changes(saved: dict[str, Any], requested: dict[str, Any]) -> dict[str, list[Any]]:
    """Keys whose value a resume would change: {key: [saved, requested]}. A ConfigError names
    every change that is not safe (anything that changes what is being trained)."""
    a, b = _flatten(saved), _flatten(requested)
    changed = {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
    unsafe = [k for k in changed if not k.startswith(SAFE_ON_RESUME)]
    if unsafe:
        shown = "; ".join(f"{k}: run {changed[k][0]!r}, now {changed[k][1]!r}" for k in unsafe[:4])
        raise ConfigError(
            f"--resume cannot change what the run trains ({shown}"
            f"{'; ...' if len(unsafe) > 4 else ''}). A resumed run may change only "
            f"{', '.join(s.rstrip('.') for s in SAFE_ON_RESUME)}; start a new run (another "
            "--out) for the rest"
        )
    return changed


def clean_stale_temps(run_dir: Path) -> list[Path]:
    """Tidy what killed writers left in a (locked) run directory: lewm's own temporary files and
    folders of checkpoints, the model folder and run.json (see
    :func:`lewm.utils.io.clean_stale_temps`, which also restores a checkpoint whose replacement
    was interrupted). Returns what was acted on."""
    run_dir = Path(run_dir)
    acted = io.clean_stale_temps(run_dir / "checkpoints", "step_*")
    for target in ("model", RUN_FILE):
        acted += io.clean_stale_temps(run_dir, target)
    return acted


class RunLock:
    """One writer per run directory: an exclusive ``flock`` on ``RUN/.lock``, released when the
    process exits (also when it is killed)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise FileExistsError(
                f"run directory {self.path.parent} is in use by another lewm process (pid "
                f"{holder}); wait for it to finish or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
            self._fd = None


__all__ = [
    "LOCK_FILE",
    "RUN_FILE",
    "RUN_FORMAT",
    "SAFE_ON_RESUME",
    "RunLock",
    "check_same_data",
    "data_fingerprint",
    "check_owned",
    "clean_stale_temps",
    "clear_folder",
    "is_run_dir",
    "read_run",
    "resume_changes",
    "start_new_run",
]
