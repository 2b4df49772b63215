"""World-model networks."""

from lewm.models.lewm import CheckpointError, LeWM, resolve_checkpoint

__all__ = ["LeWM", "CheckpointError", "resolve_checkpoint"]
