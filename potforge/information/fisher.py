"""Fisher information of candidate structures and of the precision a scientist asks for.

Arrays in, arrays out; no ASE.  For a potential linear in θ, the predictions of one structure
are ``A_m θ`` (its energy-per-atom row, 3N force rows and six stress rows), so the Fisher
information its labels carry is exact and independent of θ:

    I_m = A_mᵀ W A_m,     W = diag(1/σ_type²)

with σ the **label precision of the oracle** (what a converged DFT setting delivers — not the
weights of the fit).  The information the targets need is

    I_QoI = J_Qᵀ Σ_target⁻¹ J_Q

with ``J_Q`` the exact dQ/dθ (:class:`potforge.qoi.Sensitivity`) and ``Σ_target`` built from
the tolerances (absolute, or relative to the value; optionally correlated).  A data set with
information ``F`` predicts ``Cov(Q) = J F⁺ Jᵀ``; it meets the targets when ``F ⪰ I_QoI``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from potforge.errors import DataError
from potforge.linalg import ENERGY, FORCE, STRESS, check_rows

GPA = 1.0 / 160.21766208
"""eV/Å³ per GPa."""

EIG_RTOL = 1e-12
"""Eigenvalues below this fraction of the largest count as zero (null directions)."""


@dataclass(frozen=True)
class LabelPrecision:
    """One stated precision of the oracle's labels, the same for every selector.

    Parameters
    ----------
    energy : float, default=1e-3
        σ_E, eV/atom.
    force : float, default=0.05
        σ_F, eV/Å per component.
    stress : float, default=0.1
        σ_S, GPa per Voigt component.
    """

    energy: float = 1e-3
    force: float = 0.05
    stress: float = 0.1

    def __post_init__(self) -> None:
        for name in ("energy", "force", "stress"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and np.isfinite(value) and value > 0):
                raise DataError(
                    f"label precision '{name}' must be a positive number, got {value!r}"
                )

    @property
    def sigma(self) -> tuple[float, float, float]:
        """σ per row type (energy eV/atom, force eV/Å, stress eV/Å³), indexed by row type."""
        out = [0.0, 0.0, 0.0]
        out[ENERGY], out[FORCE], out[STRESS] = self.energy, self.force, self.stress * GPA
        return (out[0], out[1], out[2])

    def row_weights(self, row_type: np.ndarray) -> np.ndarray:
        """Weights 1/σ² of rows of the given types, shape (R,)."""
        return 1.0 / np.asarray(self.sigma)[np.asarray(row_type, dtype=int)] ** 2


def structure_fisher(
    A: np.ndarray, weights: np.ndarray, owner: np.ndarray, n: int | None = None
) -> np.ndarray:
    """Fisher information of each candidate, ``I_m = Σ_{rows r of m} w_r a_r a_rᵀ``.

    Parameters
    ----------
    A : ndarray, shape (R, P)
        Design rows (unlabelled rows are fine: only ``A`` is used).
    weights : ndarray, shape (R,)
        Row weights ``1/σ²`` (:meth:`LabelPrecision.row_weights`).
    owner : ndarray of int, shape (R,)
        Candidate index of each row, in ``[0, n)``.
    n : int, optional
        Number of candidates (default ``owner.max() + 1``).

    Returns
    -------
    ndarray, shape (n, P, P)
        Symmetric positive semi-definite blocks that sum to ``AᵀWA``.
    """
    A, _, w, _ = check_rows(A, None, weights)
    owner = np.asarray(owner)
    if owner.shape != (A.shape[0],) or not np.issubdtype(owner.dtype, np.integer):
        raise DataError(f"owner must be integers of shape ({A.shape[0]},), got {owner.shape}")
    n = int(owner.max()) + 1 if n is None and owner.size else int(n or 0)
    if owner.size and (owner.min() < 0 or owner.max() >= n):
        raise DataError(f"owner indices must lie in [0, {n}), got {owner.min()}..{owner.max()}")
    Aw = A * np.sqrt(w)[:, None]
    out = np.zeros((n, A.shape[1], A.shape[1]))
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(n + 1))
    for m in range(n):
        rows = Aw[order[bounds[m] : bounds[m + 1]]]
        if len(rows):
            out[m] = rows.T @ rows
    return out


def candidate_owners(
    row_type: np.ndarray, structure: np.ndarray, per_atom_forces: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Which candidate each row belongs to.

    One structure is one candidate (one oracle call labels all its rows).  With
    ``per_atom_forces`` each atom's three force rows are a candidate of their own and the
    structure's energy and stress rows another (the finer candidates of information matching;
    their labels still come from one oracle call per structure).

    Parameters
    ----------
    row_type, structure : ndarray of int, shape (R,)
        As in :class:`potforge.model.rows.DesignMatrix`.
    per_atom_forces : bool, default=False

    Returns
    -------
    owner : ndarray of int, shape (R,)
        Candidate index of each row.
    candidate_structure : ndarray of int, shape (n_candidates,)
        The structure each candidate belongs to.
    """
    row_type, structure = np.asarray(row_type), np.asarray(structure, dtype=int)
    if not per_atom_forces:
        return structure.copy(), np.arange(int(structure.max()) + 1 if structure.size else 0)
    force = row_type == FORCE
    before = np.cumsum(force) - force  # force rows before each row, over all structures
    first = np.r_[True, structure[1:] != structure[:-1]] if structure.size else np.zeros(0, bool)
    start = np.maximum.accumulate(np.where(first, np.arange(len(structure)), 0))
    atom = (before - before[start]) // 3  # the k-th force row of a structure is atom k // 3
    key = np.where(force, 1 + atom, 0)  # 0: the structure's energy and stress rows
    pairs = np.stack([structure, key], axis=1)
    uniq, owner = np.unique(pairs, axis=0, return_inverse=True)
    return owner.ravel(), uniq[:, 0]


