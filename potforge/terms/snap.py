"""SNAP bispectrum term (linear or quadratic), computed by LAMMPS ``compute snap``.

LAMMPS is the reference implementation of the bispectrum; potforge never re-implements it.
``compute snap`` (``bzeroflag 0``, no per-pair gradients) returns, for one structure, a global
array whose first row is Σ_i B(i) per element block, then one row per force component (already
``F = row · β``), then six virial rows (xx, yy, zz, yz, xz, xy).  Exported as ``pair_style snap``
with the same settings, so the two paths agree to round-off.

Sparsified quadratic SNAP (``quadratic_columns``) keeps every linear column and a chosen subset
of the ½ B_k B_m products: its rows are those columns of ``compute snap``'s quadratic output, and
its export is the full quadratic coefficient file with zeros in the dropped columns (``pair_style
snap`` takes no column subset), which is the same function.
"""

from __future__ import annotations

import difflib
import numbers
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms

from potforge.engines.lammps import (
    compute_snap,
    new_lammps,
    setup_structure,
    static_point,
    to_ase_vectors,
    to_ase_voigt,
)
from potforge.errors import EngineError, ModelError
from potforge.params import Boolean, Constraint, Integer, MappingOf, Real
from potforge.terms.base import MAX_CUTOFF, LammpsPart, Rows, Term, Values, check_element_keys

_LOCAL = threading.local()


def _instance():
    """One LAMMPS instance per thread (of each process), cleared before each structure: the
    library call releases the GIL, so threads compute the descriptors of different structures
    at once (:func:`potforge.model.rows.compute_designs` with ``threads``)."""
    lmp = getattr(_LOCAL, "lmp", None)
    if lmp is None:
        lmp = _LOCAL.lmp = new_lammps()
    return lmp


def n_bispectrum(twojmax: int) -> int:
    """Number of bispectrum components for a given 2J (as LAMMPS counts them)."""
    n = 0
    for j1 in range(twojmax + 1):
        for j2 in range(j1 + 1):
            for j in range(j1 - j2, min(twojmax, j1 + j2) + 1, 2):
                if j >= j1:
                    n += 1
    return n


def quadratic_names(twojmax: int) -> list[str]:
    """Names of the quadratic columns of one element block, ``B0*B0``, ``B0*B1``, … (k ≤ m),
    in ``compute snap``'s order; a column's index in this list is its ``quadratic_columns``
    index."""
    nb = n_bispectrum(twojmax)
    return [f"B{k}*B{m}" for k in range(nb) for m in range(k, nb)]


_PRODUCT = re.compile(r"^\s*B(\d+)\s*\*\s*B(\d+)\s*$")


@dataclass(frozen=True)
class ColumnList(Constraint):
    """A list (tuple, 1-D integer array) of column indices and/or names (str), or None."""

    allow_none: bool = True

    def describe(self) -> str:
        """``a list of column indices or names such as 'B0*B3', or none``."""
        return "a list of column indices or names such as 'B0*B3', or none"

    def _accepts(self, value: Any) -> bool:
        if isinstance(value, np.ndarray):
            value = value.tolist() if value.ndim == 1 else None
        return isinstance(value, (list, tuple)) and all(
            isinstance(v, (str, numbers.Integral)) and not isinstance(v, bool) for v in value
        )

    def check(self, name: str, value: Any) -> Any:
        """The value as a list, else a one-line ModelError naming ``name``."""
        if value is not None and not self._accepts(value):
            shown = " ".join(repr(value).split())  # an array's repr spans lines
            raise ModelError(f"{name} must be {self.describe()}, got {shown}")
        return super().check(name, value)

    def convert(self, value: Any) -> list:
        """The value as a list (indices as ``int``)."""
        items = value.tolist() if isinstance(value, np.ndarray) else value
        return [v if isinstance(v, str) else int(v) for v in items]


