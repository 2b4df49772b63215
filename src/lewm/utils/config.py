"""Typed configuration machinery shared by every layer: one error type, dict conversion with type
checks, ``key.sub=value`` overrides, and *choice* fields whose dataclass is picked by a ``kind``.

A config is a tree of ``@dataclass`` objects validated in ``__post_init__``. A field declared with
:func:`choice` holds one of several dataclasses (a world model's config, a solver's config): the
class is chosen from the ``kind`` value of its mapping by a function the field carries, so a new
model or solver adds its config class to a registry and nothing here changes.

    eval.solver.kind=icem eval.solver.noise_beta=1     # overrides: kinds switch first
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from typing import Any


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the config key."""


SEED_MAX = 2**32 - 1  # numpy and torch take seeds in [0, 2**32)


def check_seed(value: int, key: str) -> None:
    """A ConfigError naming ``key`` unless ``value`` is a usable seed."""
    check(0 <= value <= SEED_MAX, f"{key} must be in [0, {SEED_MAX}], got {value}")


def check(cond: bool, msg: str) -> None:
    """Raise :class:`ConfigError` with ``msg`` unless ``cond``."""
    if not cond:
        raise ConfigError(msg)


def choice(chooser: Callable[[str], type], default_factory: Callable[[], Any]) -> Any:
    """A dataclass field holding one of several config dataclasses, picked by its ``kind``.

    ``chooser(kind)`` returns the dataclass for a kind (raising :class:`ConfigError` for an
    unknown one); ``default_factory()`` builds the default value.
    """
    return dataclasses.field(default_factory=default_factory, metadata={"choose": chooser})


def _chooser(cls: type, name: str) -> Callable[[str], type] | None:
    for f in fields(cls):
        if f.name == name:
            return f.metadata.get("choose")
    return None


def _default_kind(cls: type, name: str) -> str | None:
    for f in fields(cls):
        if f.name == name and f.default_factory is not dataclasses.MISSING:
            return getattr(f.default_factory(), "kind", None)
    return None


def to_dict(cfg: Any) -> dict[str, Any]:
    """A nested dict of plain values (tuples become lists when written as JSON)."""
    return dataclasses.asdict(cfg)


def _type_name(t: Any) -> str:
    return getattr(t, "__name__", str(t))


def _check_value(value: Any, typ: Any, key: str) -> Any:
    """``value`` (from JSON or Python) as type ``typ``, or a ConfigError naming ``key``."""
    origin = typing.get_origin(typ)
    if typ is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(typ)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_value(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: unexpected value {value!r}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        args = typing.get_args(typ)
        item = args[0] if args else Any
        return tuple(_check_value(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type, d: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from a nested mapping: unknown keys and wrongly typed values are
    a :class:`ConfigError` naming the key (``path`` is the key prefix used in messages)."""
    where = path or cls.__name__
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {sorted(f'{path}.{k}' if path else k for k in unknown)}; "
            f"valid keys here: {sorted(names)}"
        )
    kwargs = {}
    for k, v in d.items():
        key = f"{path}.{k}" if path else k
        chooser = _chooser(cls, k)
        if chooser is not None:
            if not isinstance(v, dict):
                raise ConfigError(f"{key}: expected a mapping, got {type(v).__name__}")
            kind = v.get("kind", _default_kind(cls, k))
            kwargs[k] = from_dict(chooser(kind), v, key)
        elif is_dataclass(hints[k]):
            kwargs[k] = from_dict(hints[k], v, key)
        else:
            kwargs[k] = _check_value(v, hints[k], key)
    return cls(**kwargs)


def _coerce(value: str, typ: Any, key: str) -> Any:
    """Parse the text of a ``key=value`` override as type ``typ``."""
    origin = typing.get_origin(typ)
    if typ is bool:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected a boolean, got {value!r}")
    if typ in (int, float, str):
        try:
            parsed = typ(value)
        except ValueError:
            raise ConfigError(f"{key}: expected {_type_name(typ)}, got {value!r}") from None
        if typ is float and not math.isfinite(parsed):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return parsed
    if origin is tuple:
        try:
            parsed = json.loads(value if value.startswith("[") else f"[{value}]")
        except json.JSONDecodeError:
            raise ConfigError(f"{key}: expected a list like 32,64,128, got {value!r}") from None
        return tuple(parsed)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if value.lower() in ("none", "null"):
            return None
        return _coerce(value, args[0], key)
    if typ is Any:
        return value
    raise ConfigError(f"{key}: cannot parse a value of type {typ}")


def parse_override(item: str) -> tuple[list[str], str]:
    """``"a.b=v"`` -> (["a", "b"], "v")."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.sub=value")
    key, value = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {item!r}: empty key part")
    return parts, value.strip()


def apply_overrides(cfg: Any, overrides: list[str]) -> Any:
    """A copy of the dataclass tree ``cfg`` with ``key.sub=value`` overrides applied and the
    whole tree re-validated. ``X.kind=...`` overrides of choice fields apply first and reset
    ``X`` to the new kind's defaults, so later keys may name that kind's own fields."""
    d = copy.deepcopy(to_dict(cfg))
    parsed = [parse_override(item) for item in overrides]
    # kinds first (shallower first); the other overrides keep their order (the last one wins)
    kinds_first = sorted(parsed, key=lambda pv: (0, len(pv[0])) if pv[0][-1] == "kind" else (1, 0))
    for parts, value in kinds_first:
        _set(d, type(cfg), parts, value)
    return from_dict(type(cfg), d)


def _set(d: dict, root: type, parts: list[str], value: str) -> None:
    key = ".".join(parts)
    node, cls = d, root
    parent, parent_cls, parent_key = None, None, None
    for p in parts[:-1]:
        if not (is_dataclass(cls) and p in node and isinstance(node[p], dict)):
            raise ConfigError(f"unknown config key {key!r}")
        chooser = _chooser(cls, p)
        hints = typing.get_type_hints(cls)
        parent, parent_cls, parent_key = node, cls, p
        sub = chooser(node[p].get("kind")) if chooser else hints[p]
        node, cls = node[p], sub
    leaf = parts[-1]
    if leaf not in node or isinstance(node[leaf], dict):
        valid = sorted(k for k, v in node.items() if not isinstance(v, dict))
        raise ConfigError(f"unknown config key {key!r}; valid keys here: {valid}")
    chooser = _chooser(parent_cls, parent_key) if parent_cls is not None else None
    if leaf == "kind" and chooser is not None:
        new_cls = chooser(value)  # raises for an unknown kind
        if value != node.get("kind"):
            parent[parent_key] = to_dict(new_cls())
        return
    hints = typing.get_type_hints(cls)
    node[leaf] = _coerce(value, hints[leaf], key)


__all__ = [
    "SEED_MAX",
    "ConfigError",
    "check_seed",
    "apply_overrides",
    "check",
    "choice",
    "from_dict",
    "parse_override",
    "to_dict",
]
