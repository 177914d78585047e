"""``PropertySuite``: every property of one element under one calculator, sharing its work.

The relaxed ground state, the isolated-atom energy, the elastic tensor, phonons and each GSF
curve are computed once and memoised, so asking for ``C11``, ``C12`` and ``C44`` (or ``nu_H``,
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
from potforge.properties import defects, elastic, phonons, shear, stacking, surfaces
from potforge.properties.base import check_element, ground_state
from potforge.properties.relax import FMAX, STEPS, RelaxationHook
from potforge.properties.structures import PHASES, bulk_phase


class PropertySuite:
    """Memoising front end of the property functions for ``element`` under ``calc``.

    Parameters
    ----------
    calc : ase.calculators.calculator.Calculator
        Any ASE calculator describing ``element``.
    element : str
    structure : {"bcc", "fcc", "hcp"}, optional
        Ground-state lattice (default: ASE's reference state of the element).
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
    All returned values are in eV, Å, eV/Å³, eV/Å² and THz.
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
    def lattice(self) -> str:
        """Ground-state lattice (bcc, fcc or hcp)."""
        return self.structure or ground_state(self.element)

    def ground(self) -> _bulk.BulkState:
        """Relaxed ground state (checks the element on first use)."""

        def compute():
            check_element(self.calc, self.element)
            return _bulk.relax_bulk(self.calc, self.element, self.lattice, **self._relax_kw)

        return self._cached("ground", compute)

    def phase(self, phase: str) -> _bulk.BulkState:
        """Relaxed competing phase (bcc, fcc, hcp, A15), started at the ground-state volume."""
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

    def isolated_atom_energy(self) -> float:
        """Energy of the free atom under the calculator, eV."""
        return self._cached("isolated", lambda: _bulk.isolated_atom_energy(self.calc, self.element))

    def cohesive_energy(self) -> float:
        """``E_atom − E_bulk/N``, eV/atom."""
        return _bulk.cohesive_energy(self.isolated_atom_energy(), self.ground().energy_per_atom)

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
        return self._cached_relaxed(
            ("vac", size),
            defects.vacancy_formation_energy,
            self.calc,
            self.ground(),
            size=size,
        )

    def vacancy_convergence(self, sizes=(2, 3, 4)) -> dict[int, float]:
        """Sites → vacancy formation energy (eV) over supercell sizes (memoised per size)."""
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
