"""The LeWM objective: next-embedding MSE + lambda * SIGReg. No stop-gradient, no EMA."""

from __future__ import annotations

from torch import Tensor, nn

from lewm.losses.sigreg import SIGReg


class LeWMObjective(nn.Module):
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
