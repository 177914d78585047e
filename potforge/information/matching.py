"""Information matching: the cheapest set of labels whose information covers a target.

The convex program (seed 000, ../shared/METHODS.md §1)::

    minimise  Σ_m s_m w_m   over  0 ≤ w_m ≤ u_m
    subject   Σ_m w_m I_m + F_fixed ⪰ I_QoI

with ``I_m`` the Fisher information of candidate m at the oracle's label precision, ``s_m`` the
cost of labelling it, ``F_fixed`` the information of what is labelled already and ``u_m = 1``
so that no weight asks a label to be more precise than the oracle delivers.

How it is solved here (:func:`solve_matching`):

* **Preconditioning that leaves the answer alone** — every matrix is congruence-transformed by
  ``B = D U Λ^{-1/2}`` (``D`` the Jacobi scaling of the total information, ``U Λ Uᵀ`` its
  eigen-decomposition on its range) and all are scaled by one number; ``Bᵀ X B ⪰ 0 ⇔ X ⪰ 0``
  on the range, and outside it every matrix vanishes, so the feasible weights are exactly the
  same, while the solver sees the total information as the identity.
* **Column generation** — the program is solved on a working set of candidates; the dual
  matrix ``Z`` of the matrix inequality prices every other candidate (reduced cost
  ``s_m − ⟨Z, I_m⟩``); those that could lower the cost join, until none can.  The answer is
  the optimum over the whole pool; only a few hundred candidates ever reach the solver.
* **Rounding** — the solver spreads small weights over many candidates, so the selection is
  the candidates in decreasing weight per cost, each labelled at full weight, until the targets
  are met (checked on the exact matrices); then candidates that are no longer needed are pruned
  (costliest first) and dominance is checked again.  The solver's own count of weights above a
  threshold is reported beside it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from potforge.errors import DataError, PotforgeError
from potforge.information.fisher import coverage, dominance

SOLVERS = ("auto", "SDPA", "CLARABEL", "SCS")
"""Convex solvers through cvxpy.  ``"auto"`` (default): Clarabel.  SDPA only when named: its
Schur complement (K² r² per iteration for K candidates, r parameters) can be cheaper than
Clarabel's KKT factorisation with a dense PSD block (r⁶/8), but its C++ core ends the whole
process (exit status 0, no exception) on some programs — seen on a 70-candidate W pool of the
default campaign — which no caller can catch or resume from.  SCS (first order) for very large
working sets.  All answer the same program; rounding is checked on the exact matrices."""


def resolve_solver(solver: str) -> str:
    """The cvxpy solver name for ``solver`` (one of :data:`SOLVERS`, any case)."""
    name = str(solver).upper()
    if name == "AUTO":
        return "CLARABEL"
    if name not in {s.upper() for s in SOLVERS}:
        raise DataError(f"unknown solver {solver!r}; allowed: {', '.join(SOLVERS)}")
    return name


COST_MODELS = ("unit", "n2", "n3", "measured")
"""Labelling-cost models: 1 per structure; N² (plane-wave DFT at fixed k-point density, per
SCF step); N³ (the cubic diagonalisation regime); measured oracle seconds."""

DOMINANCE_TOL = 1e-6
"""Slack of the target check: covered when ``coverage(F, I_QoI) ≤ 1 + tol``, i.e. no QoI
combination's predicted variance exceeds its target by more than that fraction."""


class MatchingError(PotforgeError, RuntimeError):
    """The convex solver failed or returned an answer that does not check out."""


class InfeasibleError(DataError):
    """No selection from the pool covers the target.

    Attributes
    ----------
    available : ndarray, shape (P, P)
        The most information the pool can give (every candidate at its upper weight, plus what
        is labelled already), for the caller to say which targets it cannot meet.
    """

    def __init__(self, message: str, available: np.ndarray):
        super().__init__(message)
        self.available = available


