"""The weighted design matrix shared by fitting, Fisher information, POPS and data selection.

Rows, per labelled structure: one energy row (energy per atom, eV/atom), 3N force rows (eV/Å),
six stress rows (eV/Å³, ASE Voigt order and sign).  Labels have the fixed reference terms (ZBL)
subtracted.  Weights are kept separate from values (:meth:`DesignMatrix.weights`).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, cast

import numpy as np
from ase import Atoms

from potforge.data.structures import check_elements, labels
from potforge.errors import DataError
from potforge.linalg import ENERGY as ROW_ENERGY
from potforge.linalg import FORCE as ROW_FORCE
from potforge.linalg import ROW_TYPES
from potforge.linalg import STRESS as ROW_STRESS
from potforge.progress import Progress
from potforge.terms.base import Rows, Term, Values
from potforge.terms.neighbors import Neighbors

# the row types (ROW_ENERGY, ROW_FORCE, ROW_STRESS, ROW_TYPES) are potforge.linalg's vocabulary


class _RadialTerm(Protocol):
    """What a term with ``radial = True`` provides: rows from a given neighbour list."""

    def rows(self, atoms: Atoms, nl: Neighbors | None = None) -> Rows: ...


@dataclass
class StructureDesign:
    """Design rows of all linear terms and summed values of all fixed terms on one structure."""

    rows: Rows
    fixed: Values
    volume: float

    @property
    def n_atoms(self) -> int:
        """Number of atoms N of the structure."""
        return self.rows.forces.shape[0]


def structure_design(terms: Sequence[Term], atoms: Atoms) -> StructureDesign:
    """Evaluate every term on one structure (one shared neighbour list for radial terms)."""
    if terms:
        check_elements(atoms, terms[0].elements)
    radial = [t for t in terms if t.radial]
    nl = Neighbors(atoms, max(t.cutoff for t in radial)) if radial else None
    parts = []
    n = len(atoms)
    fixed = Values(0.0, np.zeros((n, 3)), np.zeros(6))
    for t in terms:
        if t.fixed:
            fixed = fixed + t.values(atoms)
        elif nl is not None and t in radial:  # nl exists whenever a term is radial
            parts.append(cast(_RadialTerm, t).rows(atoms, nl.within(t.cutoff)))
        else:
            parts.append(t.rows(atoms))
    volume = float(atoms.get_volume()) if atoms.cell.rank == 3 else float("nan")
    return StructureDesign(Rows.concat(parts, n), fixed, volume)


def _chunk_designs(args):
    terms, chunk = args
    return [structure_design(terms, a) for a in chunk]


def compute_designs(
    terms: Sequence[Term],
    structures: Sequence[Atoms],
    n_jobs: int = 1,
    progress: bool | None = None,
    desc: str = "descriptors",
    threads: int = 1,
) -> list[StructureDesign]:
    """:func:`structure_design` over many structures in ``n_jobs`` processes, with progress.

    ``threads`` > 1 (with ``n_jobs`` = 1) runs them in that many threads of this process
    instead: no start-up cost, and LAMMPS (SNAP) computes in each thread at once (its library
    calls release the GIL); the pure-Python terms gain less.
    """
    structures = list(structures)
    if threads < 1:
        raise DataError(f"threads must be ≥ 1, got {threads}")
    bar = Progress(len(structures), desc, "structures", progress, leave=False)
    out: list[StructureDesign] = []
    finished = False
    try:
        if n_jobs <= 1 and threads > 1 and len(structures) > 1:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                for res in pool.map(lambda a: structure_design(terms, a), structures):
                    out.append(res)
                    bar.update()
            finished = True
            return out
        if n_jobs <= 1 or len(structures) < 8:
            for a in structures:
                out.append(structure_design(terms, a))
                bar.update()
            finished = True
            return out
        size = max(1, len(structures) // (4 * n_jobs))
        chunks = [structures[i : i + size] for i in range(0, len(structures), size)]
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx) as pool:
            for res in pool.map(_chunk_designs, [(list(terms), c) for c in chunks]):
                out.extend(res)
                bar.update(len(res))
        finished = True
        return out
    finally:
        bar.close(finished)


@dataclass
class DesignMatrix:
    """Stacked rows of many structures.

    Attributes
    ----------
    A : ndarray, shape (R, P)
    y : ndarray, shape (R,)
        Labels minus the fixed reference, in each row's unit.
    row_type : ndarray of int8, shape (R,)
        :data:`ROW_ENERGY`, :data:`ROW_FORCE` or :data:`ROW_STRESS`.
    structure : ndarray of int, shape (R,)
        Index of the structure each row belongs to.
    groups : list of str, length S
        Group label of each structure.
    n_atoms : ndarray of int, shape (S,)
    """

    A: np.ndarray
    y: np.ndarray
    row_type: np.ndarray
    structure: np.ndarray
    groups: list[str]
    n_atoms: np.ndarray

    def weights(
        self, sigma: Sequence[float], group_weights: dict[str, float] | None = None
    ) -> np.ndarray:
        """Row weights ``g / σ_type²`` (σ per row type; ``g`` per group, default 1), shape (R,)."""
        w = 1.0 / np.asarray(sigma, dtype=float)[self.row_type] ** 2
        if group_weights:
            g = np.array([group_weights.get(name, 1.0) for name in self.groups])
            w = w * g[self.structure]
        return w


def _structure_blocks(
    d: StructureDesign, use: Sequence[str], lab: dict | None
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """``(row type, rows, targets)`` blocks of one structure, in row order.

    With ``lab`` (its labels) only labelled row types, with targets (labels minus the fixed
    reference); with ``lab=None`` every row type the structure has (stress rows need a 3-D
    cell), targets NaN.
    """
    n = d.n_atoms
    out = []
    if "energy" in use and (lab is None or "energy" in lab):
        y = np.nan if lab is None else (lab["energy"] - d.fixed.energy) / n
        out.append((ROW_ENERGY, d.rows.energy[None, :] / n, np.array([y])))
    if "force" in use and (lab is None or "forces" in lab):
        y = (
            np.full(3 * n, np.nan)
            if lab is None
            else (np.asarray(lab["forces"]) - d.fixed.forces).ravel()
        )
        out.append((ROW_FORCE, d.rows.forces.reshape(3 * n, -1), y))
    if "stress" in use and (
        lab is not None and "stress" in lab or lab is None and np.isfinite(d.volume)
    ):
        y = (
            np.full(6, np.nan)
            if lab is None
            else np.asarray(lab["stress"]) + d.fixed.virial / d.volume
        )
        out.append((ROW_STRESS, -d.rows.virial / d.volume, y))
    return out


def _stack(
    designs: Sequence[StructureDesign], groups: list[str], n_atoms: np.ndarray, per_structure: list
) -> DesignMatrix:
    blocks = [(t, a, y, s) for s, blocks in enumerate(per_structure) for t, a, y in blocks]
    p = designs[0].rows.energy.shape[0] if designs else 0
    if not blocks:
        return DesignMatrix(
            np.zeros((0, p)), np.zeros(0), np.zeros(0, np.int8), np.zeros(0, int), groups, n_atoms
        )
    return DesignMatrix(
        A=np.vstack([a for _, a, _, _ in blocks]),
        y=np.concatenate([y for _, _, y, _ in blocks]),
        row_type=np.concatenate([np.full(len(y), t) for t, _, y, _ in blocks]).astype(np.int8),
        structure=np.concatenate([np.full(len(y), s) for _, _, y, s in blocks]).astype(int),
        groups=groups,
        n_atoms=n_atoms,
    )


def assemble(
    designs: Sequence[StructureDesign], structures: Sequence[Atoms], use: Sequence[str] = ROW_TYPES
) -> DesignMatrix:
    """Stack the labelled rows of every structure, with their targets (rows whose label is
    absent are skipped; :func:`design_rows` gives the rows of unlabelled structures)."""
    per = [_structure_blocks(d, use, labels(a)) for d, a in zip(designs, structures, strict=True)]
    return _stack(
        designs,
        [str(a.info.get("group", "all")) for a in structures],
        np.array([len(a) for a in structures]),
        per,
    )


def design_rows(
    designs: Sequence[StructureDesign],
    groups: Sequence[str] | None = None,
    use: Sequence[str] = ROW_TYPES,
) -> DesignMatrix:
    """Every row of every structure, labelled or not: the energy row, 3N force rows and, with
    a 3-D cell, six stress rows; ``y`` is NaN.

    For candidates that have no labels yet (their Fisher information, entropy, acquisition):
    ``A[r]`` is the row a label of that type would get in :func:`assemble`, in the same order.

    Parameters
    ----------
    designs : sequence of StructureDesign
        From :func:`compute_designs` (or ``LinearPotential.structure_designs``).
    groups : sequence of str, optional
        Group label per structure (for :meth:`DesignMatrix.weights`); default ``"all"``.
    use : sequence of str, default=ROW_TYPES
        Row types to include.
    """
    groups = ["all"] * len(designs) if groups is None else [str(g) for g in groups]
    if len(groups) != len(designs):
        raise DataError(f"{len(groups)} groups given for {len(designs)} designs")
    per = [_structure_blocks(d, use, None) for d in designs]
    return _stack(designs, groups, np.array([d.n_atoms for d in designs]), per)
