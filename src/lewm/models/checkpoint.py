"""Checkpoint folders: ``config.json`` + ``model.safetensors`` (+ ``normalizer.json``), for any
registered world model. No pickles are read; writes are atomic and durable (a temporary folder,
every file synced, renamed into place, the parent folder synced).

``config.json`` = {"format": "lewm-checkpoint", "version": 2, "model": {"kind": ..., ...},
"metadata": {...}}. Version 1 (before world models were plug-ins) had no ``kind``: it holds a
LeWM and still loads.

Loading checks before it allocates: the config's types and ranges, the size of the model it
describes (built on PyTorch's ``meta`` device, which holds shapes but no data) against the
machine's memory, and every tensor's name and shape in the weights file's header against that
model. After loading, weights with NaN/inf (a diverged run) and normaliser statistics that do
not fit the model are refused. Every problem is one :class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.modules.module import register_module_module_registration_hook

from lewm.data.normalize import Normalizer
from lewm.models.registry import memory_bound, model_spec
from lewm.utils.config import ConfigError, from_dict, to_dict
from lewm.utils.io import (
    ensure_output_dir,
    error_code,
    os_error,
    publish_dir,
    reason,
    write_error,
)

CHECKPOINT_FORMAT = "lewm-checkpoint"
CHECKPOINT_VERSION = 2
READABLE_VERSIONS = (1, 2)
LEGACY_KIND = "lewm"  # the kind of a version-1 checkpoint
CONFIG_FILE, WEIGHTS_FILE, NORMALIZER_FILE = "config.json", "model.safetensors", "normalizer.json"
MAX_JSON_BYTES = 64 * 2**20  # config.json / normalizer.json are a few kB; more is not one of ours
# A model config may build at most max(MIN_MODULE_LIMIT, 8 x the weight file's tensors) modules:
# every module with weights has at least one tensor in the file, so a config asking for far more
# (a corrupt depth of 10**7) is refused before it spends minutes and gigabytes on module objects.
# Every registered model builds about one module per tensor (0.9-1.0x); one module on the meta
# device costs ~0.2 ms on a slow 2-core host, so the floor bounds the refusal near half a second.
MIN_MODULE_LIMIT = 2_000


_MISSING = object()


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
    if path.is_dir() and (path / CONFIG_FILE).exists() and any(path.glob("*.pt")):
        raise CheckpointError(
            f"{path} is a checkpoint of the paper authors' code (weights.pt + config.json), not "
            f"a lewm one: convert it once with `lewm import {path} --out CKPT [--data FILE]` "
            "(lewm.models.upstream.import_upstream)"
        )
    raise CheckpointError(
        f"{path} is not a checkpoint folder (missing {missing}) nor a run folder with model/ "
        "or checkpoints/"
    )


def weights_sha256(path: str | os.PathLike) -> str:
    """sha256 of the checkpoint folder's ``model.safetensors``: the identity of a world model
    that heads trained on its frozen latents (decoder, policy) record, and are checked against
    (a copied folder keeps it; retraining changes it)."""
    file = Path(path) / WEIGHTS_FILE
    h = hashlib.sha256()
    try:
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
    except OSError as e:
        raise CheckpointError(f"cannot read {file}: {e.strerror or e}") from e
    return h.hexdigest()


# -- writing ------------------------------------------------------------------------------------


def save(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Write ``model`` (its ``config``, weights, ``normalizer`` and ``metadata``) to ``path``.

    The folder is assembled under a temporary name (``.<name>.<random>``), every file and the
    folder are synced to disk, and it is renamed into place (the parent folder synced after), so
    a crash never leaves a half-written checkpoint; an existing folder is replaced only with
    ``overwrite``. A write failure (full disk, read-only folder) removes the temporary folder,
    leaves any previous checkpoint as it was, and is one ``OSError`` naming ``path``.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"checkpoint {path} already exists (pass overwrite=True)")
    cfg = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": to_dict(model.config),
        "metadata": getattr(model, "metadata", {}),
    }
    config_text = json.dumps(cfg, indent=2) + "\n"  # unserialisable metadata fails before a write
    normalizer = getattr(model, "normalizer", None)
    ensure_output_dir(path.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    except OSError as e:
        raise _write_error(path, e) from e
    try:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        try:
            save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": CHECKPOINT_FORMAT})
        except SafetensorError as e:  # safetensors reports I/O errors as its own type
            if error_code(e) is None:
                raise
            raise os_error(str(e), error_code(e)) from e
        (tmp / CONFIG_FILE).write_text(config_text)
        if normalizer is not None:
            (tmp / NORMALIZER_FILE).write_text(json.dumps(normalizer.to_dict(), indent=2))
        for name, data in (extra_files or {}).items():
            (tmp / name).write_bytes(data)
        publish_dir(tmp, path)  # syncs the parent folder too
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _write_error(path, e) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _write_error(path: Path, e: BaseException) -> OSError:
    note = "; nothing was written (a checkpoint already there is unchanged)"
    return write_error(f"cannot write checkpoint {path}", e, note)


# -- reading ------------------------------------------------------------------------------------


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, int | float) else "a value")


def _read_json(file: Path) -> Any:
    """The parsed contents of a small JSON file of a checkpoint, or a CheckpointError."""
    try:
        size = file.stat().st_size
        if size > MAX_JSON_BYTES:
            raise CheckpointError(
                f"{file} is {size / 1e6:.0f} MB; a checkpoint's JSON files are a few kB, so this "
                "is not one lewm wrote - use another checkpoint"
            )
        text = file.read_bytes().decode("utf-8")
    except FileNotFoundError as e:
        raise CheckpointError(f"{file} is missing; the checkpoint is incomplete") from e
    except OSError as e:
        raise CheckpointError(f"cannot read {file}: {reason(e)}") from e
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{file} is not valid JSON (not UTF-8 text: {e})") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{file} is not valid JSON ({e})") from e
    except RecursionError as e:
        raise CheckpointError(f"{file} is not valid JSON (nested too deeply)") from e


def _check_finite_numbers(value: Any, key: str, file: Path) -> None:
    """JSON's non-standard NaN/Infinity are never a valid config value."""
    if isinstance(value, float) and not math.isfinite(value):
        raise CheckpointError(f"{file}: {key} is {value}; a config value must be a finite number")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite_numbers(v, f"{key}.{k}", file)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite_numbers(v, f"{key}[{i}]", file)


