"""Training: the loop, its checkpoints, and synchronised BatchNorm for data-parallel runs."""

from lewm.training.config import TrainConfig

__all__ = ["TrainConfig"]
