"""Weighted (ridge) least squares on a design matrix, with identifiability checks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg

from potforge.errors import ModelError


def weighted_lstsq(
    A: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    alpha: float = 0.0,
    names: Sequence[str] | None = None,
    rcond: float = 1e-12,
) -> np.ndarray:
    """Minimise ``Σ w_n (A_n θ - y_n)² + α |S θ|²`` where S scales columns to unit weighted norm.

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
    sw = np.sqrt(w)
    X = A * sw[:, None]
    b = y * sw
    scale = np.linalg.norm(X, axis=0)
    dead = np.flatnonzero(scale == 0)
    if dead.size and alpha == 0:
        raise ModelError(
            f"parameter(s) {_names(dead, names)} have no data: their design columns "
            "are all zero (no atoms in range / no such element)"
        )
    scale[scale == 0] = 1.0
    Xs = X / scale
    if alpha > 0:
        Xs = np.vstack([Xs, np.sqrt(alpha) * np.eye(Xs.shape[1])])
        b = np.concatenate([b, np.zeros(Xs.shape[1])])
    coef, _, rank, sv = scipy.linalg.lstsq(Xs, b, cond=rcond, lapack_driver="gelsd")
    if rank < Xs.shape[1]:
        _, _, vt = np.linalg.svd(Xs, full_matrices=False)
        null = vt[rank:]
        worst = np.argsort(-np.abs(null).max(axis=0))[: max(1, len(null))]
        raise ModelError(
            f"the design is rank-deficient (rank {rank} of {Xs.shape[1]}): "
            f"{_names(np.sort(worst), names)} cannot be identified from this data; "
            "drop a term, add data, or set a ridge alpha > 0"
        )
    return coef / scale


def _names(idx: np.ndarray, names: Sequence[str] | None) -> str:
    shown = [names[i] if names is not None else f"column {i}" for i in idx[:6]]
    return ", ".join(shown) + (f" and {len(idx) - 6} more" if len(idx) > 6 else "")
