"""Uncertainty quantification on weighted design matrices (array in, array out; no ASE).

Every estimator takes design rows ``X`` (n, P), labels ``y`` (n,) and row weights (n,) and
follows one contract (:class:`~potforge.uq._base.UQRegressor`): ``fit`` returns self,
``predict(X, return_std, return_bounds)`` gives mean, std and ``(lower, upper)``, ``sample(K)``
gives ``(K, P)`` parameter vectors for brute-force propagation. Row types (:data:`ENERGY`,
:data:`FORCE`, :data:`STRESS` — alias :data:`VIRIAL` — and their names :data:`ROW_TYPES`) are
:mod:`potforge.linalg`'s.

* :class:`POPSRegressor` — misspecification-aware POPS (ensemble or hypercube), streaming-capable
  through :func:`fit_pops_streaming` / ``POPSRegressor.fit_chunks``: the one POPS engine, which a
  fitted model's posterior (:mod:`potforge.uq.centred`) uses too.
* :class:`BayesianLinearRegressor`, :class:`TemperedBayesRegressor` — BLR baselines.
* :class:`ResampledEnsembleRegressor` — bootstrap / subsample ensembles.
* :class:`ConformalCalibrator` — post-hoc inflation of a raw σ (POPS half-width, Fisher σ from
  :func:`fisher_std`) so held-out errors are covered (split-conformal or temperature, per group).
"""

from __future__ import annotations

from potforge.linalg import (
    ENERGY,
    FORCE,
    ROW_TYPES,
    STRESS,
    VIRIAL,
    NormalEquations,
    RidgeSolution,
    solve_ridge,
    unidentifiable_columns,
)
from potforge.uq.bayes import (
    BayesianLinearRegressor,
    TemperedBayesRegressor,
    evidence_maximisation,
)
from potforge.uq.calibration import ConformalCalibrator, fisher_std
from potforge.uq.ensembles import ResampledEnsembleRegressor
from potforge.uq.pops import (
    POOLED,
    POPSRegressor,
    PopsResult,
    PopsRows,
    fit_pops,
    fit_pops_streaming,
    pops_corrections,
    ridge_fit,
)
from potforge.uq.posteriors import EnsemblePosterior, HypercubePosterior, select_components

__all__ = [
    "ENERGY",
    "FORCE",
    "POOLED",
    "ROW_TYPES",
    "STRESS",
    "VIRIAL",
    "BayesianLinearRegressor",
    "ConformalCalibrator",
    "EnsemblePosterior",
    "HypercubePosterior",
    "NormalEquations",
    "POPSRegressor",
    "PopsResult",
    "PopsRows",
    "ResampledEnsembleRegressor",
    "RidgeSolution",
    "TemperedBayesRegressor",
    "evidence_maximisation",
    "fisher_std",
    "fit_pops",
    "fit_pops_streaming",
    "pops_corrections",
    "ridge_fit",
    "select_components",
    "solve_ridge",
    "unidentifiable_columns",
]
