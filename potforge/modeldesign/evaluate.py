"""Judging one candidate model (seed 002, ../shared/METHODS.md §3): the Fisher information of its
training design, cross-validated errors, and errors on material properties, in one score.

* **FIM**: ``F = AᵀWA`` of the weighted training design (rows of :meth:`LinearPotential.design`,
  weights ``1/σ²`` of the model's own σ's); its spectrum, condition number, the count of sloppy
  eigenvalues (below ``sloppy_rtol · λ_max``) and which terms the sloppy directions live in.
  :func:`prune_order` says which columns to drop so no sloppy direction is left (array core).
* **CV**: k-fold errors with the model's weights: every structure's rows stay in one fold,
  folds stratified by group; training data only.  For the squared loss the folds are solved
  from per-fold Gram blocks of the weighted design (:func:`gram_cv`: one pass over the rows
  for all folds and the FIM, the same ridge problem as :func:`potforge.model.cv.cv_score`,
  about ten times faster on 500 columns); other losses go through ``cv_score``.
* **Properties**: QoIs of the property suite under the model fitted on all training data,
  against reference values (``{qoi: {"value", "unit", "source"}}``, e.g. DFT or experiment).
* **Score** (:class:`ScoreWeights`, lower is better): ``w_E · E_MAE/E_scale + w_F · F_MAE/F_scale
  + w_P · mean_q |Q − Q_ref| / (rel_scale · |Q_ref|)`` — each error relative to a stated scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.linalg
from ase import Atoms

from potforge.errors import DataError
from potforge.information.fisher import analyse, term_of
from potforge.model import LinearPotential
from potforge.model.cv import cv_folds, cv_score
from potforge.model.rows import ROW_ENERGY, ROW_FORCE, DesignMatrix

SLOPPY_RTOL = 1e-10
"""Eigenvalues of F below this fraction of λ_max count as sloppy."""


@dataclass(frozen=True)
class ScoreWeights:
    """Weights and scales of the multi-property score.

    Attributes
    ----------
    energy, force, properties : float
        Weights (≥ 0, not all 0) of the CV energy MAE, CV force MAE and property errors.
    energy_scale : float, default=5.0
        meV/atom counted as one unit of score.
    force_scale : float, default=0.2
        eV/Å counted as one unit.
    relative_scale : float, default=0.05
        A property 5 % off its reference counts as one unit.
    """

    energy: float = 1.0
    force: float = 1.0
    properties: float = 1.0
    energy_scale: float = 5.0
    force_scale: float = 0.2
    relative_scale: float = 0.05

    def __post_init__(self) -> None:
        values = [self.energy, self.force, self.properties]
        if any(not np.isfinite(v) or v < 0 for v in values) or sum(values) == 0:
            raise DataError(
                f"score weights must be ≥ 0 and not all 0, got energy={self.energy}, "
                f"force={self.force}, properties={self.properties}"
            )
        for name in ("energy_scale", "force_scale", "relative_scale"):
            if not getattr(self, name) > 0:
                raise DataError(f"score {name} must be > 0, got {getattr(self, name)!r}")


@dataclass
class Evaluation:
    """What :func:`evaluate` found for one model.

    Attributes
    ----------
    spec : str
    n_params : int
    cv_energy_mae : float
        meV/atom.
    cv_force_mae : float
        eV/Å.
    condition : float
        Condition number of F (inf with null directions).
    n_sloppy : int
        Eigenvalues below ``SLOPPY_RTOL · λ_max``.
    sloppy_terms : dict
        Term → share of the sloppy subspace (sums to the number of sloppy directions).
    properties : dict
        QoI → ``{"value", "reference", "error", "relative"}``.
    score : float
    eigenvalues : list of float
    """

    spec: str
    n_params: int
    cv_energy_mae: float
    cv_force_mae: float
    condition: float
    n_sloppy: int
    sloppy_terms: dict[str, float] = field(default_factory=dict)
    properties: dict[str, dict[str, float]] = field(default_factory=dict)
    score: float = float("nan")
    eigenvalues: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def training_fisher(
    model: LinearPotential, structures: Sequence[Atoms], designs=None
) -> np.ndarray:
    """``F = AᵀWA`` of the labelled training rows at the model's σ's and group weights, (P, P)."""
    dm = model.design(structures, designs=designs)
    w = dm.weights(model.sigma, model.group_weights)
    return (dm.A * w[:, None]).T @ dm.A


def ridge_solve_gram(G: np.ndarray, c: np.ndarray, alpha: float) -> np.ndarray:
    """θ minimising ``|X θ − b|² + α |S θ|²`` from ``G = XᵀX`` (P, P) and ``c = Xᵀb`` (P,),
    S the column norms of X (``sqrt(diag G)``, 1 for dead columns): the problem of
    :func:`potforge.model.fitting.weighted_lstsq`, solved by Cholesky on the column-normalised
    Gram matrix plus ``α I`` (an eigen-decomposition, eigenvalues below 1e-14 of the largest
    dropped, when that is not positive definite, e.g. ``α = 0`` on a rank-deficient design).

    Returns θ, shape (P,), in the units of X's columns."""
    s = np.sqrt(np.clip(np.diag(G), 0.0, None))
    s[s == 0] = 1.0
    Gn = G / np.outer(s, s)
    Gn[np.diag_indices_from(Gn)] += alpha
    rhs = c / s
    try:
        phi = scipy.linalg.cho_solve(
            scipy.linalg.cho_factor(Gn, lower=True, check_finite=False), rhs, check_finite=False
        )
    except np.linalg.LinAlgError:
        lam, V = np.linalg.eigh(0.5 * (Gn + Gn.T))
        keep = lam > 1e-14 * max(float(lam[-1]), 1e-300)
        phi = V[:, keep] @ ((V[:, keep].T @ rhs) / lam[keep])
    return phi / s


