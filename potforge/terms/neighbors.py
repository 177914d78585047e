"""Full periodic neighbour lists and the row algebra shared by radial terms (pair, embedding).

For an ordered pair ``(i, j)`` with displacement ``D = r_j - r_i`` (periodic image included) and
``d = |D|``, a contribution whose derivative w.r.t. ``d`` is ``g`` adds ``g D/d`` to the force row
of atom ``i``, ``-g D/d`` to that of ``j``, and ``-g D⊗D/d`` to the virial row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from ase import Atoms
from ase.neighborlist import neighbor_list

from potforge.terms.base import Rows


class Neighbors:
    """All ordered pairs within ``cutoff`` (periodic images included).

    Attributes
    ----------
    i, j : ndarray of int, shape (m,)
    d : ndarray, shape (m,)
        Distances, Å.
    D : ndarray, shape (m, 3)
        Displacements ``r_j - r_i``, Å.
    """

    def __init__(self, atoms: Atoms, cutoff: float):
        self.cutoff = float(cutoff)
        self.i, self.j, self.d, self.D = neighbor_list("ijdD", atoms, self.cutoff)

    def within(self, cutoff: float) -> Neighbors:
        """The sub-list of pairs closer than ``cutoff`` (≤ this list's cutoff)."""
        keep = self.d < cutoff
        sub = object.__new__(Neighbors)
        sub.cutoff = float(cutoff)
        sub.i, sub.j, sub.d, sub.D = self.i[keep], self.j[keep], self.d[keep], self.D[keep]
        return sub


def pair_index(nl: Neighbors, atoms: Atoms, elements: Sequence[str]) -> np.ndarray:
    """Index of the unordered element pair of each ordered pair (upper-triangle order)."""
    t = np.array([elements.index(s) for s in atoms.get_chemical_symbols()])
    a, b = np.minimum(t[nl.i], t[nl.j]), np.maximum(t[nl.i], t[nl.j])
    n = len(elements)
    return a * n - a * (a - 1) // 2 + (b - a)


def radial_rows(
    nl: Neighbors,
    n_atoms: int,
    energy: np.ndarray,
    deriv: np.ndarray,
    block: np.ndarray,
    n_blocks: int,
) -> Rows:
    """Force and virial rows from per-pair radial derivatives.

    Parameters
    ----------
    nl : Neighbors
        The ordered pairs, m of them.
    n_atoms : int
    energy : ndarray, shape (n_blocks * nb,)
        The already-summed energy row.
    deriv : ndarray, shape (m, nb)
        dE/dd of each pair for each basis function of its block, eV/Å.
    block : ndarray of int, shape (m,)
        Column block of each pair.
    n_blocks : int

    Returns
    -------
    Rows
    """
    m, nb = deriv.shape
    p = n_blocks * nb
    unit = nl.D / np.where(nl.d > 0, nl.d, 1.0)[:, None]  # (m, 3)
    # per-pair contributions placed in their block's columns, as a sparse (m, p) matrix
    cols = block[:, None] * nb + np.arange(nb)[None, :]
    rows_idx = np.repeat(np.arange(m), nb)
    g = sp.csr_matrix((deriv.ravel(), (rows_idx, cols.ravel())), shape=(m, p))
    scatter = sp.csr_matrix(
        (
            np.concatenate([np.ones(m), -np.ones(m)]),
            (np.concatenate([nl.i, nl.j]), np.tile(np.arange(m), 2)),
        ),
        shape=(n_atoms, m),
    )
    forces = np.empty((n_atoms, 3, p))
    virial = np.empty((6, p))
    for a in range(3):
        ga = g.multiply(unit[:, a][:, None]).tocsr()
        forces[:, a, :] = (scatter @ ga).toarray()
    for v, (a, b) in enumerate(((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))):
        virial[v] = -np.asarray(g.T @ (unit[:, a] * nl.D[:, b])).ravel()
    return Rows(np.asarray(energy, dtype=float), forces, virial)


def pair_rows(
    nl: Neighbors,
    n_atoms: int,
    val: np.ndarray,
    der: np.ndarray,
    block: np.ndarray,
    n_blocks: int,
    nb: int,
) -> Rows:
    """Rows of a pure pair term from per-ordered-pair basis values and derivatives (m, nb)."""
    energy = np.zeros(n_blocks * nb)
    for b in range(n_blocks):
        energy[b * nb : (b + 1) * nb] = val[block == b].sum(axis=0)
    return radial_rows(nl, n_atoms, energy, der, block, n_blocks)
