"""The environment registry: one :class:`EnvSpec` per environment, registered by its package.

An environment is a folder ``lewm/envs/<name>/`` whose ``__init__`` ends with one
``register(EnvSpec(...))``. Everything else in the library (the ``lewm collect`` command, probes,
surprise, latent maps, evaluation) asks the spec, never a concrete class. The spec holds plain
callables, so building it imports nothing heavy: an environment's optional dependencies (pymunk,
OpenCV) and the data layer (h5py) are imported when a callable runs.

Axes: N states (or frames), S state size, G goal size, r image resolution, A action size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

# collect(out, episodes, *, resolution, seed, max_steps, overwrite, progress, workers, **options)
#     -> stats; a seed gives the same arrays for any number of worker processes (lewm.envs.parallel)
Collector = Callable[..., dict[str, Any]]
# render(states (N, S), resolution, **style) -> frames (N, r, r, 3) uint8
Renderer = Callable[..., np.ndarray]
# success(states (..., S), goals (..., G)) -> bool (...)
Success = Callable[[np.ndarray, np.ndarray], np.ndarray]
# quantity(states (N, S)) -> values (N, k)
Quantity = Callable[[np.ndarray], np.ndarray]
# surprise(n, steps, perturb_step, resolution, seed, **data_attrs keywords) -> {"none" | "colour"
#     | "teleport": (frames (n, steps+1, r, r, 3) uint8, actions (n, steps, A) float32)}, one
#     frame per env step
Surprise = Callable[..., dict[str, tuple[np.ndarray, np.ndarray]]]
# state_grid(n) -> (states (M, S), positions (M, 2) that colour the map, names of the 2 axes)
StateGrid = Callable[[int], tuple[np.ndarray, np.ndarray, list[str]]]


@dataclass(frozen=True, eq=False)  # one spec per environment: compared (and hashed) by identity
class EnvSpec:
    """Everything the library asks of one environment."""

    name: str  # short name used everywhere ("tworoom"), also the ``env`` attr of its data files
    id: str  # gymnasium id ("lewm/TwoRoom-v0")
    entry_point: str  # "module:Class" for gymnasium.register
    max_episode_steps: int  # the TimeLimit gymnasium.make adds
    collect: Collector  # scripted-expert data collection into the episode HDF5 format
    render: Renderer  # batch rendering without an env instance (goal images, latent maps)
    success: Success  # the env's success test, vectorised
    collect_options: tuple[str, ...] = ()  # its own keyword options beyond the common ones
    quantities: Mapping[str, Quantity] = field(default_factory=dict)  # probe targets by name
    # matched none/colour/teleport trajectories: (n, steps, perturb_step, resolution, seed,
    # **data_attrs keywords) -> {condition: (frames, actions)}
    surprise: Surprise | None = None
    state_grid: StateGrid | None = None  # states on an n x n grid for latent maps
    extra: str | None = None  # the pip extra with the optional dependencies ("pusht")
    # eval.* overrides an honest evaluation of this env needs, applied after the preset's eval
    # section and before the user's (Cube: "eval.exclude_solved=true")
    eval_defaults: tuple[str, ...] = ()
    # constructor keywords the collector records as file attributes (Cube: "look"): evaluation
    # on that file builds the env with them, so its frames look like the data's
    data_attrs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"an environment name is a plain identifier, got {self.name!r}")
        module, _, attr = self.entry_point.partition(":")
        if not module or not attr:
            raise ValueError(f"entry_point must be 'module:Class', got {self.entry_point!r}")
        if self.max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {self.max_episode_steps}")
        for key in ("collect", "render", "success"):
            if not callable(getattr(self, key)):
                raise ValueError(f"{self.name}: {key} must be callable, got {getattr(self, key)!r}")
        if isinstance(self.collect_options, str) or not all(
            isinstance(o, str) for o in self.collect_options
        ):
            raise ValueError(
                f"{self.name}: collect_options must be a tuple of option names, "
                f"got {self.collect_options!r}"
            )

        for key in ("eval_defaults", "data_attrs"):
            value = getattr(self, key)
            if isinstance(value, str) or not all(isinstance(o, str) for o in value):
                raise ValueError(f"{self.name}: {key} must be a tuple of strings, got {value!r}")
        if not all(o.startswith("eval.") and "=" in o for o in self.eval_defaults):
            raise ValueError(
                f"{self.name}: eval_defaults are eval.KEY=VALUE overrides, got {self.eval_defaults}"
            )

    @property
    def install_hint(self) -> str:
        """How to install what the environment needs ('' when nothing beyond lewm)."""
        return f"pip install 'lewm[{self.extra}]'" if self.extra else ""


def check_collection(
    out: Any, episodes: int, resolution: int, max_steps: int, overwrite: bool, **positive: float
) -> None:
    """The checks every collector makes before any work: sizes, its own options that must be
    >= 0 (``positive``), and an existing ``out`` that may not be replaced without ``overwrite``."""
    from lewm.utils.io import refuse_existing

    if not 1 <= episodes <= 10**7:
        raise ValueError(f"episodes (--episodes) must be in [1, 1e7], got {episodes}")
    if int(resolution) != resolution or not 8 <= resolution <= 4096:
        raise ValueError(
            f"resolution (--resolution) must be an integer in [8, 4096], got {resolution}"
        )
    if not 1 <= max_steps <= 10**6:
        raise ValueError(f"max_steps (--max-steps) must be in [1, 1e6], got {max_steps}")
    for name, value in positive.items():
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    refuse_existing(out, overwrite, "dataset")


RESET_OPTIONS = ("state", "goal_state")  # what every registered env's reset accepts


def reset_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``options`` of a registered env's ``reset`` as a dict; one ValueError naming the
    accepted keys when it holds any other."""
    options = dict(options or {})
    unknown = set(options) - set(RESET_OPTIONS)
    if unknown:
        raise ValueError(f"unknown reset option(s) {sorted(unknown)}; use 'state', 'goal_state'")
    return options


