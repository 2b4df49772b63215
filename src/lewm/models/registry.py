"""The world-model registry: a kind name -> its config dataclass, model class and training
objective. ``config.json`` and the config tree record the kind (``model.kind``); loading a
checkpoint, building a model for training and parsing a config all ask this registry.

Adding a world model is one module (config dataclass with a ``kind`` field defaulting to its
name, ``action_dim`` and ``frameskip`` fields; a :class:`~lewm.models.base.WorldModelBase`
subclass; an objective builder) and one ``register_model(ModelSpec(...))`` line in
``lewm/models/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from lewm.utils.config import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    """What lewm needs to know about one kind of world model."""

    kind: str  # registry name, also the default of ``config.kind``
    config: type  # config dataclass (fields ``kind``, ``action_dim``, ``frameskip``, ...)
    model: type  # nn.Module implementing WorldModel; built as ``model(config)``
    # objective(model_config, train_config, distributed) -> nn.Module called on the model's
    # training output dict and returning named loss terms, "loss" among them
    objective: Callable[[Any, Any, bool], nn.Module]
    tiny: Callable[[], Any] | None = None  # a toy-sized config for tests and smoke runs
    description: str = ""


MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to the registry (a kind may be registered once)."""
    if spec.kind in MODELS and MODELS[spec.kind] != spec:
        raise ValueError(f"world model kind {spec.kind!r} is already registered")
    if getattr(spec.config(), "kind", None) != spec.kind:
        raise ValueError(f"{spec.config.__name__}.kind must default to {spec.kind!r}")
    MODELS[spec.kind] = spec
    return spec


def model_spec(kind: str | None) -> ModelSpec:
    """The registered spec of ``kind``; a ConfigError naming ``model.kind`` otherwise."""
    if kind not in MODELS:
        raise ConfigError(
            f"unknown model.kind {kind!r}; registered world models: {', '.join(sorted(MODELS))}"
        )
    return MODELS[kind]


def model_config(kind: str | None) -> type:
    """The config dataclass of ``kind`` (the chooser of the config tree's ``model`` field)."""
    return model_spec(kind).config


def build_model(config: Any) -> nn.Module:
    """A freshly initialised model for ``config`` (any registered kind)."""
    return model_spec(config.kind).model(config)


def build_objective(config: Any, train_config: Any, distributed: bool = False) -> nn.Module:
    """The training objective of ``config``'s kind."""
    return model_spec(config.kind).objective(config, train_config, distributed)


__all__ = [
    "MODELS",
    "ModelSpec",
    "build_model",
    "build_objective",
    "model_config",
    "model_spec",
    "register_model",
]
