"""The ASE calculator of a fitted :class:`~potforge.model.LinearPotential` (energy, forces,
stress, and with a posterior their std and bounds)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from potforge.data.structures import describe
from potforge.errors import DataError
from potforge.model.rows import structure_design

if TYPE_CHECKING:
    from potforge.model.estimator import LinearPotential

UQ_PROPERTIES = (
    "energy_std",
    "forces_std",
    "stress_std",
    "energy_bounds",
    "forces_bounds",
    "stress_bounds",
)
"""Extra calculator properties of a model with a posterior (std: (), (N, 3), (6,); bounds: a
leading axis of 2, lower then upper)."""


class PotentialCalculator(Calculator):
    """ASE calculator of a fitted :class:`LinearPotential` (descriptors from LAMMPS/numpy).

    Implements ``energy``, ``free_energy``, ``forces`` and ``stress`` (eV, eV/Å, eV/Å³); when
    the model has a posterior (and ``coef`` is not overridden) also :data:`UQ_PROPERTIES`:
    ``energy_std`` (eV), ``forces_std`` (N, 3), ``stress_std`` (6,), ``energy_bounds`` (2,),
    ``forces_bounds`` (2, N, 3), ``stress_bounds`` (2, 6) — lower then upper, exact over the
    posterior — read with ``atoms.calc.get_property("energy_bounds", atoms)``. They are computed
    only when asked for, so plain energy/force calls cost nothing extra.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, model: LinearPotential, coef: np.ndarray | None = None, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.coef = None if coef is None else np.asarray(coef, dtype=float)
        self.implemented_properties = list(type(self).implemented_properties)
        if self.coef is None and model.has_posterior:
            self.implemented_properties += list(UQ_PROPERTIES)

    def get_property(self, name, atoms=None, allow_calculation=True):
        """As ASE's, with a sentence saying why an uncertainty property is missing."""
        if name in UQ_PROPERTIES and name not in self.implemented_properties:
            why = (
                "its parameters were given explicitly (the posterior describes coef_)"
                if self.coef is not None
                else "the model has no posterior (run `potforge uq` or "
                "LinearPotential.fit_posterior)"
            )
            raise PropertyNotImplementedError(
                f"{name} is not available from this calculator: {why}"
            )
        return super().get_property(name, atoms, allow_calculation)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        """Energy (eV), forces (eV/Å), stress (eV/Å³); with a posterior, their std and bounds."""
        super().calculate(atoms, properties, system_changes)
        current = self.atoms
        if current is None:
            raise DataError("PotentialCalculator.calculate needs a structure: pass atoms")
        d = structure_design(self.model.terms_, current)
        uq = any(p in UQ_PROPERTIES for p in properties)
        r = self.model.predict_designs(
            [d], self.coef, return_std=uq, return_bounds=uq, names=[describe(current)]
        )[0]
        self.results = {
            "energy": float(r["energy"]),
            "free_energy": float(r["energy"]),
            "forces": r["forces"],
            "stress": r["stress"],
        }
        if uq:
            self.results.update({p: r[p] for p in UQ_PROPERTIES})
