"""Layer-0 linear algebra shared by fitting and every UQ estimator (numpy/scipy only): the row-type
vocabulary, input checks, chunked normal equations, the weighted ridge solvers and the one
rank-deficiency diagnosis that names the unidentifiable columns.

Conventions (shared by all of ``potforge.uq`` and ``potforge.model``)
-------------------------------------------------------------------
``A`` is a design matrix of shape ``(n_rows, P)`` (rows: energy per atom in eV/atom, force
components in eV/Å, stress components in eV/Å³ — whatever the caller put in), ``y`` the matching
labels ``(n_rows,)`` in the same units, ``weights`` ``(n_rows,)`` the row weights ``w`` (units of
1/label²), so that rows are whitened by ``sqrt(w)``; the weighted ridge loss is
``Σ_n w_n (y_n − x_n·θ)² + α |θ|²``. ``row_type`` ``(n_rows,)`` int tags rows as
:data:`ENERGY` (0), :data:`FORCE` (1) or :data:`STRESS` (2, also called the virial row type:
:data:`VIRIAL` is the same number) — any small non-negative ints are accepted.

Solvers
-------
:func:`solve_ridge` factors the Gram matrix ``AᵀWA + αI`` by Cholesky (the UQ estimators need
the factor and the inverse); :func:`lstsq_ridge` solves the same problem from the (whitened,
column-normalised) rows by SVD least squares, which keeps the conditioning of the rows rather
than of their Gram matrix (the potential fit, with ``α`` as small as 1e-10). Both diagnose rank
deficiency in one place, :func:`rank_deficiency_error`, which names the columns that take part
in a null direction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
import scipy.linalg
from scipy.linalg import LinAlgError, cho_solve, cholesky, solve_triangular

from potforge.errors import DataError, ModelError

ENERGY, FORCE, STRESS = 0, 1, 2
"""Row types of a design matrix: one energy row per structure, 3N force rows, six stress rows."""
VIRIAL = STRESS  # the same row type under its other name (kept for code that imports it)
ROW_TYPES = ("energy", "force", "stress")
"""Row-type names, indexed by row type."""
ROW_TYPE_NAMES = dict(enumerate(ROW_TYPES))


def row_type_name(row_type: int) -> str:
    """The name of a row type (``"energy"``, ``"force"``, ``"stress"``; other ints as text)."""
    return ROW_TYPE_NAMES.get(int(row_type), str(int(row_type)))


@overload
def check_rows(
    A: np.ndarray,
    y: None = None,
    weights: np.ndarray | None = None,
    row_type: np.ndarray | None = None,
    n_features: int | None = None,
) -> tuple[np.ndarray, None, np.ndarray, np.ndarray]: ...


@overload
def check_rows(
    A: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
    row_type: np.ndarray | None = None,
    n_features: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...


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
        A0, y0, w0, t0 = unpack_chunk(chunk)
        if y0 is None:
            raise DataError("each chunk needs labels y: (A, y[, weights[, row_type]]).")
        A, y, w, t = check_rows(A0, y0, w0, t0, n_features=n_features)
        if neq is None:
            neq = NormalEquations(A.shape[1])
            n_features = A.shape[1]
        neq.update(A, y, w, t)
    if neq is None:
        raise DataError("no rows were given (the chunk iterable was empty).")
    return neq


def unpack_chunk(chunk: tuple | Sequence) -> tuple[Any, Any, Any, Any]:
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
        When ``alpha == 0`` and some columns are not identifiable from the data
        (:func:`rank_deficiency_error`).
    """
    _check_alpha(alpha)
    P = G.shape[0]
    _check_names(column_names, P)
    if alpha == 0:
        null, zero, rank = _null_analysis(G, rtol)
        if null.shape[1]:
            raise rank_deficiency_error(null, rank, column_names, zero)
    try:
        L = cholesky(G + alpha * np.eye(P), lower=True, check_finite=False)
    except LinAlgError as exc:
        raise ModelError(
            f"the ridge system is not positive definite (alpha={alpha}); increase alpha."
        ) from exc
    inv = cho_solve((L, True), np.eye(P))
    inv = 0.5 * (inv + inv.T)
    return RidgeSolution(cho_solve((L, True), b), L, float(alpha), inv)


