"""Solvers: one contract test over every registered solver, then what is specific to each.

The shared contracts run for every entry of ``SOLVERS`` (a new solver gets them by registering,
plus one line in each per-solver table below): convergence on known quadratics, determinism,
independent episodes, NaN costs, the cost of the returned plan, warm start, shapes, configs.

Convergence tolerances are measured with the listed configs (seeds 0-5) and set >= 2x looser
than the worst seed, with the reason for each solver's floor next to its threshold (CEM's
coupled case, measured on the tested seeds only, says so).
"""

import ast
import importlib
import inspect
import json
import math
import pkgutil
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
from toys import PointModel

import lewm.planning.protocol
import lewm.planning.solvers
from lewm.planning import (
    CEM,
    ICEM,
    MPPI,
    SOLVERS,
    CEMConfig,
    GradientConfig,
    GradientSolver,
    ICEMConfig,
    MPPIConfig,
    Planner,
    SolveResult,
    coloured_noise,
    make_solver,
    shift_plan,
    solver_config,
)
from lewm.planning.solvers import SamplingSolver
from lewm.utils.config import ConfigError, apply_overrides, choice, from_dict, to_dict

pytestmark = pytest.mark.usefixtures("one_thread")

B, H, AB = 4, 5, 4  # episodes, horizon (blocks), block dim
N = H * AB
NAMES = sorted(SOLVERS)
# solvers that search (all but those returning a proposal they are given, e.g. ``policy``)
SEARCHING = sorted(n for n, (_, cls) in SOLVERS.items() if not getattr(cls, "needs_proposal", 0))
PROPOSING = sorted(set(NAMES) - set(SEARCHING))
# the population solvers that share SamplingSolver's loop (candidate 0 = the mean, ...)
SAMPLING = sorted(n for n, (_, cls) in SOLVERS.items() if issubclass(cls, SamplingSolver))


# -- problems with a known minimiser --------------------------------------------------------------


def _targets(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, H, AB, generator=g) * 3 - 1.5  # (B, H, Ab) in [-1.5, 1.5]


def _quadratic(target: torch.Tensor):
    def cost_fn(a: torch.Tensor) -> torch.Tensor:
        return (a - target[:, None]).pow(2).sum(dim=(-1, -2))  # (B, S, H, Ab) -> (B, S)

    return cost_fn


def _coupled(seed: int = 1):
    """Non-separable SPD quadratic (condition number ~8) and its minimiser."""
    g = torch.Generator().manual_seed(seed)
    M = torch.randn(B, N, N, generator=g) / N**0.5
    Q = M @ M.transpose(1, 2) + 0.5 * torch.eye(N)  # (B, N, N)
    target = _targets(seed + 1)

    def cost_fn(a):
        d = (a - target[:, None]).reshape(a.shape[0], a.shape[1], N)  # (B, S, N)
        return torch.einsum("bsi,bij,bsj->bs", d, Q, d)

    return cost_fn, target


def _smooth_targets() -> torch.Tensor:
    """Targets that vary linearly along the horizon (what a coloured-noise prior favours)."""
    g = torch.Generator().manual_seed(3)
    a = torch.rand(B, 1, AB, generator=g) * 2 - 1
    b = (torch.rand(B, 1, AB, generator=g) * 2 - 1) * 0.3
    return a + b * torch.arange(H)[None, :, None]  # (B, H, Ab)


def _start_cost(cost_fn) -> torch.Tensor:
    return cost_fn(torch.zeros(B, 1, H, AB))[:, 0]  # (B,) cost of the zero plan


def _assert_cost_of_plan(res, cost_fn):
    """SolveResult.cost is the cost of the returned plan."""
    assert res.actions.shape == (B, H, AB) and res.cost.shape == (B,)
    with torch.enable_grad():
        again = cost_fn(res.actions.detach()[:, None])[:, 0]
    torch.testing.assert_close(res.cost, again.detach(), rtol=1e-5, atol=1e-6)


