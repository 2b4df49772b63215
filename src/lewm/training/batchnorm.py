"""BatchNorm in training: global statistics under data parallelism, and precise running
statistics for everything that runs the model in eval mode.

Precise statistics (:func:`recalibrate`). In eval mode (validation, planning, probing) a
BatchNorm layer normalises with its running averages, an exponential average (momentum 0.1, ~10
steps) of past batches' statistics, each computed with the weights of its own step. While the
weights still move fast, the averages lag behind: with the paper preset (ViT encoder, whose CLS
features vary little between frames next to their mean) at a constant learning rate, held-out
prediction error in eval mode was 8x the training-mode one at step 300 on the CPU and 250x at
step 3,500 on an H200 (docs/results.md), so every planner read distorted latents. The trainer
therefore recomputes the averages with the current weights from a fixed set of training clips
(``train.precise_bn_clips``) before each validation, checkpoint and the final model; training
itself normalises with batch statistics and never reads them, so nothing else changes.

Global statistics under DDP.

A BatchNorm layer normalises with the statistics of the batch it sees. Under DDP that is each
rank's local share, so the projectors (and the CNN encoder's BatchNorm2d) would compute a
different function from the single-process model. With ``train.sync_batchnorm`` (default) the
layers are swapped for :class:`GlobalBatchNorm`, which normalises with the statistics of the
global batch (exact mean and variance merged over ranks, gradients included), so a K-process step
computes the same loss and gradients as one process on the K shards concatenated. PyTorch's own
``nn.SyncBatchNorm`` only runs on accelerators (it raises on CPU tensors), which would leave the
gloo/CPU path, the one our tests run, without synchronisation; ``GlobalBatchNorm`` is written with
plain tensor ops and a differentiable all-gather, so one code path serves NCCL and gloo alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from lewm.utils.distributed import all_gather_stack, is_distributed


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


def recalibrate(model: nn.Module, batches: Iterable[Any], forward: Callable[[Any], object]) -> int:
    """Recompute the running mean and variance of ``model``'s trainable BatchNorm layers from
    ``batches`` with its current weights, and return how many batches were used.

    ``forward(batch)`` runs the model on one batch. Every other layer stays in eval mode (no
    dropout), so the layers see what they will see at inference; each batch weighs the same
    (PyTorch's cumulative average, ``momentum=None``). Layers that ``model.train()`` leaves in
    eval mode (frozen encoders) are not touched. With no batch, or when ``forward`` raises, the
    previous statistics are put back. The model's train/eval mode is restored.
    """
    was_training = model.training
    model.train()
    layers = [
        m
        for m in model.modules()
        if isinstance(m, _BatchNorm) and m.training and m.track_running_stats
    ]
    model.eval()
    if not layers:
        model.train(was_training)
        return 0
    saved = [
        (m.momentum, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
        for m in layers
    ]
    used, finished = 0, False
    try:
        for m in layers:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        with torch.no_grad():
            for batch in batches:
                forward(batch)
                used += 1
        finished = True
    finally:
        for m, (momentum, mean, var, tracked) in zip(layers, saved, strict=True):
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)
            if not (used and finished):
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
        model.train(was_training)
    return used


def calibration_chunks(
    num_clips: int, clips: int, batch: int, seed: Any, rank: int = 0, world: int = 1
) -> list[np.ndarray]:
    """The clip indices :func:`recalibrate` reads: ``clips`` of ``num_clips`` drawn without
    replacement with ``seed`` (sorted: neighbouring reads), in batches of ``batch``; of each
    batch, this rank's share ``rank::world``. Batches too small to give every rank 2 clips are
    dropped (a BatchNorm needs 2 to compute a variance)."""
    n = min(clips, num_clips)
    idx = np.sort(np.random.default_rng(seed).choice(num_clips, n, replace=False))
    chunks = [idx[i : i + batch] for i in range(0, n, batch)]
    return [c[rank::world] for c in chunks if len(c) >= 2 * world]


__all__ = ["GlobalBatchNorm", "calibration_chunks", "convert_batchnorm", "recalibrate"]
