"""Training checkpoints: the model folder plus ``training_state.pt`` (step, optimizer, scheduler
and every random generator), so that a resumed run computes exactly what the uninterrupted run
would have computed.

    run_dir/checkpoints/step_0001000/{config.json, model.safetensors, normalizer.json,
                                      training_state.pt}

Under data-parallel training every rank calls :func:`save`, which gathers each rank's own dropout
generator; only rank 0 writes. The state file is read with ``weights_only=True`` (no pickled
code).
"""

from __future__ import annotations

import io
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from lewm.data.normalize import Normalizer
from lewm.losses import TrainingObjective
from lewm.models.checkpoint import NORMALIZER_FILE, WEIGHTS_FILE, CheckpointError, load_weights
from lewm.utils import distributed as dist_utils
from lewm.utils.distributed import DistInfo

log = logging.getLogger(__name__)

STATE_FILE = "training_state.pt"


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:07d}"


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint folders that hold weights and training state, oldest first."""
    return sorted(
        c
        for c in (Path(run_dir) / "checkpoints").glob("step_*")
        if (c / WEIGHTS_FILE).exists() and (c / STATE_FILE).exists()
    )


def _rank_rng(device: torch.device) -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def save(
    run_dir: Path,
    step: int,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    objective: TrainingObjective,
    dist: DistInfo,
    device: torch.device,
    keep: int,
) -> Path:
    """Write the checkpoint of ``step`` (rank 0) and keep only the ``keep`` newest ones."""
    state: dict[str, Any] = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "objective_rng": objective.rng_state(),
    }
    path = checkpoint_dir(run_dir, step)
    if dist.enabled:
        state["rank_rng"] = dist_utils.gather_objects(_rank_rng(device), dist)
        if not dist.is_main:
            return path
    buf = io.BytesIO()
    torch.save(state, buf)
    model.metadata["step"] = step
    model.save_pretrained(path, overwrite=True, extra_files={STATE_FILE: buf.getvalue()})
    ckpts = sorted((Path(run_dir) / "checkpoints").glob("step_*"))
    for old in ckpts[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return path


def load(
    run_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    objective: TrainingObjective,
    dist: DistInfo,
    device: torch.device,
    seed: int,
) -> tuple[int, Path]:
    """Restore the newest *intact* checkpoint of ``run_dir`` into the given parts; returns its
    step and folder. A checkpoint whose weights or training state cannot be read (or holds
    non-finite weights) is skipped with a warning for the next older one."""
    ckpts = complete_checkpoints(run_dir)
    if not ckpts:
        raise FileNotFoundError(f"cannot resume: no complete checkpoint in {run_dir}/checkpoints")
    skipped: list[str] = []
    for ckpt in reversed(ckpts):
        try:
            state = _read_state(ckpt)
            load_weights(model, ckpt, map_location=device)
            bad = next((n for n, p in model.state_dict().items() if not _finite(p)), None)
            if bad is not None:
                raise CheckpointError(f"non-finite values in {bad}")
        except (CheckpointError, OSError, RuntimeError, EOFError, KeyError, ValueError) as e:
            skipped.append(f"{ckpt.name} ({e})")
            log.warning("checkpoint %s is unusable (%s); trying an older one", ckpt, e)
            continue
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        # "sigreg_rng": the key written before objectives were pluggable
        objective.set_rng_state(state.get("objective_rng", state.get("sigreg_rng")))
        step = int(state["step"])
        if dist.enabled:
            _load_rank_rng(state.get("rank_rng"), dist, device, seed, step)
        if skipped and dist.is_main:
            log.warning(
                "resuming from %s (step %d): newer checkpoint(s) were unusable: %s",
                ckpt.name,
                step,
                "; ".join(skipped),
            )
        return step, ckpt
    raise CheckpointError(
        f"cannot resume {run_dir}: no intact checkpoint ({'; '.join(skipped)}); start a new run "
        "with --overwrite"
    )


def _read_state(ckpt: Path) -> dict[str, Any]:
    """The training state of a checkpoint, read without unpickling code, with its keys checked."""
    try:
        state = torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types on a truncated or corrupt file
        raise CheckpointError(f"cannot read {ckpt / STATE_FILE}: {e}") from e
    need = ("step", "optimizer", "scheduler", "torch_rng", "cuda_rng")
    if not isinstance(state, dict) or any(k not in state for k in need):
        raise CheckpointError(f"{ckpt / STATE_FILE} lacks the training state ({', '.join(need)})")
    return state


def _finite(t: torch.Tensor) -> bool:
    return not t.is_floating_point() or bool(torch.isfinite(t).all())


def read_normalizer(ckpt: Path) -> Normalizer | None:
    """The normaliser saved with a checkpoint (None if it has none)."""
    path = Path(ckpt) / NORMALIZER_FILE
    if not path.exists():
        return None
    try:
        return Normalizer.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"cannot read {path}: {e}") from e


def _load_rank_rng(
    saved: list[dict[str, Any]] | None, dist: DistInfo, device: torch.device, seed: int, step: int
) -> None:
    """This rank's dropout RNG: saved by the same rank, or re-derived when the number of
    processes changed (data order, objective directions and weights still resume exactly)."""
    W, r = dist.world_size, dist.rank
    if saved is not None and len(saved) == W:
        torch.set_rng_state(saved[r]["torch"])
        if saved[r]["cuda"] is not None and device.type == "cuda":
            torch.cuda.set_rng_state(saved[r]["cuda"], device)
        return
    torch.manual_seed(dist_utils.rank_seed(seed, r, step))
    if dist.is_main:
        log.warning(
            "checkpoint written by %s process(es), resuming on %d: dropout masks follow a "
            "fresh random stream from here",
            len(saved) if saved is not None else 1,
            W,
        )


def truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines logged after ``step`` (the checkpoint a run resumes from)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
    path.write_text("".join(ln + "\n" for ln in keep))


__all__ = [
    "STATE_FILE",
    "checkpoint_dir",
    "complete_checkpoints",
    "load",
    "read_normalizer",
    "save",
    "truncate_metrics",
]
