"""The weighted design matrix shared by fitting, Fisher information, POPS and data selection.

Rows, per labelled structure: one energy row (energy per atom, eV/atom), 3N force rows (eV/Å),
six stress rows (eV/Å³, ASE Voigt order and sign).  Labels have the fixed reference terms (ZBL)
subtracted.  Weights are kept separate from values (:meth:`DesignMatrix.weights`).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from potforge.data.structures import check_elements, labels
from potforge.progress import Progress
from potforge.terms.base import Rows, Term, Values
from potforge.terms.neighbors import Neighbors

ROW_ENERGY, ROW_FORCE, ROW_STRESS = 0, 1, 2
ROW_TYPES = ("energy", "force", "stress")


@dataclass
class StructureDesign:
    """Design rows of all linear terms and summed values of all fixed terms on one structure."""

    rows: Rows
    fixed: Values
    volume: float

    @property
    def n_atoms(self) -> int:
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
            v = t.values(atoms)
            fixed = Values(
                fixed.energy + v.energy, fixed.forces + v.forces, fixed.virial + v.virial
            )
        elif t in radial:
            parts.append(t.rows(atoms, nl.within(t.cutoff)))
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
) -> list[StructureDesign]:
    """:func:`structure_design` over many structures in ``n_jobs`` processes, with progress."""
    structures = list(structures)
    bar = Progress(len(structures), desc, "structures", progress, leave=False)
    out: list[StructureDesign] = []
    try:
        if n_jobs <= 1 or len(structures) < 8:
            for a in structures:
                out.append(structure_design(terms, a))
                bar.update()
            return out
        size = max(1, len(structures) // (4 * n_jobs))
        chunks = [structures[i : i + size] for i in range(0, len(structures), size)]
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx) as pool:
            for res in pool.map(_chunk_designs, [(list(terms), c) for c in chunks]):
                out.extend(res)
                bar.update(len(res))
        return out
    finally:
        bar.close()


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


def assemble(
    designs: Sequence[StructureDesign], structures: Sequence[Atoms], use: Sequence[str] = ROW_TYPES
) -> DesignMatrix:
    """Stack the labelled rows of every structure (rows whose label is absent are skipped)."""
    blocks_a, blocks_y, types, owner = [], [], [], []
    for s, (d, atoms) in enumerate(zip(designs, structures, strict=True)):
        lab = labels(atoms)
        n = d.n_atoms
        n_before = len(types)
        if "energy" in use and "energy" in lab:
            blocks_a.append(d.rows.energy[None, :] / n)
            blocks_y.append(np.array([(lab["energy"] - d.fixed.energy) / n]))
            types.append(np.full(1, ROW_ENERGY))
        if "force" in use and "forces" in lab:
            blocks_a.append(d.rows.forces.reshape(3 * n, -1))
            blocks_y.append((np.asarray(lab["forces"]) - d.fixed.forces).ravel())
            types.append(np.full(3 * n, ROW_FORCE))
        if "stress" in use and "stress" in lab:
            blocks_a.append(-d.rows.virial / d.volume)
            blocks_y.append(np.asarray(lab["stress"]) + d.fixed.virial / d.volume)
            types.append(np.full(6, ROW_STRESS))
        owner.append(np.full(sum(len(t) for t in types[n_before:]), s))
    p = designs[0].rows.energy.shape[0] if designs else 0
    return DesignMatrix(
        A=np.vstack(blocks_a) if blocks_a else np.zeros((0, p)),
        y=np.concatenate(blocks_y) if blocks_y else np.zeros(0),
        row_type=np.concatenate(types).astype(np.int8) if types else np.zeros(0, np.int8),
        structure=np.concatenate(owner).astype(int) if owner else np.zeros(0, int),
        groups=[str(a.info.get("group", "all")) for a in structures],
        n_atoms=np.array([len(a) for a in structures]),
    )
