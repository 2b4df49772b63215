"""The small contracts between planning objective and solver.

The data path is one-way: pixels -> ``WorldModel.encode`` -> ``WorldModel.rollout`` -> objective
-> cost -> solver -> actions. The model knows nothing of planning (its protocol is
:class:`lewm.models.WorldModel`: the planner reads only ``encode``, ``rollout``, ``history`` and
``action_block_dim``); a solver sees only a cost function of candidate action sequences, never
the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

# cost_fn(actions (B, S, H, Ab)) -> cost (B, S): lower is better.
CostFn = Callable[[Tensor], Tensor]


class Objective(Protocol):
    """z_pred (B, S, H, D), z_goal (B, D) -> cost (B, S)."""

    def __call__(self, z_pred: Tensor, z_goal: Tensor) -> Tensor: ...


@dataclass
class SolveResult:
    """The outcome of one ``Solver.solve`` call.

    actions: (B, H, Ab) the returned plan (for CEM the final mean), normalised action blocks.
    cost: (B,) the cost of the returned plan itself (evaluated once more after the last update).
    iterations_run: optimisation iterations performed.
    history: per iteration, a mean over episodes of a solver-specific cost (diagnostics only):
        CEM/iCEM the elites' mean cost, MPPI the weighted mean cost, Adam the best restart's cost.
    """

    actions: Tensor
    cost: Tensor
    iterations_run: int
    history: list[float] = field(default_factory=list)


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


class Proposal(Protocol):
    """A first plan from the planning context, computed without search (an amortised planner,
    e.g. :class:`lewm.planning.policy.GoalPolicy`): z_ctx (B, C, D) context latents (last =
    current), z_goal (B, D), history_actions (B, C-1, Ab) or None -> plan (B, horizon, Ab) in
    normalised action space. The :class:`~lewm.planning.mpc.Planner` passes it to the solver as
    ``init_mean``."""

    def propose(
        self, z_ctx: Tensor, z_goal: Tensor, history_actions: Tensor | None, horizon: int
    ) -> Tensor: ...
