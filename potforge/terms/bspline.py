"""Clamped cubic B-spline bases on an interval, evaluated for all basis functions at once."""

from __future__ import annotations

import numpy as np
from scipy.interpolate import BSpline


def clamped_knots(lo: float, hi: float, n_basis: int) -> np.ndarray:
    """Knot vector of ``n_basis`` clamped cubic B-splines on ``[lo, hi]`` (uniform interior)."""
    if n_basis < 4:
        raise ValueError(f"a cubic B-spline basis needs at least 4 functions, got {n_basis}")
    inner = np.linspace(lo, hi, n_basis - 2)
    return np.concatenate([[lo] * 3, inner, [hi] * 3])


class CubicBasis:
    """Cubic B-splines ``B_k`` on ``[lo, hi]``; zero outside unless ``extrapolate_right``.

    Parameters
    ----------
    lo, hi : float
        Interval.
    n_basis : int
        Number of basis functions.
    keep : slice
        Which basis functions are free parameters (others are fixed at zero).
    extrapolate_right : bool
        Continue linearly beyond ``hi`` with the slope at ``hi`` (LAMMPS ``eam`` does this for
        the embedding function); otherwise the basis is zero at and beyond ``hi``.
    """

    def __init__(
        self,
        lo: float,
        hi: float,
        n_basis: int,
        keep: slice = slice(None),
        extrapolate_right: bool = False,
    ):
        self.lo, self.hi = float(lo), float(hi)
        self.knots = clamped_knots(self.lo, self.hi, n_basis)
        eye = np.eye(n_basis)[:, keep]
        self.n = eye.shape[1]
        self._b = BSpline(self.knots, eye, 3, extrapolate=False)
        self._d = self._b.derivative()
        self.extrapolate_right = extrapolate_right
        if extrapolate_right:
            full = BSpline(self.knots, eye, 3)  # evaluates the closed last interval at hi
            self._vhi = full(self.hi)
            self._dhi = full.derivative()(self.hi)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values and first derivatives of every kept basis function.

        Parameters
        ----------
        x : ndarray, shape (m,)

        Returns
        -------
        values, derivatives : ndarray, shape (m, n)
        """
        x = np.asarray(x, dtype=float)
        v = np.nan_to_num(self._b(x))
        d = np.nan_to_num(self._d(x))
        if self.extrapolate_right:
            out = x >= self.hi
            if np.any(out):
                dx = (x[out] - self.hi)[:, None]
                v[out] = self._vhi + self._dhi * dx
                d[out] = self._dhi
        else:
            outside = (x < self.lo) | (x >= self.hi)
            v[outside] = 0.0
            d[outside] = 0.0
        return v, d
