"""Solvers: minimise a cost over action sequences, batched over episodes x candidates.

A solver sees only ``cost_fn(actions (B, S, H, Ab)) -> (B, S)``, never the world model, and
returns a :class:`SolveResult`. Solvers are registered in ``SOLVERS`` by name with their config
dataclass and share one ``solve`` signature, so :func:`make_solver` builds any of them:

- ``cem``: cross-entropy method, the paper's planner (:class:`CEM`).
- ``icem``: improved CEM (Pinneri et al. 2020): coloured noise along the horizon, elites kept
  between iterations, momentum on the refit, optional sample decay (:class:`ICEM`).
- ``mppi``: importance-weighted mean update with temperature lambda (:class:`MPPI`).
- ``adam``: gradient descent on the plan through a differentiable ``cost_fn`` (Adam, several
  restarts; :class:`GradientSolver`). It sets ``needs_grad = True``, which tells the
  :class:`~lewm.planning.mpc.Planner` to build ``cost_fn`` outside ``torch.inference_mode``.

Every solver is deterministic for a seed on CPU, treats NaN costs as +inf (never selected), and
reports in ``SolveResult.cost`` the cost of the plan it returns.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from lewm.planning.protocol import CostFn, Solver

log = logging.getLogger(__name__)


@dataclass
class SolveResult:
    """The outcome of one ``solve`` call.

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


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ValueError(msg)


@dataclass
class CEMConfig:
    num_samples: int = 300  # S: candidate plans per episode per iteration (paper: 300)
    num_elites: int = 30  # k: lowest-cost candidates that refit the Gaussian (paper: 30)
    iterations: int = 30  # refits per solve (released config: 30 for every environment)
    init_std: float = 1.0  # initial per-dimension std in normalised action space (paper: 1)
    # Floor on the per-dimension std after each refit; 0 reproduces the reference (no floor).
    # A positive floor keeps some exploration when the elites collapse early.
    min_std: float = 0.0
    seed: int = 0  # seeds the generator when solve() is not given one

    def __post_init__(self) -> None:
        _check(self.num_samples >= 1, f"cem.num_samples must be >= 1, got {self.num_samples}")
        _check(
            1 <= self.num_elites <= self.num_samples,
            f"cem.num_elites must be in [1, num_samples={self.num_samples}], got {self.num_elites}",
        )
        _check(self.iterations >= 1, f"cem.iterations must be >= 1, got {self.iterations}")
        _check(self.init_std > 0, f"cem.init_std must be > 0, got {self.init_std}")
        _check(self.min_std >= 0, f"cem.min_std must be >= 0, got {self.min_std}")


# -- shared helpers ------------------------------------------------------------------------------


