"""CEM, the paper's planner: refit a diagonal Gaussian to the lowest-cost candidates."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from lewm.planning.solvers.base import (
    SamplingSolver,
    Search,
    check_kind,
    check_sampling_options,
    top_k,
)


@dataclass
class CEMConfig:
    kind: str = "cem"  # registry name; selects this config in the config tree (eval.solver.kind)
    num_samples: int = 300  # S: candidate plans per episode per iteration (paper: 300)
    num_elites: int = 30  # k: lowest-cost candidates that refit the Gaussian (paper: 30)
    iterations: int = 30  # refits per solve (released config: 30 for every environment)
    init_std: float = 1.0  # initial per-dimension std in normalised action space (paper: 1)
    # Floor on the per-dimension std after each refit; 0 reproduces the reference (no floor).
    # A positive floor keeps some exploration when the elites collapse early.
    min_std: float = 0.0
    seed: int = 0  # seeds the generator when solve() is not given one

    def __post_init__(self) -> None:
        check_kind(self, "cem")
        check_sampling_options(self)


class CEM(SamplingSolver):
    """Cross-entropy method with a diagonal Gaussian over (H, Ab) per episode.

    Each iteration scores S candidates ~ N(mean, std^2) (candidate 0 = the current mean) and
    refits mean and std (unbiased, per dimension) to the ``num_elites`` lowest-cost candidates
    of each episode. No smoothing and no clipping to action bounds (as the reference). The final
    mean is returned.
    """

    config_cls = CEMConfig

    def refit(self, search: Search, cand: Tensor, cost: Tensor) -> Tensor:
        k, min_std = self.config.num_elites, self.config.min_std
        elites, top_cost = top_k(cand, cost, k)  # (B, k, H, Ab), (B, k)
        search.mean = elites.mean(dim=1)  # (B, H, Ab)
        search.std = elites.std(dim=1, correction=1 if k > 1 else 0)  # (B, H, Ab)
        if min_std > 0:
            search.std = search.std.clamp_min(min_std)
        return top_cost.mean()  # history: the elites' mean cost
