"""Rank helpers and *differentiable* collectives for data-parallel training.

``torch.distributed.all_reduce`` / ``all_gather`` are not autograd operations: a loss built on
their output sends no gradient back to the other ranks' samples (the "SIGReg gradient is
1/world_size too small" bug). The two functions here are, with the adjoint of each collective as
its backward:

    all_reduce_sum(x)   forward: sum_r x_r on every rank    backward: sum_r grad_r
    all_gather_stack(x) forward: stack_r x_r, (W, *x.shape) backward: (sum_r grad_r)[rank]

Under DistributedDataParallel, which *averages* parameter gradients over ranks, this gives exactly
the gradient of the single-process loss on the union of the ranks' batches, provided every rank's
loss is (its share of the batch-mean terms) + (the global terms, identical on all ranks).

``torch.distributed.nn.functional`` has equivalents, but they emit a deprecation FutureWarning on
every call in torch 2.13; these two are small enough to own and behave the same on every torch
version we support. With no
process group (or a world of one) both are the identity / a stack of one.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """True when a default process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main_process() -> bool:
    return rank() == 0


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
    "all_gather_stack",
    "all_reduce_sum",
    "is_distributed",
    "is_main_process",
    "rank",
    "world_size",
]
