"""Layer 4, the model: a potential linear in its parameters, its design rows, the weighted
fit, the ASE calculator, the LAMMPS export, persistence, metrics and the cross-validated
search of the fit's weights.

>>> from potforge.model import LinearPotential
>>> model = LinearPotential("snap(twojmax=6)+zbl+const").fit(train)     # doctest: +SKIP
"""

from __future__ import annotations

from potforge.model.calculator import UQ_PROPERTIES, PotentialCalculator
from potforge.model.cv import CVScore, WeightSearch, cv_folds, cv_score, search_weights
from potforge.model.estimator import LinearPotential, structure_list
from potforge.model.io import MODEL_FILE, POSTERIOR_FILE
from potforge.options import DEFAULT_SPEC

__all__ = [
    "CVScore",
    "DEFAULT_SPEC",
    "MODEL_FILE",
    "POSTERIOR_FILE",
    "UQ_PROPERTIES",
    "LinearPotential",
    "PotentialCalculator",
    "WeightSearch",
    "cv_folds",
    "cv_score",
    "search_weights",
    "structure_list",
]
