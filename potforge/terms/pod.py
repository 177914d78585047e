"""Proper orthogonal descriptor (POD) term of LAMMPS ML-POD: 2-, 3- and optionally 4-body.

LAMMPS is the reference implementation: ``compute pod/global`` returns, for one structure, a
global array whose first row is Σ_i D(i) per element block and whose next 3N rows are the force
rows (already ``F = row · θ``, by atom id).  It has **no virial rows**, and no ML-POD compute
gives the pair-resolved derivatives a periodic virial needs (``podd/atom`` and ``pod/local`` sum
the images of each neighbour into one atom id).  The virial rows are therefore the strain
derivative of the energy row, ``W = -dE/dε``, by a fourth-order central difference of
``compute pod/atom`` energies on ±h, ±2h homogeneous strains (h = :data:`STRAIN_STEP`; agreement
with ``pair_style pod``'s own virial is ~1e-10 relative, far below any stress label's noise); for
a structure periodic along no axis they are exact, ``W = Σ_i r_i ⊗ F_i``.

Each element block of ``compute pod/global`` starts with a one-body column (the element's atom
count).  It duplicates ``const``, so this term drops it from its rows and instead writes the
model's per-element constant energies into that coefficient on export (``absorbs_offsets``).
Exported as ``pair_style pod`` with the same parameter file, so the two paths agree to round-off.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from potforge.engines.lammps import setup_structure, to_ase_vectors
from potforge.errors import EngineError, ModelError
from potforge.params import Integer, Real
from potforge.terms.base import MAX_CUTOFF, LammpsPart, Rows, Term
from potforge.terms.snap import _instance

STRAIN_STEP = 3e-4
"""Strain step h of the virial's finite difference (dimensionless)."""

BESSEL_PARAMETERS = 3
"""ML-POD's β values per Bessel degree (radial snapshots: 3 × bessel_degree + inverse_degree)."""

_FOURBODY_ANGULAR = (1, 2, 4, 7, 11, 16, 23)
"""Angular functions of the four-body descriptors for each ML-POD ``fourbody_angular_degree``."""

_VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
_STENCIL = ((1.0, 8.0), (-1.0, -8.0), (2.0, -1.0), (-2.0, 1.0))
"""(step multiple, weight) of ``f'(0) ≈ Σ w f(m h) / (12 h)``."""

_FILES_LOCK = threading.Lock()
_FILES_DIR: list[Path] = []


def _parameter_file(text: str) -> Path:
    """A file holding ``text`` in this process's scratch folder (written once per content)."""
    with _FILES_LOCK:
        if not _FILES_DIR:
            folder = Path(tempfile.mkdtemp(prefix="potforge-pod-"))
            atexit.register(shutil.rmtree, folder, True)
            _FILES_DIR.append(folder)
        path = _FILES_DIR[0] / f"{hashlib.sha1(text.encode()).hexdigest()[:16]}.pod"
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(text)
            tmp.replace(path)
    return path


