"""Synthetic regression problems for testing and benchmarking UQ (misspecified and not).

The misspecified problem mimics a linear potential: a low-dimensional "configuration" ``u``
(shape ``(n, d)``) is described by ``P`` smooth features (random Fourier features, the analogue
of descriptors), and the label is a smooth function of ``u`` that no linear combination of the
features reproduces exactly. With tiny noise, the residual error is misspecification.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FeatureMap:
    """Random Fourier features ``φ_j(u) = sqrt(2/P) cos(ω_j·u + b_j)`` plus a constant column.

    Attributes
    ----------
    omega : ndarray, shape (P-1, d)
    phase : ndarray, shape (P-1,)
    """

    omega: np.ndarray
    phase: np.ndarray

    def __call__(self, u: np.ndarray) -> np.ndarray:
        """Design rows ``(n, P)`` for inputs ``u`` of shape ``(n, d)``."""
        P1 = self.phase.size
        feats = np.sqrt(2.0 / P1) * np.cos(u @ self.omega.T + self.phase)
        return np.hstack([np.ones((u.shape[0], 1)), feats])


def target_function(u: np.ndarray) -> np.ndarray:
    """A smooth, non-periodic target ``(n,)`` of inputs ``u`` ``(n, d)`` (d ≥ 2)."""
    return (
        np.sin(2.0 * u[:, 0]) * np.exp(-0.5 * u[:, 1] ** 2)
        + 0.3 * u[:, 0] * u[:, 1]
        + 0.1 * np.sum(u**2, axis=1)
    )


def make_feature_map(n_features: int, input_dim: int, scale: float, rng) -> FeatureMap:
    """A :class:`FeatureMap`: ``n_features`` columns (one constant), frequencies ~ N(0, s²)."""
    omega = scale * rng.standard_normal((n_features - 1, input_dim))
    return FeatureMap(omega, rng.uniform(0.0, 2.0 * np.pi, n_features - 1))


def misspecified_problem(
    n_rows: int,
    n_features: int = 100,
    *,
    input_dim: int = 3,
    noise: float = 1e-4,
    frequency_scale: float = 0.7,
    n_test: int = 0,
    random_state: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training and test rows of a misspecified linear-regression problem.

    Parameters
    ----------
    n_rows, n_test : int
        Training and held-out rows.
    n_features : int
        ``P``, columns of the design matrix.
    input_dim : int
        ``d`` of the inputs ``u ~ N(0, I)``.
    noise : float
        Standard deviation of the Gaussian label noise (label units).

    Returns
    -------
    X : ndarray, shape (n_rows, P)
    y : ndarray, shape (n_rows,)
    X_test : ndarray, shape (n_test, P)
    y_test : ndarray, shape (n_test,)
        Held-out labels (noise-free).
    """
    rng = np.random.default_rng(random_state)
    fmap = make_feature_map(n_features, input_dim, frequency_scale, rng)
    u = rng.standard_normal((n_rows, input_dim))
    u_test = rng.standard_normal((n_test, input_dim))
    y = target_function(u) + noise * rng.standard_normal(n_rows)
    return fmap(u), y, fmap(u_test), target_function(u_test)


def well_specified_problem(
    n_rows: int,
    n_features: int,
    *,
    noise: float = 0.1,
    prior_std: float = 1.0,
    random_state: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``y = Xθ + ε`` with ``θ ~ N(0, prior_std²)``, ``ε ~ N(0, noise²)``.

    Returns ``X`` (n, P), ``y`` (n,), the true ``θ`` (P,).
    """
    rng = np.random.default_rng(random_state)
    theta = prior_std * rng.standard_normal(n_features)
    X = rng.standard_normal((n_rows, n_features))
    return X, X @ theta + noise * rng.standard_normal(n_rows), theta