def read_config(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """The model config (a registered kind's dataclass) and metadata of a checkpoint folder.

    Every problem -- not JSON, not an object, an unknown format version, a wrongly typed or
    out-of-range value -- is a :class:`CheckpointError` naming ``config.json`` and the key.
    """
    path = Path(path)
    file = path / CONFIG_FILE
    cfg = _read_json(file)
    if not isinstance(cfg, dict):
        raise CheckpointError(
            f"{file} must hold a JSON object, got {_json_type(cfg)}; {path} is not a lewm "
            "checkpoint"
        )
    if cfg.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a lewm checkpoint (config.json format field)")
    version = cfg.get("version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r} is not one this lewm reads "
            f"({READABLE_VERSIONS}); it was written by another lewm release"
        )
    model_dict = cfg.get("model")
    if not isinstance(model_dict, dict):
        raise CheckpointError(
            f"{file}: 'model' must be a mapping (a JSON object), got {_json_type(model_dict)}"
        )
    unknown = sorted(set(cfg) - {"format", "version", "model", "metadata"})
    if unknown:
        raise CheckpointError(
            f"{file}: unknown top-level key(s) {unknown}; a lewm checkpoint's config.json holds "
            "format, version, model and metadata"
        )
    metadata = cfg.get("metadata", {})
    if not isinstance(metadata, dict):
        raise CheckpointError(
            f"{file}: 'metadata' must be a mapping (a JSON object), got {_json_type(metadata)}"
        )
    _check_metadata(metadata, file)
    _check_finite_numbers(model_dict, "model", file)
    model_dict = {"kind": LEGACY_KIND, **model_dict}
    kind = model_dict["kind"]
    if not isinstance(kind, str):
        raise CheckpointError(f"{file}: model.kind must be a string, got {kind!r}")
    try:
        spec = model_spec(kind)
        config = from_dict(spec.config, model_dict, "model")
    except ConfigError as e:
        raise CheckpointError(f"{file}: {e}") from e
    except Exception as e:  # a config's own checks may trip over odd values in other ways
        raise CheckpointError(f"{file}: invalid model config ({type(e).__name__}: {e})") from e
    for key in spec.required:
        node: Any = model_dict
        for part in key.split("."):
            node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
        if node is _MISSING:
            raise CheckpointError(
                f"{file}: model.{key} is missing; a {kind!r} checkpoint records it (its default "
                "would load the weights into a model that computes something else)"
            )
    return config, metadata


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


# metadata keys lewm writes and reads back: key -> (what it must be, the check)
_METADATA: dict[str, tuple[str, Any]] = {
    "dataset": ("a path string", lambda v: isinstance(v, str)),
    "env": ("a string or null", lambda v: v is None or isinstance(v, str)),
    "step": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "image_shape": (
        "a list of integers",
        lambda v: isinstance(v, list) and all(isinstance(x, int) for x in v),
    ),
    "split": (
        "an object with integer seed and num_episodes and a number val_fraction",
        lambda v: (
            isinstance(v, dict)
            and isinstance(v.get("seed"), int)
            and isinstance(v.get("num_episodes"), int)
            and _is_number(v.get("val_fraction"))
        ),
    ),
    "data_options": (
        "an object of strings",
        lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
    ),
    "action_range": (
        "null or [[low, ...], [high, ...]]",
        lambda v: (
            v is None
            or (
                isinstance(v, list)
                and len(v) == 2
                and all(isinstance(b, list) and all(_is_number(x) for x in b) for b in v)
                and len(v[0]) == len(v[1])
            )
        ),
    ),
}


def _check_metadata(metadata: dict[str, Any], file: Path) -> None:
    """The metadata keys lewm reads back must have the types lewm wrote."""
    for key, (what, ok) in _METADATA.items():
        if key in metadata and not ok(metadata[key]):
            raise CheckpointError(
                f"{file}: metadata.{key} must be {what}, got {metadata[key]!r:.80}"
            )


def _weights_header(file: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors header, reading no tensor data. (safetensors
    checks that the header's offsets cover the file exactly, so these shapes are backed by
    bytes on disk.)"""
    try:
        with safe_open(str(file), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types on corrupt files
        raise CheckpointError(f"cannot read {file}: {e}") from e


class _TooManyModules(Exception):
    pass


def _planned_shapes(config: Any, file: Path, file_tensors: int) -> dict[str, tuple[int, ...]]:
    """Build the model of ``config`` on the meta device (shapes only, no memory) and return the
    shapes of its state dict, after checking its size against :func:`memory_bound`."""
    limit = max(MIN_MODULE_LIMIT, 8 * file_tensors)
    count, me = 0, threading.get_ident()

    def count_modules(module: nn.Module, name: str, submodule: nn.Module | None) -> None:
        nonlocal count
        if threading.get_ident() == me:
            count += 1
            if count > limit:
                raise _TooManyModules

    handle = register_module_module_registration_hook(count_modules)
    try:
        with torch.device("meta"):
            model = model_spec(config.kind).model(config)
    except _TooManyModules:
        raise CheckpointError(
            f"{file}: the model config describes more than {limit} layers/modules, far more "
            f"than the {file_tensors} tensors in {WEIGHTS_FILE}; config.json is corrupt or was "
            "edited - use another checkpoint"
        ) from None
    except Exception as e:
        raise CheckpointError(
            f"{file}: cannot build the model it describes ({type(e).__name__}: {e}); "
            "config.json is corrupt or was edited"
        ) from e
    finally:
        handle.remove()
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
    bound = memory_bound()
    if nbytes > bound:
        name, big = max(tensors.items(), key=lambda kv: kv[1].numel())
        n_params = sum(p.numel() for p in model.parameters())
        raise CheckpointError(
            f"{file}: the model it describes needs {nbytes / 1e9:,.1f} GB "
            f"({n_params:,} parameters; largest tensor {name} {list(big.shape)}), more than "
            f"half of this machine's memory ({bound / 1e9:,.1f} GB); config.json is probably "
            "corrupt (check model.latent_dim and the widths) - or load it on a larger machine"
        )
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _check_shapes(
    file: Path, expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]], what: str
) -> None:
    """Names and shapes of the file's tensors against those of the model (``what``)."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    if missing or unexpected:
        raise CheckpointError(
            f"{file} does not match {what}: {len(missing)} tensor(s) missing (e.g. "
            f"{missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}); the weights "
            "belong to another model"
        )
    for k, shape in expected.items():
        if found[k] != shape:
            raise CheckpointError(
                f"{file}: tensor {k!r} has shape {list(found[k])}, but {what} needs "
                f"{list(shape)}; the weights belong to another model (or config.json was edited)"
            )


def _read_state(
    file: Path, map_location: str | torch.device, allow_nonfinite: bool
) -> dict[str, torch.Tensor]:
    """The tensors of the weights file, refused if any floating tensor holds NaN/inf."""
    try:
        state = load_file(str(file), device=str(map_location))
    except Exception as e:  # safetensors raises its own error types on corrupt files
        raise CheckpointError(f"cannot read {file}: {e}") from e
    if not allow_nonfinite:
        for name, t in state.items():
            if not (t.is_floating_point() or t.is_complex()):
                continue
            # in chunks: the boolean mask of a multi-GB tensor would be another copy
            if not all(torch.isfinite(c).all() for c in t.reshape(-1).split(1 << 24)):
                raise CheckpointError(
                    f"{file}: tensor {name!r} holds NaN or infinite values - the training run "
                    "diverged before this checkpoint was written; use an earlier checkpoint "
                    "(RUN/checkpoints/step_*) or retrain (e.g. with a lower train.lr). "
                    "load(..., allow_nonfinite=True) loads it anyway for inspection"
                )
    return state


def _read_normalizer(file: Path, action_dim: int | None) -> Normalizer:
    """``normalizer.json``: per column, finite ``mean``/``std`` vectors of equal length, std > 0;
    the action statistics ``action_dim`` long."""
    d = _read_json(file)
    if not isinstance(d, dict):
        raise CheckpointError(
            f"cannot read {file}: expected a JSON object of column -> {{mean, std}}, "
            f"got {_json_type(d)}"
        )
    stats = {}
    for name, v in d.items():
        if not isinstance(v, dict) or "mean" not in v or "std" not in v:
            raise CheckpointError(f"cannot read {file}: {name!r} needs 'mean' and 'std' lists")
        try:
            with np.errstate(all="ignore"):  # float32, as stored: 1e39 becomes inf, checked below
                mean = np.asarray(v["mean"], np.float32)
                std = np.asarray(v["std"], np.float32)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"cannot read {file}: {name!r}: {e}") from e
        if mean.ndim != 1 or mean.shape != std.shape or len(mean) == 0:
            raise CheckpointError(
                f"{file}: {name!r} mean and std must be two non-empty lists of equal length, "
                f"got shapes {list(mean.shape)} and {list(std.shape)}"
            )
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise CheckpointError(
                f"{file}: {name!r} statistics must be finite with std > 0, got mean "
                f"{mean.tolist()} std {std.tolist()}; the training data held NaN/inf - "
                "re-create the normaliser (retrain) or use another checkpoint"
            )
        stats[name] = (mean, std)
    if action_dim is not None and "action" in stats and len(stats["action"][0]) != action_dim:
        raise CheckpointError(
            f"{file}: the action statistics have {len(stats['action'][0])} values, but the "
            f"model's action_dim is {action_dim}; normalizer.json belongs to another model"
        )
    return Normalizer(stats)


def load(
    path: str | os.PathLike,
    map_location: str | torch.device = "cpu",
    *,
    allow_nonfinite: bool = False,
) -> nn.Module:
    """Rebuild the world model saved in a checkpoint folder (or a run folder, see
    :func:`resolve_checkpoint`), whatever its registered kind, in eval mode.

    Before anything is allocated, the model of ``config.json`` is built on the ``meta`` device
    (a registered model must be constructible there, as under ``torch.device("meta")``) and
    its size and tensor shapes are checked against the machine and the weights file's header.
    Weights holding NaN/inf are refused unless ``allow_nonfinite`` (to inspect a diverged run).
    """
    path = resolve_checkpoint(path)
    config, metadata = read_config(path)
    file = path / WEIGHTS_FILE
    header = _weights_header(file)
    expected = _planned_shapes(config, path / CONFIG_FILE, len(header))
    _check_shapes(file, expected, header, "the model described by config.json")
    state = _read_state(file, map_location, allow_nonfinite)
    model = model_spec(config.kind).model(config)
    _load_state(model, state, file)
    norm_file = path / NORMALIZER_FILE
    if norm_file.exists():
        action_dim = getattr(config, "action_dim", None)
        model.normalizer = _read_normalizer(norm_file, action_dim)
    model.metadata = metadata
    return model.to(map_location).eval()


def load_weights(
    model: nn.Module,
    path: str | os.PathLike,
    map_location: str | torch.device = "cpu",
    *,
    allow_nonfinite: bool = False,
) -> None:
    """Load a checkpoint folder's weights into ``model`` (which must match them exactly).

    Names and shapes are checked from the file's header first, and weights holding NaN/inf are
    refused (unless ``allow_nonfinite``) before ``model`` is touched: on a
    :class:`CheckpointError` the model is unchanged.
    """
    file = Path(path) / WEIGHTS_FILE
    header = _weights_header(file)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    _check_shapes(file, expected, header, "the model")
    state = _read_state(file, map_location, allow_nonfinite)
    _load_state(model, state, file)


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], file: Path) -> None:
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches (already checked from the header)
        raise CheckpointError(f"{file}: weights do not match the model ({e})") from e
    if missing or unexpected:
        raise CheckpointError(
            f"{file}: weights do not match the model (missing {missing[:5]}, "
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
    "memory_bound",
    "read_config",
    "resolve_checkpoint",
    "save",
]