def _small(name: str, **kw):
    """A cheap config every solver accepts (the options lewm eval passes)."""
    base = {"num_samples": 32, "iterations": 4, **kw}
    if name != "adam":
        base.setdefault("num_elites", 8)
    return make_solver(name, **base)


# -- shared contracts: convergence ---------------------------------------------------------------

# name -> (config overrides, atol on the separable quadratic, atol and max cost / start cost on
# the coupled one). Defaults that trade precision for robustness are tested further down.
CONVERGENCE = {
    # CEM, defaults: separable error <= 6e-4 (seeds 0-5). Coupled: a diagonal Gaussian converges
    # more slowly along coupled directions than on the sphere: <= 0.056, cost <= 6e-4 x start on
    # seeds 0 and 1 (seed 3 stalls at 0.27, 3e-3 x start)
    "cem": ({}, 1e-3, 0.1, 1e-3),
    # beta = 0 (white noise) isolates momentum, elite reuse and best-tracking: CEM-level accuracy
    # (CEM reaches 7e-5 here, this iCEM <= 5e-4; coupled <= 0.12, cost <= 2e-3 x start)
    "icem": ({"noise_beta": 0.0}, 2e-3, 0.25, 5e-3),
    # temperature 0.5 weighs the 30 elites almost like CEM; the std floor (0.1) bounds precision:
    # measured max error <= 0.061 (separable), <= 0.061 (coupled), cost <= 9e-4 x start
    "mppi": ({}, 0.12, 0.15, 3e-3),
    # given time to settle, Adam is precise (measured error <= 0.008 after 100 steps, cost 1e-5 x
    # start; the problem is convex, so a few restarts suffice)
    "adam": ({"num_samples": 8, "steps": 100}, 0.03, 0.03, 1e-4),
}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", SEARCHING)
def test_converges_on_known_quadratics(name, seed):
    overrides, sep_atol, coupled_atol, coupled_ratio = CONVERGENCE[name]
    solver = make_solver(name, seed=seed, **overrides)
    target = _targets()
    res = solver.solve(_quadratic(target), B, H, AB)
    _assert_cost_of_plan(res, _quadratic(target))
    torch.testing.assert_close(res.actions, target, atol=sep_atol, rtol=0)
    coupled, ct = _coupled()
    res = solver.solve(coupled, B, H, AB)
    _assert_cost_of_plan(res, coupled)
    torch.testing.assert_close(res.actions, ct, atol=coupled_atol, rtol=0)
    assert (res.cost < coupled_ratio * _start_cost(coupled)).all()


# -- shared contracts: determinism, independence, NaN, warm start, shapes -------------------------


@pytest.mark.parametrize("name", SEARCHING)
def test_deterministic_for_seed_and_generator(name):
    cost_fn = _quadratic(_targets())
    a = _small(name).solve(cost_fn, B, H, AB)
    b = _small(name).solve(cost_fn, B, H, AB)
    assert torch.equal(a.actions, b.actions) and a.history == b.history
    c = _small(name, seed=1).solve(cost_fn, B, H, AB)
    assert not torch.equal(a.actions, c.actions)
    # an explicit generator overrides config.seed
    d = _small(name).solve(cost_fn, B, H, AB, generator=torch.Generator().manual_seed(1))
    assert torch.equal(c.actions, d.actions)


@pytest.mark.parametrize("name", SEARCHING)
def test_episode_result_depends_only_on_its_own_cost(name):
    """Batched over episodes without leakage: changing other episodes' targets leaves episode 0
    bit-identical."""
    t1 = _targets(0)
    t2 = t1.clone()
    t2[1:] = _targets(7)[1:]
    r1 = _small(name).solve(_quadratic(t1), B, H, AB)
    r2 = _small(name).solve(_quadratic(t2), B, H, AB)
    assert torch.equal(r1.actions[0], r2.actions[0])
    assert not torch.equal(r1.actions[1:], r2.actions[1:])