def fold_grams(dm: DesignMatrix, w: np.ndarray, folds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gram blocks of the whitened rows ``sqrt(w) A`` of each fold: ``G[k] = X_kᵀ X_k``
    (K, P, P) and ``c[k] = X_kᵀ sqrt(w_k) y_k`` (K, P); ``folds`` (S,) is the fold of each
    structure.  Their sum over k is the training FIM ``AᵀWA`` (:func:`training_fisher`)."""
    sw = np.sqrt(w)
    row_fold = np.asarray(folds, dtype=int)[dm.structure]
    K = int(np.max(folds)) + 1
    P = dm.A.shape[1]
    G, c = np.zeros((K, P, P)), np.zeros((K, P))
    for k in range(K):
        r = row_fold == k
        X = dm.A[r] * sw[r, None]
        G[k] = X.T @ X
        c[k] = X.T @ (dm.y[r] * sw[r])
    return G, c


def gram_cv(
    dm: DesignMatrix,
    w: np.ndarray,
    folds: np.ndarray,
    alpha: float,
    grams: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[float, float]:
    """Cross-validated MAEs of the squared-loss fit, from per-fold Gram blocks.

    Each fold's parameters solve the weighted ridge problem of the other folds' rows
    (:func:`ridge_solve_gram`, as :func:`potforge.model.cv.cv_score` with ``loss="squared"``
    solves it by SVD), and its held-out energy and force rows are predicted; the residuals of
    all folds are pooled.

    Parameters
    ----------
    dm : DesignMatrix
        Labelled rows of the training structures (``assemble``).
    w : ndarray, shape (R,)
        Row weights ``g/σ²`` (``dm.weights``).
    folds : ndarray of int, shape (S,)
        Fold of each structure, 0 … K−1.
    alpha : float
        Ridge strength on the column-normalised problem (the model's ``alpha``).
    grams : tuple, optional
        :func:`fold_grams` of ``(dm, w, folds)``, when already computed.

    Returns
    -------
    (float, float)
        CV energy MAE (meV/atom, per atom) and force MAE (eV/Å, per component).
    """
    G, c = grams if grams is not None else fold_grams(dm, w, folds)
    Gt, ct = G.sum(axis=0), c.sum(axis=0)
    row_fold = np.asarray(folds, dtype=int)[dm.structure]
    e_res, f_res = [], []
    for k in range(len(G)):
        theta = ridge_solve_gram(Gt - G[k], ct - c[k], alpha)
        r = row_fold == k
        res = dm.A[r] @ theta - dm.y[r]
        e_res.append(res[dm.row_type[r] == ROW_ENERGY])
        f_res.append(res[dm.row_type[r] == ROW_FORCE])
    e, f = np.concatenate(e_res), np.concatenate(f_res)
    return float(np.mean(np.abs(e)) * 1000.0), float(np.mean(np.abs(f)))


def sloppy_summary(
    F: np.ndarray, names: Sequence[str], rtol: float = SLOPPY_RTOL
) -> tuple[float, int, dict[str, float], np.ndarray]:
    """Condition number, count of sloppy eigenvalues, the terms' shares of the sloppy
    subspace and the descending spectrum of ``F`` (P, P) with parameter ``names``."""
    a = analyse(F, names, n_sloppy=0)
    lam = np.asarray(a.eigenvalues)
    lam_all, V = np.linalg.eigh(0.5 * (F + F.T))
    top = max(float(lam_all.max(initial=0.0)), 1e-300)
    sloppy = lam_all < rtol * top
    shares: dict[str, float] = {}
    if sloppy.any():
        weight = (V[:, sloppy] ** 2).sum(axis=1)
        for n, c in zip(names, weight, strict=True):
            shares[term_of(n)] = shares.get(term_of(n), 0.0) + float(c)
    return float(a.condition), int(sloppy.sum()), shares, lam


def prune_order(F: np.ndarray, rtol: float = SLOPPY_RTOL, protect: Sequence[int] = ()) -> list[int]:
    """Columns to drop, in order, until no eigenvalue of ``F`` (P, P) below ``rtol · λ_max`` is
    carried mostly by droppable columns.

    A sloppy eigenvector ``v`` is a near-null combination ``A v = Σ_j v_j a_j`` of the design
    columns; column ``j`` takes part in it by ``v_j² F_jj = ‖v_j a_j‖²`` (independent of the
    column's scale).  Each round takes the sloppiest eigenvector whose droppable columns hold at
    least half of that and drops the droppable column with the largest part (ties: the later
    column, so of two duplicated basis columns the first stays), then recomputes — a pivoted,
    rank-revealing pruning.  Columns in ``protect`` are never dropped, and a sloppy direction
    held mostly by them costs no droppable column.
    """
    F = np.asarray(F, dtype=float)
    if F.ndim != 2 or F.shape[0] != F.shape[1]:
        raise DataError(f"F must be a square matrix, got shape {F.shape}")
    keep = list(range(F.shape[0]))
    guard = {int(j) for j in protect}
    dropped: list[int] = []
    while len(keep) > 1:
        sub = F[np.ix_(keep, keep)]
        lam, V = np.linalg.eigh(0.5 * (sub + sub.T))
        free = np.array([j not in guard for j in keep])
        part = V**2 * np.clip(np.diag(sub), 0.0, None)[:, None]  # part[j, k]: column j in v_k
        total = np.maximum(part.sum(axis=0), 1e-300)
        sloppy = np.flatnonzero(lam < rtol * max(float(lam[-1]), 1e-300))
        # at least half (a tie, as a duplicate of a protected column, is rounding's to break)
        mostly_free = [k for k in sloppy if part[free, k].sum() >= (0.5 - 1e-9) * total[k]]
        if not mostly_free:
            break
        share = np.where(free, part[:, mostly_free[0]], -1.0)
        i = int(np.lexsort((-np.arange(len(keep)), -share))[0])  # largest part, then the later
        dropped.append(keep.pop(i))
    return dropped


def informative_columns(F: np.ndarray, k: int, protect: Sequence[int] = ()) -> list[int]:
    """The ``k`` columns of ``F`` (P, P) that carry the most information not already carried
    by ``protect`` and by each other: a pivoted Cholesky factorisation of the Jacobi-scaled
    ``F`` (so a column's scale does not count), the protected columns taken first, then each
    step the column with the largest conditional information left (the diagonal of the Schur
    complement, ``1 − R²`` of the column on those chosen).  Columns whose information is
    already spanned (< 1e-12 left) are never picked, so fewer than ``k`` may come back.

    Returns the picked columns (protected ones excluded), in the order they were picked.
    """
    F = np.asarray(F, dtype=float)
    if F.ndim != 2 or F.shape[0] != F.shape[1]:
        raise DataError(f"F must be a square matrix, got shape {F.shape}")
    d = np.sqrt(np.clip(np.diag(F), 0.0, None))
    live = d > 0
    C = np.zeros_like(F)
    C[np.ix_(live, live)] = F[np.ix_(live, live)] / np.outer(d[live], d[live])
    left = np.where(live, 1.0, 0.0)
    L = np.zeros((F.shape[0], 0))
    guard = [int(j) for j in protect]

    def take(j: int) -> None:
        nonlocal L, left
        col = (C[:, j] - L @ L[j]) / np.sqrt(left[j])
        L = np.column_stack([L, col])
        left = np.clip(left - col**2, 0.0, None)
        left[j] = 0.0

    for j in guard:
        if left[j] > 1e-12:
            take(j)
    left[guard] = 0.0
    picked: list[int] = []
    while len(picked) < k:
        j = int(np.argmax(left))
        if left[j] <= 1e-12:
            break
        take(j)
        picked.append(j)
    return picked


class DesignCache:
    """Design rows of each term on a fixed list of structures, computed once per term
    (kind, settings, elements): candidate models that share terms share their descriptor
    passes.  ``designs(model)`` assembles a set-up model's designs from its terms' rows.

    A sparsified quadratic SNAP term (``quadratic_columns``) is never computed on its own: its
    rows are the kept columns of the full term's rows (computed once), so candidates that
    differ only in the column subset cost no descriptor pass.  :meth:`fisher` builds the
    training FIM of a model from Gram blocks of term pairs, cached per pair and row weights,
    so that the FIM of the full quadratic SNAP is formed once per set of σ's."""

    def __init__(self, structures: Sequence[Atoms], threads: int = 1):
        self.structures = list(structures)
        self.threads = threads
        self._parts: dict[tuple, list] = {}
        self._matrices: dict[tuple, DesignMatrix] = {}
        self._blocks: dict[tuple, np.ndarray] = {}

    @staticmethod
    def _key(term) -> tuple:
        return (term.kind, repr(sorted(term.get_params().items())), tuple(term.elements))

    @staticmethod
    def _full(term):
        """(the term with every quadratic column, the kept column indices) of a sparsified
        SNAP term; None for any other term."""
        if term.kind != "snap" or getattr(term, "quadratic_columns", None) is None:
            return None
        full = type(term)(**{**term.get_params(), "quadratic_columns": None})
        full.setup(term.elements)
        blocks = np.arange(len(term.elements))[:, None] * term.n_full
        return full, (blocks + term.kept).ravel()

    def _term(self, term) -> list:
        from potforge.model.rows import StructureDesign, compute_designs
        from potforge.terms.base import Rows

        sub = self._full(term)
        if sub is not None:
            full, idx = sub
            return [
                StructureDesign(
                    Rows(d.rows.energy[idx], d.rows.forces[..., idx], d.rows.virial[:, idx]),
                    d.fixed,
                    d.volume,
                )
                for d in self._term(full)
            ]
        key = self._key(term)
        if key not in self._parts:
            self._parts[key] = compute_designs(
                [term], self.structures, progress=False, threads=self.threads
            )
        return self._parts[key]

    def designs(self, model: LinearPotential) -> list:
        """The :class:`~potforge.model.rows.StructureDesign` of every structure for ``model``
        (set up on these structures' elements)."""
        from potforge.model.rows import StructureDesign
        from potforge.terms.base import Rows, Values

        per_term = [self._term(t) for t in model.terms_]
        out = []
        for k, a in enumerate(self.structures):
            parts = [d[k] for d in per_term]
            n = len(a)
            fixed = Values(0.0, np.zeros((n, 3)), np.zeros(6))
            for p in parts:
                fixed = fixed + p.fixed
            rows = Rows.concat([p.rows for p in parts if p.rows.energy.size], n)
            out.append(StructureDesign(rows, fixed, parts[0].volume if parts else np.nan))
        return out

    def _matrix(self, term) -> DesignMatrix:
        """The labelled rows of one (full) linear term on the structures (cached)."""
        from potforge.model.rows import assemble

        key = self._key(term)
        if key not in self._matrices:
            self._matrices[key] = assemble(self._term(term), self.structures)
        return self._matrices[key]

    def _bases(self, model: LinearPotential) -> list[tuple[Any, np.ndarray | None]]:
        """(full term, kept columns or None) of each linear term of ``model``."""
        out: list[tuple[Any, np.ndarray | None]] = []
        for t in model.terms_:
            if not t.fixed:
                sub = self._full(t)
                out.append((t, None) if sub is None else sub)
        return out

    def matrix(self, model: LinearPotential) -> DesignMatrix:
        """The labelled rows of ``model`` (as ``model.design``), from the cached rows of its
        terms; only for a model without fixed terms (their values would shift ``y``)."""
        if any(t.fixed for t in model.terms_):
            raise DataError("DesignCache.matrix: the model has fixed terms; use model.design")
        bases = self._bases(model)
        mats = [self._matrix(t) for t, _ in bases]
        pairs = zip(mats, bases, strict=True)
        A = np.hstack([m.A if k is None else m.A[:, k] for m, (_, k) in pairs])
        m0 = mats[0]
        return DesignMatrix(A, m0.y, m0.row_type, m0.structure, m0.groups, m0.n_atoms)

    def grams(
        self, model: LinearPotential, folds: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:func:`fold_grams` of ``model``'s labelled rows at its σ's and group weights (one
        fold when ``folds`` is None), from Gram blocks of term pairs cached per pair, row
        weights and folds (a sparsified SNAP term: the kept rows and columns of the full
        term's blocks).  ``c`` needs a model without fixed terms; with them it is NaN."""
        bases = self._bases(model)
        if not bases:
            return np.zeros((1, 0, 0)), np.zeros((1, 0))
        mats = [self._matrix(t) for t, _ in bases]
        m0 = mats[0]
        fold = np.zeros(len(self.structures), dtype=int) if folds is None else np.asarray(folds)
        row_fold = fold[m0.structure]
        K = int(fold.max()) + 1
        w = m0.weights(model.sigma, model.group_weights)
        wkey = (tuple(model.sigma), repr(sorted((model.group_weights or {}).items())),
                fold.tobytes())  # fmt: skip
        has_fixed = any(t.fixed for t in model.terms_)
        Gs, cs = [], []
        for i, (ti, ii) in enumerate(bases):
            row = []
            for j, (_, jj) in enumerate(bases):
                a, b = (i, j) if i <= j else (j, i)
                key = (self._key(bases[a][0]), self._key(bases[b][0]), wkey)
                if key not in self._blocks:
                    Aa, Ab = mats[a].A, mats[b].A
                    self._blocks[key] = np.stack([
                        (Aa[r] * w[r, None]).T @ Ab[r]
                        for r in (row_fold == k for k in range(K))
                    ])  # fmt: skip
                blk = self._blocks[key] if i <= j else self._blocks[key].transpose(0, 2, 1)
                if ii is not None:
                    blk = blk[:, ii]
                if jj is not None:
                    blk = blk[:, :, jj]
                row.append(blk)
            Gs.append(np.concatenate(row, axis=2))
            ckey = ("c", self._key(ti), wkey)
            if ckey not in self._blocks:
                Ai = mats[i].A
                self._blocks[ckey] = np.stack([
                    (Ai[r] * (w[r] * m0.y[r])[:, None]).sum(axis=0)
                    for r in (row_fold == k for k in range(K))
                ])  # fmt: skip
            c = self._blocks[ckey]
            cs.append(c if ii is None else c[:, ii])
        G, c = np.concatenate(Gs, axis=1), np.concatenate(cs, axis=1)
        return G, (np.full_like(c, np.nan) if has_fixed else c)

    def fisher(self, model: LinearPotential) -> np.ndarray:
        """``F = AᵀWA`` (P, P) of ``model``'s labelled training rows at its σ's and group
        weights, as :func:`training_fisher` gives it, from the cached blocks (:meth:`grams`)."""
        return self.grams(model)[0].sum(axis=0)


def property_errors(
    model: LinearPotential, element: str, reference: dict[str, dict[str, Any]]
) -> dict[str, dict[str, float]]:
    """Each reference QoI computed under the fitted model, with its error against the
    reference value (``{qoi: {"value", "reference", "error", "relative"}}``, QoI units)."""
    from potforge.properties.registry import compute_qoi, get_qoi, suite_for

    calc = model.as_calculator()
    suite = suite_for(calc, element)
    out = {}
    for name, ref in reference.items():
        qoi = get_qoi(name)
        unit = ref.get("unit", qoi.unit)
        if unit != qoi.unit:
            raise DataError(
                f"reference property {name}: unit {unit!r}, but potforge gives it in {qoi.unit}"
            )
        value = float(compute_qoi(name, calc, element, suite=suite))
        r = float(ref["value"])
        out[name] = {
            "value": value,
            "reference": r,
            "error": value - r,
            "relative": abs(value - r) / max(abs(r), 1e-300),
        }
    return out


def read_reference_properties(path) -> dict[str, dict[str, Any]]:
    """``--ref-properties`` JSON: ``{qoi: {"value": number, "unit": str, "source": str}}``."""
    import json
    from pathlib import Path

    from potforge.properties.registry import get_qoi

    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict) or not doc:
        raise DataError(f"{path}: expected an object {{qoi: {{value, unit, source}}}}")
    for name, entry in doc.items():
        get_qoi(name)  # unknown names: the closest valid one
        if not isinstance(entry, dict) or not isinstance(entry.get("value"), int | float):
            raise DataError(f"{path}: {name} needs a numeric 'value' (with 'unit' and 'source')")
    return doc


def score_of(ev: Evaluation, weights: ScoreWeights) -> float:
    """The multi-property score of an evaluation (see the module notes)."""
    s = weights.energy * ev.cv_energy_mae / weights.energy_scale
    s += weights.force * ev.cv_force_mae / weights.force_scale
    if ev.properties and weights.properties:
        rel = np.mean([p["relative"] for p in ev.properties.values()])
        s += weights.properties * float(rel) / weights.relative_scale
    return float(s)


def evaluate(
    model: LinearPotential | str,
    structures: Sequence[Atoms],
    *,
    n_folds: int = 5,
    seed: int = 0,
    weights: ScoreWeights | None = None,
    element: str | None = None,
    reference: dict[str, dict[str, Any]] | None = None,
    sloppy_rtol: float = SLOPPY_RTOL,
    cache: DesignCache | None = None,
    folds: np.ndarray | None = None,
) -> Evaluation:
    """Evaluate a model on training data: FIM, grouped CV errors, property errors, score.

    Parameters
    ----------
    model : LinearPotential or str
        Template (unfitted) or a spec; its σ's and group weights are used.
    structures : sequence of ase.Atoms
        Labelled training structures (never the test set).
    n_folds, seed
        Cross-validation folds and their seed.
    weights : ScoreWeights, optional
    element : str, optional
        For the property errors (single-element models).
    reference : dict, optional
        Reference property values (:func:`read_reference_properties`).
    sloppy_rtol : float
    cache : DesignCache, optional
        Per-term design rows of ``structures`` shared between evaluations.
    folds : ndarray of int, shape (S,), optional
        Fold of each structure (default :func:`potforge.model.cv.cv_folds`; the search uses
        :func:`potforge.model.cv.block_folds`).
    """
    from sklearn.base import clone

    weights = weights or ScoreWeights()
    template = LinearPotential(model) if isinstance(model, str) else clone(model)
    prepared = template.setup(structures)
    if cache is not None and len(cache.structures) != len(structures):
        raise DataError("the design cache holds other structures")

    def get_designs() -> list:
        if cache is not None:
            return cache.designs(prepared)
        return prepared.structure_designs(structures, progress=False)

    lazy = cache is not None and prepared.loss == "squared"
    lazy = lazy and not any(t.fixed for t in prepared.terms_)
    designs = None if lazy else get_designs()  # the cached path needs no per-structure rows
    if reference and element is None:
        raise DataError("property errors need the element (element=...)")
    if prepared.loss == "squared":  # one pass over the rows: every fold and the FIM
        if folds is None:
            folds = cv_folds(structures, n_folds, seed)
        if cache is not None and not any(t.fixed for t in prepared.terms_):
            dm = cache.matrix(prepared)  # cached rows and Gram blocks of the terms
            grams = cache.grams(prepared, folds)
        else:
            dm = prepared.design(structures, designs=designs)
            grams = fold_grams(dm, dm.weights(prepared.sigma, prepared.group_weights), folds)
        w = dm.weights(prepared.sigma, prepared.group_weights)
        cv_e, cv_f = gram_cv(dm, w, folds, prepared.alpha, grams)
        F = grams[0].sum(axis=0)
    else:
        cv = cv_score(prepared, structures, n_folds=n_folds, random_state=seed, designs=designs,
                      progress=False, folds=folds)  # fmt: skip
        cv_e, cv_f = float(cv.cv_energy_mae), float(cv.cv_force_mae)
        F = training_fisher(prepared, structures, designs)
    cond, n_sloppy, shares, lam = sloppy_summary(F, prepared.param_names, sloppy_rtol)
    props = {}
    if reference:
        assert element is not None
        fitted = prepared.with_terms()
        fitted.fit(structures, designs=designs if designs is not None else get_designs())
        props = property_errors(fitted, element, reference)
    spec = template.terms if isinstance(template.terms, str) else "+".join(
        t.kind for t in template.terms
    )  # fmt: skip
    ev = Evaluation(
        spec=str(spec),
        n_params=int(prepared.n_params),
        cv_energy_mae=cv_e,
        cv_force_mae=cv_f,
        condition=cond,
        n_sloppy=n_sloppy,
        sloppy_terms=shares,
        properties=props,
        eigenvalues=[float(x) for x in lam],
    )
    ev.score = score_of(ev, weights)
    return ev


__all__ = [
    "DesignCache",
    "Evaluation",
    "SLOPPY_RTOL",
    "ScoreWeights",
    "evaluate",
    "fold_grams",
    "gram_cv",
    "informative_columns",
    "property_errors",
    "prune_order",
    "read_reference_properties",
    "ridge_solve_gram",
    "score_of",
    "sloppy_summary",
    "training_fisher",
]