def window_pairs(episodes: list[np.ndarray], window: int) -> tuple[np.ndarray, np.ndarray]:
    """The states (N, S) at the start and at the end of every ``window``-step span (stride 1)
    of the episodes' states (each (L, S)), pooled: what the collectors' motion statistics
    compare (the evaluation's goal lies ``window`` steps after its start). One ValueError when no
    episode is longer than the window."""
    spans = [np.asarray(s, np.float64) for s in episodes if len(s) > window]
    if not spans:
        raise ValueError(f"no episode is longer than the {window}-step window")
    return (
        np.concatenate([s[:-window] for s in spans]),
        np.concatenate([s[window:] for s in spans]),
    )


ENVS: dict[str, EnvSpec] = {}  # short name -> spec, filled by the env packages at import


def register(spec: EnvSpec) -> EnvSpec:
    """Add ``spec`` to :data:`ENVS` and register its id with gymnasium; a name or id already
    taken is refused."""
    if spec.name in ENVS:
        raise ValueError(f"environment {spec.name!r} is already registered")
    taken = {s.id: s.name for s in ENVS.values()}
    if spec.id in taken:
        raise ValueError(f"gymnasium id {spec.id!r} is already used by {taken[spec.id]!r}")
    ENVS[spec.name] = spec
    _register_gym(spec)
    return spec


def get_spec(name: str) -> EnvSpec:
    """The spec of environment ``name``; an unknown name is a ValueError listing the others."""
    try:
        return ENVS[name]
    except KeyError:
        raise ValueError(
            f"unknown environment {name!r}; available: {', '.join(sorted(ENVS))}"
        ) from None


def _register_gym(spec: EnvSpec) -> None:
    if spec.id not in gym.registry:
        gym.register(
            id=spec.id, entry_point=spec.entry_point, max_episode_steps=spec.max_episode_steps
        )


def register_envs() -> None:
    """Register every environment of :data:`ENVS` with gymnasium (idempotent)."""
    for spec in ENVS.values():
        _register_gym(spec)


# name prefix -> factory(name, **kwargs) for environments that are not registered specs:
# "gym:" (any Gymnasium id, through lewm.envs.gym_adapter), added by lewm/envs/__init__.py
FACTORIES: dict[str, Callable[..., gym.Env]] = {}


def make_env(name: str, **kwargs: Any) -> gym.Env:
    """The bare environment ``name`` (e.g. ``"tworoom"``) built with constructor ``kwargs``:
    no TimeLimit, no checker wrappers, so ``env.render_state`` and ``env.state`` are reachable and
    the caller owns the step budget. A name with a prefix of :data:`FACTORIES` is built by that
    factory instead: ``make_env("gym:ID", resolution=R, make={...}, adapter={...})`` is any
    Gymnasium environment behind :class:`lewm.envs.gym_adapter.GymAdapter`."""
    for prefix, factory in FACTORIES.items():
        if name.startswith(prefix):
            return factory(name, **kwargs)
    spec = get_spec(name)
    _register_gym(spec)
    return gym.make(spec.id, disable_env_checker=True, **kwargs).unwrapped


def data_env_options(
    env_name: str, dataset: Any, options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``options`` plus the constructor keywords the env's collector recorded in a data file's
    attributes (``EnvSpec.data_attrs``, e.g. Cube's ``look``), so the env renders like the data;
    a keyword given in ``options`` wins. ``dataset``: anything with an ``attrs`` mapping."""
    out = dict(options or {})
    spec = ENVS.get(env_name)
    attrs = getattr(dataset, "attrs", None) or {}
    for key in spec.data_attrs if spec is not None else ():
        if key in attrs and key not in out:
            value = attrs[key]
            out[key] = value.decode() if isinstance(value, bytes) else value
    return out