@pytest.mark.parametrize("name", SEARCHING)
def test_nan_costs_are_never_chosen(name):
    target = _targets()

    def cost_fn(a):
        c = (a - target[:, None]).pow(2).sum(dim=(-1, -2))  # (B, S)
        bad = torch.zeros_like(c, dtype=torch.bool)
        bad[:, 1::2] = True  # half the candidates (restarts) are invalid
        bad |= a[..., 0, 0] > 1.0  # and a region of action space
        return torch.where(bad, torch.nan, c)

    res = make_solver(name, iterations=10).solve(cost_fn, B, H, AB)
    assert torch.isfinite(res.actions).all() and torch.isfinite(res.cost).all()
    assert (res.actions[:, 0, 0] <= 1.0).all()
    assert all(map(math.isfinite, res.history))
    _assert_cost_of_plan(res, cost_fn)


@pytest.mark.parametrize("name", SEARCHING)
def test_warm_start_and_shape_contracts(name):
    target = _targets()
    cost_fn = _quadratic(target)
    # starting at the optimum with a tiny spread stays there (one iteration: MPPI's std floor
    # would widen the search afterwards)
    kw = {"init_std": 1e-4, "iterations": 1}
    res = make_solver(name, **kw).solve(cost_fn, B, H, AB, init_mean=target)
    torch.testing.assert_close(res.actions, target, atol=2e-3, rtol=0)
    with pytest.raises(ValueError, match="init_mean"):
        make_solver(name).solve(cost_fn, B, H, AB, init_mean=target[:, :2])
    with pytest.raises(ValueError, match=r"\(B, S\)"):
        _small(name).solve(lambda a: a.sum(dim=(-1, -2, -3)), B, H, AB)
    with pytest.raises(ValueError, match="horizon"):
        _small(name).solve(cost_fn, B, 0, AB)


@pytest.mark.parametrize("name", SEARCHING)
def test_result_reports_one_history_entry_per_iteration(name):
    res = _small(name, iterations=3).solve(_quadratic(_targets()), B, H, AB)
    assert isinstance(res, SolveResult)
    assert res.actions.shape == (B, H, AB) and res.cost.shape == (B,)
    assert res.iterations_run == 3 and len(res.history) == 3
    assert not res.actions.requires_grad and res.actions.dtype == torch.float32


@pytest.mark.parametrize("name", PROPOSING)
def test_proposal_solvers_return_the_proposal_and_its_cost(name):
    """A solver that needs a proposal returns init_mean unchanged (for any seed), with its cost
    from one cost_fn call; it refuses to run without one, and keeps the shape contracts."""
    calls = []
    cost_fn = _quadratic(_targets())

    def counting(a):
        calls.append(a.shape)
        return cost_fn(a)

    init = _targets(5)
    a = make_solver(name).solve(counting, B, H, AB, init_mean=init)
    b = make_solver(name, seed=1).solve(cost_fn, B, H, AB, init_mean=init)
    assert torch.equal(a.actions, init) and torch.equal(a.actions, b.actions)
    assert a.actions is not init  # a copy
    _assert_cost_of_plan(a, cost_fn)
    assert calls == [(B, 1, H, AB)] and a.iterations_run == 0 and a.history == []
    assert not a.actions.requires_grad and a.actions.dtype == torch.float32
    nan = make_solver(name).solve(lambda x: cost_fn(x) * torch.nan, B, H, AB, init_mean=init)
    assert (nan.cost == torch.inf).all()
    assert getattr(SOLVERS[name][1], "needs_proposal", False)
    with pytest.raises(ValueError, match="init_mean"):
        make_solver(name).solve(cost_fn, B, H, AB)
    with pytest.raises(ValueError, match="init_mean"):
        make_solver(name).solve(cost_fn, B, H, AB, init_mean=init[:, :2])
    with pytest.raises(ValueError, match=r"\(B, S\)"):
        make_solver(name).solve(lambda x: x.sum(dim=(-1, -2, -3)), B, H, AB, init_mean=init)
    with pytest.raises(ValueError, match="horizon"):
        make_solver(name).solve(cost_fn, B, 0, AB, init_mean=init)


