"""Losses: SIGReg, VICReg's terms, the LeWM and PLDM objectives, and latent metrics."""

from lewm.losses.metrics import latent_std, straightness
from lewm.losses.objective import LeWMObjective, TrainingObjective
from lewm.losses.pldm import PLDMObjective
from lewm.losses.sigreg import SIGReg
from lewm.losses.vicreg import VICReg

__all__ = [
    "LeWMObjective",
    "PLDMObjective",
    "SIGReg",
    "TrainingObjective",
    "VICReg",
    "latent_std",
    "straightness",
]