def labelling_cost(
    n_atoms: Sequence[int] | np.ndarray, model: str = "unit", times: Sequence[float] | None = None
) -> np.ndarray:
    """Cost ``s_m`` of labelling each candidate under a stated cost model.

    Parameters
    ----------
    n_atoms : sequence of int, shape (M,)
    model : {"unit", "n2", "n3", "measured"}, default="unit"
        See :data:`COST_MODELS`; ``"n2"`` and ``"n3"`` are in units of one atom's cost.
    times : sequence of float, shape (M,), optional
        Measured oracle seconds (``model="measured"``).

    Returns
    -------
    ndarray, shape (M,)
    """
    n = np.asarray(n_atoms, dtype=float)
    if model == "unit":
        return np.ones_like(n)
    if model == "n2":
        return n**2
    if model == "n3":
        return n**3
    if model == "measured":
        t = np.asarray(times if times is not None else [], dtype=float)
        if t.shape != n.shape or not np.all(np.isfinite(t)) or np.any(t <= 0):
            raise DataError(f"cost model 'measured' needs {n.shape[0]} positive oracle times")
        return t
    raise DataError(f"unknown cost model {model!r}; allowed: {', '.join(COST_MODELS)}")


@dataclass
class MatchingResult:
    """The answer of :func:`solve_matching`.

    Attributes
    ----------
    weights : ndarray, shape (M,)
        The solver's optimal weights (label precision σ_m/√w_m).
    selected : ndarray of int
        The rounded selection, each labelled at its upper weight: indices into the pool, in the
        order they were taken (decreasing weight per cost).
    objective : float
        ``Σ s_m w_m`` at the optimum (the lower bound on the selection's cost).
    cost : float
        ``Σ s_m`` over ``selected``.
    n_thresholded : int
        Weights above ``zero_tol`` (the count a thresholded solver answer would label).
    dominance : float
        ``λ_min(Σ_selected u_m I_m + F_fixed − I_QoI) / ‖I_QoI‖`` (≥ −tol: targets met).
    dominance_solver : float
        The same for the solver's weights as returned.
    dominance_thresholded : float
        The same for the solver's weights with those below ``zero_tol`` set to zero.
    coverage : float
        λ_max of the pencil (I_QoI, Σ_selected u_m I_m + F_fixed)
        (:func:`~potforge.information.fisher.coverage`): the worst ratio of predicted to target
        variance over all QoI combinations; the selection is made so that it is ≤ 1 + tol.
    coverage_solver : float
        The same for the solver's weights (≤ 1 up to the solver's accuracy).
    status : str
        The solver's last status (``"optimal"``, ``"optimal_inaccurate"``, ``"met"`` when the
        fixed information already covers the target).
    solver : str
    solve_time : float
        Seconds in the solver (all rounds).
    rounds : int
        Column-generation rounds.
    n_working : int
        Candidates that reached the solver (in any round; each round's working set is the
        last solution's support plus the candidates that price in).
    repaired : int
        Candidates added beyond the solver's positive weights to restore dominance.
    pruned : int
        Candidates dropped from the prefix because the target held without them.
    dual : ndarray, shape (P, P)
        Dual matrix ``Z`` of the matrix inequality (prices information: ``⟨Z, I_m⟩``).
    """

    weights: np.ndarray
    selected: np.ndarray
    objective: float
    cost: float
    n_thresholded: int
    dominance: float
    dominance_solver: float
    dominance_thresholded: float
    status: str
    solver: str
    solve_time: float
    rounds: int
    n_working: int
    repaired: int = 0
    pruned: int = 0
    coverage: float = float("nan")
    coverage_solver: float = float("nan")
    dual: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    def summary(self) -> dict[str, Any]:
        """JSON-able summary (no arrays but the selection)."""
        return {
            "selected": [int(i) for i in self.selected],
            "objective": float(self.objective),
            "cost": float(self.cost),
            "n_selected": int(len(self.selected)),
            "n_thresholded": int(self.n_thresholded),
            "dominance": float(self.dominance),
            "dominance_solver": float(self.dominance_solver),
            "dominance_thresholded": float(self.dominance_thresholded),
            "coverage": float(self.coverage),
            "coverage_solver": float(self.coverage_solver),
            "status": self.status,
            "solver": self.solver,
            "solve_time": float(self.solve_time),
            "rounds": int(self.rounds),
            "n_working": int(self.n_working),
            "repaired": int(self.repaired),
            "pruned": int(self.pruned),
        }