class POD(Term):
    """Proper orthogonal descriptors (Nguyen & Rohskopf 2023) from LAMMPS ML-POD.

    Per element the columns are ``radial2 · Ne`` two-body descriptors, ``(angular3 + 1) ·
    radial3 · Ne(Ne+1)/2`` three-body ones and, when ``radial4`` > 0, ``A(angular4) · radial4 ·
    Ne(Ne+1)(Ne+2)/6`` four-body ones (``A`` = 1, 2, 4, 7, 11, 16, 23 for degree 0…6), ``Ne`` the
    number of elements; the defaults give 6 + 25 = 31 per element for one element, 87 for two
    (twojmax=6 SNAP has 30).
    No one-body column (that is ``const``); no environment clusters (they need a data-fitted
    projection, which is not linear).

    Parameters
    ----------
    rin : float
        Inner cutoff of the radial basis, Å, ≥ 0 and below ``rcut`` (the basis is built on
        ``(rin, rcut)``; keep it below the shortest distance in the data, with ZBL for closer).
    rcut : float
        Cutoff, Å, in (0, 20].
    bessel_degree : int
        Highest degree of the Bessel radial snapshots, ≥ 1 (ML-POD
        ``bessel_polynomial_degree``).
    inverse_degree : int
        Highest degree of the inverse-distance snapshots, ≥ 1 (``inverse_polynomial_degree``).
    radial2 : int
        Two-body radial basis functions, ≥ 1 and at most the number of snapshots
        ``3 · bessel_degree + inverse_degree``.
    radial3 : int
        Three-body radial basis functions, ≥ 0 (0: no three-body descriptors) and at most the
        number of snapshots.
    angular3 : int
        Three-body angular degree, 0 … 12.
    radial4 : int
        Four-body radial basis functions, 0 (default: none) … ``radial3``.
    angular4 : int
        Four-body angular degree, 0 … min(6, ``angular3``).
    """

    kind = "pod"
    absorbs_offsets = True
    parameters = {
        "rin": Real(low=0),
        "rcut": Real(low=0, low_open=True, high=MAX_CUTOFF),
        "bessel_degree": Integer(low=1),
        "inverse_degree": Integer(low=1),
        "radial2": Integer(low=1),
        "radial3": Integer(low=0),
        "angular3": Integer(low=0, high=12),
        "radial4": Integer(low=0),
        "angular4": Integer(low=0, high=6),
    }

    def __init__(
        self,
        rin: float = 1.0,
        rcut: float = 5.0,
        bessel_degree: int = 4,
        inverse_degree: int = 8,
        radial2: int = 6,
        radial3: int = 5,
        angular3: int = 4,
        radial4: int = 0,
        angular4: int = 0,
    ):
        super().__init__()
        self.rin: float = self.check_param("rin", rin)
        self.rcut: float = self.check_param("rcut", rcut)
        self.bessel_degree: int = self.check_param("bessel_degree", bessel_degree)
        self.inverse_degree: int = self.check_param("inverse_degree", inverse_degree)
        self.radial2: int = self.check_param("radial2", radial2)
        self.radial3: int = self.check_param("radial3", radial3)
        self.angular3: int = self.check_param("angular3", angular3)
        self.radial4: int = self.check_param("radial4", radial4)
        self.angular4: int = self.check_param("angular4", angular4)
        if not self.rin < self.rcut:
            raise ModelError(
                f"pod rin must be below rcut, got rin={self.rin:g} Å and rcut={self.rcut:g} Å"
            )
        ns = BESSEL_PARAMETERS * self.bessel_degree + self.inverse_degree
        for name in ("radial2", "radial3"):
            if getattr(self, name) > ns:
                raise ModelError(
                    f"pod {name} must be at most the number of radial snapshots "
                    f"3 × bessel_degree + inverse_degree = {ns}, got {getattr(self, name)}"
                )
        if self.radial4 > self.radial3:
            raise ModelError(
                f"pod radial4 must be at most radial3 = {self.radial3} (ML-POD builds the "
                f"four-body radial basis from the three-body one), got {self.radial4}"
            )
        if self.radial4 and self.angular4 > self.angular3:
            raise ModelError(
                f"pod angular4 must be at most angular3 = {self.angular3}, got {self.angular4}"
            )

    def get_params(self) -> dict[str, Any]:
        """Constructor settings by name (a spec can be rebuilt from them)."""
        return {
            "rin": self.rin,
            "rcut": self.rcut,
            "bessel_degree": self.bessel_degree,
            "inverse_degree": self.inverse_degree,
            "radial2": self.radial2,
            "radial3": self.radial3,
            "angular3": self.angular3,
            "radial4": self.radial4,
            "angular4": self.angular4,
        }

    @property
    def cutoff(self) -> float:
        """Cutoff radius, Å."""
        return self.rcut

    def _counts(self) -> tuple[int, int, int]:
        """Two-, three- and four-body descriptors per element (ML-POD's count)."""
        ne = max(len(self.elements), 1)
        n2 = self.radial2 * ne
        n3 = (self.angular3 + 1) * self.radial3 * ne * (ne + 1) // 2
        n4 = _FOURBODY_ANGULAR[self.angular4] * self.radial4 * ne * (ne + 1) * (ne + 2) // 6
        return n2, n3, n4

    @property
    def n_per_element(self) -> int:
        """Descriptors per element (without ML-POD's one-body column)."""
        return sum(self._counts())

    @property
    def param_names(self) -> list[str]:
        """Name of each parameter: ``pod[W].2b0`` … (body order, then ML-POD's index)."""
        n2, n3, n4 = self._counts()
        names = [f"2b{k}" for k in range(n2)] + [f"3b{k}" for k in range(n3)]
        names += [f"4b{k}" for k in range(n4)]
        return [f"pod[{el}].{n}" for el in self.elements for n in names]

    def parameter_text(self) -> str:
        """The ML-POD parameter file of this term (species in the model's element order)."""
        return (
            f"species {' '.join(self.elements)}\n"
            f"rin {self.rin!r}\nrcut {self.rcut!r}\n"
            f"bessel_polynomial_degree {self.bessel_degree}\n"
            f"inverse_polynomial_degree {self.inverse_degree}\n"
            "onebody 1\n"
            f"twobody_number_radial_basis_functions {self.radial2}\n"
            f"threebody_number_radial_basis_functions {self.radial3}\n"
            f"threebody_angular_degree {self.angular3}\n"
            f"fourbody_number_radial_basis_functions {self.radial4}\n"
            f"fourbody_angular_degree {self.angular4 if self.radial4 else 0}\n"
            "fivebody_number_radial_basis_functions 0\nfivebody_angular_degree 0\n"
            "sixbody_number_radial_basis_functions 0\nsixbody_angular_degree 0\n"
            "sevenbody_number_radial_basis_functions 0\nsevenbody_angular_degree 0\n"
        )

    def _compute(self, atoms: Atoms, style: str):
        """``compute <style>`` (``pod/global`` or ``pod/atom``) on ``atoms``: frame, array."""
        path = _parameter_file(self.parameter_text())
        lmp = _instance()
        lmp.command("clear")
        frame = setup_structure(lmp, atoms, self.elements)
        try:
            lmp.commands_list(
                [
                    f"pair_style zero {self.rcut + 1e-6!r}",
                    "pair_coeff * *",
                    "neighbor 1.0 bin",
                    f'compute pf_pod all {style} "{path}" "" {" ".join(self.elements)}',
                    "thermo_style custom step",
                    "run 0 post no",
                ]
            )
            kind = 0 if style == "pod/global" else 1  # global or per-atom array
            arr = np.array(lmp.numpy.extract_compute("pf_pod", kind, 2), dtype=float, copy=True)
        except Exception as exc:
            raise EngineError(
                f"LAMMPS compute {style} failed on {atoms.get_chemical_formula()}: {exc}"
            ) from exc
        return frame, arr

    def _energy_row(self, atoms: Atoms) -> np.ndarray:
        """d(total energy)/dθ (P,) from per-atom descriptors (``compute pod/atom``)."""
        _, d = self._compute(atoms, "pod/atom")
        m, n = self.n_per_element, len(atoms)
        if d.shape != (n, m):
            raise EngineError(f"compute pod/atom returned shape {d.shape}, expected ({n}, {m})")
        symbols = np.array(atoms.get_chemical_symbols())
        return np.concatenate([d[symbols == el].sum(axis=0) for el in self.elements])

    def rows(self, atoms: Atoms) -> Rows:
        """Design rows of ``atoms``: energy (P,), forces (N, 3, P), virial (6, P); eV, eV/Å, eV."""
        frame, arr = self._compute(atoms, "pod/global")
        n, m, ne = len(atoms), self.n_per_element, len(self.elements)
        if arr.shape != (1 + 3 * n, ne * (m + 1)):
            raise EngineError(
                f"compute pod/global returned shape {arr.shape}, expected "
                f"({1 + 3 * n}, {ne * (m + 1)})"
            )
        if not np.isfinite(arr).all():
            raise EngineError(
                f"compute pod/global gave non-finite descriptors on {atoms.get_chemical_formula()}"
                f": a pair at exactly rin = {self.rin:g} Å (ML-POD's radial basis is 0/0 there); "
                "use a smaller rin"
            )
        keep = [j for j in range(ne * (m + 1)) if j % (m + 1)]  # drop the one-body columns
        a = arr[:, keep]
        forces = to_ase_vectors(frame, a[1:].reshape(n, 3, -1).transpose(0, 2, 1))
        forces = np.ascontiguousarray(forces.transpose(0, 2, 1))
        if not np.any(atoms.pbc):  # W = Σ r ⊗ F, exact for a finite system
            t = np.einsum("ia,ibp->abp", atoms.positions, forces)
            virial = np.stack([0.5 * (t[i, j] + t[j, i]) for i, j in _VOIGT])
        else:
            virial = self._strain_virial(atoms)
        return Rows(a[0].copy(), forces, virial)

    def _strain_virial(self, atoms: Atoms) -> np.ndarray:
        """``W = -dE/dε`` (6, P), ASE Voigt order, by a 4th-order central difference."""
        h = STRAIN_STEP
        out = np.zeros((6, self.n_params))
        for k, (i, j) in enumerate(_VOIGT):
            unit = np.zeros((3, 3))
            unit[i, j] = unit[j, i] = 1.0 if i == j else 0.5
            for mult, weight in _STENCIL:
                b = atoms.copy()
                b.calc = None
                b.set_cell(atoms.cell.array @ (np.eye(3) + mult * h * unit), scale_atoms=True)
                out[k] -= weight * self._energy_row(b)
            out[k] /= 12.0 * h
        return out

    def coefficient_text(self, coef: np.ndarray, offsets: dict[str, float] | None) -> str:
        """The ``pair_style pod`` coefficient file: per element its constant energy (eV), then
        ``coef``'s block."""
        m = self.n_per_element
        lines = [f"model_coefficients: {len(self.elements) * (m + 1)} 0 0"]
        for i, el in enumerate(self.elements):
            lines.append(repr(float((offsets or {}).get(el, 0.0))))
            lines += [repr(float(c)) for c in coef[i * m : (i + 1) * m]]
        return "\n".join(lines) + "\n"

    def lammps(self, coef: np.ndarray, prefix: str, offsets: dict[str, float] | None) -> LammpsPart:
        """Pair style, pair_coeff lines and files of this term for parameters ``coef``."""
        param, coeff = f"{prefix}_param.pod", f"{prefix}_coefficients.pod"
        files = {param: self.parameter_text(), coeff: self.coefficient_text(coef, offsets)}
        return LammpsPart("pod", [f"* * {param} {coeff} " + " ".join(self.elements)], files)
