"""Material properties (quantities of interest) of any ASE calculator.

Lattice constants and cohesive energy, E–V curve and bulk modulus, elastic constants, vacancy and
self-interstitial formation energies, surface energies, generalized stacking faults, phonons,
competing phases and (only when named) the relaxed ideal shear strength, for bcc, fcc and hcp
ground states; for a binary compound AB (``element="CuI"``: zincblende or rocksalt, the lower in
energy by default) the bulk ones — lattice constant, cohesive energy, bulk modulus, relaxed-ion
elastic constants, the other lattice's energy — and the formation energy ``dHf`` from the
elements' reference states (:mod:`~potforge.properties.compounds`).  Use :func:`run_suite` /
:data:`REGISTRY` by name, or :class:`PropertySuite` for arrays (E–V curve, 6×6 tensor, GSF
curves, dispersion, ideal-shear path).
Work is shared through a suite the caller keeps (``suite=``; there is no global cache), and
relaxations can be recorded or replaced by a hook passed explicitly (``hook=``).

Examples
--------
>>> from potforge.properties import run_suite
>>> run_suite(calc, "W", ["a0", "C11", "Evac"])  # doctest: +SKIP
{'a0': {'value': 3.18..., 'unit': 'Å', 'seconds': ...}, ...}
>>> compute_qoi("C44", calc, "CuI", structure="zincblende")  # doctest: +SKIP
>>> run_suite(calc, "CuI", ["a0", "C44", "dHf"], references={"I": "dimer"})  # doctest: +SKIP
"""

from potforge.properties.base import (
    COMPOUND_LATTICES,
    EV_A2_TO_J_M2,
    EV_A3_TO_GPA,
    REFERENCE_LATTICES,
    ElementError,
    InstabilityError,
    NotApplicableError,
    PropertyError,
    RelaxationError,
    SettingError,
    UnknownQoIError,
    UnknownSettingError,
    UnstableWarning,
    species,
)
from potforge.properties.bulk import (
    BulkState,
    birch_murnaghan,
    fit_birch_murnaghan,
    isolated_atom_energy,
    relax_bulk,
)
from potforge.properties.compounds import (
    ElementalReference,
    formation_energy,
    reference_lattice,
    relax_reference,
)
from potforge.properties.elastic import (
    born_eigenvalues,
    check_born_stability,
    cubic_constants,
    elastic_from_stress_strain,
    elastic_tensor,
)
from potforge.properties.phonons import PhononResult, compute_phonons
from potforge.properties.registry import (
    COMPOUND_QOIS,
    REGISTRY,
    QoI,
    compute_qoi,
    default_qois,
    get_qoi,
    run_suite,
    suite_for,
)
from potforge.properties.relax import relax_cell, relax_positions
from potforge.properties.settings import SETTINGS, Setting, validate_settings
from potforge.properties.stacking import gsf_curve, unstable_fault_energy
from potforge.properties.suite import PropertySuite

__all__ = [
    "COMPOUND_LATTICES",
    "COMPOUND_QOIS",
    "EV_A2_TO_J_M2",
    "EV_A3_TO_GPA",
    "REFERENCE_LATTICES",
    "REGISTRY",
    "SETTINGS",
    "BulkState",
    "ElementError",
    "ElementalReference",
    "InstabilityError",
    "NotApplicableError",
    "PhononResult",
    "PropertyError",
    "PropertySuite",
    "QoI",
    "RelaxationError",
    "Setting",
    "SettingError",
    "UnknownQoIError",
    "UnknownSettingError",
    "UnstableWarning",
    "birch_murnaghan",
    "born_eigenvalues",
    "check_born_stability",
    "compute_phonons",
    "compute_qoi",
    "cubic_constants",
    "default_qois",
    "elastic_from_stress_strain",
    "elastic_tensor",
    "fit_birch_murnaghan",
    "formation_energy",
    "get_qoi",
    "gsf_curve",
    "isolated_atom_energy",
    "reference_lattice",
    "relax_bulk",
    "relax_cell",
    "relax_positions",
    "relax_reference",
    "run_suite",
    "species",
    "suite_for",
    "unstable_fault_energy",
    "validate_settings",
]
