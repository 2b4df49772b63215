"""PLDM (Sobal et al., 2025): a JEPA world model trained end to end with VICReg-style variance
and covariance terms, temporal terms and an inverse-dynamics term instead of SIGReg.

We follow the LeWM paper's reimplementation (its App. C.2 and Table 2), the PLDM it compares
with: the *same networks as LeWM* (encoder + BN-MLP projector, action encoder, AdaLN causal
predictor + projector), reused here by subclassing :class:`~lewm.models.lewm.LeWM`, plus an
inverse-dynamics MLP idm(z_t, z_{t+1}) -> action block; and the seven-term objective of
:mod:`lewm.losses.pldm`, whose weights are ``model.loss.*`` (defaults: the LeWM paper's Table 2).
Encoding, rollout, planning, checkpoints and every analysis are LeWM's, through the WorldModel
protocol. Registered as world-model kind ``"pldm"`` (``lewm/models/__init__.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import Tensor, nn

from lewm.losses import PLDMObjective
from lewm.models.lewm import LeWM, LeWMConfig
from lewm.models.lewm import tiny_config as lewm_tiny_config
from lewm.utils.config import ConfigError, check


@dataclass
class PLDMLossConfig:
    """The weights of L_PLDM (``model.loss.*``). Defaults: the coefficients the LeWM paper's
    grid search chose for PLDM on Push-T and kept for every environment (its Table 2: alpha 18,
    beta 12, gamma 0.2, zeta 0.7, nu 0, mu 0; the same as the authors' released ``pldm.yaml``).
    The PLDM paper's own values are not in our references."""

    variance: float = 18.0  # alpha: VICReg variance hinge over the batch, per time step
    covariance: float = 12.0  # beta: VICReg off-diagonal covariance over the batch
    time_smooth: float = 0.2  # gamma: mean squared step z_{t+1} - z_t (L_time-sim)
    time_variance: float = 0.7  # zeta: variance hinge over each trajectory's time steps
    time_covariance: float = 0.0  # nu: covariance over each trajectory's time steps (off)
    # mu: inverse dynamics (off in Table 2). At 0 the head still learns, on detached latents, as a
    # probe: its logged error says how well (z_t, z_{t+1}) determine the action block
    inverse_dynamics: float = 0.0
    eps: float = 1e-4  # inside sqrt(Var + eps) of the variance hinges (VICReg's value)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            ok = value > 0 if f.name == "eps" else value >= 0
            check(
                ok,
                f"model.loss.{f.name} must be {'> 0' if f.name == 'eps' else '>= 0'}, got {value}",
            )


@dataclass
class PLDMConfig(LeWMConfig):
    """LeWM's network settings (same names, same defaults: the paper-sized networks the LeWM
    paper gives its PLDM) plus the inverse-dynamics head and the loss weights."""

    kind: str = "pldm"  # world-model registry name (recorded in config.json)
    idm_hidden: int = 512  # hidden width of the inverse-dynamics MLP (the LeWM paper's PLDM)
    loss: PLDMLossConfig = field(default_factory=PLDMLossConfig)

    def __post_init__(self) -> None:
        if isinstance(self.loss, dict):
            self.loss = PLDMLossConfig(**self.loss)
        super().__post_init__()
        check(self.idm_hidden >= 1, f"model.idm_hidden must be >= 1, got {self.idm_hidden}")


class InverseDynamics(nn.Module):
    """idm(z_t, z_{t+1}) -> the action block taken between them: a one-hidden-layer MLP on the
    concatenated pair."""

    def __init__(self, latent_dim: int, hidden: int, block_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2 * latent_dim, hidden),
            nn.GELU(),
            nn.Linear(hidden, block_dim),
        )

    def forward(self, z: Tensor, z_next: Tensor) -> Tensor:
        """z, z_next (..., D) -> action blocks (..., Ab)."""
        return self.net(torch.cat([z, z_next], dim=-1))  # (..., 2D) -> (..., Ab)


class PLDM(LeWM):
    """LeWM's networks plus an inverse-dynamics head; trained with :class:`PLDMObjective`."""

    config: PLDMConfig

    def __init__(self, config: PLDMConfig) -> None:
        super().__init__(config)
        self.inverse_dynamics = InverseDynamics(
            config.latent_dim, config.idm_hidden, config.action_block_dim
        )

    def forward(self, pixels: Tensor, action_blocks: Tensor) -> dict[str, Tensor]:
        """Training forward on clips: pixels (B, N+1, h, w, 3), action_blocks (B, N, Ab).

        Returns z (B, N+1, D), pred (B, N, D) (pred[:, t] predicts z[:, t+1]), idm_pred
        (B, N, Ab) (the head's guess of block t from z_t, z_{t+1}; from detached latents when
        ``model.loss.inverse_dynamics`` is 0) and the action_blocks themselves (its target).
        """
        out = super().forward(pixels, action_blocks)
        z = out["z"] if self.config.loss.inverse_dynamics > 0 else out["z"].detach()
        idm_pred = self.inverse_dynamics(z[:, :-1], z[:, 1:])  # (B, N, Ab)
        return {**out, "idm_pred": idm_pred, "action_blocks": action_blocks}


def build_objective(config: PLDMConfig, train: Any, distributed: bool = False) -> PLDMObjective:
    """L_PLDM with ``model.loss.*`` weights. LeWM's ``train.sigreg_*`` settings do not apply;
    ``train.regularizer`` other than the default is refused (it chooses LeWM's regulariser)."""
    if getattr(train, "regularizer", "sigreg") != "sigreg":
        raise ConfigError(
            f"train.regularizer={train.regularizer!r} chooses LeWM's regulariser; a PLDM model "
            "has its own terms, weighted by model.loss.* (e.g. model.loss.variance=18)"
        )
    weights = {f.name: getattr(config.loss, f.name) for f in fields(config.loss)}
    return PLDMObjective(**weights, distributed=distributed)


def tiny_config() -> PLDMConfig:
    """LeWM's toy size (16-px CNN, 16-d latent, 1-layer predictor) with a 32-wide IDM head."""
    small = lewm_tiny_config()
    shared = {f.name: getattr(small, f.name) for f in fields(small) if f.name != "kind"}
    return PLDMConfig(**shared, idm_hidden=32)


__all__ = [
    "InverseDynamics",
    "PLDM",
    "PLDMConfig",
    "PLDMLossConfig",
    "build_objective",
    "tiny_config",
]
