"""Surface energies of relaxed slabs cut from the equilibrium crystal."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from potforge.properties.base import EV_A2_TO_J_M2, InstabilityError, NotApplicableError
from potforge.properties.bulk import BulkState
from potforge.properties.relax import (
    FMAX,
    STEPS,
    RelaxationHook,
    keep_structure,
    relax_positions,
)
from potforge.properties.structures import SURFACE_ORIENTATIONS, oriented_cell


def slab(
    state: BulkState,
    miller: str,
    *,
    thickness: float = 12.0,
    vacuum: float = 15.0,
    repeats: int | None = None,
) -> tuple[Atoms, int]:
    """Periodic slab with two free ``miller`` surfaces normal to z.

    Parameters
    ----------
    state : BulkState
        Cubic (bcc or fcc) relaxed ground state.
    miller : {"100", "110", "111", "211"}
    thickness : float
        Minimum slab thickness, Å (ignored when ``repeats`` is given).
    vacuum : float
        Gap between periodic images of the slab, Å (choose it above the cutoff).
    repeats : int, optional
        Periods of the orientation cell along z.

    Returns
    -------
    slab : ase.Atoms
        Periodic in all three directions, vacuum along z.
    repeats : int
        Periods along z actually used.
    """
    if state.phase not in ("bcc", "fcc"):
        raise NotApplicableError(
            f"surface energies ({', '.join(SURFACE_ORIENTATIONS)}) are cubic Miller planes; "
            f"{state.element} is {state.phase}"
        )
    if miller not in SURFACE_ORIENTATIONS:
        raise NotApplicableError(
            f"no surface '{miller}'; use one of {', '.join(SURFACE_ORIENTATIONS)}"
        )
    dirs = SURFACE_ORIENTATIONS[miller]
    if repeats is None:  # ase.lattice may reduce a direction to its true lattice period
        one = oriented_cell(state.element, state.phase, state.a, dirs, (1, 1, 1))
        repeats = max(1, int(np.ceil(thickness / one.cell[2, 2] - 1e-9)))
    atoms = oriented_cell(state.element, state.phase, state.a, dirs, (1, 1, repeats))
    cell = atoms.cell.array.copy()
    cell[2, 2] += vacuum
    atoms.set_cell(cell, scale_atoms=False)
    return atoms, repeats


def surface_energy(
    calc,
    state: BulkState,
    miller: str,
    *,
    thickness: float = 12.0,
    vacuum: float = 15.0,
    repeats: int | None = None,
    relax: bool = True,
    keep: list | None = None,
    fmax: float = FMAX,
    steps: int = STEPS,
    hook: RelaxationHook | None = None,
) -> float:
    """Surface energy ``(E_slab − N e_bulk) / 2A`` of a relaxed slab, eV/Å².

    Parameters
    ----------
    calc : ase.calculators.calculator.Calculator
    state : BulkState
    miller : {"100", "110", "111", "211"}
    thickness, vacuum, repeats
        See :func:`slab`.
    relax : bool
        Relax atomic positions (cell fixed); False gives the unrelaxed surface energy.
    fmax : float
        eV/Å.
    keep : list, optional
        Receives the relaxed structure(s) behind the value, in order.
    hook : RelaxationHook, optional
        Stands in for every relaxation (:data:`~potforge.properties.relax.RelaxationHook`).

    Returns
    -------
    float
        eV/Å² (× 16.02 for J/m²).

    Raises
    ------
    InstabilityError
        When the slab collapses (:data:`~potforge.properties.relax.COLLAPSE`) or its surface
        energy is not positive.
    """
    atoms, _ = slab(state, miller, thickness=thickness, vacuum=vacuum, repeats=repeats)
    if relax:
        atoms, e = relax_positions(
            atoms,
            calc,
            label=f"{state.element} ({miller}) slab",
            fmax=fmax,
            steps=steps,
            hook=hook,
        )
    else:
        atoms.calc = calc
        e = atoms.get_potential_energy()
    keep_structure(keep, atoms)
    area = float(np.linalg.norm(np.cross(atoms.cell[0], atoms.cell[1])))
    gamma = float((e - len(atoms) * state.energy_per_atom) / (2.0 * area))
    if gamma <= 0.0:
        raise InstabilityError(
            f"{state.element} ({miller}) slab lies below the bulk: surface energy "
            f"{gamma * EV_A2_TO_J_M2:.4g} J/m² ≤ 0, so {state.phase} {state.element} is unstable "
            f"against cleavage with this potential"
        )
    return gamma