def lstsq_ridge(
    X: np.ndarray,
    b: np.ndarray,
    alpha: float = 0.0,
    column_names: Sequence[str] | None = None,
    rcond: float = 1e-12,
) -> np.ndarray:
    """``θ`` minimising ``|X θ − b|² + α |θ|²`` by SVD least squares on the rows (LAPACK gelsd).

    The rows are the whitened design ``sqrt(w) A`` (normally with columns scaled to unit norm,
    :func:`potforge.model.fitting.weighted_lstsq`); the ridge enters as ``P`` extra rows
    ``sqrt(α) I``. Solving from the rows keeps their conditioning (the square root of the
    Gram matrix's), which :func:`solve_ridge` does not.

    Parameters
    ----------
    X : ndarray, shape (R, P)
    b : ndarray, shape (R,)
    alpha : float
        Ridge strength (dimensionless for column-normalised rows).
    column_names : sequence of str, optional
        Names of the columns used in the error message.
    rcond : float
        Relative singular-value threshold for the numerical rank.

    Returns
    -------
    ndarray, shape (P,)

    Raises
    ------
    ModelError
        When the rows (with the ridge rows) have numerical rank below ``P``
        (:func:`rank_deficiency_error`).
    """
    _check_alpha(alpha)
    P = X.shape[1]
    _check_names(column_names, P)
    if alpha > 0:
        X = np.vstack([X, np.sqrt(alpha) * np.eye(P)])
        b = np.concatenate([b, np.zeros(P)])
    coef, _, rank, _ = scipy.linalg.lstsq(X, b, cond=rcond, lapack_driver="gelsd")
    if rank < P:
        _, _, vt = np.linalg.svd(X, full_matrices=False)
        raise rank_deficiency_error(vt[rank:].T, int(rank), column_names)
    return coef


