"""Equilibrium bulk: lattice constants, cohesive energy, E–V curve and Birch–Murnaghan fit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from scipy.optimize import curve_fit

from potforge.properties.base import PropertyError
from potforge.properties.relax import (
    FMAX,
    STEPS,
    RelaxationHook,
    keep_structure,
    relax_cell,
    relax_positions,
)
from potforge.properties.structures import ATOMS_PER_CUBE, bulk_phase, guess_lattice


@dataclass(frozen=True)
class BulkState:
    """A relaxed bulk phase.

    Attributes
    ----------
    element, phase : str
    atoms : ase.Atoms
        Relaxed primitive cell (no calculator attached).
    a : float
        Cubic lattice constant (bcc, fcc, A15) or basal lattice constant (hcp), Å.
    c_over_a : float or None
        hcp only.
    energy_per_atom : float
        eV/atom.
    volume_per_atom : float
        Å³/atom.
    """

    element: str
    phase: str
    atoms: Atoms
    a: float
    c_over_a: float | None
    energy_per_atom: float
    volume_per_atom: float


def relax_bulk(
    calc,
    element: str,
    phase: str,
    *,
    fmax: float = FMAX,
    steps: int = STEPS,
    volume_per_atom: float | None = None,
    hook: RelaxationHook | None = None,
) -> BulkState:
    """Relax ``element`` in ``phase`` to zero stress (cubic phases keep cubic symmetry).

    Parameters
    ----------
    calc : ase.calculators.calculator.Calculator
    phase : {"bcc", "fcc", "hcp", "A15"}
    fmax : float
        Tolerance on atomic and cell generalized forces, eV/Å.
    volume_per_atom : float, optional
        Starting volume, Å³/atom (default: ASE reference data, or scaled from it).
    hook : RelaxationHook, optional
        Stands in for every relaxation (:data:`~potforge.properties.relax.RelaxationHook`).

    Returns
    -------
    BulkState
    """
    a0, coa0 = guess_lattice(element, phase, volume_per_atom)
    start = bulk_phase(element, phase, a0, coa0)
    atoms, energy = relax_cell(
        start,
        calc,
        label=f"{element} {phase} bulk",
        fmax=fmax,
        steps=steps,
        hydrostatic=phase != "hcp",
        hook=hook,
    )
    n = len(atoms)
    vol = atoms.get_volume() / n
    if phase == "hcp":
        lengths = atoms.cell.lengths()
        a, coa = float(lengths[0]), float(lengths[2] / lengths[0])
    else:
        a, coa = float((ATOMS_PER_CUBE[phase] * vol) ** (1.0 / 3.0)), None
    clean = atoms.copy()
    clean.calc = None
    return BulkState(element, phase, clean, a, coa, energy / n, float(vol))


def isolated_atom_energy(
    calc, element: str, *, box: float = 20.0, tol: float = 1e-6, max_growth: int = 4
) -> float:
    """Energy of one atom alone in a large periodic cubic box, eV.

    A periodic box works for every calculator (LAMMPS included); the box is grown by 1.5× until
    the energy changes by less than ``tol``, so it ends at least twice the interaction range.

    Parameters
    ----------
    box : float
        Starting edge, Å.
    tol : float
        Convergence of the energy with box size, eV.
    max_growth : int
        Growth steps allowed before giving up.

    Raises
    ------
    PropertyError
        When the energy has not converged with box size.
    """

    def energy(edge: float) -> float:
        atoms = Atoms(element, positions=[[edge / 2] * 3], cell=[edge] * 3, pbc=True)
        atoms.calc = calc
        return float(atoms.get_potential_energy())

    edge, e = box, energy(box)
    for _ in range(max_growth):
        edge *= 1.5
        e_next = energy(edge)
        if abs(e_next - e) < tol:
            return e_next
        e = e_next
    raise PropertyError(
        f"isolated {element} atom energy did not converge with box size: changed by more than "
        f"{tol:g} eV up to a {edge:.0f} Å box"
    )


def cohesive_energy(isolated: float, bulk_energy_per_atom: float) -> float:
    """Cohesive energy ``E_atom − E_bulk/N`` (positive for a bound crystal), eV/atom."""
    return float(isolated - bulk_energy_per_atom)


def birch_murnaghan(volume: np.ndarray, e0: float, v0: float, b0: float, b0p: float) -> np.ndarray:
    """Third-order Birch–Murnaghan energy.

    Parameters
    ----------
    volume : ndarray, shape (M,)
        Å³ (per atom or per cell, consistently with ``v0``).
    e0 : float
        eV. ``v0`` : Å³. ``b0`` : eV/Å³. ``b0p`` : dimensionless.

    Returns
    -------
    ndarray, shape (M,)
        Energies, eV.
    """
    x = (v0 / np.asarray(volume, dtype=float)) ** (2.0 / 3.0) - 1.0
    return e0 + 9.0 * v0 * b0 / 16.0 * (x**3 * b0p + x**2 * (6.0 - 4.0 * (x + 1.0)))


def fit_birch_murnaghan(
    volumes: np.ndarray, energies: np.ndarray
) -> tuple[float, float, float, float]:
    """Least-squares Birch–Murnaghan fit.

    Parameters
    ----------
    volumes : ndarray, shape (M,), M ≥ 5
        Å³.
    energies : ndarray, shape (M,)
        eV.

    Returns
    -------
    e0 : float
        Minimum energy, eV.
    v0 : float
        Equilibrium volume, Å³.
    b0 : float
        Bulk modulus, eV/Å³.
    b0p : float
        Its pressure derivative.
    """
    v = np.asarray(volumes, dtype=float)
    e = np.asarray(energies, dtype=float)
    if v.shape != e.shape or v.ndim != 1 or len(v) < 5:
        raise PropertyError(
            f"Birch–Murnaghan fit needs ≥ 5 matching volumes and energies, got shapes "
            f"{v.shape} and {e.shape}"
        )
    c2, c1, c0 = np.polyfit(v, e, 2)
    if c2 <= 0:
        raise PropertyError("E–V points have no minimum (negative curvature): no bulk modulus")
    v0 = -c1 / (2 * c2)
    p0 = (c0 - c1**2 / (4 * c2), v0, 2 * c2 * v0, 4.0)
    params, _ = curve_fit(
        birch_murnaghan, v, e, p0=p0, maxfev=20000, ftol=1e-14, xtol=1e-14, gtol=1e-14
    )
    return tuple(float(p) for p in params)  # type: ignore[return-value]


def energy_volume_curve(
    calc,
    state: BulkState,
    *,
    span: float = 0.05,
    n: int = 11,
    fmax: float = FMAX,
    steps: int = STEPS,
    keep: list | None = None,
    hook: RelaxationHook | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Energy per atom along a homogeneous scaling of the relaxed cell (ions relaxed).

    Parameters
    ----------
    state : BulkState
    span : float
        Relative volume range ``±span`` around the equilibrium volume.
    n : int
        Number of points.
    keep : list, optional
        Receives the relaxed structure(s) behind the value, in order.
    hook : RelaxationHook, optional
        Stands in for every relaxation (:data:`~potforge.properties.relax.RelaxationHook`).

    Returns
    -------
    volumes : ndarray, shape (n,)
        Å³/atom.
    energies : ndarray, shape (n,)
        eV/atom.
    """
    base = state.atoms
    natoms = len(base)
    vols = state.volume_per_atom * (1.0 + np.linspace(-span, span, n))
    energies = np.empty(n)
    for i, v in enumerate(vols):
        atoms = base.copy()
        atoms.set_cell(base.cell * (v / state.volume_per_atom) ** (1.0 / 3.0), scale_atoms=True)
        if natoms > 1:
            atoms, e = relax_positions(
                atoms,
                calc,
                label=f"{state.element} {state.phase} at {v:.2f} Å³/atom",
                fmax=fmax,
                steps=steps,
                hook=hook,
            )
        else:
            atoms.calc = calc
            e = atoms.get_potential_energy()
        keep_structure(keep, atoms)
        energies[i] = e / natoms
    return vols, energies