def _as_device(device: torch.device | str | None, init_mean: Tensor | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return init_mean.device if init_mean is not None else torch.device("cpu")


def _check_cost(cost: Tensor, B: int, S: int) -> Tensor:
    """Contract at the solver/cost seam: (B, S) costs; NaN counts as +inf (never an elite)."""
    if tuple(cost.shape) != (B, S):
        raise ValueError(f"cost_fn must return shape (B, S) = ({B}, {S}), got {tuple(cost.shape)}")
    return torch.nan_to_num(cost.float(), nan=float("inf"))


def _prepare(
    seed: int,
    B: int,
    H: int,
    Ab: int,
    device: torch.device | str | None,
    init_mean: Tensor | None,
    generator: torch.Generator | None,
) -> tuple[torch.device, torch.Generator]:
    """Shared start of every ``solve``: check sizes, pick the device, and seed a generator from
    the config when none is given (so a call is a pure function of its inputs)."""
    _check_sizes(B, H, Ab)
    dev = _as_device(device, init_mean)
    if generator is None:
        generator = torch.Generator(device=dev).manual_seed(seed)
    return dev, generator


def _check_sizes(B: int, H: int, Ab: int) -> None:
    _check(
        B >= 1 and H >= 1 and Ab >= 1,
        f"batch, horizon, action_dim must be >= 1, got {(B, H, Ab)}",
    )


def _start_mean(
    init_mean: Tensor | None, B: int, H: int, Ab: int, dev: torch.device, dtype: torch.dtype
) -> Tensor:
    """The starting plan (B, H, Ab): a copy of ``init_mean`` (warm start) or zeros."""
    if init_mean is None:
        return torch.zeros(B, H, Ab, device=dev, dtype=dtype)  # (B, H, Ab)
    if tuple(init_mean.shape) != (B, H, Ab):
        raise ValueError(
            f"init_mean must have shape (B, H, Ab) = {(B, H, Ab)}, got {tuple(init_mean.shape)}"
        )
    return init_mean.detach().to(device=dev, dtype=dtype).clone()  # (B, H, Ab)


def _randn(shape: tuple[int, ...], generator: torch.Generator, dev: torch.device, dtype) -> Tensor:
    """Standard normal noise drawn on the generator's device, then moved to ``dev``."""
    return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(dev)


def coloured_noise(
    shape: tuple[int, ...],
    beta: float,
    generator: torch.Generator,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Gaussian noise whose power spectrum along the last axis is proportional to ``1/f^beta``.

    shape (..., n). ``beta = 0`` is white noise, ``beta = 2`` (iCEM's default) is Brownian-like:
    most power sits at low frequencies, so consecutive steps are strongly correlated. Each
    element has unit variance whatever ``beta`` and ``n``. Made in the frequency domain: random
    complex amplitudes scaled by ``f^(-beta/2)`` (the DC bin takes the lowest nonzero
    frequency's scale), then an inverse real FFT; drawn from ``generator`` on its device.
    """
    _check(beta >= 0, f"beta must be >= 0, got {beta}")
    *lead, n = shape
    _check(n >= 1, f"the last axis of shape must be >= 1, got {tuple(shape)}")
    gdev = generator.device
    freq = torch.fft.rfftfreq(n, device=gdev, dtype=torch.float64)  # (F,), F = n // 2 + 1
    freq[0] = 1.0 / n  # no 1/0 at DC
    amp = freq.pow(-beta / 2)  # (F,) amplitude, so power ~ f^-beta
    # real-only bins (DC, and Nyquist for even n) get their whole power in the real part, so
    # every bin has power 2 amp^2 and beta = 0 is exactly white
    real_only = torch.zeros_like(amp, dtype=torch.bool)  # (F,)
    real_only[0] = True
    if n % 2 == 0:
        real_only[-1] = True
    re_scale = torch.where(real_only, amp * math.sqrt(2.0), amp)  # (F,)
    im_scale = torch.where(real_only, torch.zeros_like(amp), amp)  # (F,)
    F = amp.shape[0]
    re = torch.randn((*lead, F), generator=generator, device=gdev, dtype=torch.float64)
    im = torch.randn((*lead, F), generator=generator, device=gdev, dtype=torch.float64)
    spec = torch.complex(re * re_scale, im * im_scale)  # (..., F)
    x = torch.fft.irfft(spec, n=n, dim=-1)  # (..., n)
    # x[t] = (1/n) sum over all n bins of the (Hermitian) spectrum, each bin of power 2 amp^2:
    # var x[t] = (2 amp_0^2 + 4 sum_mid amp_k^2 + 2 amp_nyq^2) / n^2, the same for every t
    weight = torch.where(real_only, 2.0, 4.0)  # (F,)
    sigma = (weight * amp.pow(2)).sum().sqrt() / n
    dev = torch.device(device) if device is not None else gdev
    return (x / sigma).to(device=dev, dtype=dtype)


# -- CEM -----------------------------------------------------------------------------------------


class CEM:
    """Cross-entropy method with a diagonal Gaussian over (H, Ab) per episode.

    Each iteration draws S candidates ~ N(mean, std^2) for every episode, forces candidate 0 to
    the current mean, scores all B x S candidates with one ``cost_fn`` call, and refits mean and
    std (unbiased, per dimension) to the ``num_elites`` lowest-cost candidates of each episode.
    No smoothing and no clipping to action bounds (as the reference). The final mean is
    returned. Noise has shape (B, S, H, Ab) drawn from one generator, so an episode's result
    depends only on its own costs (and on B), never on other episodes' costs.
    """

    needs_grad = False  # cost_fn is only evaluated, never differentiated

    def __init__(self, config: CEMConfig | None = None) -> None:
        self.config = config if config is not None else CEMConfig()

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
        """Minimise ``cost_fn`` over plans (batch, horizon, action_dim).

        init_mean (B, H, Ab) warm-starts the mean (zeros otherwise); the std always restarts at
        ``init_std``. Without a ``generator`` a fresh one seeded with ``config.seed`` is used, so
        a call is a pure function of its inputs. A generator on another device than ``device``
        is allowed: noise is drawn there and moved (CPU noise makes runs device-independent).
        """
        cfg = self.config
        B, H, Ab, S, k = batch, horizon, action_dim, cfg.num_samples, cfg.num_elites
        dev, generator = _prepare(cfg.seed, B, H, Ab, device, init_mean, generator)
        with torch.inference_mode():
            mean = _start_mean(init_mean, B, H, Ab, dev, dtype)  # (B, H, Ab)
            std = torch.full((B, H, Ab), cfg.init_std, device=dev, dtype=dtype)  # (B, H, Ab)
            elite_costs = []
            for _ in range(cfg.iterations):
                noise = _randn((B, S, H, Ab), generator, dev, dtype)  # (B, S, H, Ab)
                noise[:, 0] = 0.0  # candidate 0 is the current mean
                cand = mean[:, None] + std[:, None] * noise  # (B, S, H, Ab)
                cost = _check_cost(cost_fn(cand), B, S)  # (B, S)
                top_cost, idx = torch.topk(cost, k, dim=1, largest=False)  # (B, k), (B, k)
                elites = torch.gather(
                    cand, 1, idx[:, :, None, None].expand(B, k, H, Ab)
                )  # (B, k, H, Ab)
                mean = elites.mean(dim=1)  # (B, H, Ab)
                std = elites.std(dim=1, correction=1 if k > 1 else 0)  # (B, H, Ab)
                if cfg.min_std > 0:
                    std = std.clamp_min(cfg.min_std)
                elite_costs.append(top_cost.mean())
            final_cost = _check_cost(cost_fn(mean[:, None]), B, 1)[:, 0]  # (B,)
            history = torch.stack(elite_costs).tolist()  # one device sync per solve
        return SolveResult(
            actions=mean, cost=final_cost, iterations_run=cfg.iterations, history=history
        )

    def __repr__(self) -> str:
        return f"CEM({self.config})"


# -- iCEM ----------------------------------------------------------------------------------------


@dataclass
class ICEMConfig:
    """iCEM (Pinneri et al. 2020). With the defaults and 300 samples it spends exactly CEM's
    budget: S cost evaluations per iteration (kept elites included), 30 iterations."""

    num_samples: int = 300  # S: candidates scored in the first iteration (as CEM)
    num_elites: int = 30  # k: lowest-cost candidates that refit the Gaussian (as CEM)
    iterations: int = 30  # refits per solve (as CEM)
    init_std: float = 1.0  # initial per-dimension std, normalised action space (as CEM)
    min_std: float = 0.0  # floor on the std after each refit (0 = none, as CEM)
    # beta: noise power ~ 1/f^beta along the horizon. 2 (reference) gives smooth, temporally
    # correlated plans; 0 is CEM's white noise.
    noise_beta: float = 2.0
    # alpha: mean, std <- alpha * previous + (1 - alpha) * elite fit (reference and paper: 0.1)
    momentum: float = 0.1
    # best elites of an iteration re-scored in the next one (reference: 5, i.e. 1/6 of 30);
    # they take the place of fresh samples, so the evaluation count stays S per iteration
    keep_elites: int = 5
    # gamma: iteration i scores max(min(S, 2k), S / gamma^i) candidates (paper 1.25; 1 = always
    # S, so iCEM and CEM can be compared at equal rollout count)
    sample_decay: float = 1.0
    seed: int = 0  # seeds the generator when solve() is not given one

    def __post_init__(self) -> None:
        _check(self.num_samples >= 1, f"icem.num_samples must be >= 1, got {self.num_samples}")
        _check(
            1 <= self.num_elites <= self.num_samples,
            f"icem.num_elites must be in [1, num_samples={self.num_samples}], "
            f"got {self.num_elites}",
        )
        _check(self.iterations >= 1, f"icem.iterations must be >= 1, got {self.iterations}")
        _check(self.init_std > 0, f"icem.init_std must be > 0, got {self.init_std}")
        _check(self.min_std >= 0, f"icem.min_std must be >= 0, got {self.min_std}")
        _check(self.noise_beta >= 0, f"icem.noise_beta must be >= 0, got {self.noise_beta}")
        _check(0 <= self.momentum < 1, f"icem.momentum must be in [0, 1), got {self.momentum}")
        _check(
            0 <= self.keep_elites <= self.num_elites and self.keep_elites < self.num_samples,
            f"icem.keep_elites must be in [0, min(num_elites={self.num_elites}, "
            f"num_samples-1={self.num_samples - 1})], got {self.keep_elites}",
        )
        _check(self.sample_decay >= 1, f"icem.sample_decay must be >= 1, got {self.sample_decay}")

    def samples_at(self, i: int) -> int:
        """Candidates scored at iteration ``i`` (0-based), kept elites included."""
        floor = min(self.num_samples, 2 * self.num_elites)
        return max(floor, int(self.num_samples / self.sample_decay**i))


class ICEM:
    """Improved CEM: CEM with coloured noise, elite reuse and momentum.

    Iteration i scores ``samples_at(i)`` candidates per episode: fresh ones
    ``mean + std * coloured_noise`` (candidate 0 = the current mean) plus the previous
    iteration's ``keep_elites`` best elites. The ``num_elites`` lowest-cost candidates give an
    elite mean/std that is blended into the current ones with ``momentum``. The plan returned is
    the lowest-cost candidate seen (the final mean is scored too), as in the paper, which
    executes the best elite rather than the mean.

    Warm start: ``init_mean`` (the controller's shifted previous plan) seeds the mean and is
    candidate 0 of the first iteration. Elites are not carried across ``solve`` calls: the
    solver is stateless (the episodes replanning together change from call to call), so the
    shifted previous plan is the only thing reused across calls.
    """

    needs_grad = False

    def __init__(self, config: ICEMConfig | None = None) -> None:
        self.config = config if config is not None else ICEMConfig()

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
        """Same contract as :meth:`CEM.solve`."""
        cfg = self.config
        B, H, Ab, k, a = batch, horizon, action_dim, cfg.num_elites, cfg.momentum
        dev, generator = _prepare(cfg.seed, B, H, Ab, device, init_mean, generator)
        with torch.inference_mode():
            mean = _start_mean(init_mean, B, H, Ab, dev, dtype)  # (B, H, Ab)
            std = torch.full((B, H, Ab), cfg.init_std, device=dev, dtype=dtype)  # (B, H, Ab)
            best = mean.clone()  # (B, H, Ab) lowest-cost candidate so far
            best_cost = torch.full((B,), float("inf"), device=dev)  # (B,)
            kept = mean.new_zeros(B, 0, H, Ab)  # (B, n_keep, H, Ab) elites carried over
            elite_costs = []
            for i in range(cfg.iterations):
                S_i = cfg.samples_at(i)
                n_new = S_i - kept.shape[1]
                noise = coloured_noise(
                    (B, n_new, Ab, H), cfg.noise_beta, generator, dev, dtype
                ).transpose(2, 3)  # (B, n_new, Ab, H) -> (B, n_new, H, Ab): coloured along H
                noise[:, 0] = 0.0  # candidate 0 is the current mean
                fresh = mean[:, None] + std[:, None] * noise  # (B, n_new, H, Ab)
                cand = torch.cat([fresh, kept], dim=1)  # (B, S_i, H, Ab)
                cost = _check_cost(cost_fn(cand), B, S_i)  # (B, S_i)
                top_cost, idx = torch.topk(cost, k, dim=1, largest=False)  # (B, k), (B, k)
                elites = torch.gather(
                    cand, 1, idx[:, :, None, None].expand(B, k, H, Ab)
                )  # (B, k, H, Ab), sorted by cost
                improved = top_cost[:, 0] < best_cost  # (B,)
                best = torch.where(improved[:, None, None], elites[:, 0], best)  # (B, H, Ab)
                best_cost = torch.where(improved, top_cost[:, 0], best_cost)  # (B,)
                fit_std = elites.std(dim=1, correction=1 if k > 1 else 0)  # (B, H, Ab)
                mean = a * mean + (1 - a) * elites.mean(dim=1)  # (B, H, Ab)
                std = a * std + (1 - a) * fit_std  # (B, H, Ab)
                if cfg.min_std > 0:
                    std = std.clamp_min(cfg.min_std)
                kept = elites[:, : cfg.keep_elites]  # (B, n_keep, H, Ab)
                elite_costs.append(top_cost.mean())
            mean_cost = _check_cost(cost_fn(mean[:, None]), B, 1)[:, 0]  # (B,)
            use_mean = mean_cost <= best_cost  # (B,) ties go to the mean
            plan = torch.where(use_mean[:, None, None], mean, best)  # (B, H, Ab)
            final_cost = torch.where(use_mean, mean_cost, best_cost)  # (B,)
            history = torch.stack(elite_costs).tolist()
        return SolveResult(
            actions=plan, cost=final_cost, iterations_run=cfg.iterations, history=history
        )

    def __repr__(self) -> str:
        return f"ICEM({self.config})"


# -- MPPI ----------------------------------------------------------------------------------------


@dataclass
class MPPIConfig:
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
        _check(self.num_samples >= 1, f"mppi.num_samples must be >= 1, got {self.num_samples}")
        _check(self.iterations >= 1, f"mppi.iterations must be >= 1, got {self.iterations}")
        _check(self.temperature > 0, f"mppi.temperature must be > 0, got {self.temperature}")
        _check(self.init_std > 0, f"mppi.init_std must be > 0, got {self.init_std}")
        _check(self.min_std >= 0, f"mppi.min_std must be >= 0, got {self.min_std}")
        _check(
            self.num_elites is None or 1 <= self.num_elites <= self.num_samples,
            f"mppi.num_elites must be None or in [1, num_samples={self.num_samples}], "
            f"got {self.num_elites}",
        )


class MPPI:
    """Model-predictive path integral: an importance-weighted mean update.

    Each iteration draws S candidates ~ N(mean, std^2) (candidate 0 = the current mean), scores
    them, and sets ``mean = sum_s w_s cand_s`` with ``w = softmax(-(cost - min cost) / lambda)``
    over each episode's candidates (or its ``num_elites`` best). NaN/inf costs get weight 0; an
    episode whose costs are all invalid keeps its mean. The final mean is returned.
    """

    needs_grad = False

    def __init__(self, config: MPPIConfig | None = None) -> None:
        self.config = config if config is not None else MPPIConfig()

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
        """Same contract as :meth:`CEM.solve`."""
        cfg = self.config
        B, H, Ab, S = batch, horizon, action_dim, cfg.num_samples
        k = S if cfg.num_elites is None else cfg.num_elites
        dev, generator = _prepare(cfg.seed, B, H, Ab, device, init_mean, generator)
        with torch.inference_mode():
            mean = _start_mean(init_mean, B, H, Ab, dev, dtype)  # (B, H, Ab)
            std = torch.full((B, H, Ab), cfg.init_std, device=dev, dtype=dtype)  # (B, H, Ab)
            weighted_costs = []
            for _ in range(cfg.iterations):
                noise = _randn((B, S, H, Ab), generator, dev, dtype)  # (B, S, H, Ab)
                noise[:, 0] = 0.0  # candidate 0 is the current mean
                cand = mean[:, None] + std[:, None] * noise  # (B, S, H, Ab)
                cost = _check_cost(cost_fn(cand), B, S)  # (B, S)
                if k < S:
                    cost, idx = torch.topk(cost, k, dim=1, largest=False)  # (B, k), (B, k)
                    cand = torch.gather(
                        cand, 1, idx[:, :, None, None].expand(B, k, H, Ab)
                    )  # (B, k, H, Ab)
                valid = torch.isfinite(cost)  # (B, k)
                any_valid = valid.any(dim=1)  # (B,)
                c_min = torch.where(valid, cost, torch.inf).amin(dim=1, keepdim=True)  # (B, 1)
                c_min = torch.where(any_valid[:, None], c_min, 0.0)  # (B, 1)
                logits = torch.where(valid, -(cost - c_min) / cfg.temperature, -torch.inf)
                w = torch.softmax(logits, dim=1)  # (B, k); NaN rows where nothing is valid
                w = torch.where(any_valid[:, None], w, 0.0).to(dtype)  # (B, k)
                new_mean = (w[:, :, None, None] * cand).sum(dim=1)  # (B, H, Ab)
                new_mean = torch.where(any_valid[:, None, None], new_mean, mean)  # (B, H, Ab)
                if cfg.adaptive_std:
                    var = (w[:, :, None, None] * (cand - new_mean[:, None]).pow(2)).sum(dim=1)
                    new_std = var.sqrt().clamp_min(cfg.min_std)  # (B, H, Ab)
                    std = torch.where(any_valid[:, None, None], new_std, std)  # (B, H, Ab)
                mean = new_mean
                wc = (w.float() * torch.where(valid, cost, 0.0)).sum(dim=1)  # (B,)
                weighted_costs.append(torch.where(any_valid, wc, torch.inf).mean())
            final_cost = _check_cost(cost_fn(mean[:, None]), B, 1)[:, 0]  # (B,)
            history = torch.stack(weighted_costs).tolist()
        return SolveResult(
            actions=mean, cost=final_cost, iterations_run=cfg.iterations, history=history
        )

    def __repr__(self) -> str:
        return f"MPPI({self.config})"


# -- gradient descent ----------------------------------------------------------------------------


@dataclass
class GradientConfig:
    """Adam on the plan through ``cost_fn``. ``make_solver("adam", iterations=n)`` sets
    ``steps``; ``num_elites`` (passed by ``lewm eval`` to every solver) is accepted and ignored.
    """

    # shared option names (lewm eval passes them to every solver) -> field, or None = ignored
    ALIASES: ClassVar[dict[str, str | None]] = {"iterations": "steps", "num_elites": None}

    num_samples: int = 100  # restarts per episode optimised in parallel (reference adam: 100)
    steps: int = 30  # Adam steps (reference: 30)
    lr: float = 0.1  # Adam learning rate in normalised action units (reference: 0.1)
    init_std: float = 1.0  # restarts ~ N(init_mean, init_std^2); restart 0 = init_mean
    # max L2 norm of each restart's gradient over its (H, Ab) plan; 0 = no clipping
    grad_clip: float = 0.0
    seed: int = 0  # seeds the generator when solve() is not given one

    def __post_init__(self) -> None:
        _check(self.num_samples >= 1, f"adam.num_samples must be >= 1, got {self.num_samples}")
        _check(self.steps >= 1, f"adam.steps must be >= 1, got {self.steps}")
        _check(self.lr > 0, f"adam.lr must be > 0, got {self.lr}")
        _check(self.init_std >= 0, f"adam.init_std must be >= 0, got {self.init_std}")
        _check(self.grad_clip >= 0, f"adam.grad_clip must be >= 0, got {self.grad_clip}")


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
        """Same contract as :meth:`CEM.solve`; ``init_mean`` is restart 0."""
        if torch.is_inference_mode_enabled():
            raise RuntimeError(
                "GradientSolver needs autograd: call solve() outside torch.inference_mode "
                "(Planner does so for solvers with needs_grad = True)"
            )
        cfg = self.config
        B, H, Ab, S = batch, horizon, action_dim, cfg.num_samples
        dev, generator = _prepare(cfg.seed, B, H, Ab, device, init_mean, generator)
        with torch.no_grad():
            mean = _start_mean(init_mean, B, H, Ab, dev, dtype)  # (B, H, Ab)
            noise = _randn((B, S, H, Ab), generator, dev, dtype)  # (B, S, H, Ab)
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
                cost = _check_cost(raw.detach(), B, S)  # (B, S), NaN -> inf
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
            track(final, _check_cost(cost_fn(final), B, S))
            best_costs.pop()  # the extra scoring is not an optimisation step
            history = torch.stack(best_costs).tolist()
        return SolveResult(
            actions=best.detach(), cost=best_cost, iterations_run=cfg.steps, history=history
        )

    def __repr__(self) -> str:
        return f"GradientSolver({self.config})"


# -- registry ------------------------------------------------------------------------------------

# name -> (config dataclass, solver class). New solvers register here.
SOLVERS: dict[str, tuple[type, type]] = {
    "cem": (CEMConfig, CEM),
    "icem": (ICEMConfig, ICEM),
    "mppi": (MPPIConfig, MPPI),
    "adam": (GradientConfig, GradientSolver),
}


def make_solver(name: str, **overrides: Any) -> Solver:
    """Build a registered solver from its default config with ``overrides`` applied.

    A config may declare ``ALIASES`` mapping option names shared by all solvers (the ones
    ``lewm eval`` passes: num_samples, num_elites, iterations, seed) to its own field, or to
    None to ignore them; e.g. ``make_solver("adam", iterations=10)`` sets ``steps=10``.

    >>> make_solver("cem", num_samples=64, iterations=10)
    """
    key = name.lower()
    if key not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; choose one of {sorted(SOLVERS)}")
    config_cls, solver_cls = SOLVERS[key]
    fields = {f.name for f in dataclasses.fields(config_cls)}
    aliases: dict[str, str | None] = getattr(config_cls, "ALIASES", {})
    options = {}
    for opt, value in overrides.items():
        if opt in fields or opt not in aliases:
            options[opt] = value
            continue
        target = aliases[opt]
        if target is None:
            log.debug("solver %r ignores option %s=%r", key, opt, value)
            continue
        if target in overrides:
            raise ValueError(
                f"options {opt!r} and {target!r} name the same setting of solver {key!r}; give one"
            )
        options[target] = value
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for solver {key!r}; valid options: "
            f"{sorted(fields | set(aliases))}"
        )
    return solver_cls(config_cls(**options))


def shift_plan(actions: Tensor, k: int) -> Tensor:
    """Warm start: drop the first ``k`` executed blocks and pad the tail with zeros (prior mean).

    actions (B, H, Ab) -> (B, H, Ab). ``k >= H`` gives all zeros.
    """
    if actions.ndim != 3:
        raise ValueError(f"actions must be (B, H, Ab), got shape {tuple(actions.shape)}")
    if k < 0:
        raise ValueError(f"shift k must be >= 0, got {k}")
    H = actions.shape[1]
    out = torch.zeros_like(actions)  # (B, H, Ab)
    if k < H:
        out[:, : H - k] = actions[:, k:]
    return out