@pytest.mark.parametrize("name", SAMPLING)
def test_different_seeds_draw_different_samples_and_candidate0_is_mean(name):
    seen = {}
    init = _targets(5)

    def recorder(key):
        def cost_fn(a):
            seen.setdefault(key, []).append(a.clone())
            return a.pow(2).sum(dim=(-1, -2))

        return cost_fn

    for seed in (0, 1):
        solver = make_solver(name, num_samples=16, num_elites=8, iterations=2, seed=seed)
        solver.solve(recorder(seed), B, H, AB, init_mean=init)
    first0, first1 = seen[0][0], seen[1][0]  # (B, S, H, Ab) first-iteration candidates
    assert first0.shape == (B, 16, H, AB)
    assert not torch.equal(first0[:, 1:], first1[:, 1:])
    assert torch.equal(first0[:, 0], init) and torch.equal(first1[:, 0], init)
    # samples around the mean with std init_std
    spread = (first0[:, 1:] - init[:, None]).std()
    assert 0.8 < spread < 1.2
    # the last call scores only the returned plan
    assert seen[0][-1].shape == (B, 1, H, AB)


# -- shared contracts: configs -------------------------------------------------------------------

# name -> [(options, the key they make invalid, its value as the message prints it)]
BAD_CONFIGS = {
    "cem": [
        ({"num_samples": 10, "num_elites": 11}, "num_elites", "11"),
        ({"num_elites": 0}, "num_elites", "0"),
        ({"num_samples": 0}, "num_samples", "0"),
        ({"iterations": 0}, "iterations", "0"),
        ({"init_std": -1.0}, "init_std", "-1.0"),
        ({"min_std": -0.5}, "min_std", "-0.5"),
    ],
    "icem": [
        ({"noise_beta": -1.0}, "noise_beta", "-1.0"),
        ({"momentum": 1.0}, "momentum", "1.0"),
        ({"keep_elites": 31}, "keep_elites", "31"),
        ({"num_samples": 10, "num_elites": 11}, "num_elites", "11"),
        ({"sample_decay": 0.5}, "sample_decay", "0.5"),
        ({"iterations": 0}, "iterations", "0"),
    ],
    "mppi": [
        ({"temperature": 0.0}, "temperature", "0.0"),
        ({"num_elites": 301}, "num_elites", "301"),
        ({"min_std": -0.1}, "min_std", "-0.1"),
        ({"init_std": 0.0}, "init_std", "0.0"),
    ],
    "adam": [
        ({"lr": -0.1}, "lr", "-0.1"),
        ({"steps": 0}, "steps", "0"),
        ({"grad_clip": -1.0}, "grad_clip", "-1.0"),
        ({"num_samples": 0}, "num_samples", "0"),
    ],
    "policy": [({"seed": -1}, "seed", "-1")],
}


@pytest.mark.parametrize("name", NAMES)
def test_bad_config_raises_config_error_naming_key_and_value(name):
    config_cls = solver_config(name)
    wrong_kind = next(k for k in NAMES if k != name)
    cases = [*BAD_CONFIGS[name], ({"kind": wrong_kind}, "kind", repr(wrong_kind))]
    for kwargs, key, bad in cases:
        # the message names the key as it sits in the config tree, and the bad value
        pattern = rf"eval\.solver\.{key} .*got {re.escape(bad)}( |$)"
        with pytest.raises(ConfigError, match=pattern):
            config_cls(**kwargs)
        with pytest.raises(ConfigError, match=pattern):
            make_solver(name, **kwargs)
    assert issubclass(ConfigError, ValueError)  # callers catching ValueError keep working


@dataclass
class _EvalStub:
    """A stand-in for the eval config: its ``solver`` field holds the config chosen by kind."""

    solver: Any = choice(solver_config, CEMConfig)


