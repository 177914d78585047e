"""Harmonic phonons with phonopy: frequencies at high-symmetry points, dispersion, DOS, stability.

Forces come from any ASE calculator on phonopy's displaced supercells (the force residual of the
perfect supercell is subtracted).  Imaginary modes appear as negative frequencies (phonopy's
convention); they make ``PhononResult.stable`` False, with a warning, or an
:class:`~potforge.properties.base.InstabilityError` under ``check_stability=True``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms

from potforge.properties.base import InstabilityError, NotApplicableError, warn_unstable

SPECIAL_POINTS = {
    "bcc": {"G": (0, 0, 0), "H": (0, 0, 1), "N": (0.5, 0.5, 0), "P": (0.5, 0.5, 0.5)},
    "fcc": {
        "G": (0, 0, 0),
        "X": (0, 0, 1),
        "L": (0.5, 0.5, 0.5),
        "W": (0.5, 0, 1),
        "K": (0.75, 0.75, 0),
    },
}
"""High-symmetry points in units of 2π/a of the conventional cubic cell (Cartesian)."""

PRIMITIVE_MATRIX: dict[str, Any] = {
    "bcc": [[-0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.5, 0.5, -0.5]],
    "fcc": [[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]],
    "hcp": "P",
}
"""Primitive cell of each conventional cell, as phonopy's ``primitive_matrix``."""


@dataclass
class PhononResult:
    """Harmonic phonons of one crystal.

    Attributes
    ----------
    phonon : phonopy.Phonopy
        With force constants produced.
    lattice : str
        ``"bcc"``, ``"fcc"`` or another label (no named points then).
    conventional_a : float or None
        Cubic lattice constant, Å (to place named points).
    min_frequency : float
        Lowest frequency on the stability mesh and the named points, THz (negative: imaginary).
    stable : bool
        No frequency below ``-imag_tol``.
    """

    phonon: Any  # phonopy.Phonopy (phonopy is imported only when phonons are computed)
    lattice: str
    conventional_a: float | None
    min_frequency: float
    stable: bool

    def frequencies(self, q_cart: np.ndarray) -> np.ndarray:
        """Frequencies (THz, ascending, negative = imaginary) at Cartesian q in 2π/a units.

        Parameters
        ----------
        q_cart : ndarray, shape (3,)

        Returns
        -------
        ndarray, shape (3 N_prim,)
        """
        if self.conventional_a is None:
            raise NotApplicableError("named/Cartesian q-points need a cubic conventional cell")
        q = np.asarray(q_cart, dtype=float) / self.conventional_a
        prim = np.asarray(self.phonon.primitive.cell)
        return np.sort(self.phonon.get_frequencies(prim @ q))

    def at(self, point: str) -> np.ndarray:
        """Frequencies (THz, ascending) at a named high-symmetry point, e.g. ``"H"``."""
        points = SPECIAL_POINTS.get(self.lattice, {})
        if point not in points:
            raise NotApplicableError(
                f"no point '{point}' for {self.lattice}; use one of {', '.join(points) or 'none'}"
            )
        return self.frequencies(np.asarray(points[point], dtype=float))

    def dispersion(self, path: str = "GHPGN", n: int = 41) -> tuple[np.ndarray, np.ndarray]:
        """Frequencies along straight segments between named points.

        Parameters
        ----------
        path : str
            Point names in order, e.g. ``"GHPGN"`` (bcc) or ``"GXWKGL"`` (fcc).
        n : int
            Points per segment.

        Returns
        -------
        distance : ndarray, shape (M,)
            Path length in 2π/a units.
        frequencies : ndarray, shape (M, 3 N_prim)
            THz.
        """
        points = SPECIAL_POINTS.get(self.lattice, {})
        missing = [p for p in path if p not in points]
        if missing:
            raise NotApplicableError(f"unknown point(s) {', '.join(missing)} for {self.lattice}")
        dist, freqs, d0 = [], [], 0.0
        for p, r in zip(path[:-1], path[1:], strict=True):
            qa, qb = np.asarray(points[p], float), np.asarray(points[r], float)
            for t in np.linspace(0.0, 1.0, n):
                q = qa + t * (qb - qa)
                dist.append(d0 + t * np.linalg.norm(qb - qa))
                freqs.append(self.frequencies(q))
            d0 += float(np.linalg.norm(qb - qa))
        return np.asarray(dist), np.asarray(freqs)

    def dos(self, mesh: int = 20) -> tuple[np.ndarray, np.ndarray]:
        """Total phonon density of states on a ``mesh³`` grid.

        Returns
        -------
        frequency : ndarray, shape (F,)
            THz.
        dos : ndarray, shape (F,)
            States per THz per primitive cell.
        """
        self.phonon.run_mesh([mesh] * 3)
        self.phonon.run_total_dos()
        d = self.phonon.get_total_dos_dict()
        return np.asarray(d["frequency_points"]), np.asarray(d["total_dos"])