def target_covariance(
    values: ArrayLike,
    tolerance: ArrayLike,
    relative: ArrayLike | bool = False,
    correlation: np.ndarray | None = None,
) -> np.ndarray:
    """``Σ_target = D C D`` with ``D = diag(tolerance)`` (absolute) or ``tolerance·|value|``.

    Parameters
    ----------
    values : ndarray, shape (Q,)
        QoI values (QoI units), used by relative tolerances.
    tolerance : ndarray, shape (Q,)
        One standard deviation per QoI: absolute (QoI units) or a fraction of ``|value|``.
    relative : bool or ndarray of bool, shape (Q,), default=False
    correlation : ndarray, shape (Q, Q), optional
        Correlation matrix of the targets (identity when omitted).

    Returns
    -------
    ndarray, shape (Q, Q)
    """
    values = np.atleast_1d(np.asarray(values, dtype=float))
    tol = np.broadcast_to(np.asarray(tolerance, dtype=float), values.shape)
    rel = np.broadcast_to(np.asarray(relative, dtype=bool), values.shape)
    d = np.where(rel, tol * np.abs(values), tol)
    if not np.all(np.isfinite(d)) or np.any(d <= 0):
        bad = int(np.flatnonzero(~(np.isfinite(d) & (d > 0)))[0])
        raise DataError(
            f"target {bad} has tolerance {d[bad]!r} (value {values[bad]!r}): a tolerance must "
            "be positive (a relative tolerance needs a non-zero value)"
        )
    C = np.eye(len(d)) if correlation is None else np.asarray(correlation, dtype=float)
    if C.shape != (len(d), len(d)) or not np.allclose(C, C.T) or np.any(np.diag(C) != 1):
        raise DataError(
            f"correlation must be a symmetric ({len(d)}, {len(d)}) matrix, unit diagonal"
        )
    if np.linalg.eigvalsh(C).min() <= 0:
        raise DataError("correlation matrix of the targets must be positive definite")
    return d[:, None] * C * d[None, :]


