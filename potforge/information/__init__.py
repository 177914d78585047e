"""Layer 5: Fisher information of candidates and targets (:mod:`~potforge.information.fisher`)
and information matching, the convex program that picks the cheapest labels whose information
guarantees the precision asked for (:mod:`~potforge.information.matching`)."""

from potforge.information.fisher import (
    LabelPrecision,
    analyse,
    coverage,
    dominance,
    predicted_sigma,
    qoi_fisher,
    structure_fisher,
    target_covariance,
)
from potforge.information.matching import (
    InfeasibleError,
    InformationMatcher,
    MatchingError,
    MatchingResult,
    labelling_cost,
    solve_matching,
)

__all__ = [
    "InfeasibleError",
    "InformationMatcher",
    "LabelPrecision",
    "MatchingError",
    "MatchingResult",
    "analyse",
    "coverage",
    "dominance",
    "labelling_cost",
    "predicted_sigma",
    "qoi_fisher",
    "solve_matching",
    "structure_fisher",
    "target_covariance",
]
