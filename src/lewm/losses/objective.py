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
from lewm.losses.vicreg import VICReg


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

    ``open_loop_weight`` > 0 (an option, not the paper's objective) adds that weight times the MSE
    of the model's open-loop rollout ``pred_open`` (B, N-1, D) against z_{3..N+1}: the predictor
    is also trained on its own predictions, as the planner uses it.

    ``vicreg`` (an ablation, ``train.regularizer=vicreg``) replaces SIGReg by PLDM's VICReg
    variance and covariance terms, with their own weights: ``loss = MSE + vicreg(z)["vicreg"]``
    (``sigreg_weight`` is then unused); the terms are logged as ``variance``, ``covariance`` and
    their weighted sum ``vicreg``.
    """

    def __init__(
        self,
        sigreg_weight: float = 0.09,
        sigreg: SIGReg | None = None,
        open_loop_weight: float = 0.0,
        vicreg: VICReg | None = None,
    ) -> None:
        super().__init__()
        if sigreg_weight < 0:
            raise ValueError(f"sigreg_weight must be >= 0, got {sigreg_weight}")
        if open_loop_weight < 0:
            raise ValueError(f"open_loop_weight must be >= 0, got {open_loop_weight}")
        if vicreg is not None and sigreg is not None:
            raise ValueError("give sigreg or vicreg (the regulariser), not both")
        self.sigreg_weight = sigreg_weight
        self.open_loop_weight = open_loop_weight
        self.vicreg = vicreg
        self.sigreg = sigreg if sigreg is not None or vicreg is not None else SIGReg()

    def forward(
        self, z: Tensor, pred: Tensor, pred_open: Tensor | None = None
    ) -> dict[str, Tensor]:
        # z (B, N+1, D) encoder latents; pred (B, N, D) predictions of z[:, 1:]
        pred_loss = (pred.float() - z[:, 1:].float()).pow(2).mean()
        if self.vicreg is not None:
            reg = self.vicreg(z.transpose(0, 1))  # (T, B, D) -> named scalars
            loss = pred_loss + reg["vicreg"]
            terms = {"loss": loss, "pred_loss": pred_loss, **reg}
        else:
            sigreg = self.sigreg(z.transpose(0, 1))  # (T, B, D) -> scalar
            loss = pred_loss + self.sigreg_weight * sigreg
            terms = {"loss": loss, "pred_loss": pred_loss, "sigreg": sigreg}
        if self.open_loop_weight > 0:
            if pred_open is None:
                raise ValueError(
                    "open_loop_weight > 0 needs the model's open-loop rollout (pred_open); the "
                    "trainer asks for it with forward(..., open_loop=True)"
                )
            # pred_open (B, N-1, D) rolled out from frame 0 alone: predictions of z[:, 2:]
            open_loss = (pred_open.float() - z[:, 2:].float()).pow(2).mean()
            terms["loss"] = loss + self.open_loop_weight * open_loss
            terms["open_loop_loss"] = open_loss
        return terms

    def rng_state(self) -> Tensor | None:
        return None if self.sigreg is None else self.sigreg.get_rng_state()

    def set_rng_state(self, state: Tensor | None) -> None:
        if self.sigreg is not None and state is not None:
            self.sigreg.set_rng_state(state)

    def manual_seed(self, seed: int) -> None:
        if self.sigreg is not None:
            self.sigreg.generator.manual_seed(seed)

    @contextlib.contextmanager
    def local(self) -> Iterator[LeWMObjective]:
        with (self.sigreg or self.vicreg).local():
            yield self


__all__ = ["LeWMObjective", "TrainingObjective"]
