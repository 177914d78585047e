"""Bayesian linear regression baselines: evidence-maximised BLR and a temperature-inflated BLR.

Model: ``y_n ~ N(x_n·θ, 1/(β w_n))`` with row weights ``w_n`` as relative precisions, prior
``θ ~ N(0, I/λ)``. Posterior ``S = (β AᵀWA + λI)⁻¹``, mean ``m = β S AᵀWy``. ``λ`` (prior
precision, 1/label-coefficient²) and ``β`` (noise precision, 1/label²) maximise the evidence by
MacKay's fixed point with sklearn's Gamma hyperpriors (so with unit weights the numbers coincide
with :class:`sklearn.linear_model.BayesianRidge`). Everything works on ``AᵀWA``, ``AᵀWy``,
``yᵀWy`` and the row count — no O(n) memory beyond the input.

BLR treats misspecification as noise, so its parameter covariance shrinks like 1/N while the
model stays wrong: prediction bounds from it (parameter-only, ``± n_sigma·sqrt(xᵀSx)``) are
badly under-covered on misspecified problems. :class:`TemperedBayesRegressor` inflates ``S``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from potforge.errors import ModelError
from potforge.linalg import NormalEquations, check_rows, solve_ridge
from potforge.uq._base import UQRegressor


def evidence_maximisation(
    G: np.ndarray,
    b: np.ndarray,
    yy: float,
    n_rows: int,
    *,
    hyper: tuple = (1e-6,) * 4,
    max_iter: int = 1000,
    tol: float = 1e-12,
) -> tuple[float, float, int]:
    """MacKay fixed point for ``(λ, β)`` from the normal equations.

    Parameters
    ----------
    G : ndarray, shape (P, P)
        ``AᵀWA``.
    b : ndarray, shape (P,)
        ``AᵀWy``.
    yy : float
        ``yᵀWy``.
    n_rows : float
        Number of (positive-weight) rows N.
    hyper : tuple
        ``(alpha_1, alpha_2, lambda_1, lambda_2)`` Gamma hyperpriors (sklearn names/defaults).

    Returns
    -------
    prior_precision λ, noise_precision β, iterations
    """
    a1, a2, l1, l2 = hyper
    lam_G, V = np.linalg.eigh(G)
    lam_G = np.clip(lam_G, 0.0, None)
    bV = V.T @ b
    beta, lam = 1.0 / max(yy / n_rows, 1e-300), 1.0
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        mV = beta * bV / (beta * lam_G + lam)
        sse = max(yy - 2 * mV @ bV + mV @ (lam_G * mV), 0.0)
        gamma = float(np.sum(beta * lam_G / (beta * lam_G + lam)))
        lam_new = (gamma + 2 * l1) / (mV @ mV + 2 * l2)
        beta_new = (n_rows - gamma + 2 * a1) / (sse + 2 * a2)
        done = abs(lam_new - lam) <= tol * lam and abs(beta_new - beta) <= tol * beta
        lam, beta = lam_new, beta_new
        if done:
            break
    return float(lam), float(beta), n_iter


class BayesianLinearRegressor(UQRegressor):
    """Bayesian linear regression with evidence-maximised prior and noise precisions.

    Parameters
    ----------
    prior_precision, noise_precision : float, optional
        Fix ``λ`` / ``β`` instead of maximising the evidence for them (both needed to skip it).
    n_sigma : float, default 2.0
        Bounds are ``mean ± n_sigma · std``.
    include_noise : bool, default False
        Add the noise variance ``1/(β w)`` (with ``w = 1``) to the predictive variance; the
        default is the parameter-only std ``sqrt(xᵀSx)``, the quantity propagated to properties.
    column_names : sequence of str, optional

    Attributes
    ----------
    coef_ : ndarray, shape (P,)
        Posterior mean ``m``.
    sigma_ : ndarray, shape (P, P)
        Posterior covariance ``S`` (before any temperature).
    prior_precision_, noise_precision_ : float
    alpha_ : float
        Equivalent ridge strength ``λ/β`` on ``AᵀWA``.
    n_iter_, n_features_in_, n_rows_ : int
    """

    def __init__(
        self,
        *,
        prior_precision: float | None = None,
        noise_precision: float | None = None,
        n_sigma: float = 2.0,
        include_noise: bool = False,
        column_names: Sequence[str] | None = None,
    ) -> None:
        self.prior_precision = prior_precision
        self.noise_precision = noise_precision
        self.n_sigma = n_sigma
        self.include_noise = include_noise
        self.column_names = column_names

    def fit(self, X, y, sample_weight=None) -> BayesianLinearRegressor:
        """Fit on ``X`` (n, P), ``y`` (n,), optional row weights (n,)."""
        A, y, w, t = check_rows(X, y, sample_weight)
        neq = NormalEquations(A.shape[1])
        neq.update(A, y, w, np.zeros_like(t))
        return self._fit_normal_equations(neq, int((w > 0).sum()))

    def _fit_normal_equations(self, neq: NormalEquations, n_rows: int):
        G, b = neq.combined()
        yy = sum(neq.yy.values())
        if self.prior_precision is not None and self.noise_precision is not None:
            lam, beta, it = float(self.prior_precision), float(self.noise_precision), 0
        else:
            lam, beta, it = evidence_maximisation(G, b, yy, n_rows)
        if lam <= 0 or beta <= 0:
            raise ModelError(f"precisions must be positive, got prior {lam}, noise {beta}.")
        sol = solve_ridge(beta * G, beta * b, alpha=lam, column_names=self.column_names)
        self.coef_, self.sigma_ = sol.coef, sol.covariance()
        self.prior_precision_, self.noise_precision_, self.n_iter_ = lam, beta, it
        self.alpha_ = lam / beta
        self.n_features_in_, self.n_rows_ = G.shape[0], n_rows
        self.sse_ = float(max(yy - 2 * sol.coef @ b + sol.coef @ G @ sol.coef, 0.0))
        self.covariance_ = self.sigma_ * self._scale()
        return self

    def _scale(self) -> float:
        return 1.0

    def _std(self, X: np.ndarray, **kw: Any) -> np.ndarray:
        var = np.einsum("ij,jk,ik->i", X, self.covariance_, X)
        if self.include_noise:
            var = var + 1.0 / self.noise_precision_
        return np.sqrt(np.maximum(var, 0.0))

    def _bounds(self, X: np.ndarray, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
        s = self.n_sigma * self._std(X)
        return -s, s

    def _sample_deltas(self, n: int, rng: np.random.Generator, **kw: Any) -> np.ndarray:
        L = np.linalg.cholesky(self.covariance_ + 1e-300 * np.eye(self.n_features_in_))
        return rng.standard_normal((n, self.n_features_in_)) @ L.T


class TemperedBayesRegressor(BayesianLinearRegressor):
    """BLR whose posterior covariance is multiplied by a temperature factor ``τ``.

    Parameters
    ----------
    temperature : {"frederiksen", "calibrated"} or float, default "frederiksen"
        * ``"frederiksen"`` — Frederiksen et al., PRL 93, 165501 (2004): ensemble
          ``∝ exp(−C(θ)/T)`` with ``C`` the training cost ``Σ w e² + λ/β |θ|²`` and
          ``T = 2 C₀ / P`` (``P`` parameters), i.e. covariance ``(C₀/P)(AᵀWA + λ/β I)⁻¹``.
          Relative to BLR this is ``τ = β C₀ / P`` ≈ ``(N − γ)/P``: a fixed, data-free inflation.
        * ``"calibrated"`` — after ``fit``, call :meth:`calibrate` on a held-out check set: ``τ``
          is chosen so that ``coverage`` of its ``|errors|`` lie inside ``± n_sigma·std``.
        * a float — use that ``τ`` directly.
    coverage : float, default 0.95
        Target fraction for ``"calibrated"``.
    Other parameters as :class:`BayesianLinearRegressor`.

    Attributes
    ----------
    temperature_ : float
        The factor ``τ`` applied to ``sigma_`` (``covariance_ = τ · sigma_``).
    """

    def __init__(
        self,
        *,
        temperature: str | float = "frederiksen",
        coverage: float = 0.95,
        prior_precision: float | None = None,
        noise_precision: float | None = None,
        n_sigma: float = 2.0,
        include_noise: bool = False,
        column_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(
            prior_precision=prior_precision,
            noise_precision=noise_precision,
            n_sigma=n_sigma,
            include_noise=include_noise,
            column_names=column_names,
        )
        self.temperature = temperature
        self.coverage = coverage

    def _scale(self) -> float:
        t = self.temperature
        if t == "frederiksen":
            cost = self.sse_ + self.alpha_ * float(self.coef_ @ self.coef_)
            self.temperature_ = self.noise_precision_ * cost / self.n_features_in_
        elif t == "calibrated":
            self.temperature_ = 1.0  # until calibrate() is called
        elif isinstance(t, int | float) and t > 0:
            self.temperature_ = float(t)
        else:
            raise ModelError(f"temperature must be 'frederiksen', 'calibrated' or > 0, got {t!r}.")
        return self.temperature_

    def calibrate(self, X, y) -> TemperedBayesRegressor:
        """Set ``τ`` so that ``coverage`` of the check rows' ``|y − x·m|`` lie in the bounds.

        ``X`` (n_check, P), ``y`` (n_check,): rows not used in ``fit``.
        """
        X = self._validated(X)
        _, y, _, _ = check_rows(X, y)
        if self.include_noise:
            raise ModelError("calibrate() scales the parameter-only std; use include_noise=False.")
        s = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", X, self.sigma_, X), 1e-300))
        z = np.abs(y - X @ self.coef_) / (self.n_sigma * s)
        self.temperature_ = float(np.quantile(z, self.coverage) ** 2)
        self.covariance_ = self.temperature_ * self.sigma_
        return self
