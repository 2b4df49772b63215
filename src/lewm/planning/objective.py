"""Planning objectives: a cost per candidate plan from predicted and goal latents."""

from __future__ import annotations

from torch import Tensor

COSTS = ("terminal", "path")


class GoalCost:
    """Goal cost from the squared latent distance ``||z_h - z_goal||^2`` (summed over D).

    - ``"terminal"`` (default, paper eq. 4; the reference ``GoalMSE`` with reduction 'sum'): only
      the last predicted latent z_H is scored.
    - ``"path"``: the mean over all H predicted latents. A plan that reaches the goal early and
      stays there costs less than one that arrives at the last step, which suits success "at any
      step" and frequent replanning (a terminal cost re-aims at H blocks ahead on every replan).

    Computed in float32 whatever the model's dtype.
    """

    def __init__(self, mode: str = "terminal") -> None:
        if mode not in COSTS:
            raise ValueError(f"cost mode must be one of {COSTS}, got {mode!r}")
        self.mode = mode

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
        scored = z_pred[:, :, -1:] if self.mode == "terminal" else z_pred  # (B, S, 1 or H, D)
        diff = scored.float() - z_goal[:, None, None].float()
        return diff.pow(2).sum(dim=-1).mean(dim=-1)  # (B, S)

    def __repr__(self) -> str:
        return f"GoalCost({self.mode!r})"
