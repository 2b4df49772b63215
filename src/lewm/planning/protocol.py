"""The small contracts between world model, objective and solver.

The data path is one-way: pixels -> ``WorldModel.encode`` -> ``WorldModel.rollout`` -> objective
-> cost -> solver -> actions. The model knows nothing of planning; a solver sees only a cost
function of candidate action sequences, never the model. Any world model (LeWM, PLDM, a frozen
encoder baseline, a toy in a test) plugs in by providing the two methods below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch
from torch import Tensor

if TYPE_CHECKING:
    from lewm.planning.solvers import SolveResult

# cost_fn(actions (B, S, H, Ab)) -> cost (B, S): lower is better.
CostFn = Callable[[Tensor], Tensor]


@runtime_checkable
class WorldModel(Protocol):
    """What the planner needs from a world model.

    ``history`` is the number of context frames the predictor attends to (C_max) and
    ``action_block_dim`` is Ab = frameskip * raw action dim. Action blocks are normalised
    (z-scored) and laid out step-major: block[k*A:(k+1)*A] is the k-th raw step of the block.
    """

    history: int
    action_block_dim: int

    def encode(self, pixels: Tensor) -> Tensor:
        """pixels (B, T, h, w, 3) uint8 -> latents (B, T, D). Preprocessing is the model's job."""
        ...

    def rollout(
        self, z_context: Tensor, actions: Tensor, history_actions: Tensor | None = None
    ) -> Tensor:
        """Predict the latent after each planned block.

        z_context (B, C, D): latents of the last C observed frames (C <= history).
        actions (B, S, H, Ab): S candidate plans per episode; actions[:, :, 0] leaves the last
            context frame.
        history_actions (B, C-1, Ab): blocks executed between the context frames (None if C == 1).
        Returns (B, S, H, D).
        """
        ...


class Objective(Protocol):
    """z_pred (B, S, H, D), z_goal (B, D) -> cost (B, S)."""

    def __call__(self, z_pred: Tensor, z_goal: Tensor) -> Tensor: ...


class Solver(Protocol):
    """Minimises ``cost_fn`` over action sequences (B, H, Ab); every solver has this signature."""

    def solve(
        self,
        cost_fn: CostFn,
        batch: int,
        horizon: int,
        action_dim: int,
        *,
        init_mean: Tensor | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> SolveResult: ...
