"""Plumbing every registered world model shares: the saved normaliser and metadata, the action
and frame sizes read from its config, checkpoint folders and parameter counts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from lewm.data.normalize import Normalizer
from lewm.models import checkpoint

M = TypeVar("M", bound="WorldModelBase")


class WorldModelBase(nn.Module):
    """Base class of lewm's world models (see :class:`lewm.models.protocol.WorldModel`).

    Subclasses build their networks from ``config`` (a dataclass with ``kind``, ``action_dim``
    and ``frameskip``) and implement ``history``, ``latent_dim``, ``image_size``, ``encode``,
    ``encoder_features``, ``rollout`` and the training ``forward``.
    """

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.normalizer: Normalizer | None = None  # set by training / from_pretrained
        self.metadata: dict[str, Any] = {}

    @property
    def frameskip(self) -> int:
        return int(self.config.frameskip)

    @property
    def action_dim(self) -> int:
        return int(self.config.action_dim)

    @property
    def action_block_dim(self) -> int:
        return self.frameskip * self.action_dim

    def action_normalizer(self) -> Normalizer:
        """The action statistics saved with the model (planning and analysis work in z-scored
        action space); a clear error for a model that was not trained by ``lewm train``."""
        if self.normalizer is None or "action" not in self.normalizer:
            raise checkpoint.CheckpointError(
                "the checkpoint has no action normaliser (normalizer.json); it was not trained by "
                "`lewm train` - retrain it, or set model.normalizer = Normalizer.fit({'action': A})"
            )
        return self.normalizer

    def param_counts(self) -> dict[str, int]:
        """Parameters per top-level part, in total, and those training updates (``trainable``:
        a frozen encoder's are not)."""
        counts = {
            name: sum(p.numel() for p in child.parameters())
            for name, child in self.named_children()
        }
        counts["total"] = sum(p.numel() for p in self.parameters())
        counts["trainable"] = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return counts

    def save_pretrained(
        self,
        path: str | os.PathLike,
        *,
        overwrite: bool = False,
        extra_files: dict[str, bytes] | None = None,
    ) -> Path:
        """Write the checkpoint folder atomically (see :func:`lewm.models.checkpoint.save`)."""
        return checkpoint.save(self, path, overwrite=overwrite, extra_files=extra_files)

    @classmethod
    def from_pretrained(
        cls: type[M], path: str | os.PathLike, map_location: str | torch.device = "cpu"
    ) -> M:
        """Rebuild a model from a checkpoint or run folder; the class comes from the kind
        recorded in ``config.json``, and must be ``cls`` (or a subclass)."""
        model = checkpoint.load(path, map_location)
        if not isinstance(model, cls):
            raise checkpoint.CheckpointError(
                f"{path} holds a {model.config.kind!r} world model ({type(model).__name__}), "
                f"not a {cls.__name__}; load it with lewm.models.load"
            )
        return model


def model_device(model: Any) -> torch.device:
    """Where a world model computes: its ``device`` attribute, else its first parameter's
    device, else the CPU (toy models without parameters)."""
    dev = getattr(model, "device", None)
    if isinstance(dev, torch.device | str):
        return torch.device(dev)
    params = getattr(model, "parameters", None)
    if callable(params):
        for p in params():
            return p.device
    return torch.device("cpu")


__all__ = ["WorldModelBase", "model_device"]