def unidentifiable_columns(G: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    """Indices of columns that take part in a (near-)null direction of ``G`` (see below)."""
    null, zero, _ = _null_analysis(G, rtol)
    return _columns_in(null, zero)


def rank_deficiency_error(
    null: np.ndarray,
    rank: int,
    column_names: Sequence[str] | None = None,
    zero: np.ndarray | None = None,
) -> ModelError:
    """The one diagnosis of a rank-deficient design, as a :class:`ModelError` to raise.

    Parameters
    ----------
    null : ndarray, shape (P, k)
        Orthonormal basis of the (near-)null directions, in column-normalised coordinates (so
        the diagnosis does not depend on column units).
    rank : int
        Numerical rank of the design.
    column_names : sequence of str, optional
    zero : ndarray of bool, shape (P,), optional
        Columns without any data (flagged outright).

    A column is named when its weight in the null space, ``sqrt(Σ_k null_jk²)``, exceeds 1e-6:
    every column that takes part in a direction the data cannot fix.
    """
    bad = _columns_in(null, zero)
    P = null.shape[0]
    label = [f"{j} ({column_names[j]!r})" if column_names is not None else str(j) for j in bad]
    shown = ", ".join(label[:20]) + (f", ... ({len(label)} in all)" if len(label) > 20 else "")
    return ModelError(
        f"the weighted design matrix is rank-deficient (rank {rank} of {P}): "
        f"columns {shown} are not identifiable from these rows; add data that constrains them, "
        "remove those columns (drop a term) or set ridge alpha > 0."
    )


def column_list(idx: Sequence[int] | np.ndarray, names: Sequence[str] | None = None) -> str:
    """``"a, b, c, d, e, f and 3 more"``: the first six of the columns ``idx`` by name."""
    shown = [names[i] if names is not None else f"column {i}" for i in idx[:6]]
    return ", ".join(shown) + (f" and {len(idx) - 6} more" if len(idx) > 6 else "")


def _check_alpha(alpha: float) -> None:
    if alpha < 0:
        raise ModelError(f"ridge alpha must be non-negative, got {alpha}.")


def _check_names(column_names: Sequence[str] | None, P: int) -> None:
    if column_names is not None and len(column_names) != P:
        raise ModelError(f"column_names has {len(column_names)} entries but A has {P} columns.")


def _columns_in(null: np.ndarray, zero: np.ndarray | None = None) -> np.ndarray:
    weight = np.sqrt((null**2).sum(axis=1))
    flagged = weight > 1e-6
    return np.flatnonzero(flagged if zero is None else zero | flagged)


def _null_analysis(G: np.ndarray, rtol: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Return (null-space basis (P, k), zero-column mask (P,), numerical rank) of the Gram
    matrix ``G``.

    ``G`` is first normalised by its diagonal so the test does not depend on column units;
    a zero column is unidentifiable outright. Null directions: eigenvalues below ``rtol × max``.
    """
    d = np.diag(G).copy()
    zero = d <= 0
    s = np.where(zero, 1.0, 1.0 / np.sqrt(np.where(zero, 1.0, d)))
    Gn = G * s[:, None] * s[None, :]
    Gn[zero, :] = 0.0
    Gn[:, zero] = 0.0
    evals, evecs = np.linalg.eigh(Gn)
    is_null = evals <= rtol * max(evals.max(), 1.0)
    return evecs[:, is_null], zero, int((~is_null).sum())


# --- central finite differences (numpy only: the callers own the physics) ------------------------


def fd_jacobian(
    func: Callable[[np.ndarray], np.ndarray | float],
    x0: np.ndarray,
    step: float | np.ndarray,
    *,
    columns: Iterable[int] | None = None,
) -> np.ndarray:
    """Central-difference Jacobian ``J[..., k] = (f(x0 + h_k e_k) − f(x0 − h_k e_k)) / 2h_k``.

    Parameters
    ----------
    func : callable
        ``func(x) -> array`` of any shape ``S`` (a float: ``S = ()``); called with a fresh
        copy of ``x0`` changed in entry ``k`` only, the ``+`` side first, for each column in
        turn.
    x0 : ndarray, shape (n,)
    step : float or ndarray, shape (n,)
        ``h_k``, per entry or one for all.
    columns : iterable of int, optional
        Entries to differentiate in (default: all); the other columns are zero (e.g.
        coordinates known to be free translations), and cost no call.

    Returns
    -------
    ndarray, shape ``S + (n,)``
    """
    x0 = np.array(x0, dtype=float)
    if x0.ndim != 1:
        raise ValueError(f"fd_jacobian needs a 1-d point, got shape {x0.shape}")
    n = x0.size
    h = np.broadcast_to(np.asarray(step, dtype=float), x0.shape)
    jac = None
    for k in range(n) if columns is None else columns:
        values = []
        for sign in (1.0, -1.0):
            x = x0.copy()
            x[k] = x0[k] + sign * h[k]
            values.append(np.array(func(x), dtype=float))
        column = (values[0] - values[1]) / (2 * h[k])
        if jac is None:
            jac = np.zeros((*column.shape, n))
        jac[..., k] = column
    if jac is None:  # no column to differentiate in: zeros of the output's shape
        jac = np.zeros((*np.shape(func(x0.copy())), n))
    return jac


def fd_hessian(
    gradient: Callable[[np.ndarray], np.ndarray],
    x0: np.ndarray,
    step: float | np.ndarray,
    *,
    columns: Iterable[int] | None = None,
    symmetrize: bool = False,
) -> np.ndarray:
    """Central-difference Hessian of a scalar from its gradient: :func:`fd_jacobian` of
    ``gradient`` (``H[:, k] = (g(x0 + h_k e_k) − g(x0 − h_k e_k)) / 2h_k``).

    Parameters
    ----------
    gradient : callable
        ``gradient(x)``: the gradient, shape (n,) (e.g. minus the forces) — or (n + m,): the
        gradient followed by m further quantities evaluated at the same displaced point (e.g.
        the stress), whose Jacobian comes back below the Hessian, one call per displacement.
    x0 : ndarray, shape (n,)
    step : float or ndarray, shape (n,)
    columns : iterable of int, optional
        As for :func:`fd_jacobian` (the other columns are zero).
    symmetrize : bool
        Return ``½(H + Hᵀ)`` for the Hessian block (the further rows are left as they are).

    Returns
    -------
    ndarray, shape (n + m, n)
        The Hessian (rows ``:n``), then the further quantities' Jacobian (rows ``n:``).
    """
    jac = fd_jacobian(gradient, x0, step, columns=columns)
    if jac.ndim != 2 or jac.shape[0] < jac.shape[1]:
        raise ValueError(
            f"fd_hessian: the gradient must be a vector of at least {jac.shape[-1]} entries, "
            f"got a Jacobian of shape {jac.shape}"
        )
    if symmetrize:
        n = jac.shape[1]
        jac[:n] = 0.5 * (jac[:n] + jac[:n].T)
    return jac
