"""What every solver shares: argument checks, the start of a solve, the NaN-safe cost contract,
and :class:`SamplingSolver`, the one sample-score-refit loop of CEM, iCEM and MPPI.

A population solver subclasses :class:`SamplingSolver`, sets ``config_cls`` and overrides a few
hooks (how noise is drawn, how the Gaussian is refit, which plan is returned); the loop, its
contracts and its random draws are written once here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from lewm.planning.protocol import CostFn, SolveResult
from lewm.utils.config import SEED_MAX, check

# where a solver's config sits in the config tree; errors name keys as eval.solver.<field>
CONFIG_KEY = "eval.solver"


def check_kind(cfg: Any, kind: str) -> None:
    """ConfigError unless ``cfg.kind`` is ``kind`` (the registry name of ``cfg``'s class)."""
    check(
        cfg.kind == kind,
        f"{CONFIG_KEY}.kind must be {kind!r} for {type(cfg).__name__}, got {cfg.kind!r}",
    )


def check_option(cfg: Any, name: str, ok: bool, rule: str) -> None:
    """ConfigError ``eval.solver.<name> <rule>, got <value> (solver <kind>)`` unless ``ok``."""
    check(ok, f"{CONFIG_KEY}.{name} {rule}, got {getattr(cfg, name)!r} (solver {cfg.kind})")


MAX_SAMPLES = 10**6  # candidates (restarts) per episode: beyond any real budget
MAX_ITERATIONS = 10**5
_IN_SAMPLES = f"must be in [1, {MAX_SAMPLES}]"
_IN_ITERATIONS = f"must be in [1, {MAX_ITERATIONS}]"


def check_sampling_options(cfg: Any) -> None:
    """The checks every Gaussian sampling solver's config shares: num_samples, num_elites (when
    it is a number), iterations, init_std, min_std."""
    check_option(cfg, "num_samples", 1 <= cfg.num_samples <= MAX_SAMPLES, _IN_SAMPLES)
    if getattr(cfg, "num_elites", None) is not None:
        check_option(
            cfg,
            "num_elites",
            1 <= cfg.num_elites <= cfg.num_samples,
            f"must be in [1, num_samples={cfg.num_samples}]",
        )
    check_option(cfg, "iterations", 1 <= cfg.iterations <= MAX_ITERATIONS, _IN_ITERATIONS)
    check_option(cfg, "seed", 0 <= cfg.seed <= SEED_MAX, f"must be in [0, {SEED_MAX}]")
    check_option(cfg, "init_std", cfg.init_std > 0, "must be > 0")
    check_option(cfg, "min_std", cfg.min_std >= 0, "must be >= 0")


# -- helpers shared by every solver --------------------------------------------------------------


def check_sizes(B: int, H: int, Ab: int) -> None:
    if not (B >= 1 and H >= 1 and Ab >= 1):
        raise ValueError(f"batch, horizon, action_dim must be >= 1, got {(B, H, Ab)}")


def check_cost(cost: Tensor, B: int, S: int) -> Tensor:
    """Contract at the solver/cost seam: (B, S) costs; NaN counts as +inf (never an elite)."""
    if tuple(cost.shape) != (B, S):
        raise ValueError(f"cost_fn must return shape (B, S) = ({B}, {S}), got {tuple(cost.shape)}")
    return torch.nan_to_num(cost.float(), nan=float("inf"))


def prepare(
    seed: int,
    B: int,
    H: int,
    Ab: int,
    device: torch.device | str | None,
    init_mean: Tensor | None,
    generator: torch.Generator | None,
) -> tuple[torch.device, torch.Generator]:
    """Shared start of every ``solve``: check sizes, pick the device (``device``, else
    ``init_mean``'s, else CPU), and seed a generator from the config when none is given (so a
    call is a pure function of its inputs)."""
    check_sizes(B, H, Ab)
    if device is not None:
        dev = torch.device(device)
    else:
        dev = init_mean.device if init_mean is not None else torch.device("cpu")
    if generator is None:
        generator = torch.Generator(device=dev).manual_seed(seed)
    return dev, generator


def start_mean(
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


def randn(
    shape: tuple[int, ...], generator: torch.Generator, dev: torch.device, dtype: torch.dtype
) -> Tensor:
    """Standard normal noise drawn on the generator's device, then moved to ``dev``."""
    return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(dev)


def top_k(cand: Tensor, cost: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` lowest-cost candidates of each episode, sorted by cost.

    cand (B, S, H, Ab), cost (B, S) -> elites (B, k, H, Ab), their costs (B, k).
    """
    B, _, H, Ab = cand.shape
    top_cost, idx = torch.topk(cost, k, dim=1, largest=False)  # (B, k), (B, k)
    elites = torch.gather(cand, 1, idx[:, :, None, None].expand(B, k, H, Ab))  # (B, k, H, Ab)
    return elites, top_cost


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


# -- the sampling loop ---------------------------------------------------------------------------


@dataclass
class Search:
    """What a sampling solver carries from one iteration to the next (per episode)."""

    mean: Tensor  # (B, H, Ab) centre of the sampling Gaussian
    std: Tensor  # (B, H, Ab) its per-dimension std
    kept: Tensor  # (B, n_keep, H, Ab) candidates scored again next iteration (iCEM's elites)
    best: Tensor  # (B, H, Ab) lowest-cost candidate seen, for solvers that track it (iCEM)
    best_cost: Tensor  # (B,) its cost; +inf until a solver records one


class SamplingSolver:
    """Population-based search with a diagonal Gaussian over (H, Ab) per episode.

    Iteration i draws ``samples_at(i) - n_keep`` fresh candidates ``mean + std * noise`` per
    episode (candidate 0 = the current mean), appends the ``n_keep`` candidates the previous
    iteration kept, scores all of them with one ``cost_fn`` call (shape-checked, NaN -> +inf)
    and lets :meth:`refit` update the :class:`Search`. Then :meth:`result` picks the plan and
    its cost. Noise of shape (B, n, H, Ab) comes from one generator, so an episode's result
    depends only on its own costs (and on B), never on other episodes' costs.

    Subclasses set ``config_cls`` (a dataclass with ``num_samples``, ``iterations``,
    ``init_std`` and ``seed``) and override :meth:`refit`, and where they differ :meth:`noise`,
    :meth:`samples_at` and :meth:`result`.
    """

    needs_grad = False  # cost_fn is only evaluated, never differentiated
    config_cls: ClassVar[type]

    def __init__(self, config: Any | None = None) -> None:
        self.config = config if config is not None else self.config_cls()

    # -- hooks -----------------------------------------------------------------------------------

    def samples_at(self, i: int) -> int:
        """Candidates scored at iteration ``i`` (kept ones included)."""
        return self.config.num_samples

    def noise(
        self, shape: tuple[int, ...], generator: torch.Generator, dev: torch.device, dtype
    ) -> Tensor:
        """Unit-variance noise of shape (B, n, H, Ab); white by default."""
        return randn(shape, generator, dev, dtype)  # (B, n, H, Ab)

    def refit(self, search: Search, cand: Tensor, cost: Tensor) -> Tensor:
        """Update ``search`` from candidates (B, S, H, Ab) and their costs (B, S); return this
        iteration's diagnostic cost (a 0-d tensor, the mean over episodes) for the history."""
        raise NotImplementedError

    def result(self, search: Search, score: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor]:
        """The plan (B, H, Ab) to return and its cost (B,); ``score`` maps a plan (B, H, Ab) to
        its (B,) cost with one ``cost_fn`` call. Default: the final mean."""
        return search.mean, score(search.mean)

    # -- the loop --------------------------------------------------------------------------------

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
        B, H, Ab = batch, horizon, action_dim
        dev, generator = prepare(cfg.seed, B, H, Ab, device, init_mean, generator)
        with torch.inference_mode():
            mean = start_mean(init_mean, B, H, Ab, dev, dtype)  # (B, H, Ab)
            search = Search(
                mean=mean,
                std=torch.full((B, H, Ab), cfg.init_std, device=dev, dtype=dtype),  # (B, H, Ab)
                kept=mean.new_zeros(B, 0, H, Ab),  # (B, 0, H, Ab)
                best=mean.clone(),  # (B, H, Ab)
                best_cost=torch.full((B,), float("inf"), device=dev),  # (B,)
            )
            diagnostics = []
            for i in range(cfg.iterations):
                S, n_keep = self.samples_at(i), search.kept.shape[1]
                noise = self.noise((B, S - n_keep, H, Ab), generator, dev, dtype)  # (B, n, H, Ab)
                noise[:, 0] = 0.0  # candidate 0 is the current mean
                cand = search.mean[:, None] + search.std[:, None] * noise  # (B, n, H, Ab)
                if n_keep:
                    cand = torch.cat([cand, search.kept], dim=1)  # (B, S, H, Ab)
                cost = check_cost(cost_fn(cand), B, S)  # (B, S)
                diagnostics.append(self.refit(search, cand, cost))

            def score(plan: Tensor) -> Tensor:
                return check_cost(cost_fn(plan[:, None]), B, 1)[:, 0]  # (B, H, Ab) -> (B,)

            plan, plan_cost = self.result(search, score)  # (B, H, Ab), (B,)
            history = torch.stack(diagnostics).tolist()  # one device sync per solve
        return SolveResult(
            actions=plan, cost=plan_cost, iterations_run=cfg.iterations, history=history
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"
