"""Solvers: minimise a cost over action sequences, batched over episodes x candidates.

A solver sees only ``cost_fn(actions (B, S, H, Ab)) -> (B, S)``, never the world model, and
returns a :class:`SolveResult`. Solvers are registered in ``SOLVERS`` by name with their config
dataclass, so new ones (iCEM, MPPI, gradient) slot in behind :func:`make_solver` with the same
``solve`` signature.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from lewm.planning.protocol import CostFn, Solver


@dataclass
class SolveResult:
    """The outcome of one ``solve`` call.

    actions: (B, H, Ab) the returned plan (for CEM the final mean), normalised action blocks.
    cost: (B,) the cost of the returned plan itself (evaluated once more after the last update).
    iterations_run: optimisation iterations performed.
    history: per iteration, the mean over episodes of the elites' mean cost (diagnostics only).
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


def _as_device(device: torch.device | str | None, init_mean: Tensor | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return init_mean.device if init_mean is not None else torch.device("cpu")


def _check_cost(cost: Tensor, B: int, S: int) -> Tensor:
    """Contract at the solver/cost seam: (B, S) costs; NaN counts as +inf (never an elite)."""
    if tuple(cost.shape) != (B, S):
        raise ValueError(f"cost_fn must return shape (B, S) = ({B}, {S}), got {tuple(cost.shape)}")
    return torch.nan_to_num(cost.float(), nan=float("inf"))


class CEM:
    """Cross-entropy method with a diagonal Gaussian over (H, Ab) per episode.

    Each iteration draws S candidates ~ N(mean, std^2) for every episode, forces candidate 0 to
    the current mean, scores all B x S candidates with one ``cost_fn`` call, and refits mean and
    std (unbiased, per dimension) to the ``num_elites`` lowest-cost candidates of each episode.
    No smoothing and no clipping to action bounds (as the reference). The final mean is
    returned. Noise has shape (B, S, H, Ab) drawn from one generator, so an episode's result
    depends only on its own costs (and on B), never on other episodes' costs.
    """

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
        _check(
            B >= 1 and H >= 1 and Ab >= 1,
            f"batch, horizon, action_dim must be >= 1, got {(B, H, Ab)}",
        )
        dev = _as_device(device, init_mean)
        if generator is None:
            generator = torch.Generator(device=dev).manual_seed(cfg.seed)
        with torch.inference_mode():
            if init_mean is None:
                mean = torch.zeros(B, H, Ab, device=dev, dtype=dtype)  # (B, H, Ab)
            else:
                if tuple(init_mean.shape) != (B, H, Ab):
                    raise ValueError(
                        f"init_mean must have shape (B, H, Ab) = {(B, H, Ab)}, "
                        f"got {tuple(init_mean.shape)}"
                    )
                mean = init_mean.to(device=dev, dtype=dtype).clone()  # (B, H, Ab)
            std = torch.full((B, H, Ab), cfg.init_std, device=dev, dtype=dtype)  # (B, H, Ab)
            elite_costs = []
            for _ in range(cfg.iterations):
                noise = torch.randn(
                    (B, S, H, Ab), generator=generator, device=generator.device, dtype=dtype
                ).to(dev)  # (B, S, H, Ab)
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


# name -> (config dataclass, solver class). New solvers register here.
SOLVERS: dict[str, tuple[type, type]] = {"cem": (CEMConfig, CEM)}


def make_solver(name: str, **overrides: Any) -> Solver:
    """Build a registered solver from its default config with ``overrides`` applied.

    >>> make_solver("cem", num_samples=64, iterations=10)
    """
    key = name.lower()
    if key not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; choose one of {sorted(SOLVERS)}")
    config_cls, solver_cls = SOLVERS[key]
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for solver {key!r}; valid options: {sorted(fields)}"
        )
    return solver_cls(config_cls(**overrides))


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