@dataclass
class _Root:
    eval: _EvalStub = field(default_factory=_EvalStub)


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trips_and_selects_by_kind(name):
    config_cls, solver_cls = SOLVERS[name]
    assert solver_config(name) is config_cls
    default = config_cls()
    assert default.kind == name
    assert isinstance(make_solver(name), solver_cls) and make_solver(name).config == default
    custom = make_solver(name, seed=3, num_samples=64).config
    for cfg in (default, custom):
        assert from_dict(config_cls, to_dict(cfg)) == cfg
        assert from_dict(config_cls, json.loads(json.dumps(to_dict(cfg)))) == cfg  # via JSON
    # as a choice field of the config tree: the kind switches first, then its own fields apply
    tree = apply_overrides(_Root(), [f"eval.solver.kind={name}", "eval.solver.seed=4"])
    assert tree.eval.solver == config_cls(seed=4)
    assert from_dict(_Root, to_dict(tree)) == tree


def test_solver_config_unknown_kind_lists_registered_kinds():
    with pytest.raises(ConfigError, match=r"eval\.solver\.kind.*'nope'.*\['adam', 'cem'"):
        solver_config("nope")
    with pytest.raises(ConfigError, match=r"eval\.solver\.kind.*'nope'"):
        apply_overrides(_Root(), ["eval.solver.kind=nope"])
    with pytest.raises(ConfigError, match=r"eval\.solver\.iterations"):  # adam's is steps
        from_dict(_Root, {"eval": {"solver": {"kind": "adam", "iterations": 3}}})
    tree = apply_overrides(_Root(), ["eval.solver.kind=icem", "eval.solver.noise_beta=1"])
    assert tree.eval.solver == ICEMConfig(noise_beta=1.0)


# -- registry ------------------------------------------------------------------------------------


def test_make_solver_names_and_eval_overrides():
    assert {"cem", "icem", "mppi", "adam"} <= set(SOLVERS)
    eval_kw = {"num_samples": 40, "num_elites": 6, "iterations": 3, "seed": 5}  # as lewm eval
    types = {"cem": CEM, "icem": ICEM, "mppi": MPPI, "adam": GradientSolver}
    for name, cls in types.items():
        s = make_solver(name.upper(), **eval_kw)
        assert isinstance(s, cls) and s.config.num_samples == 40 and s.config.seed == 5
        assert s.needs_grad == (name == "adam")
    cem = make_solver("cem", **eval_kw)
    assert cem.config.num_elites == 6 and cem.config.iterations == 3
    assert make_solver("icem", **eval_kw).config.num_elites == 6
    assert make_solver("mppi", **eval_kw).config.num_elites == 6
    adam = make_solver("adam", **eval_kw)
    assert adam.config.steps == 3 and not hasattr(adam.config, "num_elites")
    assert make_solver("adam", steps=7).config.steps == 7
    with pytest.raises(ConfigError, match="iterations.*steps"):
        make_solver("adam", iterations=3, steps=4)


def test_make_solver_unknown_name_or_option_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"'adamw'.*\['adam', 'cem', 'icem', 'mppi', 'policy'\]"):
        make_solver("adamw")
    with pytest.raises(ConfigError, match=r"num_samplez.*valid options: \[.*'num_samples'"):
        make_solver("cem", num_samplez=3)
    with pytest.raises(ConfigError, match=r"temprature.*valid options: \[.*'temperature'"):
        make_solver("mppi", temprature=1.0)


def test_shift_plan():
    a = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    s = shift_plan(a, 2)
    assert torch.equal(s[:, :3], a[:, 2:]) and torch.equal(s[:, 3:], torch.zeros(2, 2, 3))
    assert torch.equal(shift_plan(a, 0), a)
    assert torch.equal(shift_plan(a, 5), torch.zeros_like(a))
    with pytest.raises(ValueError, match="-1"):
        shift_plan(a, -1)


def _imports(module) -> set[str]:
    """The modules ``module``'s source imports from (absolute names)."""
    tree = ast.parse(inspect.getsource(module))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_layering_protocol_below_solvers_below_planner():
    """protocol imports no solver (no cycle); solvers see cost functions, never the model side."""
    assert not {m for m in _imports(lewm.planning.protocol) if m.startswith("lewm.")}
    package = lewm.planning.solvers
    solver_modules = [package] + [
        importlib.import_module(f"{package.__name__}.{m.name}")
        for m in pkgutil.iter_modules(package.__path__)
    ]
    assert len(solver_modules) >= 6  # the package, base and one module per solver
    for module in solver_modules:
        lewm_imports = {m for m in _imports(module) if m.startswith("lewm.")}
        allowed = {"lewm.planning.protocol", "lewm.utils.config"}
        assert all(m in allowed or m.startswith("lewm.planning.solvers") for m in lewm_imports), (
            module.__name__,
            lewm_imports,
        )


