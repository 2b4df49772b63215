"""Losses: SIGReg and the LeWM objective."""

from lewm.losses.objective import LeWMObjective
from lewm.losses.sigreg import SIGReg

__all__ = ["SIGReg", "LeWMObjective"]
