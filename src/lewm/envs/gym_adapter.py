"""Any Gymnasium environment as a lewm environment: ``make_env("gym:ID", ...)``.

lewm's evaluation and collection ask an environment for four things (see
:mod:`lewm.planning.evaluate`): ``reset(seed, options={"state": s, "goal_state": g})`` puts it in
a dataset state, ``render()`` gives the current frame at the dataset's resolution,
``render_state(s)`` gives a goal image, and ``info["success"]`` says whether the task is solved.
:class:`GymAdapter` wraps an environment made by ``gymnasium.make`` and gives it that interface,
configured by data (:class:`GymAdapterConfig`), never by code written for one environment:

* frames come from ``env.render()`` or from the observation (all of it, or one key of a Dict
  observation) and are resized to ``resolution x resolution`` (:func:`resize_frame`);
* the state vector (the dataset's ``state`` column) is read from the observation and/or ``info``;
* reset-to-state goes through a reset-options key the env reads (gym-pusht: ``reset_to_state``)
  or a method of ``env.unwrapped``; an env with neither cannot be reset to dataset states;
* success is ``info[key]`` (``is_success``, then ``success``) or ``terminated``.

Names. ``gym:ID`` makes the gymnasium id ``ID``; if ``ID`` has a namespace (``ns/Name-v0``) and a
module ``ns`` can be imported, it is imported first, since packages such as gym-pusht register
their ids on import (``gym:gym_pusht/PushT-v0``). ``gym:MODULE:ID`` names the module to import
(gymnasium's own ``module:id`` convention), for ids whose namespace is not a module.

>>> env = make_env("gym:gym_pusht/PushT-v0", resolution=64,
...     make={"obs_type": "pixels_agent_pos", "observation_width": 64, "observation_height": 64},
...     adapter={"pixels": "obs:pixels", "state": ["info:pos_agent", "info:block_pose"],
...              "reset_option": "reset_to_state", "reset_correction": 1})

:func:`collect_gym` writes episodes of a uniform random policy (or a policy named
``module:callable``) in lewm's episode HDF5 layout (``lewm collect gym:ID``).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import gymnasium as gym
import numpy as np

from lewm.utils.config import ConfigError, check, from_dict

log = logging.getLogger(__name__)

GYM_PREFIX = "gym:"  # environment names that start with it are Gymnasium ids, not EnvSpecs
DEFAULT_MAX_STEPS = 1000  # collection's episode length when the env has no TimeLimit of its own
_NOT_ADAPTER = ("id", "module", "make")  # fields that come from the name and the make kwargs


@dataclass(frozen=True)
class GymAdapterConfig:
    """How lewm reads one Gymnasium environment. ``id``, ``module`` come from the ``gym:`` name,
    ``make`` from the make kwargs; the other fields are the *adapter settings* (``adapter={...}``,
    ``--gym-adapter KEY=VALUE``); messages name them ``adapter.KEY``."""

    id: str  # gymnasium id, e.g. "gym_pusht/PushT-v0"
    module: str | None = None  # imported before gymnasium.make (it registers the id); None: none
    make: dict[str, Any] = field(default_factory=dict)  # keyword arguments of gymnasium.make
    # frames: "render" (env.render(), render_mode="rgb_array" is set unless given), "obs" (the
    # observation is the image) or "obs:KEY" (key KEY of a Dict observation)
    pixels: str = "render"
    # the state vector, concatenated in order from "obs" (the whole observation), "obs:KEY"
    # (a key of a Dict observation) and "info:KEY" (a key of the info dict)
    state: tuple[str, ...] = ("obs",)
    # reset-to-state: reset(options={reset_option: state}) (gym-pusht: "reset_to_state"), or
    # env.unwrapped.<reset_method>(state) after a plain reset; neither: not possible
    reset_option: str | None = None
    reset_method: str | None = None
    # fixed-point passes that make the state read back after a reset equal the state asked for:
    # reset to s, read s', reset to s + (target - s'), ... (for envs whose reset-to-state moves
    # what it sets, e.g. a body placed, then turned about its centre of gravity); 0: trust reset
    reset_correction: int = 0
    goal_option: str | None = None  # reset(options={goal_option: goal_state}) if the env takes one
    # goal images in evaluation: "render" (a second instance of the env reset to the goal state)
    # or "dataset" (the dataset frame of the goal row; also what evaluate() does for any env
    # without render_state)
    goal_image: str = "render"
    # success: "info" (the first of success_keys that info holds; terminated if none) or
    # "terminated"
    success: str = "info"
    success_keys: tuple[str, ...] = ("is_success", "success")

    def __post_init__(self) -> None:
        check(
            isinstance(self.id, str) and bool(self.id) and not any(c.isspace() for c in self.id),
            f"a gymnasium id is a non-empty name without spaces, got {self.id!r}",
        )
        check(
            self.module is None or _is_module_name(self.module),
            f"the module to import must be a dotted Python name, got {self.module!r}",
        )
        check(
            isinstance(self.make, dict) and all(isinstance(k, str) for k in self.make),
            f"make: the gymnasium.make keyword arguments must be a mapping, got {self.make!r}",
        )
        check(
            _source_ok(self.pixels, ("render", "obs")),
            f"adapter.pixels must be 'render', 'obs' or 'obs:KEY', got {self.pixels!r}",
        )
        check(
            len(self.state) > 0 and all(_source_ok(s, ("obs", "info")) for s in self.state),
            "adapter.state must list one or more of 'obs', 'obs:KEY', 'info:KEY', got "
            f"{list(self.state)!r}",
        )
        check(
            not any(s == "info" for s in self.state),
            "adapter.state: 'info' needs a key ('info:KEY')",
        )
        for key in ("reset_option", "reset_method", "goal_option"):
            value = getattr(self, key)
            check(
                value is None or (isinstance(value, str) and value.strip() == value != ""),
                f"adapter.{key} must be a name or null, got {value!r}",
            )
        check(
            not (self.reset_option and self.reset_method),
            "adapter.reset_option and adapter.reset_method both given: give one way to reset "
            "the environment to a state",
        )
        check(
            self.reset_method is None or self.reset_method.isidentifier(),
            f"adapter.reset_method must be a method name, got {self.reset_method!r}",
        )
        check(
            isinstance(self.reset_correction, int)
            and not isinstance(self.reset_correction, bool)
            and 0 <= self.reset_correction <= 10,
            f"adapter.reset_correction must be in [0, 10], got {self.reset_correction}",
        )
        check(
            self.reset_correction == 0 or self.can_reset_to_state,
            "adapter.reset_correction needs adapter.reset_option or adapter.reset_method",
        )
        check(
            self.goal_image in ("render", "dataset"),
            f"adapter.goal_image must be 'render' or 'dataset', got {self.goal_image!r}",
        )
        check(
            self.success in ("info", "terminated"),
            f"adapter.success must be 'info' or 'terminated', got {self.success!r}",
        )
        check(
            all(isinstance(k, str) and k for k in self.success_keys),
            f"adapter.success_keys must be names, got {list(self.success_keys)!r}",
        )

    @property
    def can_reset_to_state(self) -> bool:
        return bool(self.reset_option or self.reset_method)

    @property
    def name(self) -> str:
        """The lewm environment name: ``gym:ID`` or ``gym:MODULE:ID``."""
        return f"{GYM_PREFIX}{self.module + ':' if self.module_explicit else ''}{self.id}"

    @property
    def module_explicit(self) -> bool:
        """Whether the module was named (``gym:MODULE:ID``) rather than guessed from the id."""
        return self.module is not None and self.module != _namespace(self.id)

    def adapter_settings(self) -> dict[str, Any]:
        """The adapter settings alone (what ``adapter={...}`` takes), as plain values."""
        d = asdict(self)
        return {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in d.items()
            if k not in _NOT_ADAPTER
        }


ADAPTER_SETTINGS = tuple(f.name for f in fields(GymAdapterConfig) if f.name not in _NOT_ADAPTER)


def _is_module_name(text: Any) -> bool:
    return isinstance(text, str) and all(p.isidentifier() for p in text.split("."))


def _source_ok(text: Any, plain: tuple[str, ...]) -> bool:
    """``text`` is one of ``plain`` or ``obs:KEY`` / ``info:KEY`` with a non-empty KEY."""
    if not isinstance(text, str):
        return False
    where, sep, key = text.partition(":")
    return where in plain and (not sep or (bool(key) and where in ("obs", "info")))


def _namespace(env_id: str) -> str | None:
    """``ns`` of ``ns/Name-v0`` when it could be a module name."""
    ns, sep, _ = env_id.partition("/")
    return ns if sep and _is_module_name(ns) else None


def is_gym_name(name: Any) -> bool:
    """Whether ``name`` names a Gymnasium environment (``gym:ID``) rather than a lewm EnvSpec."""
    return isinstance(name, str) and name.startswith(GYM_PREFIX)


def gym_id(name: str) -> str:
    """The gymnasium id of ``gym:ID`` or ``gym:MODULE:ID`` (the module left out): the part two
    names must share to be the same environment."""
    rest = name[len(GYM_PREFIX) :] if is_gym_name(name) else name
    return rest.split(":", 1)[1] if ":" in rest else rest


def gym_config(
    name: str,
    make: Mapping[str, Any] | None = None,
    adapter: Mapping[str, Any] | None = None,
) -> GymAdapterConfig:
    """The config of environment ``name`` (``gym:ID`` or ``gym:MODULE:ID``) with gymnasium.make
    kwargs ``make`` and adapter settings ``adapter`` (tuple settings may be comma-separated
    strings: ``"info:pos_agent,info:block_pose"``). Bad values are a ConfigError naming them."""
    if not is_gym_name(name):
        raise ConfigError(f"a Gymnasium environment name starts with {GYM_PREFIX!r}, got {name!r}")
    rest = name[len(GYM_PREFIX) :]
    module, sep, env_id = rest.partition(":")
    if not sep:
        module, env_id = _namespace(rest), rest
    elif not module or not _is_module_name(module):
        raise ConfigError(
            f"{name!r}: the part before the second ':' must be the module that registers the id "
            f"(gym:MODULE:ID), got {module!r}"
        )
    if not env_id:
        raise ConfigError(f"{name!r}: no gymnasium id after {GYM_PREFIX!r} (e.g. gym:CartPole-v1)")
    make = dict(make or {})
    if not all(isinstance(k, str) for k in make):
        raise ConfigError(f"make: keyword names must be strings, got {sorted(map(repr, make))}")
    settings = dict(adapter or {})
    unknown = sorted(set(settings) - set(ADAPTER_SETTINGS))
    if unknown:
        raise ConfigError(
            f"unknown adapter setting(s) {unknown}; the settings are: {', '.join(ADAPTER_SETTINGS)}"
        )
    for key in ("state", "success_keys"):  # "a,b" from a command line is the list [a, b]
        if isinstance(settings.get(key), str):
            text = settings[key]
            settings[key] = [s.strip() for s in text.split(",")] if text else []
    cfg = from_dict(GymAdapterConfig, {"id": env_id, **settings}, "adapter")
    return GymAdapterConfig(**{**asdict(cfg), "module": module, "make": make})


def resolve(cfg: GymAdapterConfig) -> gym.envs.registration.EnvSpec:
    """Import ``cfg``'s module and return the gymnasium spec of its id, or a clear error.

    A module guessed from the id's namespace is imported only if it exists; a module named with
    ``gym:MODULE:ID`` must import."""
    if cfg.module is not None:
        guessed = not cfg.module_explicit
        try:
            found = importlib.util.find_spec(cfg.module) is not None
        except (ImportError, ValueError):  # a parent package that does not import
            found = False
        if found or not guessed:
            try:
                importlib.import_module(cfg.module)
            except ModuleNotFoundError as e:
                raise ImportError(
                    f"{cfg.name}: cannot import {cfg.module!r}, the module that registers "
                    f"{cfg.id!r} ({e}); install the package that provides it"
                ) from e
    try:
        return gym.spec(cfg.id)
    except gym.error.Error as e:
        ns = cfg.id.partition("/")[0] if "/" in cfg.id else None
        same_ns = sorted(i for i in gym.registry if ns and i.startswith(f"{ns}/"))
        if cfg.module is None:
            tried = "no module was imported (the id has no namespace)"
        elif importlib.util.find_spec(cfg.module.split(".")[0]) is None:
            tried = f"there is no module {cfg.module!r} to import"
        else:
            tried = f"after importing {cfg.module!r}"
        hint = f"; ids in namespace {ns!r}: {', '.join(same_ns[:10])}" if same_ns else ""
        raise ValueError(
            f"unknown gymnasium id {cfg.id!r} ({tried}): install the package that registers it, "
            f"or name the module to import as gym:MODULE:{cfg.id}{hint} ({e})"
        ) from None


def resize_frame(frame: Any, resolution: int, what: str = "frame") -> np.ndarray:
    """``frame`` (H, W, 3) or (H, W, 4) uint8 as (r, r, 3) uint8, r = ``resolution``.

    Unchanged (a copy) when it already has that size; otherwise resized with
    ``torch.nn.functional.interpolate``: ``area`` (the mean of the pixels each output pixel
    covers, like OpenCV's INTER_AREA) when shrinking, bilinear (antialiased along a shrinking
    side) when growing. A non-square frame is stretched to the square."""
    a = np.asarray(frame)
    if a.ndim == 3 and a.shape[-1] == 4:  # RGBA: drop alpha
        a = a[..., :3]
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[-1] != 3 or min(a.shape[:2]) < 1:
        raise ValueError(f"{what} must be a uint8 (H, W, 3) image, got {a.dtype} {a.shape}")
    if a.shape[:2] == (resolution, resolution):
        return np.array(a)
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()  # (1, 3, H, W)
    size = (resolution, resolution)
    if min(a.shape[:2]) >= resolution:
        y = F.interpolate(x, size=size, mode="area")  # (1, 3, r, r)
    else:
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return y[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()  # (r, r, 3)


def _lookup(container: Any, key: str, what: str, env_id: str) -> Any:
    if not isinstance(container, Mapping):
        source = f"{'obs' if what == 'observation' else what}:{key}"
        raise ValueError(
            f"{env_id}: {source!r} reads key {key!r} of the {what}, but the {what} is a "
            f"{type(container).__name__}, not a dict"
        )
    if key not in container:
        raise ValueError(
            f"{env_id}: the {what} has no key {key!r}; its keys: {', '.join(map(str, container))}"
        )
    return container[key]


class GymAdapter(gym.Wrapper):
    """A Gymnasium environment with lewm's env interface (see the module docstring).

    ``reset(seed, options={"state": s, "goal_state": g})`` resets to ``s`` through the configured
    option or method (other option keys are passed on); ``render()`` is the current frame,
    (r, r, 3) uint8; ``render_state`` is a function state -> frame, or None when the adapter
    cannot render a state; ``state`` is the current state vector (float64); ``step`` passes
    observation, reward, terminated and truncated through and adds ``info["success"]``.
    Observations are the wrapped env's own.
    """

    def __init__(self, config: GymAdapterConfig, resolution: int = 64) -> None:
        if isinstance(resolution, bool) or int(resolution) != resolution or resolution < 8:
            raise ValueError(f"resolution must be an integer >= 8, got {resolution!r}")
        self.config, self.resolution = config, int(resolution)
        resolve(config)
        make = {"disable_env_checker": True, **config.make}
        if config.pixels == "render":
            make.setdefault("render_mode", "rgb_array")
        try:
            env = gym.make(config.id, **make)
        except TypeError as e:  # an unknown keyword argument of the env's constructor
            raise ValueError(
                f"{config.name}: gymnasium.make({config.id!r}, ...) refused the make arguments "
                f"{sorted(config.make)}: {e}"
            ) from e
        super().__init__(env)
        if config.pixels == "render" and env.render_mode != "rgb_array":
            raise ConfigError(
                f"{config.name}: adapter.pixels='render' needs render_mode='rgb_array', the env "
                f"has render_mode={env.render_mode!r}"
            )
        self._check_observation_space()
        self._obs: Any = None
        self._info: dict[str, Any] = {}
        self._reset_done = False
        self._scratch: GymAdapter | None = None  # the instance that renders goal states
        self.reset_error: float | None = None  # |target - state read back| after the last reset

    # -- configuration checks --------------------------------------------------------------------
    def _check_observation_space(self) -> None:
        space, cfg = self.env.observation_space, self.config
        uses = [("adapter.pixels", cfg.pixels)] + [("adapter.state", s) for s in cfg.state]
        for setting, source in uses:
            where, _, key = source.partition(":")
            if where != "obs":
                continue
            if key and not isinstance(space, gym.spaces.Dict):
                raise ConfigError(
                    f"{cfg.name}: {setting}={source!r} reads a key of a Dict observation, but the "
                    f"observation space is {space}"
                )
            if key and key not in space.spaces:
                raise ConfigError(
                    f"{cfg.name}: {setting}={source!r}: the observation has no key {key!r}; its "
                    f"keys: {', '.join(space.spaces)}"
                )
            if not key and isinstance(space, gym.spaces.Dict):
                raise ConfigError(
                    f"{cfg.name}: {setting}='obs' takes the whole observation, but it is a dict "
                    f"with keys {', '.join(space.spaces)}: name one as 'obs:KEY'"
                )

    # -- the gymnasium interface -----------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        options = dict(options or {})
        state, goal = options.pop("state", None), options.pop("goal_state", None)
        if goal is not None and self.config.goal_option:
            options[self.config.goal_option] = goal
        if state is None:
            obs, info = self.env.reset(seed=seed, options=options or None)
            self.reset_error = None
        else:
            obs, info = self._reset_to(np.asarray(state, np.float64).reshape(-1), seed, options)
        return obs, self._observe(obs, info, terminated=False)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        space = self.env.action_space
        if isinstance(space, gym.spaces.Box):  # Box.contains refuses float64 for a float32 box
            action = np.asarray(action, dtype=space.dtype).reshape(space.shape)
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, bool(terminated), bool(truncated), self._observe(obs, info, terminated)

    def render(self) -> np.ndarray:  # type: ignore[override]
        """The current frame, (r, r, 3) uint8."""
        if not self._reset_done:
            raise RuntimeError(f"{self.config.name}: call reset() before render()")
        where, _, key = self.config.pixels.partition(":")
        if where == "render":
            frame, what = self.env.render(), "env.render()"
        else:
            frame = self._obs if not key else _lookup(self._obs, key, "observation", self.config.id)
            what = f"the observation{f' key {key!r}' if key else ''}"
        return resize_frame(frame, self.resolution, f"{self.config.name}: {what}")

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.close()
            self._scratch = None
        super().close()

    # -- lewm's additions ------------------------------------------------------------------------
    @property
    def state(self) -> np.ndarray:
        """The current state vector (S,) float64, read from the adapter's state sources."""
        if not self._reset_done:
            raise RuntimeError(f"{self.config.name}: call reset() before reading the state")
        return self.state_of(self._obs, self._info)

    def state_of(self, obs: Any, info: Mapping[str, Any]) -> np.ndarray:
        """The state vector (S,) float64 of an observation and its info dict."""
        parts = []
        for source in self.config.state:
            where, _, key = source.partition(":")
            container, what = (obs, "observation") if where == "obs" else (info, "info")
            value = _lookup(container, key, what, self.config.id) if key else container
            try:
                parts.append(np.asarray(value, dtype=np.float64).reshape(-1))
            except (TypeError, ValueError):
                raise ValueError(
                    f"{self.config.name}: adapter.state {source!r} is not numeric: {value!r}"
                ) from None
        return np.concatenate(parts)

    @property
    def can_reset_to_state(self) -> bool:
        return self.config.can_reset_to_state

    @property
    def render_state(self) -> Callable[[Any], np.ndarray] | None:
        """A function state -> goal frame (r, r, 3) uint8 that resets a second instance of the
        env to the state, or None when the adapter renders no states (``goal_image`` is
        'dataset', or the env cannot be reset to a state): evaluation then takes the goal image
        from the dataset."""
        if self.config.goal_image != "render" or not self.can_reset_to_state:
            return None
        return self._render_state

    def _render_state(self, state: Any) -> np.ndarray:
        if self._scratch is None:
            self._scratch = GymAdapter(self.config, self.resolution)
        self._scratch.reset(seed=0, options={"state": state})
        return self._scratch.render()

    def _observe(self, obs: Any, info: Mapping[str, Any], terminated: bool) -> dict[str, Any]:
        self._obs, self._info, self._reset_done = obs, dict(info), True
        info = dict(info)
        keys = self.config.success_keys if self.config.success == "info" else ()
        found = next((k for k in keys if k in info), None)
        info["success"] = bool(info[found]) if found is not None else bool(terminated)
        return info

    def _reset_to(self, target: np.ndarray, seed: int | None, options: dict[str, Any]):
        cfg = self.config
        if not cfg.can_reset_to_state:
            raise ValueError(
                f"{cfg.name}: evaluation resets the environment to dataset states, but the "
                "adapter has no way to: set adapter.reset_option (the reset-options key the env "
                "reads, e.g. reset_to_state for gym-pusht) or adapter.reset_method (a method of "
                "env.unwrapped that takes the state vector). An env that supports neither "
                "cannot be evaluated this way: its goal image could come from the dataset "
                "(adapter.goal_image=dataset), but its start states cannot be reproduced"
            )
        given = target.copy()
        for attempt in range(cfg.reset_correction + 1):
            obs, info = self._reset_once(given, seed, options)
            if cfg.reset_correction == 0:
                self.reset_error = None
                break
            got = self.state_of(obs, info)
            if got.shape != target.shape:
                raise ValueError(
                    f"{cfg.name}: the state read back after a reset has {got.size} values, the "
                    f"state asked for has {target.size}: adapter.state must read the same vector "
                    "that the reset takes"
                )
            gap = target - got
            self.reset_error = float(np.abs(gap).max())
            if attempt == cfg.reset_correction or self.reset_error <= 1e-9 * (
                1.0 + float(np.abs(target).max())
            ):
                break
            given = given + gap
        return obs, info

    def _reset_once(self, state: np.ndarray, seed: int | None, options: dict[str, Any]):
        cfg = self.config
        if cfg.reset_option:
            return self.env.reset(seed=seed, options={**options, cfg.reset_option: state})
        obs, info = self.env.reset(seed=seed, options=options or None)
        method = getattr(self.env.unwrapped, cfg.reset_method, None)
        if not callable(method):
            raise ValueError(
                f"{cfg.name}: adapter.reset_method={cfg.reset_method!r}, but "
                f"{type(self.env.unwrapped).__name__} has no such method"
            )
        out = method(state)
        # the method may give the new observation, or (observation, info); otherwise what the
        # plain reset returned stands (pixels from render() are still current then)
        if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping):
            return out
        return (obs if out is None else out), info


