"""Point defects: relaxed vacancy and self-interstitial formation energies at fixed cell."""

from __future__ import annotations

from collections.abc import Iterable

from potforge.properties.base import InstabilityError
from potforge.properties.bulk import BulkState
from potforge.properties.relax import (
    FMAX,
    STEPS,
    RelaxationHook,
    keep_structure,
    relax_positions,
)
from potforge.properties.structures import cubic_supercell, interstitial_supercell


def formation_energy(defect_energy: float, n_defect: int, bulk_energy_per_atom: float) -> float:
    """``E_f = E_defect − n_defect · e_bulk`` for a defect cell of ``n_defect`` atoms, eV."""
    return float(defect_energy - n_defect * bulk_energy_per_atom)


def vacancy_formation_energy(
    calc,
    state: BulkState,
    *,
    size: int = 3,
    fmax: float = FMAX,
    steps: int = STEPS,
    keep: list | None = None,
    hook: RelaxationHook | None = None,
) -> float:
    """Relaxed mono-vacancy formation energy at the bulk equilibrium cell, eV.

    Parameters
    ----------
    calc : ase.calculators.calculator.Calculator
    state : BulkState
        Relaxed ground state (its energy per atom is the reference).
    size : int
        Supercell of ``size³`` conventional cells (bcc: ``2 size³`` sites; 3 → 54).
    fmax : float
        eV/Å.
    keep : list, optional
        Receives the relaxed structure(s) behind the value, in order.
    hook : RelaxationHook, optional
        Stands in for every relaxation (:data:`~potforge.properties.relax.RelaxationHook`).

    Returns
    -------
    float
        ``E(N−1) − (N−1) e_bulk``, eV.

    Raises
    ------
    InstabilityError
        When the cell collapses (:data:`~potforge.properties.relax.COLLAPSE`) or the formation
        energy is not positive (the perfect lattice is then unstable against vacancies).
    """
    atoms = cubic_supercell(state.element, state.phase, state.a, size, state.c_over_a)
    n = len(atoms)
    del atoms[n // 2]
    label = f"{state.element} vacancy"
    relaxed, e = relax_positions(atoms, calc, label=label, fmax=fmax, steps=steps, hook=hook)
    keep_structure(keep, relaxed)
    e_f = formation_energy(e, n - 1, state.energy_per_atom)
    if e_f <= 0.0:
        raise InstabilityError(
            f"{label} lies below the perfect crystal: formation energy {e_f:.4g} eV ≤ 0, so "
            f"{state.phase} {state.element} is unstable against vacancies with this potential"
        )
    return e_f


def vacancy_convergence(
    calc,
    state: BulkState,
    sizes: Iterable[int] = (2, 3, 4),
    *,
    fmax: float = FMAX,
    steps: int = STEPS,
    hook: RelaxationHook | None = None,
) -> dict[int, float]:
    """Vacancy formation energy for each supercell size, to judge size convergence.

    Returns
    -------
    dict
        Number of lattice sites → formation energy, eV.
    """
    out = {}
    for size in sizes:
        sites = len(cubic_supercell(state.element, state.phase, state.a, size, state.c_over_a))
        out[sites] = vacancy_formation_energy(
            calc, state, size=size, fmax=fmax, steps=steps, hook=hook
        )
    return out


def interstitial_formation_energy(
    calc,
    state: BulkState,
    kind: str,
    *,
    size: int = 3,
    fmax: float = FMAX,
    steps: int = STEPS,
    keep: list | None = None,
    hook: RelaxationHook | None = None,
) -> float:
    """Relaxed self-interstitial formation energy at the bulk equilibrium cell, eV.

    The interstitial starts at its ideal geometry (:data:`~potforge.properties.structures.
    SIA_SITES`); high-symmetry configurations that are saddle points may stay there by symmetry.

    Parameters
    ----------
    kind : {"110", "111", "100", "oct", "tet"}
        Dumbbell direction, or octahedral / tetrahedral site.
    size : int
        Supercell of ``size³`` conventional cubic cells.
    keep : list, optional
        Receives the relaxed structure(s) behind the value, in order.
    hook : RelaxationHook, optional
        Stands in for every relaxation (:data:`~potforge.properties.relax.RelaxationHook`).

    Returns
    -------
    float
        ``E(N+1) − (N+1) e_bulk``, eV.
    """
    atoms = interstitial_supercell(state.element, state.phase, state.a, size, kind)
    label = f"{state.element} {kind} self-interstitial"
    relaxed, e = relax_positions(atoms, calc, label=label, fmax=fmax, steps=steps, hook=hook)
    keep_structure(keep, relaxed)
    return formation_energy(e, len(atoms), state.energy_per_atom)
