"""Synchronised BatchNorm for data-parallel training.

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


__all__ = ["GlobalBatchNorm", "convert_batchnorm"]
