"""PLDM's training objective (Sobal et al., 2025), as the LeWM paper states it (App. C.2, Eq. for
L_PLDM) for its reimplementation of PLDM:

    loss = pred + a * variance + b * covariance + g * time_smooth
                + z * time_variance + n * time_covariance + m * inverse_dynamics

- pred: MSE of the predicted next latents (the same term as LeWM's);
- variance, covariance: VICReg's terms over the batch at each time step (``lewm.losses.vicreg``);
- time_smooth: the mean squared step between consecutive latents of a trajectory;
- time_variance, time_covariance: the same VICReg terms over the time steps of each trajectory
  (the LeWM paper found them in PLDM's released config, not in the PLDM paper);
- inverse_dynamics: MSE of an inverse-dynamics head's action blocks a_t = idm(z_t, z_{t+1})
  against the normalised blocks actually taken (NaN entries, padding, are left out).

Every term is returned by name whatever its weight. With ``inverse_dynamics`` weight 0 (the LeWM
paper's tuned value) the model feeds its head detached latents and the head is still trained
here, as a probe: ``loss`` gains ``idm - idm.detach()``, zero in value, so the logged objective is
exactly L_PLDM, the encoder feels nothing, and the logged ``inverse_dynamics`` says how well the
latents determine the actions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor

from lewm.losses.objective import TrainingObjective
from lewm.losses.vicreg import (
    covariance_offdiag,
    global_batch,
    temporal_smoothness,
    variance_hinge,
)

TERMS = (
    "variance",
    "covariance",
    "time_smooth",
    "time_variance",
    "time_covariance",
    "inverse_dynamics",
)  # the weighted terms beside the prediction loss, in the order of L_PLDM


def masked_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over the finite entries of ``target`` (0 when there are none)."""
    finite = torch.isfinite(target)
    diff = torch.where(finite, pred.float() - torch.nan_to_num(target.float()), 0.0)
    return diff.pow(2).sum() / finite.sum().clamp(min=1)


class PLDMObjective(TrainingObjective):
    """``PLDMObjective(**weights)(z, pred, idm_pred, action_blocks)`` -> named terms, "loss"
    among them. Weights are keyword arguments named as :data:`TERMS`; ``eps`` is the variance
    terms' epsilon. With ``distributed`` the batch-wise terms see every rank's samples."""

    def __init__(
        self,
        variance: float = 18.0,
        covariance: float = 12.0,
        time_smooth: float = 0.2,
        time_variance: float = 0.7,
        time_covariance: float = 0.0,
        inverse_dynamics: float = 0.0,
        eps: float = 1e-4,
        distributed: bool = False,
    ) -> None:
        super().__init__()
        self.weights = {
            "variance": variance,
            "covariance": covariance,
            "time_smooth": time_smooth,
            "time_variance": time_variance,
            "time_covariance": time_covariance,
            "inverse_dynamics": inverse_dynamics,
        }
        for name, w in self.weights.items():
            if not w >= 0:
                raise ValueError(f"the {name} weight must be >= 0, got {w}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.eps = eps
        self.distributed = distributed

    def forward(
        self, z: Tensor, pred: Tensor, idm_pred: Tensor, action_blocks: Tensor
    ) -> dict[str, Tensor]:
        # z (B, N+1, D) latents; pred (B, N, D) predictions of z[:, 1:];
        # idm_pred, action_blocks (B, N, Ab): inverse-dynamics output and the blocks taken
        zt = z.transpose(0, 1)  # (T, B, D): the batch at each time step
        if self.distributed:
            zt = global_batch(zt)  # (T, W*B, D)
        terms = {
            "pred_loss": (pred.float() - z[:, 1:].float()).pow(2).mean(),
            "variance": variance_hinge(zt, self.eps),
            "covariance": covariance_offdiag(zt),
            "time_smooth": temporal_smoothness(z),
            "time_variance": variance_hinge(z, self.eps),  # (B, T, D): over each trajectory
            "time_covariance": covariance_offdiag(z),
            "inverse_dynamics": masked_mse(idm_pred, action_blocks),
        }
        loss = terms["pred_loss"] + sum(w * terms[k] for k, w in self.weights.items())
        if self.weights["inverse_dynamics"] == 0:  # train the head as a probe (module docstring)
            idm = terms["inverse_dynamics"]
            loss = loss + (idm - idm.detach())
        return {"loss": loss, **terms}

    @contextlib.contextmanager
    def local(self) -> Iterator[PLDMObjective]:
        saved, self.distributed = self.distributed, False
        try:
            yield self
        finally:
            self.distributed = saved


__all__ = ["TERMS", "PLDMObjective", "masked_mse"]
