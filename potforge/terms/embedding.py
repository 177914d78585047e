"""Embedding term: a linear basis in a fixed-shape density, exported as tabulated ``eam/fs``.

``ρ_i = Σ_j φ(r_ij)`` with the fixed shape ``φ(r) = (1 - r/r_c)^p``, and
``E = Σ_i Σ_k c_{k,e(i)} g_k(ρ_i)`` with clamped cubic B-splines ``g_k`` on ``[0, ρ_max]``
continued linearly beyond ``ρ_max`` (as LAMMPS ``eam`` extrapolates).  ``g_0`` (the only basis
function non-zero at ρ = 0) is dropped, so an isolated atom has zero embedding energy and the term
does not duplicate the per-element constant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers

from potforge.errors import ModelError
from potforge.params import Integer, Real
from potforge.terms.base import MAX_CUTOFF, LammpsPart, Rows, Term
from potforge.terms.bspline import CubicBasis
from potforge.terms.neighbors import Neighbors, radial_rows

TABLE_POINTS = 20001
"""Grid points of the ``eam/fs`` tables (fine enough that LAMMPS' splines add < 1e-9 relative)."""


class Embedding(Term):
    """Many-body embedding ``Σ_k c_k g_k(ρ)`` per element.

    Parameters
    ----------
    n_basis : int
        B-splines in ρ, ≥ 4 (one, the ρ = 0 function, is dropped).
    rcut : float
        Density cutoff r_c, Å, > 0.
    power : float
        Exponent p ≥ 3 of the density shape ``(1 - r/r_c)^p`` (smooth forces at the cutoff).
    rho_max : float, optional
        Upper end of the basis, > 0; by default 1.2 × the largest density in the training data.
    """

    kind = "embed"
    radial = True
    absorbs_offsets = True
    parameters = {
        "n_basis": Integer(low=4),
        "rcut": Real(low=0, low_open=True, high=MAX_CUTOFF),
        "power": Real(low=3),
        "rho_max": Real(low=0, low_open=True, allow_none=True),
    }

    def __init__(
        self, n_basis: int = 8, rcut: float = 5.0, power: float = 4.0, rho_max: float | None = None
    ):
        super().__init__()
        self.n_basis: int = self.check_param("n_basis", n_basis)
        self.rcut: float = self.check_param("rcut", rcut)
        self.power: float = self.check_param("power", power)
        self.rho_max: float | None = self.check_param("rho_max", rho_max)
        self.rho_max_: float | None = self.rho_max
        self._basis: CubicBasis | None = None

    def get_params(self) -> dict[str, Any]:
        """Constructor settings by name (a spec can be rebuilt from them)."""
        return {
            "n_basis": self.n_basis,
            "rcut": self.rcut,
            "power": self.power,
            "rho_max": self.rho_max,
        }

    def state(self) -> dict[str, Any]:
        """Data-dependent settings (set by :meth:`prepare`) to store with the model."""
        return {"rho_max_": self.rho_max_}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned."""
        self.rho_max_ = state.get("rho_max_")
        self._basis = None

    @property
    def cutoff(self) -> float:
        """Cutoff radius, Å."""
        return self.rcut

    @property
    def param_names(self) -> list[str]:
        """Name of each of this term's parameters, e.g. ``snap[W].B3``."""
        return [f"embed[{el}].g{k}" for el in self.elements for k in range(1, self.n_basis)]

    def density_shape(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """φ(r) and φ'(r) (zero beyond the cutoff)."""
        r = np.asarray(r, dtype=float)
        x = np.clip(1.0 - r / self.rcut, 0.0, None)
        return x**self.power, -self.power / self.rcut * x ** (self.power - 1)

    def densities(self, atoms: Atoms, nl: Neighbors | None = None) -> np.ndarray:
        """ρ_i of every atom, shape (N,)."""
        nl = nl or Neighbors(atoms, self.rcut)
        phi, _ = self.density_shape(nl.d)
        return np.bincount(nl.i, weights=phi, minlength=len(atoms))

    def prepare(self, structures: Sequence[Atoms]) -> None:
        """Set the density range from the training structures."""
        if self.rho_max is None:
            top = max((self.densities(a).max(initial=0.0) for a in structures), default=0.0)
            self.rho_max_ = 1.2 * top if top > 0 else 1.0
            self._basis = None

    @property
    def basis(self) -> CubicBasis:
        """The embedding's basis functions over its density range."""
        if self.rho_max_ is None:
            raise ModelError("embed: rho_max is unknown; fit the model (or give rho_max) first")
        if self._basis is None:
            self._basis = CubicBasis(
                0.0, self.rho_max_, self.n_basis, keep=slice(1, None), extrapolate_right=True
            )
        return self._basis

    def rows(self, atoms: Atoms, nl: Neighbors | None = None) -> Rows:
        """Design rows of ``atoms``: energy (P,), forces (N, 3, P), virial (6, P); eV, eV/Å, eV."""
        nl = nl or Neighbors(atoms, self.rcut)
        t = np.array([self.elements.index(s) for s in atoms.get_chemical_symbols()])
        rho = self.densities(atoms, nl)
        g, dg = self.basis(rho)  # (N, nb)
        nb = g.shape[1]
        energy = np.zeros(len(self.elements) * nb)
        for e in range(len(self.elements)):
            energy[e * nb : (e + 1) * nb] = g[t == e].sum(axis=0)
        _, dphi = self.density_shape(nl.d)
        deriv = dg[nl.i] * dphi[:, None]
        return radial_rows(nl, len(atoms), energy, deriv, t[nl.i], len(self.elements))

    def lammps(self, coef: np.ndarray, prefix: str, offsets: dict[str, float] | None) -> LammpsPart:
        """Pair style, pair_coeff lines and files of this term for parameters ``coef``."""
        nb = self.basis.n
        rho_max = self.rho_max_
        if rho_max is None:  # self.basis has raised already; this names it for the type checker
            raise ModelError("embed: rho_max is unknown; fit the model (or give rho_max) first")
        funcs = []
        for e, el in enumerate(self.elements):
            c = coef[e * nb : (e + 1) * nb]
            off = float((offsets or {}).get(el, 0.0))
            funcs.append(lambda rho, c=c, off=off: self.basis(rho)[0] @ c + off)
        text = eam_fs_file(
            self.elements,
            funcs,
            lambda r: self.density_shape(r)[0],
            rho_max=rho_max,
            cutoff=self.rcut,
        )
        return LammpsPart(
            "eam/fs",
            [f"* * {prefix}.eam.fs " + " ".join(self.elements)],
            {f"{prefix}.eam.fs": text},
        )


def eam_fs_file(
    elements: Sequence[str],
    embed: Sequence[Callable[[np.ndarray], np.ndarray]],
    density: Callable[[np.ndarray], np.ndarray],
    rho_max: float,
    cutoff: float,
    n: int = TABLE_POINTS,
) -> str:
    """Text of a LAMMPS ``eam/fs`` (Finnis–Sinclair setfl) file with zero pair part.

    Parameters
    ----------
    elements : sequence of str
    embed : sequence of callables
        ``F_e(ρ)`` (eV) per element, evaluated on the ρ grid.
    density : callable
        ``φ(r)`` used for every element pair, evaluated on the r grid.
    rho_max, cutoff : float
        Table ends (ρ units, Å).
    n : int
        Points per table.
    """
    rho = np.linspace(0.0, rho_max, n)
    r = np.linspace(0.0, cutoff, n)
    fmt = "\n".join
    lines = [
        "potforge embedding term (eam/fs)",
        "F(rho) linear in parameters",
        "zero pair part",
        f"{len(elements)} " + " ".join(elements),
        f"{n} {float(rho[1] - rho[0])!r} {n} {float(r[1] - r[0])!r} {float(cutoff)!r}",
    ]
    dens = density(r)
    for el, f in zip(elements, embed, strict=True):
        z = atomic_numbers[el]
        lines.append(f"{z} {float(atomic_masses[z])!r} 0.0 none")
        lines.append(fmt(repr(float(v)) for v in f(rho)))
        for _ in elements:
            lines.append(fmt(repr(float(v)) for v in dens))
    zero = fmt("0.0" for _ in r)
    for a in range(len(elements)):
        for _ in range(a + 1):
            lines.append(zero)
    return "\n".join(lines) + "\n"
