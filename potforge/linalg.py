"""Weighted ridge core shared by every UQ estimator: input checks, chunked normal equations,
Cholesky solve, and a rank-deficiency diagnosis that names the unidentifiable columns.

Conventions (shared by all of ``potforge.uq``)
----------------------------------------------
``A`` is a design matrix of shape ``(n_rows, P)`` (rows: energy per atom in eV/atom, force
components in eV/Å, virial components in eV — whatever the caller put in), ``y`` the matching
labels ``(n_rows,)`` in the same units, ``weights`` ``(n_rows,)`` the row weights ``w`` (units of
1/label²), so that rows are whitened by ``sqrt(w)``; the weighted ridge loss is
``Σ_n w_n (y_n − x_n·θ)² + α |θ|²``. ``row_type`` ``(n_rows,)`` int tags rows as energy (0),
force (1) or virial/stress (2) — any small non-negative ints are accepted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import LinAlgError, cho_solve, cholesky, solve_triangular

from potforge.errors import DataError, ModelError

ENERGY, FORCE, VIRIAL = 0, 1, 2
ROW_TYPE_NAMES = {ENERGY: "energy", FORCE: "force", VIRIAL: "virial"}


def check_rows(
    A: np.ndarray,
    y: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    row_type: np.ndarray | None = None,
    n_features: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Validate one block of rows and return float64 ``A, y, weights`` and int ``row_type``.

    Parameters
    ----------
    A : array_like, shape (n_rows, P)
    y : array_like, shape (n_rows,), optional
    weights : array_like, shape (n_rows,), optional
        Non-negative row weights; ones when omitted.
    row_type : array_like of int, shape (n_rows,), optional
        Zeros (energy) when omitted.
    n_features : int, optional
        Expected ``P`` (e.g. the one seen at fit time).

    Raises
    ------
    DataError
        On wrong shapes, non-finite values or negative weights (one sentence naming the field).
    """
    A = np.asarray(A, dtype=float)
    if A.ndim != 2:
        raise DataError(f"design matrix A must be 2-D (n_rows, P), got shape {A.shape}.")
    n = A.shape[0]
    if n_features is not None and A.shape[1] != n_features:
        raise DataError(f"design matrix has {A.shape[1]} columns but the model has {n_features}.")
    if not np.all(np.isfinite(A)):
        raise DataError("design matrix A contains NaN or infinite entries.")
    if y is not None:
        y = np.asarray(y, dtype=float)
        if y.shape != (n,):
            raise DataError(f"labels y must have shape ({n},), got {y.shape}.")
        if not np.all(np.isfinite(y)):
            raise DataError("labels y contain NaN or infinite entries.")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (n,):
        raise DataError(f"weights must have shape ({n},), got {w.shape}.")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise DataError("weights must be finite and non-negative.")
    t = np.zeros(n, dtype=int) if row_type is None else np.asarray(row_type)
    if t.shape != (n,) or not np.issubdtype(t.dtype, np.integer) or np.any(t < 0):
        raise DataError(f"row_type must be non-negative integers of shape ({n},).")
    return A, y, w, t.astype(int)