def _to_phonopy(atoms: Atoms):
    from phonopy.structure.atoms import PhonopyAtoms

    return PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=atoms.cell.array,
        scaled_positions=atoms.get_scaled_positions(),
    )


def compute_phonons(
    calc,
    unitcell: Atoms,
    *,
    supercell: int = 4,
    distance: float = 0.01,
    lattice: str = "other",
    conventional_a: float | None = None,
    mesh: int = 8,
    imag_tol: float = 0.05,
    check_stability: bool = False,
    label: str = "crystal",
) -> PhononResult:
    """Force constants by finite displacements and a stability check over a q mesh.

    Parameters
    ----------
    calc : ase.calculators.calculator.Calculator
    unitcell : ase.Atoms
        Stress-free cell (conventional cubic for named points).
    supercell : int
        Diagonal supercell ``supercell³`` of ``unitcell`` (choose it ≥ 2× the cutoff).
    distance : float
        Displacement amplitude, Å.
    lattice : str
        ``"bcc"``/``"fcc"`` enables named points.
    conventional_a : float, optional
        Cubic lattice constant, Å.
    mesh : int
        ``mesh³`` Γ-centred grid for the stability check.
    imag_tol : float
        Frequencies below ``-imag_tol`` THz count as imaginary (acoustic noise near Γ is smaller).
    check_stability : bool
        Raise :class:`InstabilityError` on imaginary modes instead of warning.

    Returns
    -------
    PhononResult
    """
    from phonopy import Phonopy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # phonopy's note on its 'auto' primitive cell
        ph = Phonopy(
            _to_phonopy(unitcell),
            supercell_matrix=np.eye(3, dtype=int) * supercell,
            primitive_matrix=PRIMITIVE_MATRIX.get(lattice, "auto"),
            log_level=0,
        )
    ph.generate_displacements(distance=distance)

    def forces(sc) -> np.ndarray:
        atoms = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        atoms.calc = calc
        return atoms.get_forces()

    f0 = forces(ph.supercell)
    displaced = ph.supercells_with_displacements
    if displaced is None:  # generate_displacements above always makes them
        raise RuntimeError("phonopy made no displaced supercells")
    ph.forces = [forces(sc) - f0 for sc in displaced]
    ph.produce_force_constants()
    ph.run_mesh([mesh] * 3, is_gamma_center=True)
    mesh_dict: dict[str, Any] = dict(ph.get_mesh_dict())
    fmin = float(np.min(mesh_dict["frequencies"]))
    result = PhononResult(ph, lattice, conventional_a, fmin, True)
    for name in SPECIAL_POINTS.get(lattice, {}):
        result.min_frequency = min(result.min_frequency, float(result.at(name)[0]))
    result.stable = result.min_frequency >= -imag_tol
    if not result.stable:
        msg = (
            f"{label} is dynamically unstable: imaginary phonon mode of "
            f"{abs(result.min_frequency):.2f}i THz (lowest frequency "
            f"{result.min_frequency:.2f} THz)"
        )
        if check_stability:
            raise InstabilityError(msg)
        warn_unstable(msg)
    return result