# -- CEM -----------------------------------------------------------------------------------------


def test_cem_history_and_precision_on_separable_quadratic():
    target = _targets()
    res = CEM(CEMConfig()).solve(_quadratic(target), B, H, AB)
    assert res.iterations_run == 30 and len(res.history) == 30
    assert res.cost.max() < 1e-5
    h = res.history
    assert h[-1] < 1e-4 * h[0]
    assert sum(b > a for a, b in zip(h, h[1:], strict=False)) <= 2  # monotone-ish decrease


def test_cem_converges_with_half_the_costs_nan():
    target = _targets()

    def cost_fn(a):
        c = (a - target[:, None]).pow(2).sum(dim=(-1, -2))
        c[:, 1::2] = float("nan")  # half the candidates are invalid
        return c

    res = CEM(CEMConfig()).solve(cost_fn, B, H, AB)
    assert torch.isfinite(res.actions).all() and all(map(math.isfinite, res.history))
    assert (res.actions - target).abs().max() < 0.05


def test_cem_min_std_keeps_exploring():
    target = _targets()
    # with a std floor, the second iteration's samples keep spreading
    seen = []

    def cost_fn(a):
        seen.append(a.clone())
        return (a - target[:, None]).pow(2).sum(dim=(-1, -2))

    CEM(CEMConfig(num_samples=64, num_elites=4, iterations=2, init_std=1e-4, min_std=0.5)).solve(
        cost_fn, B, H, AB, init_mean=target
    )
    spread = (seen[1][:, 1:] - seen[1][:, :1]).std()
    assert spread > 0.3


# -- iCEM ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_icem_default_coloured_noise_favours_smooth_plans(seed):
    # default beta = 2 assumes smooth plans: on targets linear in time it converges (<= 0.06)
    smooth = _smooth_targets()
    res = ICEM(ICEMConfig(seed=seed)).solve(_quadratic(smooth), B, H, AB)
    torch.testing.assert_close(res.actions, smooth, atol=0.15, rtol=0)
    # on independent per-step targets the weak high-frequency noise (14 % of the power for H = 5)
    # makes the refit stall early (measured <= 2 % of the start cost, error <= 0.4)
    cost_fn = _quadratic(_targets())
    res = ICEM(ICEMConfig(seed=seed)).solve(cost_fn, B, H, AB)
    _assert_cost_of_plan(res, cost_fn)
    assert (res.cost < 0.06 * _start_cost(cost_fn)).all()
    coupled, _ = _coupled()
    res = ICEM(ICEMConfig(seed=seed)).solve(coupled, B, H, AB)
    _assert_cost_of_plan(res, coupled)
    assert (res.cost < 0.15 * _start_cost(coupled)).all()  # measured <= 0.06


def test_icem_sample_decay_and_elite_reuse():
    seen = []
    target = _targets()

    def cost_fn(a):
        seen.append(a.clone())
        return _quadratic(target)(a)

    cfg = ICEMConfig(num_samples=100, num_elites=10, iterations=5, sample_decay=2.0)
    ICEM(cfg).solve(cost_fn, B, H, AB)
    # S / gamma^i with a floor of 2k; the last call scores the final mean
    assert [s.shape[1] for s in seen] == [100, 50, 25, 20, 20, 1]
    # the 5 best candidates of an iteration are the last 5 candidates of the next one
    c0 = _quadratic(target)(seen[0])  # (B, 100)
    best5 = torch.gather(
        seen[0], 1, c0.topk(5, dim=1, largest=False).indices[:, :, None, None].expand(B, 5, H, AB)
    )
    assert torch.equal(seen[1][:, -5:], best5)
    # defaults spend exactly CEM's budget: 300 candidates in each of 30 iterations
    assert [ICEMConfig().samples_at(i) for i in (0, 29)] == [300, 300]