def resolve_quadratic_columns(twojmax: int, columns: Sequence[int | str]) -> list[int]:
    """Sorted indices into :func:`quadratic_names` of ``columns`` (indices or ``Bk*Bm`` names).

    Raises
    ------
    ModelError
        For an index out of range, a name that is no quadratic column, or a column given twice.
    """
    names = quadratic_names(twojmax)
    nb = n_bispectrum(twojmax)
    index = {n: i for i, n in enumerate(names)}
    where = "snap quadratic_columns"
    seen: dict[int, int | str] = {}
    for c in columns:
        if isinstance(c, str):
            m = _PRODUCT.match(c)
            key = f"B{min(map(int, m.groups()))}*B{max(map(int, m.groups()))}" if m else c
            if key not in index:
                close = difflib.get_close_matches(c, names, 1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ModelError(
                    f"{where} has {c!r}, which is no quadratic column of twojmax={twojmax}"
                    f"{hint}: write 'Bk*Bm' with 0 ≤ k, m < {nb}, or an index 0 … {len(names) - 1}"
                )
            i = index[key]
        else:
            if not 0 <= c < len(names):
                raise ModelError(
                    f"{where} index {c} is out of range: twojmax={twojmax} has {len(names)} "
                    f"quadratic columns per element (0 … {len(names) - 1})"
                )
            i = int(c)
        if i in seen:
            raise ModelError(
                f"{where} gives column {i} ({names[i]}) twice (as {seen[i]!r} and {c!r}); "
                "list each column once"
            )
        seen[i] = c
    return sorted(seen)


class SNAP(Term):
    """Bispectrum components of the neighbour density (Thompson et al. 2015).

    Parameters
    ----------
    twojmax : int
        Band limit 2J, an integer ≥ 0 (LAMMPS takes odd values too: half-integer j; the
        usual choices are 6 and 8).
    rcutfac : float
        Cutoff scale, Å, > 0; the pair cutoff is ``rcutfac * (R_i + R_j)``.
    rfac0 : float
        Angular mapping factor, in (0, 1].
    rmin0 : float
        Inner radial offset, Å, ≥ 0 and below the smallest pair cutoff.
    quadratic : bool
        Add the ½ B_k B_l products (quadratic SNAP).
    quadratic_columns : list of int or str, optional
        With ``quadratic``, keep only these quadratic columns (every element the same): indices
        into :func:`quadratic_names` (0 … nb(nb+1)/2 − 1) or names such as ``"B0*B3"``, each
        once; all linear columns stay.  Default None: every quadratic column.
    radii : dict of str to float, optional
        Per-element R > 0 (default 0.5 for all: cutoff = rcutfac).
    wj : dict of str to float, optional
        Per-element neighbour weights > 0 (default 1.0).
    """

    kind = "snap"
    absorbs_offsets = True
    parameters = {
        "twojmax": Integer(low=0),
        "rcutfac": Real(low=0, low_open=True, high=MAX_CUTOFF),
        "rfac0": Real(low=0, high=1, low_open=True),
        "rmin0": Real(low=0),
        "quadratic": Boolean(),
        "quadratic_columns": ColumnList(),
        "radii": MappingOf(Real(low=0, low_open=True), allow_none=True),
        "wj": MappingOf(Real(low=0, low_open=True), allow_none=True),
    }

    def __init__(
        self,
        twojmax: int = 6,
        rcutfac: float = 4.7,
        rfac0: float = 0.99363,
        rmin0: float = 0.0,
        quadratic: bool = False,
        radii: dict[str, float] | None = None,
        wj: dict[str, float] | None = None,
        quadratic_columns: Sequence[int | str] | None = None,
    ):
        super().__init__()
        self.twojmax: int = self.check_param("twojmax", twojmax)
        self.rcutfac: float = self.check_param("rcutfac", rcutfac)
        self.rfac0: float = self.check_param("rfac0", rfac0)
        self.rmin0: float = self.check_param("rmin0", rmin0)
        self.quadratic: bool = self.check_param("quadratic", quadratic)
        self.radii: dict[str, float] = dict(self.check_param("radii", radii) or {})
        self.wj: dict[str, float] = dict(self.check_param("wj", wj) or {})
        columns = self.check_param("quadratic_columns", quadratic_columns)
        if columns is not None and not self.quadratic:
            raise ModelError(
                "snap quadratic_columns picks among the quadratic columns, so it needs "
                "quadratic=True (or write qsnap)"
            )
        self.quadratic_columns: list[int] | None = (
            None if columns is None else resolve_quadratic_columns(self.twojmax, columns)
        )
        check_element_keys("snap radii", self.radii)
        check_element_keys("snap wj", self.wj)
        smallest = 2.0 * self.rcutfac * min(self.radii.values(), default=0.5)
        if self.rmin0 >= smallest:
            raise ModelError(
                f"snap rmin0 must be below the smallest pair cutoff {smallest:g} Å "
                f"(2 × rcutfac × the smallest radius), got {self.rmin0:g}"
            )

    def get_params(self) -> dict[str, Any]:
        """Constructor settings by name (a spec can be rebuilt from them)."""
        return {
            "twojmax": self.twojmax,
            "rcutfac": self.rcutfac,
            "rfac0": self.rfac0,
            "rmin0": self.rmin0,
            "quadratic": self.quadratic,
            "radii": self.radii,
            "wj": self.wj,
            "quadratic_columns": self.quadratic_columns,
        }

    def _radius(self, el: str) -> float:
        return float(self.radii.get(el, 0.5))

    def _weight(self, el: str) -> float:
        return float(self.wj.get(el, 1.0))

    @property
    def cutoff(self) -> float:
        """Cutoff radius, Å."""
        r = max((self._radius(e) for e in self.elements), default=0.5)
        return 2.0 * r * self.rcutfac

    @property
    def n_full(self) -> int:
        """Columns per element of ``compute snap`` / ``pair_style snap`` (every quadratic one)."""
        nb = n_bispectrum(self.twojmax)
        return nb + (nb * (nb + 1) // 2 if self.quadratic else 0)

    @property
    def kept(self) -> np.ndarray:
        """Indices (into one element's :attr:`n_full` columns) of this term's columns."""
        nb = n_bispectrum(self.twojmax)
        if self.quadratic_columns is None:
            return np.arange(self.n_full)
        return np.concatenate([np.arange(nb), nb + np.asarray(self.quadratic_columns, dtype=int)])

    @property
    def n_per_element(self) -> int:
        """Number of this term's parameters per element."""
        return len(self.kept)

    @property
    def param_names(self) -> list[str]:
        """Name of each of this term's parameters, e.g. ``snap[W].B3``, ``snap[W].B0*B3``."""
        nb = n_bispectrum(self.twojmax)
        names = [f"B{k}" for k in range(nb)]
        if self.quadratic:
            names += quadratic_names(self.twojmax)
        names = [names[i] for i in self.kept]
        return [f"snap[{el}].{n}" for el in self.elements for n in names]

    def _compute_args(self) -> str:
        radii = " ".join(repr(self._radius(e)) for e in self.elements)
        weights = " ".join(repr(self._weight(e)) for e in self.elements)
        return (
            f"{self.rcutfac!r} {self.rfac0!r} {self.twojmax} {radii} {weights} "
            f"rmin0 {self.rmin0!r} bzeroflag 0 quadraticflag {int(self.quadratic)}"
        )

    def rows(self, atoms: Atoms) -> Rows:
        """Design rows of ``atoms``: energy (P,), forces (N, 3, P), virial (6, P); eV, eV/Å, eV."""
        lmp = _instance()
        lmp.command("clear")
        frame = setup_structure(lmp, atoms, self.elements)
        n = len(atoms)
        arr = compute_snap(lmp, self.cutoff, self._compute_args(), atoms.get_chemical_formula())
        a = arr[:, :-1]  # last column is the (zero) reference pair style
        full = self.n_full * len(self.elements)
        if a.shape[0] != 1 + 3 * n + 6 or a.shape[1] != full:
            raise EngineError(
                f"compute snap returned shape {arr.shape}, expected ({3 * n + 7}, {full + 1})"
            )
        if self.quadratic_columns is not None:
            blocks = np.arange(len(self.elements))[:, None] * self.n_full
            a = a[:, (blocks + self.kept).ravel()]
        forces = to_ase_vectors(frame, a[1 : 1 + 3 * n].reshape(n, 3, -1).transpose(0, 2, 1))
        forces = forces.transpose(0, 2, 1)
        virial = to_ase_voigt(frame, a[1 + 3 * n :][[0, 1, 2, 5, 4, 3]])
        return Rows(a[0].copy(), np.ascontiguousarray(forces), virial)

    def lammps(self, coef: np.ndarray, prefix: str, offsets: dict[str, float] | None) -> LammpsPart:
        """Pair style, pair_coeff lines and files of this term for parameters ``coef``.

        With ``quadratic_columns`` the coefficient file holds every quadratic column, zero in the
        dropped ones (the same function: ``pair_style snap`` takes no column subset).
        """
        m, full = self.n_per_element, self.n_full
        coeff_lines = [f"{len(self.elements)} {full + 1}"]
        for i, el in enumerate(self.elements):
            block = np.zeros(full)
            block[self.kept] = coef[i * m : (i + 1) * m]
            coeff_lines.append(f"{el} {self._radius(el)!r} {self._weight(el)!r}")
            coeff_lines.append(repr(float((offsets or {}).get(el, 0.0))))
            coeff_lines += [repr(float(c)) for c in block]
        param = (
            f"rcutfac {self.rcutfac!r}\ntwojmax {self.twojmax}\nrfac0 {self.rfac0!r}\n"
            f"rmin0 {self.rmin0!r}\nbzeroflag 0\nquadraticflag {int(self.quadratic)}\n"
        )
        files = {f"{prefix}.snapcoeff": "\n".join(coeff_lines) + "\n", f"{prefix}.snapparam": param}
        return LammpsPart(
            "snap", [f"* * {prefix}.snapcoeff {prefix}.snapparam " + " ".join(self.elements)], files
        )


class Constant(Term):
    """One energy per atom of each element: column ``k`` of the energy row counts element ``k``."""

    kind = "const"

    @property
    def cutoff(self) -> float:
        """Cutoff radius, Å."""
        return 0.0

    @property
    def param_names(self) -> list[str]:
        """Name of each of this term's parameters, e.g. ``snap[W].B3``."""
        return [f"const[{el}]" for el in self.elements]

    def rows(self, atoms: Atoms) -> Rows:
        """Design rows of ``atoms``: energy (P,), forces (N, 3, P), virial (6, P); eV, eV/Å, eV."""
        symbols = atoms.get_chemical_symbols()
        counts = np.array([symbols.count(el) for el in self.elements], dtype=float)
        p = len(self.elements)
        return Rows(counts, np.zeros((len(atoms), 3, p)), np.zeros((6, p)))

    def lammps(self, coef: np.ndarray, prefix: str, offsets: dict[str, float] | None) -> LammpsPart:
        """Pair style, pair_coeff lines and files of this term for parameters ``coef``."""
        from potforge.terms.embedding import eam_fs_file

        text = eam_fs_file(
            self.elements,
            [_constant_embedding(c) for c in coef],
            lambda r: np.zeros_like(r),
            rho_max=1.0,
            cutoff=1.0,
        )
        return LammpsPart(
            "eam/fs",
            [f"* * {prefix}.eam.fs " + " ".join(self.elements)],
            {f"{prefix}.eam.fs": text},
        )

    def offsets(self, coef: np.ndarray) -> dict[str, float]:
        """Per-element energies (eV) of parameters ``coef``."""
        return {el: float(c) for el, c in zip(self.elements, coef, strict=True)}


def _constant_embedding(c: float) -> Callable[[np.ndarray], np.ndarray]:
    """``F(ρ) = c`` on any ρ grid (eV)."""
    return lambda rho: np.full_like(rho, c)


class ZBL(Term):
    """Fixed Ziegler–Biersack–Littmark screened nuclear repulsion (LAMMPS ``pair_style zbl``).

    Parameters
    ----------
    inner, outer : float
        Switching region, Å: full ZBL below ``inner``, smoothly zero at ``outer``.
    """

    kind = "zbl"
    fixed = True
    parameters = {"inner": Real(low=0, low_open=True), "outer": Real(low=0, low_open=True)}

    def __init__(self, inner: float = 1.5, outer: float = 2.0):
        super().__init__()
        self.inner: float = self.check_param("inner", inner)
        self.outer: float = self.check_param("outer", outer)
        if not self.inner < self.outer:
            raise ModelError(
                f"zbl inner must be below outer (the switching region), got inner={self.inner:g} "
                f"Å and outer={self.outer:g} Å"
            )

    def get_params(self) -> dict[str, Any]:
        """Constructor settings by name (a spec can be rebuilt from them)."""
        return {"inner": self.inner, "outer": self.outer}

    @property
    def cutoff(self) -> float:
        """Cutoff radius, Å."""
        return self.outer

    def _coeffs(self) -> list[str]:
        from ase.data import atomic_numbers

        z = [atomic_numbers[e] for e in self.elements]
        n = len(z)
        return [f"{i + 1} {j + 1} {z[i]} {z[j]}" for i in range(n) for j in range(i, n)]

    def values(self, atoms: Atoms) -> Values:
        """Energy (eV), forces (eV/Å) and virial (eV) of this fixed term on ``atoms``."""
        cmds = [f"pair_style zbl {self.inner!r} {self.outer!r}"]
        cmds += [f"pair_coeff {c}" for c in self._coeffs()]
        e, f, w = static_point(_instance(), atoms, self.elements, cmds)
        return Values(e, f, w)

    def lammps(self, coef: np.ndarray, prefix: str, offsets: dict[str, float] | None) -> LammpsPart:
        """Pair style, pair_coeff lines and files of this term for parameters ``coef``."""
        return LammpsPart(f"zbl {self.inner!r} {self.outer!r}", self._coeffs())
