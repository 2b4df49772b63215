"""MPPI: model-predictive path integral, an importance-weighted mean update."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lewm.planning.solvers.base import (
    _IN_ITERATIONS,
    _IN_SAMPLES,
    MAX_ITERATIONS,
    MAX_SAMPLES,
    SamplingSolver,
    Search,
    check_kind,
    check_option,
    top_k,
)
from lewm.utils.config import SEED_MAX


@dataclass
class MPPIConfig:
    kind: str = "mppi"  # registry name; selects this config in the config tree (eval.solver.kind)
    num_samples: int = 300  # S: candidates per episode per iteration (CEM's budget)
    iterations: int = 30  # updates per solve (30: equal rollout count with CEM)
    # lambda: weights ~ exp(-(cost - min cost) / lambda) (reference: 0.5). Costs are not
    # rescaled, so with latent costs >> lambda the weights approach an argmin.
    temperature: float = 0.5
    init_std: float = 1.0  # per-dimension std of the sampling Gaussian at the start
    # True: std <- weighted std of the candidates around the new mean (as TD-MPC's MPPI);
    # False: the std stays at init_std (classic MPPI with fixed exploration noise)
    adaptive_std: bool = True
    # floor on the adaptive std. With lambda = 0.5 the weights are nearly one-hot, the weighted
    # std collapses to ~0 and the search would freeze; 0.1 (10 % of the data's action std)
    # keeps a local search going (0.05 stalls ~4x farther from a quadratic's optimum)
    min_std: float = 0.1
    # weight only the k lowest-cost candidates (TD-MPC-style elites, as CEM's 30 elites); None
    # weighs all S. Near the optimum the S costs differ by less than lambda, so weights over all
    # of them are ~uniform and the mean barely moves (~10x worse on a quadratic); the elite cut
    # keeps CEM-like progress. `lewm eval` passes its --elites value here.
    num_elites: int | None = 30
    seed: int = 0  # seeds the generator when solve() is not given one

    def __post_init__(self) -> None:
        check_kind(self, "mppi")
        check_option(self, "num_samples", 1 <= self.num_samples <= MAX_SAMPLES, _IN_SAMPLES)
        check_option(self, "iterations", 1 <= self.iterations <= MAX_ITERATIONS, _IN_ITERATIONS)
        check_option(self, "seed", 0 <= self.seed <= SEED_MAX, f"must be in [0, {SEED_MAX}]")
        check_option(self, "temperature", self.temperature > 0, "must be > 0")
        check_option(self, "init_std", self.init_std > 0, "must be > 0")
        check_option(self, "min_std", self.min_std >= 0, "must be >= 0")
        check_option(
            self,
            "num_elites",
            self.num_elites is None or 1 <= self.num_elites <= self.num_samples,
            f"must be None or in [1, num_samples={self.num_samples}]",
        )


class MPPI(SamplingSolver):
    """Model-predictive path integral: an importance-weighted mean update.

    Each iteration draws S candidates ~ N(mean, std^2) (candidate 0 = the current mean), scores
    them, and sets ``mean = sum_s w_s cand_s`` with ``w = softmax(-(cost - min cost) / lambda)``
    over each episode's candidates (or its ``num_elites`` best). NaN/inf costs get weight 0; an
    episode whose costs are all invalid keeps its mean (and std). The final mean is returned.
    """

    config_cls = MPPIConfig

    def refit(self, search: Search, cand: Tensor, cost: Tensor) -> Tensor:
        cfg, s = self.config, search
        S = cand.shape[1]
        k = S if cfg.num_elites is None else cfg.num_elites
        if k < S:
            cand, cost = top_k(cand, cost, k)  # (B, k, H, Ab), (B, k)
        valid = torch.isfinite(cost)  # (B, k)
        any_valid = valid.any(dim=1)  # (B,)
        c_min = torch.where(valid, cost, torch.inf).amin(dim=1, keepdim=True)  # (B, 1)
        c_min = torch.where(any_valid[:, None], c_min, 0.0)  # (B, 1)
        logits = torch.where(valid, -(cost - c_min) / cfg.temperature, -torch.inf)  # (B, k)
        w = torch.softmax(logits, dim=1)  # (B, k); NaN rows where nothing is valid
        w = torch.where(any_valid[:, None], w, 0.0).to(cand.dtype)  # (B, k)
        new_mean = (w[:, :, None, None] * cand).sum(dim=1)  # (B, H, Ab)
        new_mean = torch.where(any_valid[:, None, None], new_mean, s.mean)  # (B, H, Ab)
        if cfg.adaptive_std:
            var = (w[:, :, None, None] * (cand - new_mean[:, None]).pow(2)).sum(dim=1)
            new_std = var.sqrt().clamp_min(cfg.min_std)  # (B, H, Ab)
            s.std = torch.where(any_valid[:, None, None], new_std, s.std)  # (B, H, Ab)
        s.mean = new_mean
        wc = (w.float() * torch.where(valid, cost, 0.0)).sum(dim=1)  # (B,)
        return torch.where(any_valid, wc, torch.inf).mean()  # history: the weighted mean cost
