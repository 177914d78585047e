"""Uncertainty of frames for active learning: the ensemble force spread (DP-GEN's
``max_devi_f``), the half-width of the POPS force bounds, and the extrapolation grade against
the training design (D-optimality).

Arrays in, arrays out.  For a linear potential every ensemble member's forces come from one
descriptor pass (``F_k = F_fixed + rows · θ_k``), so screening K parameter vectors costs one
matrix product per frame (:meth:`potforge.model.LinearPotential.predict_designs`).
"""

from __future__ import annotations

import numpy as np

from potforge.errors import DataError


def force_deviation(forces: np.ndarray) -> np.ndarray:
    """Per-atom force spread over an ensemble, ``sqrt(mean_k |F_k,i − F̄_i|²)``.

    Parameters
    ----------
    forces : ndarray, shape (K, N, 3)
        Forces of K ensemble members on N atoms, eV/Å.

    Returns
    -------
    ndarray, shape (N,)
        eV/Å.
    """
    F = np.asarray(forces, dtype=float)
    if F.ndim != 3 or F.shape[2] != 3 or F.shape[0] < 2:
        raise DataError(f"ensemble forces must have shape (K ≥ 2, N, 3), got {F.shape}")
    d = F - F.mean(axis=0)
    return np.sqrt((d**2).sum(axis=2).mean(axis=0))


def max_devi_f(forces: np.ndarray) -> float:
    """The frame's uncertainty U = max over atoms of :func:`force_deviation` (DP-GEN's
    ``max_devi_f``, eV/Å)."""
    return float(force_deviation(forces).max())


def bound_halfwidth(bounds: np.ndarray) -> np.ndarray:
    """Per-atom half-width of force bounds, ``|F_hi,i − F_lo,i| / 2``.

    Parameters
    ----------
    bounds : ndarray, shape (2, N, 3)
        Lower and upper force bounds (e.g. ``forces_bounds`` of
        :meth:`potforge.model.LinearPotential.predict_designs` over the POPS posterior), eV/Å.

    Returns
    -------
    ndarray, shape (N,)
        eV/Å; its maximum is the frame's POPS alternative to ``max_devi_f``.
    """
    B = np.asarray(bounds, dtype=float)
    if B.ndim != 3 or B.shape[0] != 2 or B.shape[2] != 3:
        raise DataError(f"force bounds must have shape (2, N, 3), got {B.shape}")
    return 0.5 * np.linalg.norm(B[1] - B[0], axis=1)


def maxvol(A: np.ndarray, tol: float = 1.01, max_iter: int = 200) -> np.ndarray:
    """Rows of ``A`` (n, P), n ≥ P, spanning a P×P submatrix of (locally) maximal volume.

    The active set of D-optimal design (as pacemaker's and MTP's extrapolation grade): start
    from a pivoted QR choice, then swap a row in whenever some row's coefficient in the basis
    of the active rows exceeds ``tol`` in magnitude (each swap multiplies |det| by it).

    Returns
    -------
    ndarray of int, shape (P,)
    """
    import scipy.linalg

    A = np.asarray(A, dtype=float)
    n, P = A.shape
    if n < P:
        raise DataError(f"the active set needs at least {P} rows (one per parameter), got {n}")
    _, _, piv = scipy.linalg.qr(A.T, mode="economic", pivoting=True)
    active = np.array(piv[:P])
    for _ in range(max_iter):
        try:
            C = np.linalg.solve(A[active].T, A.T).T  # A = C · A[active], (n, P)
        except np.linalg.LinAlgError:
            raise DataError("the training rows do not span every parameter direction") from None
        i, j = np.unravel_index(np.argmax(np.abs(C)), C.shape)
        if abs(C[i, j]) <= tol:
            break
        active[j] = i
    return active


class ExtrapolationGrade:
    """Extrapolation grade γ of new rows against a training design (D-optimality).

    ``γ(a) = max_j |c_j|`` for ``a = c · A_active`` with ``A_active`` the :func:`maxvol` rows of
    the training design: γ ≤ 1 (up to ``tol``) on every training row, γ > 1 outside the
    training data's span, as pacemaker's extrapolation grade (save frames above ~2–5, stop
    above ~10–25 in its examples).

    Parameters
    ----------
    tol : float, default=1.01
        MaxVol swap threshold.

    Attributes
    ----------
    active_ : ndarray of int, shape (P,)
        Indices of the active rows in the training design.
    inverse_ : ndarray, shape (P, P)
        ``A_active⁻¹``.
    """

    def __init__(self, *, tol: float = 1.01):
        self.tol = tol

    def fit(self, A: np.ndarray) -> ExtrapolationGrade:
        """Choose the active set from training rows ``A`` (n, P) (e.g. per-atom force rows)."""
        A = np.asarray(A, dtype=float)
        scale = np.linalg.norm(A, axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)  # column scaling: γ does not change
        A = A / self.scale_
        self.active_ = maxvol(A, self.tol)
        self.inverse_ = np.linalg.inv(A[self.active_])
        return self

    def grade(self, A: np.ndarray) -> np.ndarray:
        """γ of each row of ``A`` (m, P), shape (m,)."""
        if not hasattr(self, "inverse_"):
            raise DataError("ExtrapolationGrade is not fitted: call fit(training rows) first")
        C = (np.asarray(A, dtype=float) / self.scale_) @ self.inverse_
        return np.abs(C).max(axis=1)

    def atom_grades(self, force_rows: np.ndarray) -> np.ndarray:
        """Per-atom γ from an atom's three force rows, ``(N, 3, P)`` → ``(N,)``."""
        R = np.asarray(force_rows, dtype=float)
        return self.grade(R.reshape(-1, R.shape[-1])).reshape(R.shape[0], 3).max(axis=1)