@dataclass
class NormalEquations:
    """Per-row-type weighted normal equations, accumulated chunk by chunk in O(P²) memory.

    Attributes
    ----------
    gram : dict[int, ndarray (P, P)]
        ``Σ w x xᵀ`` per row type (label-units⁻² × feature units²).
    rhs : dict[int, ndarray (P,)]
        ``Σ w y x`` per row type.
    yy : dict[int, float]
        ``Σ w y²`` per row type (dimensionless weighted sum of squares).
    sum_w, n_rows : dict[int, float], dict[int, int]
        Total weight and row count per type.
    """

    n_features: int
    gram: dict[int, np.ndarray] = field(default_factory=dict)
    rhs: dict[int, np.ndarray] = field(default_factory=dict)
    yy: dict[int, float] = field(default_factory=dict)
    sum_w: dict[int, float] = field(default_factory=dict)
    n_rows: dict[int, int] = field(default_factory=dict)

    def update(self, A: np.ndarray, y: np.ndarray, w: np.ndarray, t: np.ndarray) -> None:
        """Add a validated chunk (see :func:`check_rows`)."""
        for k in np.unique(t):
            m = t == k
            Ak, yk, wk = (A, y, w) if m.all() else (A[m], y[m], w[m])
            As = Ak if np.all(wk == 1.0) else Ak * np.sqrt(wk)[:, None]
            P = self.n_features
            self.gram[int(k)] = self.gram.get(int(k), np.zeros((P, P))) + As.T @ As
            self.rhs[int(k)] = self.rhs.get(int(k), np.zeros(P)) + Ak.T @ (wk * yk)
            self.yy[int(k)] = self.yy.get(int(k), 0.0) + float(wk @ (yk * yk))
            self.sum_w[int(k)] = self.sum_w.get(int(k), 0.0) + float(wk.sum())
            self.n_rows[int(k)] = self.n_rows.get(int(k), 0) + int(m.sum())

    @property
    def types(self) -> list[int]:
        """Row types seen, sorted."""
        return sorted(self.gram)

    def combined(self, scales: dict[int, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(G, b)`` = ``Σ_t s_t G_t, Σ_t s_t b_t`` with per-type weight scales ``s_t``."""
        s = scales or {}
        G = sum(s.get(k, 1.0) * self.gram[k] for k in self.types)
        b = sum(s.get(k, 1.0) * self.rhs[k] for k in self.types)
        return np.asarray(G), np.asarray(b)

    def weighted_sse(self, coef: np.ndarray, k: int) -> float:
        """``Σ_{type k} w (y − x·θ)²`` from the accumulated moments, without the rows."""
        G, b = self.gram[k], self.rhs[k]
        return float(max(self.yy[k] - 2.0 * coef @ b + coef @ G @ coef, 0.0))


def accumulate(chunks: Iterable[tuple], n_features: int | None = None) -> NormalEquations:
    """Accumulate :class:`NormalEquations` over chunks ``(A, y[, weights[, row_type]])``."""
    neq = None
    for chunk in chunks:
        A, y, w, t = check_rows(*unpack_chunk(chunk), n_features=n_features)
        if neq is None:
            neq = NormalEquations(A.shape[1])
            n_features = A.shape[1]
        neq.update(A, y, w, t)
    if neq is None:
        raise DataError("no rows were given (the chunk iterable was empty).")
    return neq


def unpack_chunk(chunk: tuple | Sequence) -> tuple:
    """Pad a chunk tuple ``(A, y[, weights[, row_type]])`` to four entries."""
    chunk = tuple(chunk)
    if not 2 <= len(chunk) <= 4:
        raise DataError("each chunk must be a tuple (A, y[, weights[, row_type]]).")
    return chunk + (None,) * (4 - len(chunk))


@dataclass(frozen=True)
class RidgeSolution:
    """Weighted ridge solution ``θ̄ = (G + αI)⁻¹ b`` with the Cholesky factor of ``G + αI``.

    Attributes
    ----------
    coef : ndarray, shape (P,)
    chol : ndarray, shape (P, P)
        Lower-triangular ``L`` with ``L Lᵀ = G + αI``.
    alpha : float
    inverse : ndarray, shape (P, P)
        ``(G + αI)⁻¹`` (formed once: O(P³), against O(n P²) for the rows).
    """

    coef: np.ndarray
    chol: np.ndarray
    alpha: float
    inverse: np.ndarray

    def solve(self, B: np.ndarray) -> np.ndarray:
        """``(G + αI)⁻¹ B`` for ``B`` of shape (P,) or (P, m)."""
        return cho_solve((self.chol, True), B)

    def half_solve(self, B: np.ndarray) -> np.ndarray:
        """``L⁻¹ B`` for ``B`` of shape (P, m): whitened coordinates, ``|L⁻¹x|² = xᵀ(G+αI)⁻¹x``."""
        return solve_triangular(self.chol, B, lower=True, check_finite=False)

    def half_solve_t(self, B: np.ndarray) -> np.ndarray:
        """``L⁻ᵀ B`` for ``B`` of shape (P, m)."""
        return solve_triangular(self.chol, B, lower=True, trans="T", check_finite=False)

    def covariance(self) -> np.ndarray:
        """``(G + αI)⁻¹``, shape (P, P) (a copy)."""
        return self.inverse.copy()


def solve_ridge(
    G: np.ndarray,
    b: np.ndarray,
    alpha: float = 0.0,
    column_names: Sequence[str] | None = None,
    rtol: float = 1e-10,
) -> RidgeSolution:
    """Solve ``(G + αI) θ = b`` by Cholesky, diagnosing rank deficiency when ``α = 0``.

    Parameters
    ----------
    G : ndarray, shape (P, P)
        Weighted Gram matrix ``AᵀWA``.
    b : ndarray, shape (P,)
        ``AᵀWy``.
    alpha : float
        Ridge strength (same units as ``G``); ``alpha > 0`` always gives a unique solution.
    column_names : sequence of str, optional
        Names of the columns (e.g. term names) used in the error message.
    rtol : float
        Relative eigenvalue threshold (of the column-normalised Gram matrix) below which a
        direction is called unidentifiable.

    Raises
    ------
    ModelError
        When ``alpha == 0`` and some columns are not identifiable from the data.
    """
    if alpha < 0:
        raise ModelError(f"ridge alpha must be non-negative, got {alpha}.")
    P = G.shape[0]
    if column_names is not None and len(column_names) != P:
        raise ModelError(f"column_names has {len(column_names)} entries but A has {P} columns.")
    if alpha == 0:
        bad, rank = _null_analysis(G, rtol)
        if bad.size:
            raise ModelError(_rank_message(bad, rank, P, column_names))
    try:
        L = cholesky(G + alpha * np.eye(P), lower=True, check_finite=False)
    except LinAlgError as exc:
        raise ModelError(
            f"the ridge system is not positive definite (alpha={alpha}); increase alpha."
        ) from exc
    inv = cho_solve((L, True), np.eye(P))
    inv = 0.5 * (inv + inv.T)
    return RidgeSolution(cho_solve((L, True), b), L, float(alpha), inv)


def unidentifiable_columns(G: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    """Indices of columns that take part in a (near-)null direction of ``G`` (see below)."""
    return _null_analysis(G, rtol)[0]


def _null_analysis(G: np.ndarray, rtol: float) -> tuple[np.ndarray, int]:
    """Return (unidentifiable column indices, numerical rank) of the Gram matrix ``G``.

    ``G`` is first normalised by its diagonal so the test does not depend on column units;
    a zero column is unidentifiable outright. A column is flagged when its weight in the null
    space (eigenvalues below ``rtol × max``) exceeds 1e-6.
    """
    d = np.diag(G).copy()
    zero = d <= 0
    s = np.where(zero, 1.0, 1.0 / np.sqrt(np.where(zero, 1.0, d)))
    Gn = G * s[:, None] * s[None, :]
    Gn[zero, :] = 0.0
    Gn[:, zero] = 0.0
    evals, evecs = np.linalg.eigh(Gn)
    is_null = evals <= rtol * max(evals.max(), 1.0)
    weight = np.sqrt((evecs[:, is_null] ** 2).sum(axis=1))
    return np.flatnonzero(zero | (weight > 1e-6)), int((~is_null).sum())


def _rank_message(bad: np.ndarray, rank: int, P: int, names: Sequence[str] | None) -> str:
    label = [f"{j} ({names[j]!r})" if names is not None else str(j) for j in bad]
    shown = ", ".join(label[:20]) + (f", ... ({len(label)} in all)" if len(label) > 20 else "")
    return (
        f"the weighted design matrix is rank-deficient (rank {rank} of {P}): "
        f"columns {shown} are not identifiable from these rows; "
        "set ridge alpha > 0 or remove those columns."
    )
