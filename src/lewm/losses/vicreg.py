"""VICReg-style regularisers (Bardes et al., 2022), as PLDM uses them (Sobal et al., 2025).

Every term reads latents laid out (G, S, D): G independent groups, S samples per group, D latent
dimensions, and averages over the groups. Over the batch at each time step the input is
``z.transpose(0, 1)`` of a clip's latents z (B, T, D) (PLDM's L_var, L_cov); over time within
each trajectory it is z itself (PLDM's L_time-var, L_time-cov, as the LeWM paper's App. C.2
writes them).

- ``variance_hinge``: mean over groups and dimensions of relu(1 - sqrt(Var + eps)), the variance
  unbiased over the S samples: zero once every dimension has std >= 1, up to 1 for a constant.
- ``covariance_offdiag``: the sum of squared off-diagonal entries of the (unbiased) covariance
  matrix divided by D^2 - D, i.e. the mean squared off-diagonal covariance. VICReg divides the
  sum by D; we divide by D^2 - D because that is the normalisation the LeWM authors tuned PLDM's
  coefficients with (their reimplementation, see docs/results.md), and those are our defaults.
- ``temporal_smoothness``: the mean squared step between consecutive latents of a trajectory
  (PLDM's L_time-sim, taken as an MSE like the prediction loss: mean over dimensions too).

Data-parallel training: the batch-wise terms must see the global batch, so :func:`global_batch`
gathers every rank's latents with a differentiable all-gather (``lewm.utils.distributed``); the
per-trajectory terms are batch means and need nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from lewm.utils.distributed import all_gather_stack, is_distributed


def global_batch(z: Tensor) -> Tensor:
    """z (T, B, D) on each rank -> (T, W*B, D), every rank's batch (identity on one process)."""
    if not is_distributed():
        return z
    g = all_gather_stack(z)  # (W, T, B, D)
    W, T, B, D = g.shape
    return g.permute(1, 0, 2, 3).reshape(T, W * B, D)  # (T, W*B, D)


def _samples(z: Tensor, name: str) -> Tensor:
    if z.ndim != 3 or z.shape[1] < 2:
        raise ValueError(
            f"{name} needs latents (G, S, D) with S >= 2 samples, got {tuple(z.shape)}"
        )
    return z.float()


def variance_hinge(z: Tensor, eps: float = 1e-4) -> Tensor:
    """z (G, S, D) -> mean_{g, d} relu(1 - sqrt(Var_s z[g, :, d] + eps))."""
    z = _samples(z, "variance_hinge")
    std = torch.sqrt(z.var(dim=1) + eps)  # (G, D), unbiased over the S samples
    return torch.relu(1.0 - std).mean()


def covariance_offdiag(z: Tensor) -> Tensor:
    """z (G, S, D) -> mean over groups of sum_{i != j} Cov(z[g])_ij^2 / (D^2 - D); 0 for D = 1."""
    z = _samples(z, "covariance_offdiag")
    G, S, D = z.shape
    if D < 2:
        return z.new_zeros(())
    zc = z - z.mean(dim=1, keepdim=True)  # (G, S, D) centred over the samples
    cov = zc.transpose(1, 2) @ zc / (S - 1)  # (G, D, D)
    off = cov.pow(2).sum(dim=(1, 2)) - torch.diagonal(cov, dim1=1, dim2=2).pow(2).sum(dim=1)
    return (off / (D * D - D)).mean()


def temporal_smoothness(z: Tensor) -> Tensor:
    """z (B, T, D) with T >= 2 -> mean over b, t, d of (z[b, t+1, d] - z[b, t, d])^2."""
    if z.ndim != 3 or z.shape[1] < 2:
        raise ValueError(f"temporal_smoothness needs (B, T, D) with T >= 2, got {tuple(z.shape)}")
    return (z[:, 1:].float() - z[:, :-1].float()).pow(2).mean()


class VICReg(nn.Module):
    """``VICReg(variance_weight, covariance_weight)(z)`` with z (T, B, D): the variance and
    covariance terms over the batch at each time step (the global batch with ``distributed``),
    averaged over time, and their weighted sum:
    ``{"vicreg": a * variance + b * covariance, "variance": ..., "covariance": ...}``."""

    def __init__(
        self,
        variance_weight: float = 18.0,
        covariance_weight: float = 12.0,
        eps: float = 1e-4,
        distributed: bool = False,
    ) -> None:
        super().__init__()
        if variance_weight < 0 or covariance_weight < 0 or eps <= 0:
            raise ValueError(
                "VICReg needs variance_weight >= 0, covariance_weight >= 0, eps > 0; got "
                f"{variance_weight}, {covariance_weight}, {eps}"
            )
        self.variance_weight = variance_weight
        self.covariance_weight = covariance_weight
        self.eps = eps
        self.distributed = distributed

    @contextmanager
    def local(self) -> Iterator[VICReg]:
        """Temporarily compute on this rank's samples only (e.g. rank-0-only validation)."""
        saved, self.distributed = self.distributed, False
        try:
            yield self
        finally:
            self.distributed = saved

    def forward(self, z: Tensor) -> dict[str, Tensor]:
        if self.distributed:
            z = global_batch(z)  # (T, W*B, D)
        var = variance_hinge(z, self.eps)
        cov = covariance_offdiag(z)
        total = self.variance_weight * var + self.covariance_weight * cov
        return {"vicreg": total, "variance": var, "covariance": cov}


__all__ = [
    "VICReg",
    "covariance_offdiag",
    "global_batch",
    "temporal_smoothness",
    "variance_hinge",
]
