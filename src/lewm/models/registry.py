"""The world-model registry: a kind name -> its config dataclass, model class and training
objective. ``config.json`` and the config tree record the kind (``model.kind``); loading a
checkpoint, building a model for training and parsing a config all ask this registry.

Adding a world model is one module (config dataclass with a ``kind`` field defaulting to its
name, ``action_dim`` and ``frameskip`` fields; a :class:`~lewm.models.base.WorldModelBase`
subclass; an objective builder) and one ``register_model(ModelSpec(...))`` line in
``lewm/models/__init__.py``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import register_module_module_registration_hook

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
    # config keys (dotted) a checkpoint's config.json must hold: keys whose default would load
    # the weights into a model that computes something else without any shape telling (the
    # input size of a CNN, the frameskip); keys added in later releases are not listed
    required: tuple[str, ...] = ()


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


def memory_bound() -> int:
    """The most bytes of weights lewm builds or loads: half the machine's physical memory.

    Loading holds the weights twice (the freshly built model and the state read from the file),
    and training needs them several times over (gradients, optimizer state), so a bigger model
    would exhaust memory (or swap for minutes); a config asking for that is almost surely a typo
    or corrupt. Where the memory size is unknown (no ``sysconf``), 64 GiB.
    """
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (AttributeError, ValueError, OSError):
        return 64 * 2**30


MAX_MODULES = 10_000  # ~30x the paper model (305); a depth typo would build for minutes


class _TooManyModules(Exception):
    pass


def check_model_size(config: Any) -> int:
    """Build ``config``'s model on the meta device (shapes only, no memory) and return its
    size in bytes; a ConfigError when it would not fit :func:`memory_bound`."""
    count, me = 0, threading.get_ident()

    def count_modules(module: nn.Module, name: str, submodule: nn.Module | None) -> None:
        nonlocal count
        if threading.get_ident() == me:
            count += 1
            if count > MAX_MODULES:
                raise _TooManyModules

    handle = register_module_module_registration_hook(count_modules)
    try:
        with torch.device("meta"):
            model = model_spec(config.kind).model(config)
    except _TooManyModules:
        raise ConfigError(
            f"the model config describes more than {MAX_MODULES} modules: check the depth "
            "settings (model.*.depth)"
        ) from None
    finally:
        handle.remove()
    tensors = [*model.parameters(), *model.buffers()]
    nbytes = sum(t.numel() * t.element_size() for t in tensors)
    if nbytes > memory_bound():
        n = sum(p.numel() for p in model.parameters())
        raise ConfigError(
            f"the model config describes {n:,} parameters ({nbytes / 1e9:,.1f} GB), more than "
            f"half of this machine's memory ({memory_bound() / 1e9:,.1f} GB): check "
            "model.latent_dim and the widths"
        )
    return nbytes


def build_model(config: Any) -> nn.Module:
    """A freshly initialised model for ``config`` (any registered kind), after checking on the
    meta device that it fits in memory."""
    check_model_size(config)
    return model_spec(config.kind).model(config)


def build_objective(config: Any, train_config: Any, distributed: bool = False) -> nn.Module:
    """The training objective of ``config``'s kind."""
    return model_spec(config.kind).objective(config, train_config, distributed)


__all__ = [
    "MODELS",
    "ModelSpec",
    "build_model",
    "build_objective",
    "check_model_size",
    "memory_bound",
    "model_config",
    "model_spec",
    "register_model",
]
