"""Planning objectives: a cost per candidate plan from predicted and goal latents."""

from __future__ import annotations

from torch import Tensor


class GoalCost:
    """Terminal goal cost ``||z_H - z_goal||^2`` summed over the latent dimensions.

    Only the last predicted latent is scored (paper eq. 4; the reference ``GoalMSE`` with
    reduction 'sum'); intermediate predictions are ignored. Computed in float32 whatever the
    model's dtype.
    """

    def __call__(self, z_pred: Tensor, z_goal: Tensor) -> Tensor:
        # z_pred (B, S, H, D) predicted latents; z_goal (B, D) goal latents -> cost (B, S)
        if z_pred.ndim != 4:
            raise ValueError(f"z_pred must be (B, S, H, D), got shape {tuple(z_pred.shape)}")
        B, S, H, D = z_pred.shape
        if tuple(z_goal.shape) != (B, D):
            raise ValueError(
                f"z_goal must be (B, D) = ({B}, {D}) to match z_pred {tuple(z_pred.shape)}, "
                f"got {tuple(z_goal.shape)}"
            )
        diff = z_pred[:, :, -1].float() - z_goal[:, None].float()  # (B, S, D)
        cost = diff.pow(2).sum(dim=-1)  # (B, S)
        return cost

    def __repr__(self) -> str:
        return "GoalCost()"