def test_icem_returns_the_best_candidate_seen():
    """The plan is the lowest-cost candidate of any iteration (or the final mean if lower)."""
    seen = []
    target = _targets()

    def cost_fn(a):
        seen.append(a.clone())
        return _quadratic(target)(a)

    cfg = ICEMConfig(num_samples=16, num_elites=4, keep_elites=2, iterations=3)
    res = ICEM(cfg).solve(cost_fn, B, H, AB)
    lowest = torch.stack([_quadratic(target)(c).amin(dim=1) for c in seen]).amin(dim=0)  # (B,)
    torch.testing.assert_close(res.cost, lowest)


def test_icem_samples_are_correlated_along_horizon():
    seen = []
    ICEM(ICEMConfig(num_samples=2000, num_elites=10, iterations=1)).solve(
        lambda a: seen.append(a.clone()) or a.sum(dim=(-1, -2)), 1, 8, 2
    )
    x = seen[0][0, 1:]  # (S-1, H, Ab) first-iteration noise (mean 0, std 1)
    assert 0.9 < x.std() < 1.1
    lag1 = (x[:, 1:] * x[:, :-1]).mean()  # correlation of neighbouring blocks
    assert lag1 > 0.4  # theory for H = 8, beta = 2: 0.58; white noise: 0
    across = (x[..., 0] * x[..., 1]).mean()  # action dims stay independent
    assert abs(across) < 0.05