def check_fisher(fims: Any, target: Any, fixed: Any = None) -> tuple[np.ndarray, ...]:
    """Validate candidate FIMs (M, P, P), the target (P, P) — or a stack (Q, P, P) of targets
    to meet each — and the fixed part (P, P); the target comes back as a stack."""
    I = np.asarray(fims, dtype=float)
    T = np.asarray(target, dtype=float)
    if I.ndim != 3 or I.shape[1] != I.shape[2]:
        raise DataError(f"candidate Fisher informations must have shape (M, P, P), got {I.shape}")
    P = I.shape[1]
    T = T[None] if T.ndim == 2 else T
    if T.ndim != 3 or T.shape[1:] != (P, P) or not len(T):
        raise DataError(
            f"target Fisher information must have shape ({P}, {P}) or (Q, {P}, {P}), got "
            f"{np.shape(target)}"
        )
    F0 = np.zeros((P, P)) if fixed is None else np.asarray(fixed, dtype=float)
    if F0.shape != (P, P):
        raise DataError(f"fixed Fisher information must have shape ({P}, {P}), got {F0.shape}")
    for name, X in (("candidate", I), ("target", T), ("fixed", F0)):
        if not np.all(np.isfinite(X)):
            raise DataError(f"{name} Fisher information contains NaN or infinite entries")
        scale = max(float(np.abs(X).max(initial=0.0)), np.finfo(float).tiny)
        if np.abs(X - np.swapaxes(X, -1, -2)).max(initial=0.0) > 1e-8 * scale:
            raise DataError(f"{name} Fisher information is not symmetric")
    if not all(np.any(t) for t in T):
        raise DataError("target Fisher information is zero: there is nothing to match")
    return I, T, F0


def each_qoi(jacobian: np.ndarray, tolerance: np.ndarray) -> np.ndarray:
    """Targets to meet one QoI at a time, ``g_q g_qᵀ / tol_q²``, shape (Q, P, P).

    ``F ⪰ g_q g_qᵀ / tol_q²`` is exactly ``σ_q ≤ tol_q`` (``σ_q² = g_q F⁺ g_qᵀ``): the stack asks
    for every QoI's own precision, and no more — the single matrix ``JᵀΣ⁻¹J`` asks for every
    combination of QoIs too (a stronger guarantee, costlier to meet).
    """
    J = np.atleast_2d(np.asarray(jacobian, dtype=float))
    t = np.asarray(tolerance, dtype=float)
    if t.shape != (J.shape[0],) or np.any(t <= 0):
        raise DataError(f"each_qoi needs {J.shape[0]} positive tolerances, got {t!r}")
    return np.einsum("qi,qj->qij", J, J) / (t**2)[:, None, None]


def _cov(F: np.ndarray, Ts: np.ndarray) -> float:
    """Worst :func:`coverage` over a stack of targets."""
    return max(coverage(F, t) for t in Ts)


def _dom(F: np.ndarray, Ts: np.ndarray) -> float:
    """Worst :func:`dominance` over a stack of targets."""
    return min(dominance(F, t) for t in Ts)


def _basis(I: np.ndarray, T: np.ndarray, F0: np.ndarray, tol: float) -> np.ndarray:
    """``B = D U Λ^{-1/2}`` (P, r): Jacobi scaling, then the whitening of the range of the pool
    and fixed information, so that their sum is the identity in the new coordinates.

    Raises :class:`InfeasibleError` when the target needs a direction outside that range.
    """
    S = I.sum(axis=0)
    S = S / max(np.linalg.norm(S), 1e-300)
    if np.any(F0):
        S = S + F0 / np.linalg.norm(F0)
    d = np.diag(S).copy()
    D = np.where(d > 1e-14 * d.max(), 1.0 / np.sqrt(np.where(d > 0, d, 1.0)), 0.0)
    lam, U = np.linalg.eigh(D[:, None] * S * D[None, :])
    keep = lam > 1e-12 * lam.max()
    # the target may not need a null direction of S: v = D u (u null in the scaled metric) or
    # an axis whose diagonal is zero
    null = np.hstack([D[:, None] * U[:, ~keep], np.eye(len(D))[:, D == 0]])
    if null.size:
        N, _ = np.linalg.qr(null)
        if np.linalg.norm(N.T @ (T / np.linalg.norm(T)) @ N) > max(tol, 1e-8):
            raise InfeasibleError(
                "the candidate pool has no information in a direction the targets need",
                I.sum(axis=0) + F0,
            )
    return D[:, None] * U[:, keep] / np.sqrt(lam[keep])


def _coverage_of(idx: np.ndarray, I: np.ndarray, up: np.ndarray, F0: np.ndarray, T: np.ndarray):
    return _cov(np.tensordot(up[idx], I[idx], axes=1) + F0, T)


