"""The amortised planner as a solver: return the proposal, search nothing.

A goal-conditioned policy (:mod:`lewm.planning.policy`, trained by ``lewm policy RUN``) maps
the current latent and the goal latent to a plan in one forward pass. The
:class:`~lewm.planning.mpc.Planner` calls it and hands its plan to the solver as ``init_mean``;
this solver returns that plan unchanged (and its cost, one rollout), so ``--solver policy`` is
the policy alone. The same proposal warm-starts any searching solver
(``eval.proposal=policy``): CEM/iCEM/MPPI then start their Gaussian at the policy's plan.

The solver never sees the model or the policy; it declares ``needs_proposal = True``, which
tells the Planner to refuse being built without a proposal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from lewm.planning.protocol import CostFn, SolveResult
from lewm.planning.solvers.base import check_cost, check_kind, check_option, prepare, start_mean
from lewm.utils.config import SEED_MAX


@dataclass
class ProposalConfig:
    """``eval.solver.kind=policy``: the plan is the proposal (no samples, no iterations)."""

    # the options lewm eval passes to every solver; here none of them means anything, so
    # make_solver ignores them and `lewm eval --samples N --solver policy` is refused
    ALIASES: ClassVar[dict[str, str | None]] = {
        "num_samples": None,
        "num_elites": None,
        "iterations": None,
    }

    kind: str = "policy"  # registry name; selects this config in the config tree
    seed: int = 0  # unused (the plan is deterministic); kept so every solver takes a seed

    def __post_init__(self) -> None:
        check_kind(self, "policy")
        check_option(self, "seed", 0 <= self.seed <= SEED_MAX, f"must be in [0, {SEED_MAX}]")


class ProposalSolver:
    """Returns ``init_mean`` (the proposal the Planner computed) as the plan, with its cost from
    one ``cost_fn`` call. Deterministic; ``init_mean`` is required."""

    needs_grad = False
    needs_proposal = True  # the Planner must be given a proposal (a trained policy)

    def __init__(self, config: ProposalConfig | None = None) -> None:
        self.config = config if config is not None else ProposalConfig()

    def solve(
        self,
        cost_fn: CostFn,
        batch: int,
        horizon: int,
        action_dim: int,
        *,
        init_mean: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> SolveResult:
        B, H, Ab = batch, horizon, action_dim
        dev, _ = prepare(self.config.seed, B, H, Ab, device, init_mean, generator)
        if init_mean is None:
            raise ValueError(
                "solver 'policy' returns the plan of a trained policy, given as init_mean; "
                "plan through a Planner built with proposal= (lewm: train one with `lewm policy "
                "RUN`, then `lewm eval RUN --solver policy`)"
            )
        with torch.inference_mode():
            plan = start_mean(init_mean, B, H, Ab, dev, dtype)  # (B, H, Ab)
            cost = check_cost(cost_fn(plan[:, None]), B, 1)[:, 0]  # (B,)
        return SolveResult(actions=plan, cost=cost, iterations_run=0, history=[])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"