def make_gym_env(
    name: str,
    resolution: int = 64,
    make: Mapping[str, Any] | None = None,
    adapter: Mapping[str, Any] | None = None,
    **unknown: Any,
) -> GymAdapter:
    """``make_env("gym:ID", resolution=R, make={gymnasium.make kwargs}, adapter={settings})``."""
    if unknown:
        raise TypeError(
            f"make_env({name!r}) takes resolution=, make={{gymnasium.make kwargs}} and "
            f"adapter={{settings}}; got {sorted(unknown)} (put the env's own arguments in make=)"
        )
    return GymAdapter(gym_config(name, make, adapter), resolution)


# -- collection ----------------------------------------------------------------------------------
# policy(observation, action_space, rng) -> action; what it returns is clipped into the Box
Policy = Callable[[Any, gym.spaces.Box, np.random.Generator], Any]


def load_policy(path: str) -> Policy:
    """The callable ``module:attribute`` (a collection policy named on the command line)."""
    module, sep, attr = path.partition(":")
    if not sep or not _is_module_name(module) or not all(p.isidentifier() for p in attr.split(".")):
        raise ValueError(f"a policy is named 'module:callable', got {path!r}")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"policy {path!r}: {obj.__name__!r} has no attribute {part!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"policy {path!r} is not callable")
    return obj