def _shortest_cover(order, I, up, F0, T, tol: float) -> int:
    """Length of the shortest prefix of ``order`` (weights ``up``) that covers the targets, by
    bisection (covering is monotone in the prefix: every candidate adds PSD information);
    ``len(order)`` when even the whole of it does not."""
    lo, hi = 1, len(order)
    while lo < hi:
        mid = (lo + hi) // 2
        if _coverage_of(order[:mid], I, up, F0, T) <= 1 + tol:
            hi = mid
        else:
            lo = mid + 1
    return lo


@contextlib.contextmanager
def _native_output_silenced(active: bool) -> Iterator[None]:
    """SDPA's C++ core prints diagnostics ("Strange behavior : primal < dual") straight to the
    process's stdout; the status and the exact re-check report what matters, so that text is
    sent to /dev/null for the call (file descriptors 1 and 2, restored afterwards)."""
    if not active:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def _solve_restricted(
    I: np.ndarray, s: np.ndarray, up: np.ndarray | None, R: np.ndarray, solver: str
) -> tuple[np.ndarray, np.ndarray, str, float]:
    """One cvxpy solve on K candidates in the reduced basis: (w, Z, status, seconds)."""
    import cvxpy as cp

    K, r, _ = I.shape
    w = cp.Variable(K, nonneg=True)
    E = cp.reshape(I.reshape(K, r * r).T @ w, (r, r), order="C")
    S = 0.5 * (E + E.T)
    cons = [S - Rq >> 0 for Rq in R]  # one matrix inequality per target in the stack
    n_lmi = len(cons)
    if up is not None:
        cons.append(w <= up)
    prob = cp.Problem(cp.Minimize(s @ w), cons)
    t0 = time.perf_counter()
    with warnings.catch_warnings(), _native_output_silenced(solver == "SDPA"):
        warnings.simplefilter("ignore")
        try:
            prob.solve(solver=solver)
        except cp.error.SolverError as exc:
            raise MatchingError(f"the convex solver {solver} failed: {exc}") from None
    seconds = time.perf_counter() - t0
    if w.value is None:
        raise MatchingError(f"the convex solver {solver} returned no answer (status {prob.status})")
    Z = np.sum([np.asarray(c.dual_value, dtype=float) for c in cons[:n_lmi]], axis=0)
    Z = 0.5 * (Z + Z.T)  # the reduced cost of candidate m is s_m − Σ_q ⟨Z_q, I_m⟩
    return np.clip(np.asarray(w.value, dtype=float), 0.0, None), Z, str(prob.status), seconds