def test_coloured_noise_spectrum():
    """beta = 2 puts far more power at low frequencies than white noise; the log-log slope of
    the power spectrum is ~ -beta; every element has unit variance."""
    n = 64
    g = torch.Generator().manual_seed(0)
    power = {}
    for beta in (0.0, 1.0, 2.0):
        x = coloured_noise((4000, n), beta, g)  # (4000, n)
        assert abs(x.var().item() - 1) < 0.03
        assert abs(x.mean().item()) < 0.03
        power[beta] = torch.fft.rfft(x, dim=-1).abs().pow(2).mean(dim=0)  # (n//2 + 1,)
        f = torch.fft.rfftfreq(n)[1:-1]
        slope = np.polyfit(np.log(f.numpy()), np.log(power[beta][1:-1].numpy()), 1)[0]
        assert abs(slope + beta) < 0.15, (beta, slope)
    low = slice(0, n // 8 + 1)  # DC and the lowest eighth of the frequencies
    frac = {b: (p[low].sum() / p.sum()).item() for b, p in power.items()}
    assert frac[0.0] < 0.35 and frac[2.0] > 0.9  # white: 9 of 33 bins (0.27); beta = 2: ~all
    # white noise is flat (every bin within 15 % of the mean)
    flat = power[0.0][1:-1]
    assert (flat / flat.mean() - 1).abs().max() < 0.15
    # and the colouring is along the last axis only, for any shape
    y = coloured_noise((3, 5, 7), 2.0, g)
    assert y.shape == (3, 5, 7) and y.dtype == torch.float32
    with pytest.raises(ValueError, match="-1"):
        coloured_noise((3, 5), -1.0, g)


# -- MPPI ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_mppi_with_fixed_std_over_all_samples_converges(seed):
    # fixed std (classic MPPI) with a std matched to the temperature also converges (<= 0.1)
    target = _targets()
    res = MPPI(MPPIConfig(adaptive_std=False, init_std=0.3, num_elites=None, seed=seed)).solve(
        _quadratic(target), B, H, AB
    )
    _assert_cost_of_plan(res, _quadratic(target))
    torch.testing.assert_close(res.actions, target, atol=0.25, rtol=0)


def test_mppi_all_invalid_episode_keeps_its_mean():
    target = _targets()
    init = torch.full((B, H, AB), 0.25)

    def cost_fn(a):
        c = (a - target[:, None]).pow(2).sum(dim=(-1, -2))
        c[0] = torch.nan  # episode 0 never gets a valid cost
        return c

    res = MPPI(MPPIConfig(num_samples=32, iterations=3)).solve(cost_fn, B, H, AB, init_mean=init)
    assert torch.equal(res.actions[0], init[0]) and res.cost[0] == torch.inf
    assert torch.isfinite(res.actions).all()


# -- Adam (gradient) -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_adam_defaults_reduce_the_cost(seed):
    # Adam moves each coordinate ~lr per step: with the defaults (lr 0.1, 30 steps) it needs
    # ~15 steps to travel 1.5 and then rings at ~lr (measured error 0.28, cost <= 2 % of start)
    cost_fn = _quadratic(_targets())
    res = GradientSolver(GradientConfig(seed=seed)).solve(cost_fn, B, H, AB)
    _assert_cost_of_plan(res, cost_fn)
    assert res.iterations_run == 30 and len(res.history) == 30
    assert (res.cost < 0.05 * _start_cost(cost_fn)).all()


def test_adam_grad_clip_is_per_restart():
    """Clipping each restart's gradient keeps episodes independent (a global clip would let
    episode 1's huge gradient shrink episode 0's) and still converges."""
    target = _targets()
    scale = torch.ones(B)
    scale[1] = 1e6  # episode 1's cost (and gradient) is a million times larger

    def scaled(a):
        return scale[:, None] * _quadratic(target)(a)

    cfg = GradientConfig(num_samples=8, steps=100, grad_clip=1.0)
    r1 = GradientSolver(cfg).solve(_quadratic(target), B, H, AB)
    r2 = GradientSolver(cfg).solve(scaled, B, H, AB)
    assert torch.equal(r1.actions[0], r2.actions[0])
    torch.testing.assert_close(r2.actions, target, atol=0.05, rtol=0)


def test_gradient_solver_refuses_inference_mode_and_non_differentiable_cost():
    cost_fn = _quadratic(_targets())
    s = GradientSolver(GradientConfig(num_samples=4, steps=2))
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        s.solve(cost_fn, B, H, AB)
    with pytest.raises(RuntimeError, match="differentiable"):
        s.solve(lambda a: cost_fn(a.detach()), B, H, AB)
    # under no_grad (how Planner calls a needs_grad solver) it works
    with torch.no_grad():
        res = s.solve(cost_fn, B, H, AB)
    assert torch.isfinite(res.cost).all() and not res.actions.requires_grad


def test_adam_plans_through_planner_with_point_model(point_task):
    start, goal, obs, goal_px = point_task
    model = PointModel(frameskip=2)
    planner = Planner(model, make_solver("adam", num_samples=8, steps=100), horizon=5)
    res = planner.plan(obs, goal_px, None)
    assert res.actions.shape == (2, 5, 4) and not res.actions.requires_grad
    assert res.cost.max() < 1e-2  # predicted terminal position within 0.1 of the goal
    steps = res.actions.reshape(2, 10, 2).numpy()  # (B, H*f, A)
    torch.testing.assert_close(
        torch.tensor(start + steps.sum(1)), torch.tensor(goal), atol=0.1, rtol=0
    )


def test_adam_plans_through_tiny_lewm_without_touching_parameters(tiny_config):
    from lewm.models import LeWM

    cfg = tiny_config.model
    model = LeWM(cfg).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    s = cfg.encoder.image_size
    g = np.random.default_rng(0)
    obs = torch.from_numpy(g.integers(0, 256, (2, 2, s, s, 3), dtype=np.uint8))  # C = 2
    goal = torch.from_numpy(g.integers(0, 256, (2, s, s, 3), dtype=np.uint8))
    hist = torch.zeros(2, 1, model.action_block_dim)
    solver = GradientSolver(GradientConfig(num_samples=3, steps=5))
    res = Planner(model, solver, horizon=2, receding=1).plan(obs, goal, hist)
    assert res.actions.shape == (2, 2, model.action_block_dim)
    assert torch.isfinite(res.cost).all()
    assert res.cost.mean() <= res.history[0]  # no worse than the best restart at step 0
    assert all(p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