def collect_gym(
    out: str | os.PathLike,
    episodes: int,
    *,
    env: str,
    make: Mapping[str, Any] | None = None,
    adapter: Mapping[str, Any] | None = None,
    resolution: int = 64,
    seed: int = 0,
    max_steps: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    policy: str | Policy | None = None,
) -> dict[str, Any]:
    """Write ``episodes`` episodes of the Gymnasium environment ``env`` (``gym:ID``) to ``out``.

    The policy draws actions uniformly in the env's (bounded, 1-D) Box action space from a
    generator seeded per episode, or is ``policy`` (a callable or ``"module:callable"``, called
    as ``policy(observation, action_space, rng)``; its actions are clipped into the Box and
    recorded as executed). Episode i is reset with seed
    ``SeedSequence(seed).generate_state(episodes)[i]`` and draws its actions from
    ``default_rng([seed, i])``, so a seed gives identical data. An episode
    ends when the env terminates or truncates, or after ``max_steps`` actions (default: the id's
    TimeLimit, else 1000). Row t holds frame t and the action taken from it (last action NaN);
    columns ``pixels`` (L, r, r, 3) uint8, ``action`` (L, A), ``state`` (L, S) from the adapter's
    state sources. ``attrs`` record ``env``, the make kwargs and adapter settings (JSON) so that
    ``lewm eval --env gym:ID`` can rebuild the same environment. Returns summary stats.
    """
    from lewm.data.hdf5 import EpisodeWriter
    from lewm.envs.registry import check_collection
    from lewm.utils.progress import progress_bar

    cfg = gym_config(env, make, adapter)
    steps = 1 if max_steps is None else max_steps  # the env's default is known once it is made
    check_collection(out, episodes, resolution, steps, overwrite, seed=seed)
    if isinstance(policy, str):
        policy_name, act = policy, load_policy(policy)
    elif policy is None:
        policy_name, act = "uniform", None
    else:
        policy_name = f"{policy.__module__}:{getattr(policy, '__qualname__', policy)}"
        act = policy
    adapter_env = GymAdapter(cfg, resolution)
    space = adapter_env.action_space
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise ValueError(
            f"{cfg.name}: collection needs a one-dimensional continuous (Box) action space, the "
            f"env has {space}"
        )
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)  # (A,) each
    if act is None and not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise ValueError(
            f"{cfg.name}: the uniform random policy needs a bounded action space, the env has "
            f"low {low.tolist()}, high {high.tolist()}; name a policy (--policy module:callable)"
        )
    if max_steps is None:  # the TimeLimit gymnasium.make added, if any
        limit = cfg.make.get("max_episode_steps") or resolve(cfg).max_episode_steps
        max_steps = int(limit or DEFAULT_MAX_STEPS)
        check_collection(out, episodes, resolution, max_steps, overwrite)
    attrs = {
        "env": env,
        "gym_id": cfg.id,
        "gym_make": json.dumps(cfg.make, sort_keys=True, default=str),
        "gym_adapter": json.dumps(cfg.adapter_settings(), sort_keys=True),
        "resolution": int(resolution),
        "seed": int(seed),
        "max_steps": int(max_steps),
        "policy": policy_name,
    }
    ep_seeds = np.random.SeedSequence(seed).generate_state(episodes)  # one reset seed per episode
    lengths: list[int] = []
    successes: list[bool] = []
    truncations: list[bool] = []
    t0 = time.perf_counter()
    try:
        with (
            EpisodeWriter(out, overwrite=overwrite, attrs=attrs) as writer,
            progress_bar(episodes, f"collect {cfg.name}", progress, unit="ep") as bar,
        ):
            for i in range(episodes):
                rng = np.random.default_rng([seed, i])  # the episode's actions
                obs, info = adapter_env.reset(seed=int(ep_seeds[i]))
                frames, states, actions = [adapter_env.render()], [adapter_env.state], []
                success, truncated = bool(info["success"]), False
                for _ in range(max_steps):
                    if act is None:
                        a = rng.uniform(low, high)  # (A,)
                    else:
                        a = np.asarray(act(obs, space, rng), np.float64).reshape(low.shape)
                    a = np.clip(a, low, high).astype(space.dtype)  # (A,) as executed
                    obs, _, term, trunc, info = adapter_env.step(a)
                    actions.append(a)
                    frames.append(adapter_env.render())
                    states.append(adapter_env.state)
                    success, truncated = success or bool(info["success"]), trunc
                    if term or trunc:
                        break
                actions.append(np.full(low.shape, np.nan))  # no action leaves the last frame
                writer.add_episode(
                    pixels=np.stack(frames),  # (L, r, r, 3)
                    action=np.stack(actions).astype(np.float32),  # (L, A)
                    state=np.stack(states).astype(np.float32),  # (L, S)
                )
                lengths.append(len(frames))
                successes.append(success)
                truncations.append(truncated)
                bar.update(1)
    finally:
        adapter_env.close()
    seconds = time.perf_counter() - t0
    lens = np.asarray(lengths)
    stats = {
        "env": env,
        "episodes": len(lens),
        "steps": int(lens.sum()),
        "mean_length": float(lens.mean()),
        "min_length": int(lens.min()),
        "max_length": int(lens.max()),
        "success_fraction": float(np.mean(successes)),  # episodes that reported success at all
        "truncated_fraction": float(np.mean(truncations)),
        "seconds": round(seconds, 2),
        "steps_per_s": round(float(lens.sum()) / max(seconds, 1e-9), 1),
    }
    log.info("collected %s into %s: %s", cfg.name, out, stats)
    return stats


__all__ = [
    "ADAPTER_SETTINGS",
    "GYM_PREFIX",
    "GymAdapter",
    "GymAdapterConfig",
    "collect_gym",
    "gym_config",
    "gym_id",
    "is_gym_name",
    "load_policy",
    "make_gym_env",
    "resize_frame",
    "resolve",
]
