"""Losses: SIGReg, the LeWM objective, and latent metrics."""

from lewm.losses.metrics import latent_std, straightness
from lewm.losses.objective import LeWMObjective, TrainingObjective
from lewm.losses.sigreg import SIGReg

__all__ = ["LeWMObjective", "SIGReg", "TrainingObjective", "latent_std", "straightness"]
