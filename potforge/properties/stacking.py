"""Generalized stacking-fault (γ-surface) curves and unstable stacking-fault energies.

The fault is made in a slab with free surfaces along z: atoms above the mid plane are shifted
rigidly along x (the slip direction) and every atom then relaxes along z only
(:class:`ase.constraints.FixedLine`), so the fault may open but not slip back.
"""

from __future__ import annotations

import numpy as np

from potforge.properties.base import NotApplicableError, PropertyError
from potforge.properties.bulk import BulkState
from potforge.properties.relax import (
    FMAX,
    STEPS,
    RelaxationHook,
    keep_structure,
    relax_positions,
)
from potforge.properties.structures import GSF_PERIOD, GSF_SYSTEMS, oriented_cell


def gsf_slab(state: BulkState, plane: str, *, thickness: float = 20.0, vacuum: float = 15.0):
    """Slab for the ``plane`` fault of ``state``, z normal to the plane, x along the slip.

    Returns
    -------
    atoms : ase.Atoms
    upper : ndarray of bool, shape (N,)
        Atoms above the fault plane.
    """
    key = (state.phase, plane)
    if key not in GSF_SYSTEMS:
        valid = [p for (lat, p) in GSF_SYSTEMS if lat == state.phase]
        raise NotApplicableError(
            f"no generalized stacking fault on {{{plane}}} for {state.phase} {state.element}; "
            f"available: {', '.join('{' + p + '}' for p in valid) or 'none'}"
        )
    return fault_geometry(
        state.element, state.phase, state.a, plane, thickness=thickness, vacuum=vacuum
    )


def fault_geometry(
    element: str, lattice: str, a: float, plane: str, *, thickness: float, vacuum: float
):
    """The unfaulted slab of :func:`gsf_slab` for a lattice constant ``a`` (Å) of a
    ``(lattice, plane)`` in :data:`GSF_SYSTEMS`: at least ``thickness`` Å of whole oriented
    cells (two or more), ``vacuum`` Å above; returns it and the atoms above the fault plane."""
    dirs = GSF_SYSTEMS[(lattice, plane)]
    period = oriented_cell(element, lattice, a, dirs, (1, 1, 1)).cell[2, 2]
    repeats = max(2, int(np.ceil(thickness / period - 1e-9)))
    atoms = oriented_cell(element, lattice, a, dirs, (1, 1, repeats))
    z = atoms.positions[:, 2]
    planes = np.unique(np.round(z, 4))
    cut = 0.5 * (planes[len(planes) // 2 - 1] + planes[len(planes) // 2])
    cell = atoms.cell.array.copy()
    cell[2, 2] += vacuum
    atoms.set_cell(cell, scale_atoms=False)
    return atoms, z > cut


def gsf_curve(
    calc,
    state: BulkState,
    plane: str,
    *,
    n_points: int = 11,
    thickness: float = 20.0,
    vacuum: float = 15.0,
    fmax: float = FMAX,
    steps: int = STEPS,
    keep: list | None = None,
    hook: RelaxationHook | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Relaxed generalized stacking-fault energy along the slip direction.

    Parameters
    ----------
    calc : ase.calculators.calculator.Calculator
    state : BulkState
        Relaxed bcc or fcc ground state.
    plane : {"110", "112"} for bcc, {"111"} for fcc
        Slip systems {110}<111>, {112}<111> (shift up to a/2<111>) and {111}<112> (up to the
        Shockley partial a/6<112>).
    n_points : int
        Shifts, evenly spaced, ends included.
    thickness : float
        Minimum slab thickness, Å.
    keep : list, optional
        Receives the relaxed structure(s) behind the value, in order.
    hook : RelaxationHook, optional
        Stands in for every relaxation (:data:`~potforge.properties.relax.RelaxationHook`).

    Returns
    -------
    shifts : ndarray, shape (n_points,)
        Å.
    energies : ndarray, shape (n_points,)
        Fault energy per area relative to the unshifted slab, eV/Å².
    """
    atoms, upper = gsf_slab(state, plane, thickness=thickness, vacuum=vacuum)
    area = float(np.linalg.norm(np.cross(atoms.cell[0], atoms.cell[1])))
    xhat = atoms.cell[0] / np.linalg.norm(atoms.cell[0])
    shifts = np.linspace(0.0, GSF_PERIOD[(state.phase, plane)] * state.a, n_points)
    energies = np.empty(n_points)
    for i, s in enumerate(shifts):
        faulted = atoms.copy()
        faulted.positions[upper] += s * xhat
        relaxed, energies[i] = relax_positions(
            faulted,
            calc,
            label=f"{state.element} {{{plane}}} fault at {s:.3f} Å",
            fmax=fmax,
            steps=steps,
            z_only=True,
            hook=hook,
        )
        keep_structure(keep, relaxed)
    return shifts, (energies - energies[0]) / area


def unstable_fault_energy(shifts: np.ndarray, energies: np.ndarray) -> float:
    """Maximum of a sampled GSF curve, refined by a parabola through the highest three points.

    Parameters
    ----------
    shifts : ndarray, shape (M,), M ≥ 3
    energies : ndarray, shape (M,)

    Returns
    -------
    float
        Unstable stacking-fault energy, units of ``energies``.
    """
    x = np.asarray(shifts, dtype=float)
    y = np.asarray(energies, dtype=float)
    if x.shape != y.shape or len(x) < 3:
        raise PropertyError("need at least three GSF points of matching shape")
    k = int(np.argmax(y))
    if k in (0, len(y) - 1):
        return float(y[k])
    c2, c1, c0 = np.polyfit(x[k - 1 : k + 2], y[k - 1 : k + 2], 2)
    if c2 >= 0:
        return float(y[k])
    xm = float(np.clip(-c1 / (2 * c2), x[k - 1], x[k + 1]))
    return float(max(y[k], c0 + c1 * xm + c2 * xm**2))
