"""Elastic constants by stress–strain central differences with relaxed ions; Born stability."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from potforge.properties.base import EV_A3_TO_GPA, InstabilityError, PropertyError, warn_unstable
from potforge.properties.relax import (
    FMAX,
    STEPS,
    RelaxationHook,
    keep_structure,
    relax_positions,
)

VOIGT_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
"""ASE Voigt order: xx, yy, zz, yz, xz, xy."""


def voigt_strain_matrix(voigt: np.ndarray) -> np.ndarray:
    """Symmetric strain tensor from Voigt strain with engineering shears.

    Parameters
    ----------
    voigt : ndarray, shape (6,)
        ``(ε_xx, ε_yy, ε_zz, γ_yz, γ_xz, γ_xy)``, ``γ = 2ε``.

    Returns
    -------
    ndarray, shape (3, 3)
    """
    v = np.asarray(voigt, dtype=float)
    eps = np.diag(v[:3])
    for k, (i, j) in enumerate(VOIGT_PAIRS[3:], start=3):
        eps[i, j] = eps[j, i] = 0.5 * v[k]
    return eps


def elastic_from_stress_strain(strains: np.ndarray, stresses: np.ndarray) -> np.ndarray:
    """Stiffness tensor from stress–strain pairs by linear least squares (with an intercept).

    With the pairs ``±δ e_j`` this is exactly the central difference
    ``C_ij = (σ_i(+δ e_j) − σ_i(−δ e_j)) / 2δ``; a residual stress of the reference cancels.

    Parameters
    ----------
    strains : ndarray, shape (M, 6)
        Voigt strains, engineering shears.
    stresses : ndarray, shape (M, 6, ...)
        Voigt stresses (ASE sign: positive in tension), eV/Å³; trailing axes (e.g. one per
        parameter, for stress derivatives) are mapped independently — the map is linear.

    Returns
    -------
    ndarray, shape (6, 6, ...)
        Symmetrised stiffness ``c[i, j] = dσ_i/dε_j``, eV/Å³.
    """
    e = np.asarray(strains, dtype=float)
    s = np.asarray(stresses, dtype=float)
    if e.ndim != 2 or e.shape[1] != 6 or s.shape[:2] != e.shape:
        raise PropertyError(f"need strains and stresses of shape (M, 6), got {e.shape}, {s.shape}")
    design = np.hstack([e, np.ones((len(e), 1))])
    if np.linalg.matrix_rank(design) < 7:
        raise PropertyError("strain set does not span all six Voigt components (rank < 6)")
    coef, *_ = np.linalg.lstsq(design, s.reshape(len(e), -1), rcond=None)
    c = np.swapaxes(coef[:6].reshape(6, *s.shape[1:]), 0, 1)
    return 0.5 * (c + np.swapaxes(c, 0, 1))


def strain_set(strain: float) -> np.ndarray:
    """The 12 Voigt strains ``±strain·e_j`` of a central-difference stencil, shape (12, 6)."""
    eye = np.eye(6) * strain
    return np.vstack([eye, -eye])


def elastic_tensor(
    calc,
    atoms: Atoms,
    *,
    strain: float = 0.005,
    relax_ions: bool = True,
    fmax: float = FMAX,
    steps: int = STEPS,
    label: str = "crystal",
    keep: list | None = None,
    hook: RelaxationHook | None = None,
) -> np.ndarray:
    """6×6 stiffness of a relaxed crystal by stress–strain central differences.

    Parameters
    ----------
    calc : ase.calculators.calculator.Calculator
    atoms : ase.Atoms
        Stress-free reference cell.
    strain : float
        Strain amplitude δ (engineering shear strain for the Voigt components 4–6).
    relax_ions : bool
        Relax internal coordinates at each strain (skipped for one-atom cells).
    fmax : float
        eV/Å.
    keep : list, optional
        Receives the 12 strained (relaxed) cells, in the order of :func:`strain_set`.
    hook : RelaxationHook, optional
        Stands in for every relaxation (:data:`~potforge.properties.relax.RelaxationHook`).

    Returns
    -------
    ndarray, shape (6, 6)
        eV/Å³, ASE Voigt order in the Cartesian frame of ``atoms``.
    """
    strains = strain_set(strain)
    stresses = np.empty_like(strains)
    for m, voigt in enumerate(strains):
        strained = atoms.copy()
        deform = np.eye(3) + voigt_strain_matrix(voigt)
        strained.set_cell(atoms.cell.array @ deform, scale_atoms=True)
        if relax_ions and len(strained) > 1:
            strained, _ = relax_positions(
                strained, calc, label=f"strained {label}", fmax=fmax, steps=steps, hook=hook
            )
        else:
            strained.calc = calc
        keep_structure(keep, strained)
        stresses[m] = strained.get_stress(voigt=True)
    return elastic_from_stress_strain(strains, stresses)


def cubic_constants(c: np.ndarray) -> tuple[float, float, float]:
    """``(C11, C12, C44)`` averaged over the cubic-equivalent entries of a 6×6 tensor."""
    c = np.asarray(c, dtype=float)
    c11 = float(np.mean([c[0, 0], c[1, 1], c[2, 2]]))
    c12 = float(np.mean([c[0, 1], c[0, 2], c[1, 2]]))
    c44 = float(np.mean([c[3, 3], c[4, 4], c[5, 5]]))
    return c11, c12, c44


def voigt_bulk_modulus(c: np.ndarray) -> float:
    """Voigt average bulk modulus ``(C11+C22+C33 + 2(C12+C13+C23)) / 9`` (units of ``c``)."""
    c = np.asarray(c, dtype=float)
    return float((np.trace(c[:3, :3]) + 2 * (c[0, 1] + c[0, 2] + c[1, 2])) / 9.0)


def born_eigenvalues(c: np.ndarray) -> np.ndarray:
    """Eigenvalues of the symmetrised stiffness, ascending, shape (6,); all > 0 ⇔ Born-stable."""
    c = np.asarray(c, dtype=float)
    return np.linalg.eigvalsh(0.5 * (c + c.T))


def check_born_stability(
    c: np.ndarray, label: str, *, raise_error: bool = True, tol: float = 1e-6
) -> bool:
    """Report a mechanically unstable stiffness tensor (a non-positive eigenvalue).

    Parameters
    ----------
    c : ndarray, shape (6, 6)
        eV/Å³.
    label : str
        Structure name for the message.
    raise_error : bool
        Raise :class:`InstabilityError`; otherwise warn and return False.
    tol : float
        Eigenvalues below ``tol`` eV/Å³ count as unstable.

    Returns
    -------
    bool
        True when stable.
    """
    eig = born_eigenvalues(c)
    if eig[0] > tol:
        return True
    msg = (
        f"{label} is mechanically unstable: smallest eigenvalue of the elastic tensor is "
        f"{eig[0] * EV_A3_TO_GPA:.1f} GPa (Born criteria)"
    )
    if raise_error:
        raise InstabilityError(msg)
    warn_unstable(msg)
    return False
