"""Solvers: minimise a cost over action sequences, batched over episodes x candidates.

A solver sees only ``cost_fn(actions (B, S, H, Ab)) -> (B, S)``, never the world model, and
returns a :class:`~lewm.planning.protocol.SolveResult`. Each solver is one module holding its
config dataclass and its class, and one line in ``SOLVERS``; :func:`make_solver` builds any of
them and :func:`solver_config` gives the config class of a ``kind`` (for the config tree):

- ``cem``: cross-entropy method, the paper's planner (:class:`CEM`).
- ``icem``: improved CEM (Pinneri et al. 2020): coloured noise along the horizon, elites kept
  between iterations, momentum on the refit, optional sample decay (:class:`ICEM`).
- ``mppi``: importance-weighted mean update with temperature lambda (:class:`MPPI`).
- ``adam``: gradient descent on the plan through a differentiable ``cost_fn`` (Adam, several
  restarts; :class:`GradientSolver`). It sets ``needs_grad = True``, which tells the
  :class:`~lewm.planning.mpc.Planner` to build ``cost_fn`` outside ``torch.inference_mode``.
- ``policy``: the amortised planner: returns the proposal of a trained goal-conditioned policy
  (given as ``init_mean`` by the Planner) without any search (:class:`ProposalSolver`). It sets
  ``needs_proposal = True``: a Planner without a proposal refuses it.

CEM, iCEM and MPPI share one sample-score-refit loop (:class:`~.base.SamplingSolver`). Every
solver is deterministic for a seed on CPU, treats NaN costs as +inf (never selected), and
reports in ``SolveResult.cost`` the cost of the plan it returns.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from lewm.planning.protocol import Solver, SolveResult
from lewm.planning.solvers.base import CONFIG_KEY, SamplingSolver, shift_plan
from lewm.planning.solvers.cem import CEM, CEMConfig
from lewm.planning.solvers.gradient import GradientConfig, GradientSolver
from lewm.planning.solvers.icem import ICEM, ICEMConfig, coloured_noise
from lewm.planning.solvers.mppi import MPPI, MPPIConfig
from lewm.planning.solvers.policy import ProposalConfig, ProposalSolver
from lewm.utils.config import ConfigError

log = logging.getLogger(__name__)

# kind -> (config dataclass, solver class). A new solver is one module and one line here.
SOLVERS: dict[str, tuple[type, type]] = {
    "cem": (CEMConfig, CEM),
    "icem": (ICEMConfig, ICEM),
    "mppi": (MPPIConfig, MPPI),
    "adam": (GradientConfig, GradientSolver),
    "policy": (ProposalConfig, ProposalSolver),
}


def solver_config(kind: str) -> type:
    """The config dataclass of a registered solver ``kind`` (the chooser of ``eval.solver``)."""
    if kind not in SOLVERS:
        raise ConfigError(
            f"{CONFIG_KEY}.kind: unknown solver {kind!r}; registered kinds: {sorted(SOLVERS)}"
        )
    return SOLVERS[kind][0]


def make_solver(name: str, **overrides: Any) -> Solver:
    """Build a registered solver from its default config with ``overrides`` applied.

    A config may declare ``ALIASES`` mapping option names shared by all solvers (the ones
    ``lewm eval`` passes: num_samples, num_elites, iterations, seed) to its own field, or to
    None to ignore them; e.g. ``make_solver("adam", iterations=10)`` sets ``steps=10``.

    >>> make_solver("cem", num_samples=64, iterations=10)
    """
    key = name.lower()
    if key not in SOLVERS:
        raise ConfigError(f"unknown solver {name!r}; choose one of {sorted(SOLVERS)}")
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
            raise ConfigError(
                f"options {opt!r} and {target!r} name the same setting of solver {key!r}; give one"
            )
        options[target] = value
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {unknown} for solver {key!r}; valid options: "
            f"{sorted(fields | set(aliases))}"
        )
    return solver_cls(config_cls(**options))


__all__ = [
    "CEM",
    "ICEM",
    "MPPI",
    "SOLVERS",
    "CEMConfig",
    "GradientConfig",
    "GradientSolver",
    "ICEMConfig",
    "MPPIConfig",
    "ProposalConfig",
    "ProposalSolver",
    "SamplingSolver",
    "SolveResult",
    "coloured_noise",
    "make_solver",
    "shift_plan",
    "solver_config",
]
