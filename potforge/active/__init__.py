"""Layer 6: MD-driven active learning — frame uncertainty (:mod:`~potforge.active.uncertainty`),
acquisition functions (:mod:`~potforge.active.acquisition`) and MD explorers
(:mod:`~potforge.active.explore`)."""

from potforge.active.acquisition import (
    ACQUISITIONS,
    Frames,
    Reference,
    make_acquisition,
    p_energy,
    p_uncertainty,
    pick,
)
from potforge.active.explore import ExplorerSpec, Trajectory, explore, explore_many
from potforge.active.uncertainty import (
    ExtrapolationGrade,
    bound_halfwidth,
    force_deviation,
    max_devi_f,
    maxvol,
)

__all__ = [
    "ACQUISITIONS",
    "ExplorerSpec",
    "ExtrapolationGrade",
    "Frames",
    "Reference",
    "Trajectory",
    "bound_halfwidth",
    "explore",
    "explore_many",
    "force_deviation",
    "make_acquisition",
    "max_devi_f",
    "maxvol",
    "p_energy",
    "p_uncertainty",
    "pick",
]
