"""Multi-GPU / multi-node training support: torchrun environment, synchronised BatchNorm, helpers.

Launch with ``torchrun --nproc-per-node K -m lewm.train --data ... --out ...``. torchrun starts K
processes and sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; :func:`init` reads
them, picks NCCL on GPUs (one GPU per process: ``cuda:LOCAL_RANK``) or gloo on CPU, and joins the
process group. The trainer then wraps the model in DistributedDataParallel.

BatchNorm: a BatchNorm layer normalises with the statistics of the batch it sees. Under DDP that
is each rank's local share, so the projectors (and the CNN encoder's BatchNorm2d) would compute a
different function from the single-process model. With ``train.sync_batchnorm`` (default) the
layers are swapped for :class:`GlobalBatchNorm`, which normalises with the statistics of the
global batch (exact mean and variance merged over ranks, gradients included), so a K-process step
computes the same loss and gradients as one process on the K shards concatenated. PyTorch's own
``nn.SyncBatchNorm`` only runs on accelerators (it raises on CPU tensors), which would leave the
gloo/CPU path, the one our tests run, without synchronisation; ``GlobalBatchNorm`` is written with
plain tensor ops and a differentiable all-gather, so one code path serves NCCL and gloo alike.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from lewm.utils.distributed import all_gather_stack, is_distributed

log = logging.getLogger(__name__)

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
LAUNCH_HINT = "launch with `torchrun --nproc-per-node K -m lewm.train --data ... --out ...`"


class DistributedError(RuntimeError):
    """The distributed environment is missing or inconsistent."""


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


# -- synchronised BatchNorm ---------------------------------------------------------------------


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm over the global batch of all ranks; plain BatchNorm when not distributed.

    Same parameters, buffers and state-dict keys as ``nn.BatchNorm1d/2d/3d`` (checkpoints load
    into the plain model). In training mode with a multi-rank process group, each rank computes
    its per-channel count, mean and centred sum of squares, the three are gathered with a
    differentiable all-gather and merged exactly (Chan et al.'s parallel variance), and the input
    is normalised with the global mean and biased variance; the running statistics are updated
    with the unbiased global variance, as ``F.batch_norm`` does on one process.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        self._check_input_dim(x)
        C = x.shape[1]
        dims = [0, *range(2, x.ndim)]  # every axis but channels
        shape = [1, C] + [1] * (x.ndim - 2)  # broadcasts a (C,) vector against x
        xf = x.float()
        n_local = x.numel() // C
        mean_local = xf.mean(dim=dims)  # (C,)
        m2_local = (xf - mean_local.view(shape)).pow(2).sum(dim=dims)  # (C,)
        count = xf.new_full((1,), float(n_local))
        stats = all_gather_stack(torch.cat([count, mean_local, m2_local]))  # (W, 1 + 2C)
        n_r, mean_r, m2_r = stats[:, :1], stats[:, 1 : 1 + C], stats[:, 1 + C :]  # (W,1),(W,C)x2
        n = n_r.sum()
        mean = (n_r * mean_r).sum(dim=0) / n  # (C,)
        var = (m2_r.sum(dim=0) + (n_r * (mean_r - mean) ** 2).sum(dim=0)) / n  # (C,) biased
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                f = (
                    1.0 / float(self.num_batches_tracked)
                    if self.momentum is None
                    else self.momentum
                )
                unbiased = var * (n / (n - 1).clamp(min=1))
                self.running_mean.mul_(1 - f).add_(mean.detach().to(self.running_mean), alpha=f)
                self.running_var.mul_(1 - f).add_(unbiased.to(self.running_var), alpha=f)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm layer in ``module`` by a :class:`GlobalBatchNorm` sharing its
    parameters and buffers (in place where possible; returns the converted module)."""
    if isinstance(module, _BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
        )
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        if module.track_running_stats:
            new.running_mean = module.running_mean
            new.running_var = module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, convert_batchnorm(child))
    return module


__all__ = [
    "DistInfo",
    "DistributedError",
    "GlobalBatchNorm",
    "barrier",
    "broadcast_object",
    "convert_batchnorm",
    "gather_objects",
    "init",
    "launched_by_torchrun",
    "rank_seed",
    "shutdown",
]
