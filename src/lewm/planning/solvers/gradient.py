"""Gradient descent on the plan: Adam through a differentiable ``cost_fn``, several restarts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from lewm.planning.protocol import CostFn, SolveResult
from lewm.planning.solvers.base import (
    _IN_ITERATIONS,
    _IN_SAMPLES,
    MAX_ITERATIONS,
    MAX_SAMPLES,
    check_cost,
    check_kind,
    check_option,
    prepare,
    randn,
    start_mean,
)
from lewm.utils.config import SEED_MAX


@dataclass
class GradientConfig:
    """Adam on the plan through ``cost_fn``. ``make_solver("adam", iterations=n)`` sets
    ``steps``; ``num_elites`` (passed by ``lewm eval`` to every solver) is accepted and ignored.
    """

    # shared option names (lewm eval passes them to every solver) -> field, or None = ignored
    ALIASES: ClassVar[dict[str, str | None]] = {"iterations": "steps", "num_elites": None}

    kind: str = "adam"  # registry name; selects this config in the config tree (eval.solver.kind)
    num_samples: int = 100  # restarts per episode optimised in parallel (reference adam: 100)
    steps: int = 30  # Adam steps (reference: 30)
    lr: float = 0.1  # Adam learning rate in normalised action units (reference: 0.1)
    init_std: float = 1.0  # restarts ~ N(init_mean, init_std^2); restart 0 = init_mean
    # max L2 norm of each restart's gradient over its (H, Ab) plan; 0 = no clipping
    grad_clip: float = 0.0
    seed: int = 0  # seeds the generator when solve() is not given one

    def __post_init__(self) -> None:
        check_kind(self, "adam")
        check_option(self, "num_samples", 1 <= self.num_samples <= MAX_SAMPLES, _IN_SAMPLES)
        check_option(self, "steps", 1 <= self.steps <= MAX_ITERATIONS, _IN_ITERATIONS)
        check_option(self, "seed", 0 <= self.seed <= SEED_MAX, f"must be in [0, {SEED_MAX}]")
        check_option(self, "lr", self.lr > 0, "must be > 0")
        check_option(self, "init_std", self.init_std >= 0, "must be >= 0")
        check_option(self, "grad_clip", self.grad_clip >= 0, "must be >= 0")


class GradientSolver:
    """Minimise ``cost_fn`` by backpropagation: S restarts per episode, each a plan optimised by
    ``torch.optim.Adam``; the lowest-cost iterate seen (any restart, any step) is returned.

    ``cost_fn`` must be differentiable with respect to its input actions, and ``solve`` must not
    be called inside ``torch.inference_mode`` (it raises). ``needs_grad = True`` makes the
    :class:`~lewm.planning.mpc.Planner` build a differentiable ``cost_fn``. Gradients are taken
    with ``torch.autograd.grad`` with respect to the actions only, so a world model's
    parameters never accumulate ``.grad`` and are not modified. The loss is the sum of all
    B x S costs; Adam is elementwise and clipping is per restart, so restarts (and episodes)
    stay independent. A restart whose cost is NaN/inf gets a zero gradient and is never
    returned unless nothing finite was ever seen.
    """

    needs_grad = True

    def __init__(self, config: GradientConfig | None = None) -> None:
        self.config = config if config is not None else GradientConfig()

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
    ) -> SolveResult:
        """Same contract as :meth:`SamplingSolver.solve`; ``init_mean`` is restart 0."""
        if torch.is_inference_mode_enabled():
            raise RuntimeError(
                "GradientSolver needs autograd: call solve() outside torch.inference_mode "
                "(Planner does so for solvers with needs_grad = True)"
            )
        cfg = self.config
        B, H, Ab, S = batch, horizon, action_dim, cfg.num_samples
        dev, generator = prepare(cfg.seed, B, H, Ab, device, init_mean, generator)
        with torch.no_grad():
            mean = start_mean(init_mean, B, H, Ab, dev, dtype)  # (B, H, Ab)
            noise = randn((B, S, H, Ab), generator, dev, dtype)  # (B, S, H, Ab)
            noise[:, 0] = 0.0  # restart 0 is init_mean itself
            x0 = mean[:, None] + cfg.init_std * noise  # (B, S, H, Ab)
        x = x0.clone().requires_grad_(True)  # (B, S, H, Ab) the optimised plans
        opt = torch.optim.Adam([x], lr=cfg.lr)
        best = mean.clone()  # (B, H, Ab)
        best_cost = torch.full((B,), float("inf"), device=dev)  # (B,)
        best_costs = []

        def track(plans: Tensor, cost: Tensor) -> None:
            # plans (B, S, H, Ab), cost (B, S) with NaN -> inf: keep each episode's best so far
            nonlocal best, best_cost
            c, j = cost.min(dim=1)  # (B,), (B,)
            pick = plans[torch.arange(B, device=dev), j]  # (B, H, Ab)
            improved = c < best_cost  # (B,)
            best = torch.where(improved[:, None, None], pick, best)
            best_cost = torch.where(improved, c, best_cost)
            best_costs.append(c.mean())

        for _ in range(cfg.steps):
            with torch.enable_grad():
                raw = cost_fn(x)  # (B, S)
                cost = check_cost(raw.detach(), B, S)  # (B, S), NaN -> inf
                finite = torch.isfinite(cost)  # (B, S)
                if not raw.requires_grad:
                    raise RuntimeError(
                        "cost_fn output does not depend differentiably on the actions; "
                        "GradientSolver needs a differentiable cost_fn"
                    )
                loss = torch.where(finite, raw, torch.zeros_like(raw)).sum()
                (grad,) = torch.autograd.grad(loss, [x])  # (B, S, H, Ab)
            with torch.no_grad():
                track(x.detach(), cost)
                grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
                grad = torch.where(finite[:, :, None, None], grad, 0.0)  # (B, S, H, Ab)
                if cfg.grad_clip > 0:
                    norm = grad.flatten(2).norm(dim=2)  # (B, S) per-restart gradient norm
                    scale = (cfg.grad_clip / norm.clamp_min(1e-12)).clamp_max(1.0)  # (B, S)
                    grad = grad * scale[:, :, None, None]
                x.grad = grad
            opt.step()
        with torch.no_grad():
            final = x.detach()  # (B, S, H, Ab) after the last step
            track(final, check_cost(cost_fn(final), B, S))
            best_costs.pop()  # the extra scoring is not an optimisation step
            history = torch.stack(best_costs).tolist()
        return SolveResult(
            actions=best.detach(), cost=best_cost, iterations_run=cfg.steps, history=history
        )

    def __repr__(self) -> str:
        return f"GradientSolver({self.config})"
