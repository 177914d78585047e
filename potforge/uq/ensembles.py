"""Resampling ensembles: K weighted-ridge refits on bootstrap or subsampled rows.

A bootstrap member refits with row weights ``w_n c_n`` where ``c ~ Multinomial(n, 1/n)`` are
the bootstrap counts; a subsample member keeps a random ``subsample_fraction`` of the rows
without replacement. Like BLR, the spread of such an ensemble shrinks like ``1/sqrt(N)`` and
ignores misspecification; it is the common practical baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from potforge.errors import ModelError
from potforge.linalg import check_rows, solve_ridge
from potforge.uq._base import UQRegressor


class ResampledEnsembleRegressor(UQRegressor):
    """Bootstrap / subsample ensemble of weighted ridge fits.

    Parameters
    ----------
    n_members : int, default 20
        K refits.
    method : {"bootstrap", "subsample"}, default "bootstrap"
    subsample_fraction : float, default 0.5
        Fraction of rows per member for ``"subsample"``.
    alpha : float, default 0.0
        Ridge strength on ``AᵀWA`` (for the full fit and every member).
    bounds : {"minmax", "sigma"}, default "minmax"
        Bounds are the exact min/max over members of ``x·(θ_k − θ̄)``, or ``± n_sigma·std``.
    n_sigma : float, default 2.0
    random_state : int, optional
    column_names : sequence of str, optional

    Attributes
    ----------
    coef_ : ndarray, shape (P,)
        Fit on all rows (the prediction mean).
    members_ : ndarray, shape (K, P)
        Member parameter vectors θ_k.
    n_features_in_ : int

    Notes
    -----
    ``std`` is the standard deviation of ``x·θ_k`` over members (about their own mean).
    """

    def __init__(
        self,
        *,
        n_members: int = 20,
        method: str = "bootstrap",
        subsample_fraction: float = 0.5,
        alpha: float = 0.0,
        bounds: str = "minmax",
        n_sigma: float = 2.0,
        random_state: int | None = None,
        column_names: Sequence[str] | None = None,
    ) -> None:
        self.n_members = n_members
        self.method = method
        self.subsample_fraction = subsample_fraction
        self.alpha = alpha
        self.bounds = bounds
        self.n_sigma = n_sigma
        self.random_state = random_state
        self.column_names = column_names

    def _check_params(self) -> None:
        if self.method not in ("bootstrap", "subsample"):
            raise ModelError(f"method must be 'bootstrap' or 'subsample', got {self.method!r}.")
        if self.bounds not in ("minmax", "sigma"):
            raise ModelError(f"bounds must be 'minmax' or 'sigma', got {self.bounds!r}.")
        if int(self.n_members) < 2:
            raise ModelError(f"n_members must be at least 2, got {self.n_members}.")
        if not 0.0 < self.subsample_fraction <= 1.0:
            raise ModelError(
                f"subsample_fraction must lie in (0, 1], got {self.subsample_fraction}."
            )

    def fit(self, X, y, sample_weight=None) -> ResampledEnsembleRegressor:
        """Fit on ``X`` (n, P), ``y`` (n,), optional row weights (n,)."""
        self._check_params()
        A, y, w, _ = check_rows(X, y, sample_weight)
        rng = np.random.default_rng(self.random_state)
        self.coef_ = self._ridge(A, y, w)
        self.members_ = np.array(
            [
                self._ridge(A, y, w * self._counts(A.shape[0], rng))
                for _ in range(int(self.n_members))
            ]
        )
        self.n_features_in_ = A.shape[1]
        return self

    def _counts(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.method == "bootstrap":
            return rng.multinomial(n, np.full(n, 1.0 / n)).astype(float)
        c = np.zeros(n)
        c[rng.choice(n, size=max(1, int(round(self.subsample_fraction * n))), replace=False)] = 1
        return c

    def _ridge(self, A: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        As = A * np.sqrt(w)[:, None]
        sol = solve_ridge(As.T @ As, A.T @ (w * y), self.alpha, self.column_names)
        return sol.coef

    def _std(self, X: np.ndarray, **kw: Any) -> np.ndarray:
        return (X @ self.members_.T).std(axis=1)

    def _bounds(self, X: np.ndarray, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
        if self.bounds == "sigma":
            s = self.n_sigma * self._std(X)
            return -s, s
        d = X @ (self.members_ - self.coef_).T
        return d.min(axis=1), d.max(axis=1)

    def _sample_deltas(self, n: int, rng: np.random.Generator, **kw: Any) -> np.ndarray:
        K = self.members_.shape[0]
        return self.members_[rng.choice(K, size=n, replace=n > K)] - self.coef_
