"""Declarations every layer shares without importing the heavy ones: the default model, the
fit's parameter constraints and the method names (standard library only, so the command
line's ``--help`` loads no numpy)."""

from __future__ import annotations

from potforge.params import Constraint, Integer, MappingOf, Options, Real

DEFAULT_SPEC = "snap(twojmax=6,rcutfac=4.6,quadratic=True)+zbl(inner=1.0,outer=1.6)+const"
"""The default model (chosen on the Zuo Mo benchmark; see BENCHMARKS.md)."""

LOSSES = ("squared", "huber", "l1")
"""Losses on σ-normalised residuals (:mod:`potforge.model.fitting`)."""

POSTERIOR_METHODS = ("pops", "bayes", "bootstrap")
"""Uncertainty posteriors of a fitted model (:mod:`potforge.uq.centred`)."""

INIT_RULES = ("random", "stratified", "smallest", "first")
"""Rules for the initial set of the information-matching loop: a seeded random draw; a seeded
draw that takes the structure kinds (``info["group"]``) in turn, so that every kind of the pool
is labelled once before any is labelled twice; the cheapest (fewest atoms, then pool order); or
the first N of the pool."""

GROUP_WEIGHT = Real(low=0)
"""One group's weight factor (``LinearPotential.group_weights`` values, ``--group-weight``)."""

MODEL_PARAMETERS: dict[str, Constraint] = {
    "sigma_energy": Real(low=0, low_open=True),
    "sigma_force": Real(low=0, low_open=True),
    "sigma_stress": Real(low=0, low_open=True),
    "group_weights": MappingOf(values=GROUP_WEIGHT, allow_none=True),
    "alpha": Real(low=0),
    "n_jobs": Integer(low=1),
    "loss": Options(values=LOSSES),
    "huber_delta": Real(low=0, low_open=True),
}
"""Constraints of :class:`potforge.model.LinearPotential`'s numeric parameters."""

N_CANDIDATES = 8
"""Propagation ``"implicit"``/``"auto"``: posterior members per side evaluated as candidates for
a nonlinear QoI's extremes (the most extreme of the linearisation first)."""
