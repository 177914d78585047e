"""Layer 6: MD-driven active learning — frame uncertainty (:mod:`~potforge.active.uncertainty`)
and acquisition functions (:mod:`~potforge.active.acquisition`)."""

from potforge.active.acquisition import (
    ACQUISITIONS,
    Frames,
    Reference,
    make_acquisition,
    p_energy,
    p_uncertainty,
    pick,
)
from potforge.active.uncertainty import ExtrapolationGrade, force_deviation, max_devi_f, maxvol

__all__ = [
    "ACQUISITIONS",
    "ExtrapolationGrade",
    "Frames",
    "Reference",
    "force_deviation",
    "make_acquisition",
    "max_devi_f",
    "maxvol",
    "p_energy",
    "p_uncertainty",
    "pick",
]