def qoi_fisher(jacobian: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """``I_QoI = Jᵀ Σ⁻¹ J``.

    Parameters
    ----------
    jacobian : ndarray, shape (Q, P)
        dQ/dθ, QoI units per unit θ.
    covariance : ndarray, shape (Q, Q)
        Target covariance (:func:`target_covariance`).

    Returns
    -------
    ndarray, shape (P, P)
    """
    J = np.atleast_2d(np.asarray(jacobian, dtype=float))
    S = np.asarray(covariance, dtype=float)
    if S.shape != (J.shape[0], J.shape[0]):
        raise DataError(f"covariance has shape {S.shape}, expected {(J.shape[0],) * 2}")
    if not np.all(np.isfinite(J)):
        raise DataError("QoI Jacobian contains NaN or infinite entries")
    out = J.T @ np.linalg.solve(S, J)
    return 0.5 * (out + out.T)


def _jacobi(d: np.ndarray) -> np.ndarray:
    """Jacobi scaling ``1/sqrt(d)`` of a PSD matrix's diagonal ``d`` (0 where ``d`` is 0): a
    congruence that leaves every answer alone and fixes the conditioning of badly scaled θ."""
    return np.where(d > 0, 1.0 / np.sqrt(np.where(d > 0, d, 1.0)), 0.0)


def _eigh_pinv(F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eigen-decomposition of a PSD matrix: (values, vectors, mask of the kept ones)."""
    lam, V = np.linalg.eigh(0.5 * (F + F.T))
    keep = lam > EIG_RTOL * max(float(lam.max(initial=0.0)), np.finfo(float).tiny)
    return lam, V, keep


def predicted_covariance(F: np.ndarray, jacobian: np.ndarray) -> np.ndarray:
    """``J F⁺ Jᵀ`` (Q, Q); a QoI whose gradient leaves the range of F gets an infinite variance.

    Parameters
    ----------
    F : ndarray, shape (P, P)
        Data Fisher information.
    jacobian : ndarray, shape (Q, P)
    """
    J = np.atleast_2d(np.asarray(jacobian, dtype=float))
    F = np.asarray(F, dtype=float)
    d = np.diag(F)
    D = _jacobi(d)
    J = J * np.where(d > 0, D, 1.0)  # J F⁺ Jᵀ = (JD)(DFD)⁺(DJᵀ): Jacobi scaling for conditioning
    lam, V, keep = _eigh_pinv(D[:, None] * F * D[None, :])
    Jv = J @ V
    cov = (Jv[:, keep] / lam[keep]) @ Jv[:, keep].T
    outside = np.linalg.norm(Jv[:, ~keep], axis=1)
    scale = np.linalg.norm(J, axis=1)
    blind = outside > 1e-6 * np.maximum(scale, np.finfo(float).tiny)
    cov[blind, :] = np.inf
    cov[:, blind] = np.inf
    return cov


def predicted_sigma(F: np.ndarray, jacobian: np.ndarray) -> np.ndarray:
    """Predicted standard deviation of each QoI, ``sqrt(diag(J F⁺ Jᵀ))``, shape (Q,)."""
    return np.sqrt(np.diag(predicted_covariance(F, jacobian)))


def dominance(F: np.ndarray, target: np.ndarray) -> float:
    """``λ_min(F − I_QoI) / ‖I_QoI‖₂``: ≥ 0 (up to round-off) when F covers the target."""
    target = np.asarray(target, dtype=float)
    norm = float(np.linalg.norm(target, 2)) or 1.0
    D = np.asarray(F, dtype=float) - target
    return float(np.linalg.eigvalsh(0.5 * (D + D.T))[0]) / norm


def coverage(F: np.ndarray, target: np.ndarray) -> float:
    """Largest eigenvalue of the pencil (I_QoI, F): ≤ 1 exactly when ``F ⪰ I_QoI``.

    For ``I_QoI = JᵀΣ⁻¹J`` it is the largest ratio of predicted to target variance over every
    combination of the QoIs (``λ_max(Σ^{-1/2} J F⁺ Jᵀ Σ^{-1/2})``), so ``sqrt`` of it is the worst
    σ/tolerance.  Unlike :func:`dominance` it does not depend on how the parameters are scaled:
    a shortfall in a direction where the target's information is small counts in full.  Inf when
    the target needs a direction that F does not inform.

    Parameters
    ----------
    F : ndarray, shape (P, P)
    target : ndarray, shape (P, P)
    """
    F = np.asarray(F, dtype=float)
    T = np.asarray(target, dtype=float)
    D = _jacobi(np.diag(F) + np.diag(T))
    Fs, Ts = D[:, None] * F * D[None, :], D[:, None] * T * D[None, :]
    lam, V = np.linalg.eigh(0.5 * (Fs + Fs.T))
    keep = lam > EIG_RTOL * max(float(lam.max(initial=0.0)), np.finfo(float).tiny)
    N = V[:, ~keep]
    tn = max(float(np.linalg.norm(Ts)), np.finfo(float).tiny)
    if N.size and np.linalg.norm(N.T @ Ts @ N) > 1e-9 * tn:
        return float("inf")
    W = V[:, keep] / np.sqrt(lam[keep])
    return float(np.linalg.eigvalsh(W.T @ Ts @ W).max(initial=0.0))


def information_fraction(F: np.ndarray, jacobian: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """Fraction of each QoI's target information the data carries, ``min(1, tol²/σ²)``.

    ``tol²`` is the diagonal of ``Σ_target`` and ``σ²`` the predicted variance
    (:func:`predicted_covariance`): 1 means the data alone meets that QoI's target, 0.25 that
    its σ is twice its tolerance.  Shape (Q,).
    """
    var = np.diag(predicted_covariance(F, jacobian))
    tol2 = np.diag(np.asarray(covariance, dtype=float))
    with np.errstate(divide="ignore"):
        return np.minimum(1.0, np.where(np.isinf(var), 0.0, tol2 / var))


def whitened_span_fraction(F: np.ndarray, gradient: np.ndarray, intermediate: np.ndarray) -> float:
    """How much of an expensive QoI's gradient the intermediate targets' gradients span.

    In the metric of the data ``F`` (``g ↦ F^{-1/2} g``, the metric in which ``gᵀF⁻¹g`` is
    the QoI's variance), the squared norm of the projection of the whitened gradient onto the
    span of the whitened intermediate gradients, over its own squared norm: 1 means matching
    the intermediate targets pins the expensive QoI's uncertainty too, 0 that it does not.

    Parameters
    ----------
    F : ndarray, shape (P, P)
    gradient : ndarray, shape (P,)
        dQ/dθ of the expensive QoI.
    intermediate : ndarray, shape (K, P)
        dQ/dθ of the intermediate QoIs.
    """
    lam, V, keep = _eigh_pinv(np.asarray(F, dtype=float))
    W = V[:, keep] / np.sqrt(lam[keep])  # F^{-1/2} on the range of F
    g = np.asarray(gradient, dtype=float) @ W
    G = np.atleast_2d(np.asarray(intermediate, dtype=float)) @ W
    if not np.any(g):
        return 0.0
    Q, R = np.linalg.qr(G.T)
    rank = np.abs(np.diag(R)) > 1e-12 * max(float(np.abs(R).max(initial=0.0)), 1e-300)
    proj = Q[:, rank] @ (Q[:, rank].T @ g)
    return float(proj @ proj / (g @ g))


@dataclass
class Analysis:
    """What a data set's Fisher information says about a model.

    Attributes
    ----------
    eigenvalues : ndarray, shape (P,)
        Spectrum of F, descending (units of 1/θ²).
    condition : float
        λ_max / λ_min over the non-zero eigenvalues (inf when F has null directions).
    n_null : int
        Directions with no information (eigenvalue below ``EIG_RTOL·λ_max``).
    sloppy : list of dict
        The stiffest-to-sloppiest tail: for each of the ``n_sloppy`` smallest eigenvalues,
        ``{"eigenvalue", "parameters": [(name, component²), ...], "terms": {term: share}}``.
    qoi : dict
        Per QoI (when given): ``{"sigma", "tolerance", "fraction"}``.
    """

    eigenvalues: np.ndarray
    condition: float
    n_null: int
    sloppy: list[dict[str, Any]] = field(default_factory=list)
    qoi: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "eigenvalues": [float(x) for x in self.eigenvalues],
            "condition": float(self.condition),
            "n_null": int(self.n_null),
            "sloppy": self.sloppy,
            "qoi": self.qoi,
        }


def term_of(parameter: str) -> str:
    """The term a parameter name belongs to: ``snap[W].B3`` → ``snap[W]``."""
    return parameter.split(".", 1)[0]


def analyse(
    F: np.ndarray,
    parameter_names: Sequence[str] | None = None,
    n_sloppy: int = 3,
    top: int = 5,
    qoi_names: Sequence[str] | None = None,
    jacobian: np.ndarray | None = None,
    covariance: np.ndarray | None = None,
) -> Analysis:
    """Spectrum, conditioning, sloppy directions and (optionally) per-QoI information.

    Parameters
    ----------
    F : ndarray, shape (P, P)
    parameter_names : sequence of str, optional
        One name per parameter (``LinearPotential.param_names``); default ``θ0, θ1, ...``.
    n_sloppy : int, default=3
        Sloppiest directions to describe.
    top : int, default=5
        Parameters listed per sloppy direction (largest squared components).
    qoi_names, jacobian, covariance : optional
        QoI names (Q,), dQ/dθ (Q, P) and target covariance (Q, Q) for the per-QoI part.
    """
    F = np.asarray(F, dtype=float)
    P = F.shape[0]
    names = list(parameter_names) if parameter_names is not None else [f"θ{i}" for i in range(P)]
    if len(names) != P:
        raise DataError(f"{len(names)} parameter names for a {P}×{P} Fisher information")
    lam, V, keep = _eigh_pinv(F)
    order = np.argsort(lam)[::-1]
    lam, V, keep = lam[order], V[:, order], keep[order]
    n_null = int((~keep).sum())
    cond = float(lam[0] / lam[keep][-1]) if keep.any() and n_null == 0 else float("inf")
    sloppy = []
    terms = [term_of(n) for n in names]
    for k in range(P - 1, max(P - 1 - n_sloppy, -1), -1):
        v2 = V[:, k] ** 2
        idx = np.argsort(v2)[::-1][:top]
        share: dict[str, float] = {}
        for t, c in zip(terms, v2, strict=True):
            share[t] = share.get(t, 0.0) + float(c)
        sloppy.append(
            {
                "eigenvalue": float(max(lam[k], 0.0)),
                "parameters": [(names[i], float(v2[i])) for i in idx],
                "terms": dict(sorted(share.items(), key=lambda kv: -kv[1])),
            }
        )
    qoi: dict[str, dict[str, float]] = {}
    if jacobian is not None and covariance is not None:
        J = np.atleast_2d(jacobian)
        qn = list(qoi_names) if qoi_names is not None else [f"Q{i}" for i in range(len(J))]
        sig = predicted_sigma(F, J)
        frac = information_fraction(F, J, covariance)
        tol = np.sqrt(np.diag(covariance))
        for i, name in enumerate(qn):
            qoi[name] = {
                "sigma": float(sig[i]),
                "tolerance": float(tol[i]),
                "fraction": float(frac[i]),
            }
    return Analysis(lam, cond, n_null, sloppy, qoi)


def spectrum_plot(
    path: str | Path,
    data: np.ndarray,
    target: np.ndarray | None = None,
    title: str = "Fisher information spectra",
) -> Path:
    """Eigenvalue spectra of the data's FIM and the target's, descending, on a log axis (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(6, 4))
    floor = np.finfo(float).tiny
    for M, label, style in ((data, "data", "o-"), (target, "target (QoIs)", "s--")):
        if M is None:
            continue
        lam = np.sort(np.linalg.eigvalsh(0.5 * (M + M.T)))[::-1]
        lam = lam[lam > EIG_RTOL * max(float(lam[0]), floor)]
        ax.semilogy(np.arange(1, len(lam) + 1), lam, style, ms=3, label=f"{label} ({len(lam)})")
    ax.set_xlabel("eigenvalue index")
    ax.set_ylabel("eigenvalue (1/θ²)")
    ax.set_title(title)
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
