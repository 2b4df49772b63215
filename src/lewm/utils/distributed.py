"""Process groups and collectives for data-parallel work (training and evaluation).

Launch with ``torchrun --nproc-per-node K -m lewm.train ...`` (or ``lewm eval --distributed``).
torchrun starts K processes and sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT;
:func:`init` reads them, picks NCCL on GPUs (one GPU per process: ``cuda:LOCAL_RANK``) or gloo on
CPU, and joins the process group. Without a process group every helper here is the identity
(one process is rank 0 of 1).

``torch.distributed.all_reduce`` / ``all_gather`` are not autograd operations: a loss built on
their output sends no gradient back to the other ranks' samples (the "SIGReg gradient is
1/world_size too small" bug). :func:`all_reduce_sum` and :func:`all_gather_stack` are, with the
adjoint of each collective as its backward:

    all_reduce_sum(x)   forward: sum_r x_r on every rank    backward: sum_r grad_r
    all_gather_stack(x) forward: stack_r x_r, (W, *x.shape) backward: (sum_r grad_r)[rank]

Under DistributedDataParallel, which *averages* parameter gradients over ranks, this gives exactly
the gradient of the single-process loss on the union of the ranks' batches, provided every rank's
loss is (its share of the batch-mean terms) + (the global terms, identical on all ranks).
``torch.distributed.nn.functional`` has equivalents, but they emit a deprecation FutureWarning on
every call in torch 2.13; these two are small enough to own.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

log = logging.getLogger(__name__)

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
LAUNCH_HINT = "launch with `torchrun --nproc-per-node K -m lewm.train --data ... --out ...`"


class DistributedError(RuntimeError):
    """The distributed environment is missing or inconsistent."""


def is_distributed() -> bool:
    """True when a default process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None  # None: single process, no process group
    owns_group: bool = False  # True when :func:`init` created the process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True when the environment says this is one of several torchrun workers."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def _env_int(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f"environment variable {name}={value!r} is not an integer") from None


def _device_for(requested: str, local_rank: int) -> torch.device:
    if requested == "cpu":
        return torch.device("cpu")
    if requested == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
    elif requested != "cuda":
        raise DistributedError(
            f"train.device={requested!r} cannot be used with --distributed: each process uses "
            "cuda:LOCAL_RANK (or the CPU); set train.device to auto, cuda or cpu and choose GPUs "
            "with CUDA_VISIBLE_DEVICES"
        )
    if not torch.cuda.is_available():
        raise DistributedError("train.device=cuda requested but CUDA is not available")
    if local_rank >= torch.cuda.device_count():
        raise DistributedError(
            f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} GPU(s) are visible; "
            "--nproc-per-node must not exceed the GPUs per node"
        )
    return torch.device("cuda", local_rank)


def init(device: str = "auto") -> DistInfo:
    """Join (or reuse) the default process group from torchrun's environment variables.

    ``device`` is ``train.device``: "auto" (a GPU per process when CUDA is available, else CPU),
    "cuda" or "cpu". Backend: NCCL for GPUs, gloo for CPU.
    """
    if not dist.is_available():
        raise DistributedError("this PyTorch build has no torch.distributed support")
    if dist.is_initialized():  # launched by someone who already set up the group
        r, w = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", r))
        backend = str(dist.get_backend())
        dev = _device_for("cuda" if backend == "nccl" else "cpu", local)
        return DistInfo(r, w, local, dev, backend, owns_group=False)
    missing = [k for k in TORCHRUN_VARS if k not in os.environ]
    if missing:
        raise DistributedError(
            f"--distributed needs the torchrun environment variables {', '.join(missing)} "
            f"(missing); {LAUNCH_HINT}"
        )
    r, w, local = _env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK")
    if w < 1 or not 0 <= r < w:
        raise DistributedError(f"inconsistent torchrun environment: RANK={r}, WORLD_SIZE={w}")
    if not 0 < _env_int("MASTER_PORT") < 65536:
        raise DistributedError(f"MASTER_PORT={os.environ['MASTER_PORT']} is not a valid port")
    dev = _device_for(device, local)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend=backend, init_method="env://", rank=r, world_size=w)
    if r == 0:
        log.info("distributed: %d processes, backend %s", w, backend)
    return DistInfo(r, w, local, dev, backend, owns_group=True)


def shutdown(info: DistInfo) -> None:
    """Leave the process group if :func:`init` created it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        if info.backend == "nccl":
            dist.barrier(device_ids=[info.device.index])
        else:
            dist.barrier()


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """A per-rank seed for dropout (different masks on every rank), from (seed, rank, step)."""
    return int(np.random.SeedSequence([seed, rank, step, 0x1E3]).generate_state(1)[0])


# -- differentiable collectives ------------------------------------------------------------------


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        out = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


class _AllGatherStack(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        return torch.stack(parts)  # (W, *x.shape)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)  # (W, *x.shape)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[dist.get_rank()]


def all_reduce_sum(x: Tensor) -> Tensor:
    """Differentiable sum over ranks (identity without a multi-rank process group)."""
    return _AllReduceSum.apply(x) if is_distributed() else x


def all_gather_stack(x: Tensor) -> Tensor:
    """Differentiable gather: every rank's ``x`` stacked along a new leading axis (W, ...)."""
    return _AllGatherStack.apply(x) if is_distributed() else x.unsqueeze(0)


__all__ = [
    "DistInfo",
    "DistributedError",
    "LAUNCH_HINT",
    "all_gather_stack",
    "all_reduce_sum",
    "barrier",
    "broadcast_object",
    "gather_objects",
    "init",
    "is_distributed",
    "launched_by_torchrun",
    "rank_seed",
    "shutdown",
]
