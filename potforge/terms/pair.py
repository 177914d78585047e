"""Radial pair term on clamped cubic B-splines, exported exactly as LAMMPS ``pair_style uf3``.

``E = Σ_{i<j} Σ_k c_k B_k(r_ij)`` with one block of coefficients per unordered element pair.
LAMMPS ``uf3`` sums over ordered pairs, so the exported coefficients are halved.
The last three B-splines are fixed at zero so energy, force and its derivative vanish smoothly at
the cutoff (UF3's "trailing trim").
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms

from potforge.errors import ModelError
from potforge.params import Integer, Real
from potforge.terms.base import MAX_CUTOFF, LammpsPart, Rows, Term
from potforge.terms.bspline import CubicBasis
from potforge.terms.neighbors import Neighbors, pair_index, pair_rows

TRAILING = 3
"""B-splines fixed at zero at the cutoff end."""


class PairSpline(Term):
    """Two-body term ``V_ab(r) = Σ_k c_k B_k(r)`` on ``[r_min, cutoff]``.

    Parameters
    ----------
    n_basis : int
        B-splines per element pair, ≥ 5, including the three fixed at zero at the cutoff.
    r_min : float
        Inner end of the basis, Å, ≥ 0 (below it the term is zero: pair it with ZBL).
    rcut : float
        Cutoff, Å, above ``r_min``.
    """

    kind = "pair"
    radial = True
    parameters = {
        "n_basis": Integer(low=TRAILING + 2),
        "r_min": Real(low=0),
        "rcut": Real(low=0, low_open=True, high=MAX_CUTOFF),
    }

    def __init__(self, n_basis: int = 12, r_min: float = 1.0, rcut: float = 5.5):
        super().__init__()
        self.n_basis: int = self.check_param("n_basis", n_basis)
        self.r_min: float = self.check_param("r_min", r_min)
        self.rcut: float = self.check_param("rcut", rcut)
        if not self.r_min < self.rcut:
            raise ModelError(
                f"pair r_min must be below rcut, got r_min={self.r_min:g} Å and "
                f"rcut={self.rcut:g} Å"
            )
        self.basis = CubicBasis(self.r_min, self.rcut, self.n_basis, keep=slice(0, -TRAILING))

    def get_params(self) -> dict[str, Any]:
        """Constructor settings by name (a spec can be rebuilt from them)."""
        return {"n_basis": self.n_basis, "r_min": self.r_min, "rcut": self.rcut}

    @property
    def cutoff(self) -> float:
        """Cutoff radius, Å."""
        return self.rcut

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """Element pairs ``(a, b)``, a ≤ b, each with its own spline."""
        e = self.elements
        return [(e[i], e[j]) for i in range(len(e)) for j in range(i, len(e))]

    @property
    def param_names(self) -> list[str]:
        """Name of each of this term's parameters, e.g. ``snap[W].B3``."""
        return [f"pair[{a}-{b}].B{k}" for a, b in self.pairs for k in range(self.basis.n)]

    def rows(self, atoms: Atoms, nl: Neighbors | None = None) -> Rows:
        """Design rows of ``atoms``: energy (P,), forces (N, 3, P), virial (6, P); eV, eV/Å, eV."""
        nl = nl or Neighbors(atoms, self.rcut)
        nb = self.basis.n
        block = pair_index(nl, atoms, self.elements)
        val, der = self.basis(nl.d)
        n_blocks = len(self.pairs)
        # ½ per ordered pair: every unordered pair appears twice in a full neighbour list
        return pair_rows(nl, len(atoms), 0.5 * val, 0.5 * der, block, n_blocks, nb)

    def lammps(self, coef: np.ndarray, prefix: str, offsets: dict[str, float] | None) -> LammpsPart:
        """Pair style, pair_coeff lines and files of this term for parameters ``coef``."""
        nb = self.basis.n
        knots = " ".join(repr(float(k)) for k in self.basis.knots)
        blocks = []
        for p, (a, b) in enumerate(self.pairs):
            # LAMMPS uf3 sums V over ordered pairs (i, j≠i): halve to get Σ_{i<j} V
            full = np.concatenate([0.5 * coef[p * nb : (p + 1) * nb], np.zeros(TRAILING)])
            blocks.append(
                "#UF3 POT UNITS: metal DATE: potforge AUTHOR: potforge CITATION:\n"
                f"2B {a} {b} 0 {TRAILING} nk\n{self.rcut!r} {len(self.basis.knots)}\n{knots}\n"
                f"{len(full)}\n" + " ".join(repr(float(c)) for c in full) + "\n#\n"
            )
        name = f"{prefix}.uf3"
        return LammpsPart(
            "uf3 2", [f"* * {name} " + " ".join(self.elements)], {name: "".join(blocks)}
        )
