"""Checkpoint folders: ``config.json`` + ``model.safetensors`` (+ ``normalizer.json``), for any
registered world model. No pickles are read; writes are atomic (a temporary folder renamed into
place).

``config.json`` = {"format": "lewm-checkpoint", "version": 2, "model": {"kind": ..., ...},
"metadata": {...}}. Version 1 (before world models were plug-ins) had no ``kind``: it holds a
LeWM and still loads.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lewm.data.normalize import Normalizer
from lewm.models.registry import model_spec
from lewm.utils.config import ConfigError, from_dict, to_dict

CHECKPOINT_FORMAT = "lewm-checkpoint"
CHECKPOINT_VERSION = 2
READABLE_VERSIONS = (1, 2)
LEGACY_KIND = "lewm"  # the kind of a version-1 checkpoint
CONFIG_FILE, WEIGHTS_FILE, NORMALIZER_FILE = "config.json", "model.safetensors", "normalizer.json"


class CheckpointError(ValueError):
    """A checkpoint folder is missing, incomplete or incompatible."""


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """Accept a checkpoint folder, or a run folder (its ``model/`` or newest checkpoint)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if (path / CONFIG_FILE).exists() and (path / WEIGHTS_FILE).exists():
        return path
    if (path / "model" / WEIGHTS_FILE).exists():
        return path / "model"
    ckpts = sorted((path / "checkpoints").glob("step_*")) if (path / "checkpoints").is_dir() else []
    ckpts = [c for c in ckpts if (c / WEIGHTS_FILE).exists()]
    if ckpts:
        return ckpts[-1]
    missing = [f for f in (CONFIG_FILE, WEIGHTS_FILE) if not (path / f).exists()]
    raise CheckpointError(
        f"{path} is not a checkpoint folder (missing {missing}) nor a run folder with model/ "
        "or checkpoints/"
    )


def save(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Write ``model`` (its ``config``, weights, ``normalizer`` and ``metadata``) to ``path``.

    The folder is assembled under a temporary name and renamed into place, so a crash never
    leaves a half-written checkpoint; an existing folder is replaced only with ``overwrite``.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"checkpoint {path} already exists (pass overwrite=True)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": CHECKPOINT_FORMAT})
        cfg = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "model": to_dict(model.config),
            "metadata": getattr(model, "metadata", {}),
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(cfg, indent=2) + "\n")
        normalizer = getattr(model, "normalizer", None)
        if normalizer is not None:
            (tmp / NORMALIZER_FILE).write_text(json.dumps(normalizer.to_dict(), indent=2))
        for name, data in (extra_files or {}).items():
            (tmp / name).write_bytes(data)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_config(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """The model config (a registered kind's dataclass) and metadata of a checkpoint folder."""
    path = Path(path)
    try:
        cfg = json.loads((path / CONFIG_FILE).read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path / CONFIG_FILE} is not valid JSON ({e})") from e
    if not isinstance(cfg, dict) or cfg.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a lewm checkpoint (config.json format field)")
    version = cfg.get("version")
    if version not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r} is not one this lewm reads "
            f"({READABLE_VERSIONS}); it was written by another lewm release"
        )
    model_dict = cfg.get("model")
    if not isinstance(model_dict, dict):
        raise CheckpointError(f"{path / CONFIG_FILE}: 'model' must be a mapping")
    model_dict = {"kind": LEGACY_KIND, **model_dict}
    try:
        config = from_dict(model_spec(model_dict["kind"]).config, model_dict, "model")
    except ConfigError as e:
        raise CheckpointError(f"{path / CONFIG_FILE}: {e}") from e
    metadata = cfg.get("metadata", {})
    return config, metadata if isinstance(metadata, dict) else {}


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the world model saved in a checkpoint folder (or a run folder, see
    :func:`resolve_checkpoint`), whatever its registered kind, in eval mode."""
    path = resolve_checkpoint(path)
    config, metadata = read_config(path)
    model = model_spec(config.kind).model(config)
    load_weights(model, path, map_location)
    norm_file = path / NORMALIZER_FILE
    if norm_file.exists():
        try:
            model.normalizer = Normalizer.from_dict(json.loads(norm_file.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"cannot read {norm_file}: {e}") from e
    model.metadata = metadata
    return model.to(map_location).eval()


def load_weights(
    model: nn.Module, path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> None:
    """Load a checkpoint folder's weights into ``model`` (which must match them exactly)."""
    path = Path(path)
    try:
        state = load_file(str(path / WEIGHTS_FILE), device=str(map_location))
    except Exception as e:  # safetensors raises its own error types on corrupt files
        raise CheckpointError(f"cannot read {path / WEIGHTS_FILE}: {e}") from e
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise CheckpointError(f"{path}: weights do not match the config ({e})") from e
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not match the config (missing {missing[:5]}, "
            f"unexpected {unexpected[:5]})"
        )


__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CONFIG_FILE",
    "CheckpointError",
    "NORMALIZER_FILE",
    "WEIGHTS_FILE",
    "load",
    "load_weights",
    "read_config",
    "resolve_checkpoint",
    "save",
]
