"""Training objectives: a module called on a world model's training output that returns named
loss terms ("loss" among them). The LeWM objective is next-embedding MSE + lambda * SIGReg, with
no stop-gradient and no EMA.

Objectives that draw random numbers (SIGReg's projection directions) expose their generator's
state so that training resumes exactly and validation uses a fixed stream; under data-parallel
training ``local()`` makes them compute on this process's samples only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from torch import Tensor, nn

from lewm.losses.sigreg import SIGReg


class TrainingObjective(nn.Module):
    """Base class: no random state and nothing global by default."""

    def rng_state(self) -> Any:
        """The state of the objective's own random generator (None if it has none)."""
        return None

    def set_rng_state(self, state: Any) -> None:
        """Restore what :meth:`rng_state` returned."""

    def manual_seed(self, seed: int) -> None:
        """Reseed the objective's generator (a fixed stream for validation)."""

    @contextlib.contextmanager
    def local(self) -> Iterator[TrainingObjective]:
        """Compute on this rank's samples only (e.g. rank-0-only validation)."""
        yield self


class LeWMObjective(TrainingObjective):
    """``loss = MSE(pred_{1..N}, z_{2..N+1}) + weight * SIGReg(z)``, returning named terms.

    The MSE is the mean over batch, time and latent dimensions (as the released code); SIGReg is
    applied step-wise to the encoder latents of all N+1 frames, laid out (T, B, D).
    """

    def __init__(self, sigreg_weight: float = 0.09, sigreg: SIGReg | None = None) -> None:
        super().__init__()
        if sigreg_weight < 0:
            raise ValueError(f"sigreg_weight must be >= 0, got {sigreg_weight}")
        self.sigreg_weight = sigreg_weight
        self.sigreg = sigreg if sigreg is not None else SIGReg()

    def forward(self, z: Tensor, pred: Tensor) -> dict[str, Tensor]:
        # z (B, N+1, D) encoder latents; pred (B, N, D) predictions of z[:, 1:]
        pred_loss = (pred.float() - z[:, 1:].float()).pow(2).mean()
        sigreg = self.sigreg(z.transpose(0, 1))  # (T, B, D) -> scalar
        loss = pred_loss + self.sigreg_weight * sigreg
        return {"loss": loss, "pred_loss": pred_loss, "sigreg": sigreg}

    def rng_state(self) -> Tensor:
        return self.sigreg.get_rng_state()

    def set_rng_state(self, state: Tensor) -> None:
        self.sigreg.set_rng_state(state)

    def manual_seed(self, seed: int) -> None:
        self.sigreg.generator.manual_seed(seed)

    @contextlib.contextmanager
    def local(self) -> Iterator[LeWMObjective]:
        with self.sigreg.local():
            yield self


__all__ = ["LeWMObjective", "TrainingObjective"]
