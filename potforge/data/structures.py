"""Labelled structures: how potforge stores labels on ``ase.Atoms``, checks them, and hashes them.

Convention (ASE's own): labels live in a ``SinglePointCalculator`` attached to the structure —
``energy`` (eV, total), ``forces`` (eV/Å, (N, 3)), ``stress`` (eV/Å³, ASE Voigt order xx yy zz yz
xz xy, ASE sign: positive = tensile).  ``atoms.info["group"]`` names the subset a structure
belongs to (e.g. "Elastic", "AIMD"), ``atoms.info["source"]`` where it came from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import chemical_symbols
from ase.neighborlist import neighbor_list

from potforge.errors import DataError

MIN_DISTANCE = 0.5
"""Closest approach (Å) below which a structure is rejected as unphysical."""

HASH_DECIMALS = 6
"""Positions and cell are rounded to this many decimals (Å) before hashing."""


def attach_labels(
    atoms: Atoms,
    energy: float | None = None,
    forces: np.ndarray | None = None,
    stress: np.ndarray | None = None,
) -> Atoms:
    """Store reference labels on ``atoms`` (in place) as a ``SinglePointCalculator``.

    Parameters
    ----------
    energy : float, optional
        Total energy, eV.
    forces : ndarray, shape (N, 3), optional
        eV/Å.
    stress : ndarray, shape (6,), optional
        eV/Å³, ASE Voigt order and sign.
    """
    results: dict[str, float | np.ndarray] = {}
    if energy is not None:
        results["energy"] = float(energy)
    if forces is not None:
        results["forces"] = np.asarray(forces, dtype=float).reshape(len(atoms), 3)
    if stress is not None:
        results["stress"] = np.asarray(stress, dtype=float).reshape(6)
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def labels(atoms: Atoms) -> dict[str, np.ndarray | float]:
    """The stored reference labels of ``atoms`` (possibly empty), never recomputed."""
    calc = atoms.calc
    if calc is None or not isinstance(calc, SinglePointCalculator):
        return {}
    return {k: v for k, v in calc.results.items() if k in ("energy", "forces", "stress")}


def describe(atoms: Atoms, index: int | None = None) -> str:
    """Short human name of a structure for error messages: source, index, formula, group."""
    parts = []
    src = atoms.info.get("source")
    if src:
        parts.append(str(src))
    if index is not None:
        parts.append(f"structure {index}")
    parts.append(atoms.get_chemical_formula())
    grp = atoms.info.get("group")
    if grp:
        parts.append(f"group {grp}")
    return " ".join(parts)


def structure_hash(atoms: Atoms) -> str:
    """Canonical SHA-256 of a structure: species, cell, pbc and wrapped positions.

    Invariant to atom order and to wrapping by lattice vectors; positions and cell are rounded
    to :data:`HASH_DECIMALS` decimals (Å), so it is stable across file formats.

    Returns
    -------
    str
        64 hex characters.
    """
    cell = np.round(np.array(atoms.cell, dtype=float), HASH_DECIMALS) + 0.0
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if atoms.cell.rank == 3:
        frac = atoms.cell.scaled_positions(atoms.positions)
        frac[:, pbc] = np.mod(frac[:, pbc], 1.0)
        frac[:, pbc] = np.where(np.round(frac[:, pbc], HASH_DECIMALS) >= 1.0, 0.0, frac[:, pbc])
        pos = frac @ np.array(atoms.cell)
    else:
        pos = atoms.positions
    pos = np.round(pos, HASH_DECIMALS - 1) + 0.0
    numbers = atoms.numbers
    order = np.lexsort((pos[:, 2], pos[:, 1], pos[:, 0], numbers))
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(numbers[order], dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(pos[order], dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(cell, dtype=np.float64).tobytes())
    h.update(pbc.astype(np.int8).tobytes())
    return h.hexdigest()


def check_structure(atoms: Atoms, name: str, min_distance: float = MIN_DISTANCE) -> None:
    """Raise :class:`DataError` for an empty, non-finite or overlapping structure.

    Parameters
    ----------
    atoms : ase.Atoms
    name : str
        How to name this structure in the message (file and index).
    min_distance : float
        Closest allowed interatomic distance, Å.
    """
    if len(atoms) == 0:
        raise DataError(f"{name} has no atoms")
    if not np.all(np.isfinite(atoms.positions)) or not np.all(np.isfinite(atoms.cell.array)):
        raise DataError(f"{name} has non-finite positions or cell")
    bad = [z for z in set(atoms.numbers.tolist()) if not 0 < z < len(chemical_symbols)]
    if bad:
        raise DataError(f"{name} has unknown atomic number(s) {bad}")
    if any(atoms.pbc) and atoms.cell.rank == 3:
        vol = abs(float(np.linalg.det(atoms.cell.array)))
        if vol < 1e-6 * max(float(np.prod(atoms.cell.lengths())), 1e-300) or vol < 1e-3:
            raise DataError(
                f"{name} has a degenerate cell (volume {vol:.3g} Å³: its lattice vectors are "
                "nearly parallel)"
            )
    elif np.any(np.asarray(atoms.pbc) & (atoms.cell.lengths() == 0)):
        raise DataError(f"{name} is periodic along a lattice vector of length 0")
    if len(atoms) > 1 or any(atoms.pbc):
        i, j, d = neighbor_list("ijd", atoms, min_distance)
        if len(d):
            k = int(np.argmin(d))
            raise DataError(
                f"{name} has atoms {i[k]} and {j[k]} only {d[k]:.3f} Å apart "
                f"(minimum allowed {min_distance} Å)"
            )


def check_labels(atoms: Atoms, name: str, require: Sequence[str] = ("energy", "forces")) -> None:
    """Raise :class:`DataError` when a required label is missing or any label is non-finite."""
    lab = labels(atoms)
    for key in require:
        if key not in lab:
            raise DataError(f"{name} has no '{key}' label")
    for key, value in lab.items():
        if not np.all(np.isfinite(value)):
            raise DataError(f"{name} has a non-finite '{key}' label")


def check_elements(atoms: Atoms, elements: Sequence[str]) -> None:
    """Raise :class:`DataError` when ``atoms`` holds an element outside ``elements``."""
    unknown = sorted(set(atoms.get_chemical_symbols()) - set(elements))
    if unknown:
        raise DataError(
            f"structure {atoms.get_chemical_formula()} contains element(s) {', '.join(unknown)} "
            f"that the model does not know (it knows {', '.join(elements)})"
        )


def elements_of(structures: Iterable[Atoms]) -> list[str]:
    """Sorted element symbols present in ``structures`` (by atomic number)."""
    numbers = sorted({int(z) for a in structures for z in set(a.numbers.tolist())})
    return [chemical_symbols[z] for z in numbers]