def solve_matching(
    fims: np.ndarray,
    target: np.ndarray,
    *,
    cost: np.ndarray | None = None,
    upper: float | np.ndarray | None = 1.0,
    fixed: np.ndarray | None = None,
    solver: str = "auto",
    reweight: int = 0,
    tol: float = DOMINANCE_TOL,
    zero_tol: float = 1e-4,
    working: int | None = None,
    max_rounds: int = 30,
) -> MatchingResult:
    """Solve the information-matching program and round its answer to a selection.

    Parameters
    ----------
    fims : ndarray, shape (M, P, P)
        Fisher information of each candidate at the oracle's label precision.
    target : ndarray, shape (P, P) or (Q, P, P)
        ``I_QoI`` (:func:`potforge.information.fisher.qoi_fisher`): every combination of the
        QoIs within its tolerance; or a stack of targets each to be met, e.g.
        :func:`each_qoi` (every QoI within its own tolerance).
    cost : ndarray, shape (M,), optional
        Labelling cost per candidate (:func:`labelling_cost`); default 1.
    upper : float, ndarray (M,) or None, default=1.0
        Weight bounds ``u_m`` (1: the oracle's real precision; None: unbounded, as the
        reference code's default).
    fixed : ndarray, shape (P, P), optional
        Information of data labelled already (counted at weight 1, free).
    solver : {"auto", "SDPA", "CLARABEL", "SCS"}, default="auto"
    reweight : int, default=0
        Rounds of reweighted ℓ1 (``s_m ← s_m/(w_m + ε)``) after the first solve, for sparsity.
    tol : float, default=DOMINANCE_TOL
        Relative dominance slack.
    zero_tol : float, default=1e-4
        Threshold of the reported thresholded count (as the reference code's ``zero_tol``).
    working : int, optional
        Initial working-set size of the column generation (default ``max(4r + 50, 200)``,
        ``r`` the rank of the problem); all candidates when the pool is smaller.
    max_rounds : int, default=30
        Column-generation rounds before giving up (a MatchingError).

    Returns
    -------
    MatchingResult

    Raises
    ------
    InfeasibleError
        The pool (at its upper weights, plus ``fixed``) cannot cover the target.
    MatchingError
        The solver failed, or its answer could not be rounded to a dominating selection.
    """
    I, T, F0 = check_fisher(fims, target, fixed)
    M, P, _ = I.shape
    solver = resolve_solver(solver)
    s = np.ones(M) if cost is None else np.asarray(cost, dtype=float)
    if s.shape != (M,) or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise DataError(f"cost must be {M} positive finite numbers")
    up = None if upper is None else np.broadcast_to(np.asarray(upper, dtype=float), (M,)).copy()
    if up is not None and (not np.all(np.isfinite(up)) or np.any(up <= 0)):
        raise DataError("upper weight bounds must be positive and finite (or None)")
    empty = np.zeros(0, dtype=int)

    if _cov(F0, T) <= 1 + tol:
        met = _dom(F0, T)
        return MatchingResult(
            np.zeros(M),
            empty,
            0.0,
            0.0,
            0,
            met,
            met,
            met,
            "met",
            solver,
            0.0,
            0,
            0,
            coverage=_cov(F0, T),
        )

    # --- preconditioning: congruence by B, one scale, weights in units of α ------------------
    B = _basis(I, T.sum(axis=0), F0, tol)
    r = B.shape[1]
    It = np.einsum("pi,mpq,qj->mij", B, I, B, optimize=True)
    Tt, F0t = np.einsum("pi,qpr,rj->qij", B, T, B), B.T @ F0 @ B
    norm = max(float(np.linalg.norm(t, 2)) for t in Tt)
    It, Tt, F0t = It / norm, Tt / norm, F0t / norm
    s_scale = float(s.max())
    sn = s / s_scale
    # α: the uniform weight at which the whole pool covers the target; the solver works with
    # v = w/α (every v_m = 1 is feasible), so tiny or huge weights are O(1) numbers to it
    lam, V = np.linalg.eigh(It.sum(axis=0))
    keep = lam > 1e-12 * lam.max()
    Wh = V[:, keep] / np.sqrt(lam[keep])
    alpha = max(max(float(np.linalg.eigvalsh(Wh.T @ (t - F0t) @ Wh).max()) for t in Tt), 1e-12)
    Iv = It * alpha
    upv = None if up is None else up / alpha

    # --- feasibility -------------------------------------------------------------------------
    if up is not None:
        avail = np.tensordot(up, I, axes=1) + F0
        if _cov(np.tensordot(up, It, axes=1) + F0t, Tt) > 1 + tol:
            raise InfeasibleError(
                "the candidate pool cannot meet the targets even with every candidate labelled",
                avail,
            )

    # --- column generation --------------------------------------------------------------------
    R = Tt - F0t[None]
    score = np.einsum("qij,mij->m", Tt, It) / sn
    order = np.argsort(-score, kind="stable")
    size = min(M, working or max(4 * r + 50, 200))
    if up is not None:  # a feasible start: the shortest score prefix that covers the target
        size = max(size, min(M, _shortest_cover(order, It, up, F0t, Tt, tol) + r))
    work = np.zeros(M, dtype=bool)
    work[order[:size]] = True
    seen = work.copy()  # every candidate that reached the solver
    deleted = np.zeros(M, dtype=bool)
    batch = max(20, r)
    total_time, rounds, status = 0.0, 0, ""
    while True:
        idx = np.flatnonzero(work)
        v_k, Z, status, seconds = _solve_restricted(
            Iv[idx], sn[idx], None if upv is None else upv[idx], R, solver
        )
        total_time += seconds
        rounds += 1
        if status not in ("optimal", "optimal_inaccurate"):
            raise MatchingError(f"the convex solver {solver} ended with status '{status}'")
        reduced = sn - np.einsum("ij,mij->m", Z, Iv)
        reduced[work] = np.inf
        enter = np.flatnonzero(reduced < -1e-6 * sn)
        if not enter.size:
            break
        if rounds >= max_rounds:
            raise MatchingError(
                f"column generation did not converge in {max_rounds} rounds "
                f"({enter.size} candidates still price in); raise max_rounds or use working=M"
            )
        # column deletion: candidates the restricted optimum leaves at zero go (the optimum
        # stays feasible, so the next one is no worse) — the working set stays near the
        # support; a candidate is deleted at most once, so the rounds cannot cycle
        idle = idx[(v_k <= 1e-7 * max(float(v_k.max()), 1e-300)) & ~deleted[idx]]
        work[idle] = False
        deleted[idle] = True
        work[enter[np.argsort(reduced[enter])[:batch]]] = True
        seen |= work

    w = np.zeros(M)
    w[idx] = alpha * v_k
    for _ in range(reweight):  # reweighted ℓ1 on the working set: favour the large weights
        eps = 1e-3 * max(float(w.max()), 1e-12)
        v_k, Z, status, seconds = _solve_restricted(
            Iv[idx], sn[idx] / (w[idx] + eps), None if upv is None else upv[idx], R, solver
        )
        total_time += seconds
        w = np.zeros(M)
        w[idx] = alpha * v_k
    objective = float(s @ w)
    dom_solver = _dom(np.tensordot(w, I, axes=1) + F0, T)
    w_thr = np.where(w > zero_tol, w, 0.0)
    dom_thr = _dom(np.tensordot(w_thr, I, axes=1) + F0, T)

    # --- rounding: decreasing weight per cost at full weight, repair, prune ------------------
    # a selected candidate is labelled at its upper weight (unbounded: at max(1, w), i.e. with
    # labels √w more precise than the precision its FIM was built with)
    label_w = np.maximum(1.0, w) if up is None else up
    positive = np.flatnonzero(w > 1e-9 * max(float(w.max()), 1e-300))
    ranked = positive[np.argsort(-(w[positive] / s[positive]), kind="stable")]
    rest = np.setdiff1d(np.arange(M), ranked)
    rest = rest[np.argsort(-score[rest], kind="stable")]  # score is already per unit cost
    chain = np.concatenate([ranked, rest])
    if _coverage_of(chain, It, label_w, F0t, Tt) > 1 + tol:
        raise MatchingError("no selection from the pool dominates the target after rounding")
    lo = _shortest_cover(chain, It, label_w, F0t, Tt, tol)
    selected = list(chain[:lo])
    repaired = max(0, lo - len(ranked))
    pruned = 0
    for m in sorted(selected, key=lambda k: (-s[k], w[k])):
        trial = [k for k in selected if k != m]
        if trial and _coverage_of(np.array(trial), It, label_w, F0t, Tt) <= 1 + tol:
            selected, pruned = trial, pruned + 1
    sel = np.array(selected, dtype=int)
    dom = _dom(np.tensordot(label_w[sel], I[sel], axes=1) + F0, T)
    cov = _coverage_of(sel, It, label_w, F0t, Tt)
    Zfull = B @ Z @ B.T * (alpha * s_scale / norm)
    return MatchingResult(
        weights=w,
        selected=sel,
        objective=objective,
        cost=float(s[sel].sum()),
        n_thresholded=int((w > zero_tol).sum()),
        dominance=dom,
        dominance_solver=dom_solver,
        dominance_thresholded=dom_thr,
        coverage=cov,
        coverage_solver=_cov(np.tensordot(w, It, axes=1) + F0t, Tt),
        status=status,
        solver=solver,
        solve_time=total_time,
        rounds=rounds,
        n_working=int(seen.sum()),
        repaired=repaired,
        pruned=pruned,
        dual=Zfull,
    )


