"""``PropertySuite``: every property of one element (or binary compound) under one calculator,
sharing its work.

The relaxed ground state, the isolated-atom energy, the elastic tensor, phonons and each GSF
curve (and each elemental reference of a compound's formation energy) are computed once and
memoised, so asking for ``C11``, ``C12`` and ``C44`` (or ``nu_H``,
``nu_N``, ``nu_P``) costs one calculation.  The memo lives on the suite object: whoever keeps the
suite shares its work (:func:`~potforge.properties.registry.run_suite` and
:func:`~potforge.properties.registry.compute_qoi` take it as ``suite=``); there is no global
cache.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from potforge.properties import bulk as _bulk
from potforge.properties import compounds, defects, elastic, phonons, shear, stacking, surfaces
from potforge.properties.base import (
    COMPOUND_LATTICES,
    InstabilityError,
    NotApplicableError,
    RelaxationError,
    check_element,
    check_lattice,
    ground_state,
    is_compound,
    species,
)
from potforge.properties.relax import FMAX, STEPS, RelaxationHook
from potforge.properties.structures import PHASES, bulk_phase


class PropertySuite:
    """Memoising front end of the property functions for ``element`` under ``calc``.

    Parameters
    ----------
    calc : ase.calculators.calculator.Calculator
        Any ASE calculator describing ``element`` (each species of a compound).
    element : str
        A chemical symbol (``"W"``) or the formula of a 1:1 binary compound AB (``"CuI"``;
        :func:`~potforge.properties.base.species`).
    structure : {"bcc", "fcc", "hcp", "zincblende", "rocksalt"}, optional
        Ground-state lattice (default: ASE's reference state of an element; for a compound the
        lower in energy per atom of zincblende and rocksalt, both relaxed under ``calc``).
    fmax : float
        Force tolerance of every relaxation, eV/Å.
    steps : int
        Maximum optimiser steps of every relaxation.
    hook : RelaxationHook, optional
        Stands in for every relaxation the suite runs
        (:data:`~potforge.properties.relax.RelaxationHook`: e.g. a
        :class:`~potforge.qoi.implicit.RelaxationRecord` recording them); an attribute, read at
        each relaxation.

    Notes
    -----
    Nothing is computed in ``__init__``; the first call checks the element and relaxes the bulk.
    All returned values are in eV, Å, eV/Å³, eV/Å² and THz.  A compound has the bulk
    quantities (lattice constant, E–V curve, elastic tensor with relaxed ions, cohesive energy,
    the other compound lattice's energy) and its formation energy; defects, surfaces, stacking
    faults, phonons and the ideal shear strength are elemental only and raise
    :class:`~potforge.properties.base.NotApplicableError` for a compound.
    """

    def __init__(
        self,
        calc,
        element: str,
        *,
        structure: str | None = None,
        fmax: float = FMAX,
        steps: int = STEPS,
        hook: RelaxationHook | None = None,
    ):
        self.calc = calc
        self.element = element
        self.structure = structure
        self.fmax = fmax
        self.steps = steps
        self.hook = hook
        self._memo: dict[Hashable, Any] = {}
        self.structures: dict[Hashable, list] = {}
        """Memo key → the relaxed structures behind that result (for sensitivities)."""

    def _cached(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def _cached_relaxed(self, key: Hashable, func: Callable[..., Any], *args, **kwargs) -> Any:
        """:meth:`_cached` of ``func(*args, keep=..., **kwargs, fmax, steps, hook)``, recording the
        relaxed structures behind the value in :attr:`structures` under the same ``key``."""

        def compute():
            self.structures[key] = []
            return func(*args, keep=self.structures[key], **kwargs, **self._relax_kw)

        return self._cached(key, compute)

    @property
    def _relax_kw(self) -> dict:
        return {"fmax": self.fmax, "steps": self.steps, "hook": self.hook}

    # --- bulk -----------------------------------------------------------------------------
    @property
    def compound(self) -> bool:
        """The suite is that of a binary compound AB (checks the element)."""
        return is_compound(self.element)

    @property
    def lattice(self) -> str:
        """Ground-state lattice: bcc, fcc or hcp for an element; zincblende or rocksalt for a
        compound (without ``structure``: the lower in energy per atom, both relaxed on first
        use, zincblende on a tie; a lattice whose relaxation collapses or does not converge
        has no minimum near its start and loses — when both do, the first error is raised)."""
        check_lattice(self.element, self.structure)
        if self.structure:
            return self.structure
        if not self.compound:
            return ground_state(self.element)

        def lowest() -> str:
            energies, failures = [], []
            for p in COMPOUND_LATTICES:
                try:
                    energies.append(self._compound_phase(p).energy_per_atom)
                except (InstabilityError, RelaxationError) as exc:  # no minimum there
                    energies.append(np.inf)
                    failures.append(exc)
            if len(failures) == len(COMPOUND_LATTICES):
                raise failures[0]
            return COMPOUND_LATTICES[int(np.argmin(energies))]

        return self._cached("lattice", lowest)

    def _checked(self) -> None:
        """Check once that the calculator describes the element (each species)."""
        self._cached("checked", lambda: check_element(self.calc, self.element))

    def _compound_phase(self, phase: str) -> _bulk.BulkState:
        """The compound relaxed in ``phase`` (zincblende or rocksalt) from its starting guess."""

        def compute():
            self._checked()
            return _bulk.relax_bulk(self.calc, self.element, phase, **self._relax_kw)

        return self._cached(("phase", phase), compute)

    def _require_element(self, what: str) -> None:
        """Raise :class:`NotApplicableError` for a compound: ``what`` is elemental only."""
        if self.compound:
            raise NotApplicableError(
                f"{what} are computed for elements only, not for the compound {self.element}"
            )

    def ground(self) -> _bulk.BulkState:
        """Relaxed ground state (checks the element on first use)."""
        if self.compound:
            return self._compound_phase(self.lattice)

        def compute():
            self._checked()
            return _bulk.relax_bulk(self.calc, self.element, self.lattice, **self._relax_kw)

        return self._cached("ground", compute)

    def phase(self, phase: str) -> _bulk.BulkState:
        """Relaxed competing phase: bcc, fcc, hcp or A15 of an element (started at the
        ground-state volume), zincblende or rocksalt of a compound (from its own guess)."""
        if self.compound:
            if phase not in COMPOUND_LATTICES:
                raise NotApplicableError(
                    f"{self.element} is a compound: its phases are "
                    f"{', '.join(COMPOUND_LATTICES)}, not {phase}"
                )
            return self._compound_phase(phase)
        if phase == self.lattice:
            return self.ground()
        v0 = self.ground().volume_per_atom
        return self._cached(
            ("phase", phase),
            lambda: _bulk.relax_bulk(
                self.calc, self.element, phase, volume_per_atom=v0, **self._relax_kw
            ),
        )

    def lattice_constant(self) -> float:
        """Equilibrium (cubic or basal) lattice constant, Å."""
        return self.ground().a

    def isolated_atom_energy(self, symbol: str | None = None) -> float:
        """Energy of the free atom ``symbol`` (default: the element; a compound names one of
        its species) under the calculator, eV."""
        if symbol is None:
            self._require_element("free-atom energies without a symbol")
            symbol = self.element
        if symbol not in species(self.element):
            raise NotApplicableError(f"{symbol} is not an element of {self.element}")
        return self._cached(
            ("isolated", symbol), lambda: _bulk.isolated_atom_energy(self.calc, symbol)
        )

    def cohesive_energy(self) -> float:
        """``mean E_atom − E_bulk/N`` (the free atoms of every species, in the compound's
        proportions), eV/atom."""
        isolated = np.mean([self.isolated_atom_energy(s) for s in species(self.element)])
        return _bulk.cohesive_energy(float(isolated), self.ground().energy_per_atom)

    def reference(self, symbol: str, references=None) -> compounds.ElementalReference:
        """Relaxed reference state of ``symbol``, one element of the compound: ``references``
        (``{symbol: state}``, the ``references`` setting) or ASE's reference state
        (:func:`~potforge.properties.compounds.reference_lattice`)."""
        if symbol not in species(self.element):
            raise NotApplicableError(f"{symbol} is not an element of {self.element}")
        lattice = compounds.reference_lattice(symbol, references)

        def compute():
            self._checked()
            return compounds.relax_reference(self.calc, symbol, lattice, **self._relax_kw)

        return self._cached(("reference", symbol, lattice), compute)

    def formation_energy(self, references=None) -> float:
        """ΔH_f = E/N − mean of the elemental references' energies per atom, eV/atom (a
        compound only; :mod:`~potforge.properties.compounds`)."""
        if not self.compound:
            raise NotApplicableError(
                f"the formation energy is a quantity of compounds (e.g. CuI); {self.element} "
                "is an element"
            )
        compounds.check_references(self.element, references)
        e = self.ground().energy_per_atom
        refs = [self.reference(s, references) for s in species(self.element)]
        return compounds.formation_energy(e, [r.energy_per_atom for r in refs])

    def energy_volume(self, span: float = 0.05, n: int = 11) -> tuple[np.ndarray, np.ndarray]:
        """E–V curve of the ground state: volumes (n,) Å³/atom, energies (n,) eV/atom."""
        return self._cached_relaxed(
            ("ev", span, n),
            _bulk.energy_volume_curve,
            self.calc,
            self.ground(),
            span=span,
            n=n,
        )

    def bulk_modulus(self, span: float = 0.05, n: int = 11) -> float:
        """Birch–Murnaghan bulk modulus, eV/Å³."""
        return _bulk.fit_birch_murnaghan(*self.energy_volume(span, n))[2]

    def phase_energy(self, phase: str) -> float:
        """Energy of ``phase`` relative to the ground state, eV/atom."""
        if self.compound:
            return self.phase(phase).energy_per_atom - self.ground().energy_per_atom
        if phase not in PHASES:
            raise _bulk.PropertyError(f"unknown phase '{phase}'; use one of {', '.join(PHASES)}")
        return self.phase(phase).energy_per_atom - self.ground().energy_per_atom

    # --- elasticity ---------------------------------------------------------------------------
    def elastic_tensor(self, strain: float = 0.005, check_stability: bool = False) -> np.ndarray:
        """6×6 stiffness (eV/Å³) of the ground state; Born-unstable → warn or raise."""
        c = self._cached_relaxed(
            ("elastic", strain),
            elastic.elastic_tensor,
            self.calc,
            self.ground().atoms,
            strain=strain,
            label=f"{self.element} {self.lattice}",
        )
        elastic.check_born_stability(
            c, f"{self.element} {self.lattice}", raise_error=check_stability
        )
        return c

    # --- defects ------------------------------------------------------------------------------
    def vacancy_formation_energy(self, size: int = 3) -> float:
        """Relaxed vacancy formation energy in a ``size³`` conventional supercell, eV."""
        self._require_element("vacancies")
        return self._cached_relaxed(
            ("vac", size),
            defects.vacancy_formation_energy,
            self.calc,
            self.ground(),
            size=size,
        )

    def vacancy_convergence(self, sizes=(2, 3, 4)) -> dict[int, float]:
        """Sites → vacancy formation energy (eV) over supercell sizes (memoised per size)."""
        self._require_element("vacancies")
        out = {}
        for size in sizes:
            sites = (
                len(
                    bulk_phase(
                        self.element,
                        self.lattice,
                        self.ground().a,
                        self.ground().c_over_a,
                        cubic=self.lattice != "hcp",
                    )
                )
                * size**3
            )
            out[sites] = self.vacancy_formation_energy(size)
        return out

    def interstitial_formation_energy(self, kind: str, size: int = 3) -> float:
        """Relaxed self-interstitial formation energy (``kind``: 110, 111, 100, oct, tet), eV."""
        self._require_element("self-interstitials")
        return self._cached_relaxed(
            ("sia", kind, size),
            defects.interstitial_formation_energy,
            self.calc,
            self.ground(),
            kind,
            size=size,
        )

    # --- planar defects -------------------------------------------------------------------
    def surface_energy(self, miller: str, thickness: float = 12.0, vacuum: float = 15.0) -> float:
        """Relaxed surface energy, eV/Å²."""
        self._require_element("surface energies")
        return self._cached_relaxed(
            ("surf", miller, thickness, vacuum),
            surfaces.surface_energy,
            self.calc,
            self.ground(),
            miller,
            thickness=thickness,
            vacuum=vacuum,
        )

    def gsf_curve(
        self, plane: str, n_points: int = 11, thickness: float = 20.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """GSF curve: shifts (Å), energies (eV/Å²); see :func:`stacking.gsf_curve`."""
        self._require_element("stacking faults")
        return self._cached_relaxed(
            ("gsf", plane, n_points, thickness),
            stacking.gsf_curve,
            self.calc,
            self.ground(),
            plane,
            n_points=n_points,
            thickness=thickness,
        )

    def unstable_fault_energy(
        self, plane: str, n_points: int = 11, thickness: float = 20.0
    ) -> float:
        """Unstable stacking-fault energy on ``plane``, eV/Å²."""
        return stacking.unstable_fault_energy(*self.gsf_curve(plane, n_points, thickness))

    # --- ideal strength -------------------------------------------------------------------
    def ideal_shear(
        self, plane: str = "110", step: float = 0.02, gamma_max: float = 0.3
    ) -> shear.IdealShear:
        """Relaxed ideal-shear path ⟨111⟩{``plane``} of the bcc ground state and its maximum
        (:func:`~potforge.properties.shear.ideal_shear_strength`; its Newton relaxations in
        strain do not go through :attr:`hook`); the relaxed cell at the maximum is recorded in
        :attr:`structures`."""
        self._require_element("ideal shear strengths")
        key = ("shear", plane, step, gamma_max)

        def compute():
            self.structures[key] = []
            return shear.ideal_shear_strength(
                self.calc,
                self.ground(),
                plane,
                step=step,
                gamma_max=gamma_max,
                fmax=self.fmax,
                steps=self.steps,
                keep=self.structures[key],
            )

        return self._cached(key, compute)

    def ideal_shear_strength(
        self, plane: str = "110", step: float = 0.02, gamma_max: float = 0.3
    ) -> float:
        """Relaxed ideal shear strength ⟨111⟩{``plane``} (bcc), eV/Å³."""
        return self.ideal_shear(plane, step, gamma_max).tau_star

    # --- phonons --------------------------------------------------------------------------
    def phonons(self, supercell: int = 4, check_stability: bool = False) -> phonons.PhononResult:
        """Phonons of the ground state (conventional cell × ``supercell³``)."""
        self._require_element("phonons")
        g = self.ground()

        def compute():
            cell = bulk_phase(
                self.element, self.lattice, g.a, g.c_over_a, cubic=self.lattice != "hcp"
            )
            return phonons.compute_phonons(
                self.calc,
                cell,
                supercell=supercell,
                lattice=self.lattice,
                conventional_a=g.a if self.lattice != "hcp" else None,
                check_stability=False,
                label=f"{self.element} {self.lattice}",
            )

        result = self._cached(("phonons", supercell), compute)
        if check_stability and not result.stable:
            raise phonons.InstabilityError(
                f"{self.element} {self.lattice} is dynamically unstable: lowest phonon "
                f"frequency {result.min_frequency:.2f} THz (imaginary)"
            )
        return result
