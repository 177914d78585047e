"""Weighted (ridge) least squares on a design matrix, with identifiability checks, and robust
(Huber / L1) losses on the same weighted design solved by iteratively reweighted least squares.

The solve itself and its rank-deficiency diagnosis are :mod:`potforge.linalg`'s
(:func:`~potforge.linalg.lstsq_ridge`); this module adds the whitening, the column normalisation
and the losses."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg

from potforge.errors import ModelError
from potforge.linalg import column_list, lstsq_ridge
from potforge.options import LOSSES  # loss functions of robust_lstsq on normalised residuals


class ConvergenceWarning(UserWarning):
    """An iterative fit stopped at its iteration limit before meeting its tolerance."""


@dataclass
class RobustFit:
    """Result of :func:`robust_lstsq`.

    Attributes
    ----------
    coef : ndarray, shape (P,)
        Parameters, in the units that make ``A @ coef`` the unit of ``y``.
    n_iter : int
        Weighted least-squares solves done (1 for the squared loss).
    converged : bool
        Whether the relative change of the (column-normalised) parameters fell below ``tol``.
    row_factors : ndarray, shape (R,)
        Final IRLS factors ``u_n = ψ(r_n)/r_n`` (dimensionless, 1 for the squared loss): the
        effective weight of row n is ``w_n · u_n``.
    objective : float
        Final ``Σ ρ(r_n) + α/2 |S θ|²`` (dimensionless).
    history : list of float
        Relative parameter change after each iteration.
    """

    coef: np.ndarray
    n_iter: int
    converged: bool
    row_factors: np.ndarray
    objective: float
    history: list[float] = field(default_factory=list)


def check_loss(loss: str, huber_delta: float | np.ndarray = 1.345) -> None:
    """Raise :class:`ModelError` (one sentence) for an unknown loss or a bad Huber δ."""
    if loss not in LOSSES:
        raise ModelError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    if loss == "huber":
        d = np.asarray(huber_delta, dtype=float)
        if d.size == 0 or np.any(np.isnan(d)) or np.any(d <= 0):
            raise ModelError(
                "huber_delta must be positive (inf: squared loss on those rows), "
                f"got {huber_delta!r}"
            )


def weighted_lstsq(
    A: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    alpha: float = 0.0,
    names: Sequence[str] | None = None,
    rcond: float = 1e-12,
) -> np.ndarray:
    """Minimise ``Σ w_n (A_n θ - y_n)² + α |S θ|²`` where S scales columns to unit weighted norm
    (robust losses: :func:`robust_lstsq`).

    Parameters
    ----------
    A : ndarray, shape (R, P)
    y : ndarray, shape (R,)
    w : ndarray, shape (R,)
        Row weights (1/σ², σ in the row's unit).
    alpha : float
        Ridge strength on the column-normalised problem (dimensionless).
    names : sequence of str, optional
        Column names, used to say which parameters are unidentifiable.
    rcond : float
        Relative singular-value threshold for rank deficiency.

    Returns
    -------
    ndarray, shape (P,)
    """
    X, b, scale = _normalised(A, y, w, alpha, names)
    return _ridge_solve(X, b, scale, alpha, names, rcond)


def robust_lstsq(
    A: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    loss: str = "huber",
    huber_delta: float | np.ndarray = 1.345,
    alpha: float = 0.0,
    names: Sequence[str] | None = None,
    rcond: float = 1e-12,
    tol: float = 1e-6,
    max_iter: int = 500,
    l1_epsilon: float = 1e-6,
) -> RobustFit:
    """Minimise ``Σ ρ(r_n) + α/2 |S θ|²`` over θ by iteratively reweighted least squares.

    ``r_n = sqrt(w_n) (y_n − A_n θ)`` is the normalised residual (dimensionless: the residual in
    units of the row's σ); S scales the columns of ``sqrt(w) A`` to unit norm (fixed, so the
    ridge is the same as in :func:`weighted_lstsq`). Losses:

    * ``"squared"``: ``ρ(r) = r²/2`` — one solve, identical to :func:`weighted_lstsq`;
    * ``"huber"``: ``ρ(r) = r²/2`` for ``|r| ≤ δ``, else ``δ|r| − δ²/2``;
    * ``"l1"``: ``ρ(r) = |r|`` (least absolute deviations), IRLS with ``|r|`` floored at
      ``l1_epsilon``.

    Each iteration solves the weighted ridge problem with row weights ``w_n · u_n``,
    ``u_n = ψ(r_n)/r_n`` (``min(1, δ/|r_n|)`` for Huber, ``1/max(|r_n|, ε)`` for L1), starting
    from the squared-loss solution; this decreases the objective monotonically.

    Parameters
    ----------
    A : ndarray, shape (R, P)
        Design matrix (row unit / parameter unit).
    y : ndarray, shape (R,)
        Targets (eV/atom, eV/Å, eV/Å³ by row type).
    w : ndarray, shape (R,)
        Row weights (1/σ², σ in the row's unit); rows with ``w = 0`` are ignored.
    loss : {"squared", "huber", "l1"}
    huber_delta : float or ndarray, shape (R,)
        Huber threshold δ in units of the normalised residual (i.e. of each row's σ); one for
        all rows or one per row (``inf``: squared loss on that row).
    alpha : float
        Ridge strength on the column-normalised problem (dimensionless).
    names : sequence of str, optional
        Column names, used to say which parameters are unidentifiable.
    rcond : float
        Relative singular-value threshold for rank deficiency.
    tol : float
        Stop when ``|S(θ_k − θ_{k−1})| ≤ tol · |S θ_k|``.
    max_iter : int
        Most weighted solves; on reaching it a :class:`ConvergenceWarning` is issued and the last
        iterate returned (``converged=False``).
    l1_epsilon : float
        Floor on ``|r_n|`` in the L1 weights (dimensionless); the result minimises the L1 loss
        up to ``O(ε)`` per row.

    Returns
    -------
    RobustFit
    """
    check_loss(loss, huber_delta)
    if max_iter < 1:
        raise ModelError(f"max_iter must be at least 1, got {max_iter!r}")
    if not l1_epsilon > 0:
        raise ModelError(f"l1_epsilon must be positive, got {l1_epsilon!r}")
    delta = np.asarray(huber_delta, dtype=float)
    if delta.ndim and delta.shape != (len(y),):
        raise ModelError(
            f"huber_delta must be a number or one value per row ({len(y)}), got shape {delta.shape}"
        )
    X, b, scale = _normalised(A, y, w, alpha, names)
    coef = _ridge_solve(X, b, scale, alpha, names, rcond)
    u = np.ones(len(b))
    if loss == "squared":
        return RobustFit(coef, 1, True, u, _objective(X, b, scale, coef, alpha, loss, huber_delta))
    Xs = X / scale  # column-normalised coordinates φ = S θ
    phi = coef * scale
    history: list[float] = []
    converged = False
    n_iter = 1
    while n_iter < max_iter:
        res = b - Xs @ phi
        if loss == "huber" and np.all(np.abs(res) <= delta):
            converged = True  # every row in the quadratic zone: least squares is exact
            break
        u = irls_factors(res, loss, delta, l1_epsilon)
        step = _irls_step(Xs, res, u, phi, alpha)
        if step is not None and not _decreases(Xs, b, phi, step, u, alpha):
            step = None  # normal equations too ill-conditioned: solve by SVD instead
        if step is None:
            su = np.sqrt(u)
            step = (
                _ridge_solve(Xs * su[:, None], b * su, np.ones_like(scale), alpha, names, rcond)
                - phi
            )
        n_iter += 1
        phi = phi + step
        size = np.linalg.norm(phi)
        change = float(np.linalg.norm(step) / size) if size > 0 else float(np.linalg.norm(step))
        history.append(change)
        if change <= tol:
            converged = True
            break
    coef = phi / scale
    if not converged:
        warnings.warn(
            f"the {loss} fit did not converge in {max_iter} iterations (last relative change "
            f"{history[-1] if history else float('nan'):.2e} > tol {tol:.1e}); raise max_iter or "
            "tol, or use a larger huber_delta",
            ConvergenceWarning,
            stacklevel=2,
        )
    obj = _objective(X, b, scale, coef, alpha, loss, huber_delta)
    return RobustFit(coef, n_iter, converged, u, obj, history)


def irls_factors(
    r: np.ndarray,
    loss: str,
    huber_delta: float | np.ndarray = 1.345,
    l1_epsilon: float = 1e-6,
) -> np.ndarray:
    """IRLS row factors ``u = ψ(r)/r`` of normalised residuals ``r``, shape of ``r``.

    1 for the squared loss, ``min(1, δ/|r|)`` for Huber, ``1/max(|r|, ε)`` for L1
    (dimensionless). A row's effective least-squares weight is ``w_n · u_n``.
    """
    check_loss(loss, huber_delta)
    a = np.abs(np.asarray(r, dtype=float))
    if loss == "squared":
        return np.ones_like(a)
    if loss == "l1":
        return 1.0 / np.maximum(a, l1_epsilon)
    with np.errstate(divide="ignore"):
        return np.minimum(1.0, np.asarray(huber_delta, dtype=float) / a)


def _irls_step(
    Xs: np.ndarray, res: np.ndarray, u: np.ndarray, phi: np.ndarray, alpha: float
) -> np.ndarray | None:
    """Step ``δφ`` from φ to the minimiser of ``Σ u_n (b_n − X_n φ')² + α|φ'|²``, shape (P,).

    Solved from the normal equations by Cholesky in correction form (the right-hand side is the
    current gradient), so solver error scales with the step, not with φ; None when the weighted
    Gram matrix is not numerically positive definite (then the caller solves by SVD).
    """
    G = (Xs * u[:, None]).T @ Xs
    G[np.diag_indices_from(G)] += alpha
    g = Xs.T @ (u * res) - alpha * phi
    try:
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(G), g)
    except (np.linalg.LinAlgError, ValueError):
        return None


def _decreases(
    Xs: np.ndarray, b: np.ndarray, phi: np.ndarray, step: np.ndarray, u: np.ndarray, alpha: float
) -> bool:
    """Whether ``step`` does not increase the IRLS surrogate ``Σ u r² + α|φ|²`` (up to
    rounding): the check that the fast Cholesky step is trustworthy."""

    def q(p: np.ndarray) -> float:
        r = b - Xs @ p
        return float(u @ r**2 + alpha * p @ p)

    if not np.all(np.isfinite(step)):
        return False
    before = q(phi)
    return q(phi + step) <= before * (1 + 1e-10) + 1e-300


def loss_value(r: np.ndarray, loss: str, huber_delta: float | np.ndarray = 1.345) -> np.ndarray:
    """``ρ(r)`` of each normalised residual, shape of ``r`` (dimensionless); ``huber_delta``
    scalar or broadcastable to ``r`` (``inf``: quadratic)."""
    check_loss(loss, huber_delta)
    a = np.abs(r)
    if loss == "squared":
        return 0.5 * a**2
    if loss == "l1":
        return a
    d = np.broadcast_to(np.asarray(huber_delta, dtype=float), a.shape)
    out = 0.5 * a**2
    lin = a > d
    out[lin] = d[lin] * a[lin] - 0.5 * d[lin] ** 2
    return out


def _objective(X, b, scale, coef, alpha, loss, delta) -> float:
    rho = loss_value(b - X @ coef, loss, delta).sum()
    return float(rho + 0.5 * alpha * np.sum((coef * scale) ** 2))


def _normalised(
    A: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float, names: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``sqrt(w) A`` (R, P), ``sqrt(w) y`` (R,) and the column norms S (P,) (1 for dead columns,
    which are an error without a ridge)."""
    sw = np.sqrt(w)
    X = A * sw[:, None]
    b = y * sw
    scale = np.linalg.norm(X, axis=0)
    dead = np.flatnonzero(scale == 0)
    if dead.size and alpha == 0:
        raise ModelError(
            f"parameter(s) {column_list(dead, names)} have no data: their design columns "
            "are all zero (no atoms in range / no such element)"
        )
    scale[scale == 0] = 1.0
    return X, b, scale


def _ridge_solve(
    X: np.ndarray,
    b: np.ndarray,
    scale: np.ndarray,
    alpha: float,
    names: Sequence[str] | None,
    rcond: float,
) -> np.ndarray:
    """θ minimising ``|X θ − b|² + α |S θ|²``: :func:`potforge.linalg.lstsq_ridge` on the columns
    divided by S (for conditioning), which also diagnoses rank deficiency."""
    return lstsq_ridge(X / scale, b, alpha, names, rcond) / scale