class InformationMatcher(BaseEstimator):
    """Smallest-cost non-negative weights whose information covers a target, and the selection.

    Parameters
    ----------
    upper : float or None, default=1.0
        Weight bound (1 = the oracle's real label precision).
    solver : {"auto", "SDPA", "CLARABEL", "SCS"}, default="auto"
    reweight : int, default=0
        Rounds of reweighted ℓ1.
    tol : float, default=DOMINANCE_TOL
        Relative dominance slack.

    Attributes
    ----------
    weights_ : ndarray, shape (M,)
    selected_ : ndarray of int
    result_ : MatchingResult
    """

    def __init__(
        self,
        *,
        upper: float | None = 1.0,
        solver: str = "auto",
        reweight: int = 0,
        tol: float = DOMINANCE_TOL,
    ):
        self.upper = upper
        self.solver = solver
        self.reweight = reweight
        self.tol = tol

    def fit(self, fims, target, cost=None, fixed=None) -> InformationMatcher:
        """Solve for candidate FIMs (M, P, P) and target (P, P); ``cost`` (M,), ``fixed`` (P, P)."""
        self.result_ = solve_matching(
            fims,
            target,
            cost=cost,
            upper=self.upper,
            fixed=fixed,
            solver=self.solver,
            reweight=self.reweight,
            tol=self.tol,
        )
        self.weights_ = self.result_.weights
        self.selected_ = self.result_.selected
        return self
