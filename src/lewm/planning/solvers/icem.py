"""iCEM (Pinneri et al. 2020): CEM with coloured noise, elite reuse, momentum and sample decay."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from lewm.planning.solvers.base import (
    SamplingSolver,
    Search,
    check_kind,
    check_option,
    check_sampling_options,
    top_k,
)


@dataclass
class ICEMConfig:
    """iCEM (Pinneri et al. 2020). With the defaults and 300 samples it spends exactly CEM's
    budget: S cost evaluations per iteration (kept elites included), 30 iterations."""

    kind: str = "icem"  # registry name; selects this config in the config tree (eval.solver.kind)
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
        check_kind(self, "icem")
        check_sampling_options(self)
        check_option(self, "noise_beta", self.noise_beta >= 0, "must be >= 0")
        check_option(self, "momentum", 0 <= self.momentum < 1, "must be in [0, 1)")
        check_option(
            self,
            "keep_elites",
            0 <= self.keep_elites <= self.num_elites and self.keep_elites < self.num_samples,
            f"must be in [0, min(num_elites={self.num_elites}, "
            f"num_samples-1={self.num_samples - 1})]",
        )
        check_option(self, "sample_decay", self.sample_decay >= 1, "must be >= 1")

    def samples_at(self, i: int) -> int:
        """Candidates scored at iteration ``i`` (0-based), kept elites included."""
        floor = min(self.num_samples, 2 * self.num_elites)
        return max(floor, int(self.num_samples / self.sample_decay**i))


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
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    *lead, n = shape
    if n < 1:
        raise ValueError(f"the last axis of shape must be >= 1, got {tuple(shape)}")
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


class ICEM(SamplingSolver):
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

    config_cls = ICEMConfig

    def samples_at(self, i: int) -> int:
        return self.config.samples_at(i)

    def noise(
        self, shape: tuple[int, ...], generator: torch.Generator, dev: torch.device, dtype
    ) -> Tensor:
        B, n, H, Ab = shape
        return coloured_noise(
            (B, n, Ab, H), self.config.noise_beta, generator, dev, dtype
        ).transpose(2, 3)  # (B, n, Ab, H) -> (B, n, H, Ab): coloured along H

    def refit(self, search: Search, cand: Tensor, cost: Tensor) -> Tensor:
        cfg, s = self.config, search
        k, a = cfg.num_elites, cfg.momentum
        elites, top_cost = top_k(cand, cost, k)  # (B, k, H, Ab), (B, k), sorted by cost
        improved = top_cost[:, 0] < s.best_cost  # (B,)
        s.best = torch.where(improved[:, None, None], elites[:, 0], s.best)  # (B, H, Ab)
        s.best_cost = torch.where(improved, top_cost[:, 0], s.best_cost)  # (B,)
        fit_std = elites.std(dim=1, correction=1 if k > 1 else 0)  # (B, H, Ab)
        s.mean = a * s.mean + (1 - a) * elites.mean(dim=1)  # (B, H, Ab)
        s.std = a * s.std + (1 - a) * fit_std  # (B, H, Ab)
        if cfg.min_std > 0:
            s.std = s.std.clamp_min(cfg.min_std)
        s.kept = elites[:, : cfg.keep_elites]  # (B, n_keep, H, Ab)
        return top_cost.mean()  # history: the elites' mean cost

    def result(self, search: Search, score: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor]:
        """The lower-cost of the final mean and the best candidate seen (ties go to the mean)."""
        mean_cost = score(search.mean)  # (B,)
        use_mean = mean_cost <= search.best_cost  # (B,)
        plan = torch.where(use_mean[:, None, None], search.mean, search.best)  # (B, H, Ab)
        return plan, torch.where(use_mean, mean_cost, search.best_cost)
