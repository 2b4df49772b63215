"""Small networks trained on a frozen world model and saved beside its checkpoint, each in its
own folder (``CKPT/decoder/``, ``CKPT/policy/``): one JSON record (format, version, the
network's config, the world model's sha256, how it was trained) and one safetensors file.

What they share lives here: recognising such a folder, refusing to overwrite anything else,
the atomic write (a temporary folder beside it, renamed into place), the checked read (every
problem is one error of the head's own type naming the file) and the check that a head belongs
to the checkpoint it is used with.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from lewm.data.clips import split_episodes
from lewm.data.hdf5 import DataError
from lewm.data.multi import canonical
from lewm.models.checkpoint import CheckpointError, weights_sha256
from lewm.utils.io import ensure_output_dir, publish_dir, write_error

MAX_JSON_BYTES = 2**20


@dataclass(frozen=True)
class HeadFormat:
    """How one kind of head is stored and named in messages."""

    what: str  # "decoder", "policy"
    format: str  # the record's "format" field
    version: int
    config_name: str  # the JSON record's file name
    weights_name: str  # the safetensors file name
    folder: str  # its folder inside the checkpoint folder
    train_command: str  # how a user trains one, e.g. "lewm decoder RUN --data FILE"
    error: type[CheckpointError] = CheckpointError


def is_head_dir(fmt: HeadFormat, path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding a record of this kind."""
    try:
        rec = json.loads((Path(path) / fmt.config_name).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(rec, dict) and rec.get("format") == fmt.format


def check_head_out(fmt: HeadFormat, path: str | os.PathLike, overwrite: bool) -> Path:
    """Before training: ``path`` is free, or (with ``overwrite``) a folder of this kind or an
    empty one - never anything else (a run or checkpoint folder, a file)."""
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return path
    if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        return path
    if not overwrite:
        raise FileExistsError(
            f"{fmt.what} folder {path} already exists; pass --overwrite to replace it, or "
            "choose another --out"
        )
    if not (path.is_dir() and not path.is_symlink() and is_head_dir(fmt, path)):
        raise FileExistsError(
            f"--overwrite replaces only a {fmt.what} folder (one with a lewm "
            f"{fmt.config_name}), and {path} is not one; choose another --out"
        )
    return path


def save_head(
    fmt: HeadFormat,
    module: nn.Module,
    record: dict[str, Any],
    path: str | os.PathLike,
    overwrite: bool = False,
) -> Path:
    """Write the weights + record into folder ``path``, atomically: a temporary folder beside
    it, every file synced, renamed into place. An existing folder is replaced only with
    ``overwrite`` and only if it is one of this kind."""
    path = check_head_out(fmt, path, overwrite)
    text = json.dumps(record, indent=2) + "\n"  # unserialisable values fail before any write
    ensure_output_dir(path.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    except OSError as e:
        raise write_error(f"cannot write {fmt.what} {path}", e) from e
    try:
        state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
        try:
            save_file(state, str(tmp / fmt.weights_name), metadata={"format": fmt.format})
        except SafetensorError as e:  # safetensors reports I/O errors as its own type
            raise OSError(str(e)) from e
        (tmp / fmt.config_name).write_text(text)
        publish_dir(tmp, path)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        note = f"; nothing was written (a {fmt.what} already there is unchanged)"
        raise write_error(f"cannot write {fmt.what} {path}", e, note) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_head(
    fmt: HeadFormat,
    path: str | os.PathLike,
    build: Callable[[dict[str, Any]], nn.Module],
) -> tuple[nn.Module, dict[str, Any]]:
    """The head saved in folder ``path`` and its record, in eval mode on the CPU. ``build``
    makes the (untrained) network from the record, raising KeyError/TypeError/ValueError for an
    invalid one. Every problem (missing, not JSON, another format or version, an invalid
    record, tensors that do not fit it, NaN weights) is one ``fmt.error`` naming the file."""
    err = fmt.error
    path = Path(path)
    cfg_file, weights = path / fmt.config_name, path / fmt.weights_name
    if not path.is_dir():
        raise err(
            f"no {fmt.what} at {path}; train one with `{fmt.train_command}` (it is saved in "
            f"the checkpoint folder's {fmt.folder}/)"
        )
    try:
        if cfg_file.stat().st_size > MAX_JSON_BYTES:
            raise err(f"{cfg_file} is too large to be a {fmt.what} record")
        record = json.loads(cfg_file.read_bytes().decode("utf-8"))
    except FileNotFoundError as e:
        raise err(f"{cfg_file} is missing: {path} is not a {fmt.what} folder") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise err(f"cannot read {cfg_file}: {e}") from e
    if not isinstance(record, dict) or record.get("format") != fmt.format:
        raise err(f"{cfg_file} is not a lewm {fmt.what} record (format field)")
    if record.get("version") != fmt.version:
        raise err(
            f"{cfg_file}: {fmt.what} format version {record.get('version')!r} is not one this "
            f"lewm reads ({fmt.version})"
        )
    try:
        if not isinstance(record["model"]["sha256"], str):
            raise TypeError("model.sha256 must be a str")
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in build(record).state_dict().items()}
    except (KeyError, TypeError, ValueError) as e:
        raise err(f"{cfg_file}: invalid {fmt.what} record ({type(e).__name__}: {e})") from e
    try:
        with safe_open(str(weights), framework="pt") as f:
            found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
        state = load_file(str(weights))
    except FileNotFoundError as e:
        raise err(f"{weights} is missing; the {fmt.what} folder is incomplete") from e
    except Exception as e:  # safetensors raises its own types on corrupt files
        raise err(f"cannot read {weights}: {e}") from e
    if found != expected:
        raise err(
            f"{weights} does not match the architecture in {fmt.config_name}; the two files "
            f"come from different trainings - retrain it with `lewm {fmt.what} ... --overwrite`"
        )
    bad = next((k for k, t in state.items() if not torch.isfinite(t).all()), None)
    if bad is not None:
        raise err(
            f"{weights}: tensor {bad!r} holds NaN or infinite values - retrain the {fmt.what}"
        )
    module = build(record)
    module.load_state_dict(state)
    return module.eval(), record


def head_episodes(
    model: Any, data: Any, seed: int, val_fraction: float, what: str
) -> tuple[np.ndarray, np.ndarray, str]:
    """(train, val) episode ids of ``data`` for training a head (``what``: "decoder", ...), and
    which split they are: the world model's own ("model": its validation episodes stay unseen
    by the head too) when ``data`` is the model's training data with a recorded split, else a
    split of the file's episodes drawn with ``seed`` ("own")."""
    md = getattr(model, "metadata", None) or {}
    sp, trained_on = md.get("split"), md.get("dataset")
    same = trained_on is not None and canonical(trained_on) == canonical(data.path)
    n = int(data.num_episodes)
    if same and isinstance(sp, dict) and sp.get("num_episodes") == n:
        train, val = split_episodes(n, float(sp["val_fraction"]), int(sp["seed"]))
        if len(val):
            return train, val, "model"
    if n < 2:
        raise DataError(
            f"{data.path} has {n} episode; the {what} is scored on held-out episodes, so it "
            "needs at least 2"
        )
    train, val = split_episodes(n, val_fraction, seed)
    return train, val, "own"


def check_head_for(
    fmt: HeadFormat, record: dict[str, Any], ckpt: str | os.PathLike, where: str | os.PathLike
) -> None:
    """Refuse a head trained against another world model than the checkpoint ``ckpt``."""
    have = weights_sha256(ckpt)
    want = record["model"]["sha256"]
    if have != want:
        raise fmt.error(
            f"the {fmt.what} {where} was trained for another world model (model.safetensors "
            f"sha256 {want[:12]}..., recorded from {record['model'].get('checkpoint')}), not for "
            f"{ckpt} ({have[:12]}...); train one for this model with `lewm {fmt.what} {ckpt}`"
        )


__all__ = [
    "MAX_JSON_BYTES",
    "HeadFormat",
    "check_head_for",
    "check_head_out",
    "head_episodes",
    "is_head_dir",
    "load_head",
    "save_head",
]
