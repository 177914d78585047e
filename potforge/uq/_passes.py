"""The passes of a POPS fit over a chunk source, and the per-row POPS algebra they share.

Pass 1 accumulates ``AᵀWA, AᵀWy`` per row type; pass 2 forms the corrections of each chunk and
accumulates what the posterior needs (counts, second moments when required, a bounded random
subsample of members); pass 3 (hypercube only) takes the min/max of the projections. See
:mod:`potforge.uq.pops` for the public entry points.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from potforge.errors import DataError, ModelError
from potforge.linalg import (
    NormalEquations,
    RidgeSolution,
    check_rows,
    solve_ridge,
    unpack_chunk,
)
from potforge.uq.posteriors import (
    BottomKSampler,
    BoxAccumulator,
    EnsemblePosterior,
    HypercubePosterior,
    MomentAccumulator,
    select_components,
)

POOLED = -1  # posterior key of the posterior built from every row type together


@dataclass(frozen=True)
class PopsRows:
    """Per-row POPS quantities of one block of rows.

    Attributes
    ----------
    corrections : ndarray, shape (n, P)
        ``δθ_n``; zero for excluded rows.
    residuals : ndarray, shape (n,)
        ``e_n = y_n − x_n·θ̄`` (label units).
    leverages : ndarray, shape (n,)
        ``h_n = w_n x_nᵀ Ainv x_n`` (dimensionless).
    keep : ndarray of bool, shape (n,)
        ``h_n > leverage_threshold``.
    """

    corrections: np.ndarray
    residuals: np.ndarray
    leverages: np.ndarray
    keep: np.ndarray


def corrections_block(A, y, w, solution: RidgeSolution, leverage_threshold: float) -> PopsRows:
    """``pops_corrections`` on validated rows: one GEMM ``A @ Ainv`` (2 n P² flops)."""
    C = A @ solution.inverse  # (n, P): row n is (Ainv x_n)ᵀ
    q = np.einsum("ij,ij->i", C, A)  # x_nᵀ Ainv x_n
    e = y - A @ solution.coef
    h = w * q
    keep = h > leverage_threshold
    C *= np.divide(e, q, out=np.zeros_like(e), where=keep)[:, None]
    return PopsRows(C, e, h, keep)


@dataclass
class PopsResult:
    """Everything a POPS fit produces.

    Attributes
    ----------
    solution : RidgeSolution
        ``coef`` (P,) is θ̄.
    posteriors : dict[int, EnsemblePosterior | HypercubePosterior]
        Key ``POOLED`` (-1) always; one key per row type too when ``per_type`` was set.
    type_scales : dict[int, float]
        Weight multiplier applied to each row type (all 1.0 unless ``whiten_by_type``).
    n_rows, n_excluded : int
        Rows seen, and rows excluded for leverage at or below the threshold.
    residuals, leverages, keep : ndarray, shape (n_rows,) or None
        Per-row diagnostics, kept only when ``keep_row_diagnostics`` was set.
    """

    solution: RidgeSolution
    posteriors: dict[int, EnsemblePosterior | HypercubePosterior]
    type_scales: dict[int, float]
    n_rows: int
    n_excluded: int
    residuals: np.ndarray | None = None
    leverages: np.ndarray | None = None
    keep: np.ndarray | None = None
    settings: dict = field(default_factory=dict)


def _type_scales(neq: NormalEquations, alpha: float, names, n_iter: int = 50) -> dict[int, float]:
    """Per-type weight scales ``s_t`` with equal weighted MSE across types (fixed point)."""
    scales = {k: 1.0 for k in neq.types}
    for _ in range(n_iter):
        sol = solve_ridge(*neq.combined(scales), alpha=alpha, column_names=names)
        mse = {k: neq.weighted_sse(sol.coef, k) / max(neq.sum_w[k], 1e-300) for k in neq.types}
        pooled = sum(neq.weighted_sse(sol.coef, k) for k in neq.types) / sum(neq.sum_w.values())
        new = {k: pooled / max(mse[k], 1e-12 * pooled, 1e-300) for k in neq.types}
        done = all(abs(new[k] - scales[k]) <= 1e-10 * scales[k] for k in neq.types)
        scales = new
        if done:
            break
    return scales


def _scaled(w: np.ndarray, t: np.ndarray, scales: dict[int, float]) -> np.ndarray:
    if not scales or all(v == 1.0 for v in scales.values()):
        return w
    lookup = np.ones(max(max(scales), int(t.max(initial=0))) + 1)
    for k, v in scales.items():
        lookup[k] = v
    return w * lookup[t]


def _group_mask(keep: np.ndarray, t: np.ndarray, group: int) -> np.ndarray:
    return keep if group == POOLED else keep & (t == group)


def _take(a: np.ndarray, m: np.ndarray) -> np.ndarray:
    return a if m.all() else a[m]


class PopsPasses:
    """The two or three passes of a POPS fit over a chunk source (see the module docstring)."""

    def __init__(self, cfg: dict, source: Callable, rng: np.random.Generator, validate: bool):
        self.cfg, self.source, self.rng, self.validate = cfg, source, rng, validate
        self.cache: list[tuple[np.ndarray, np.ndarray]] | None = []
        self.cached_bytes = 0

    def _chunks(self, desc: str) -> Iterator[tuple]:
        it = self.source()
        if self.cfg["progress"]:
            from tqdm.auto import tqdm

            it = tqdm(it, desc=desc, unit="chunk")
        for chunk in it:
            parts = unpack_chunk(chunk)
            if self.validate:
                yield check_rows(*parts)
            else:
                yield parts

    def run(self) -> PopsResult:
        cfg = self.cfg
        neq = self._normal_equations()
        self.scales = _type_scales(neq, cfg["alpha"], cfg["names"]) if cfg["whiten"] else {}
        G, b = neq.combined(self.scales)
        self.sol = solve_ridge(G, b, alpha=cfg["alpha"], column_names=cfg["names"])
        self.groups = [POOLED] + (neq.types if cfg["per_type"] else [])
        self._corrections_pass()
        if self.counts[POOLED] == 0:
            raise ModelError(
                f"no row has leverage above {cfg['threshold']}: POPS has no corrections to use."
            )
        posts = self._ensembles() if cfg["posterior"] == "ensemble" else self._boxes_pass()
        return PopsResult(
            solution=self.sol, posteriors=posts,
            type_scales={k: self.scales.get(k, 1.0) for k in neq.types},
            n_rows=self.n_rows, n_excluded=self.n_excluded,
            residuals=self.diag[0], leverages=self.diag[1], keep=self.diag[2],
            settings={k: cfg[k] for k in ("alpha", "posterior", "n_samples", "clip")},
        )

    def _normal_equations(self) -> NormalEquations:
        neq = None
        for A, y, w, t in self._chunks("POPS pass 1: AᵀWA"):
            if neq is None:
                neq = NormalEquations(A.shape[1])
            elif A.shape[1] != neq.n_features:
                raise DataError(
                    f"a chunk has {A.shape[1]} columns, the first had {neq.n_features}."
                )
            neq.update(A, y, w, t)
        if neq is None:
            raise DataError("no rows were given (the chunk iterable was empty).")
        return neq

    def _need_moments(self) -> bool:
        return self.cfg["posterior"] == "hypercube" or self.cfg["n_samples"] is not None

    def _corrections_pass(self) -> None:
        cfg, P = self.cfg, self.sol.coef.size
        self.moments = {g: MomentAccumulator(P) for g in self.groups}
        self.samplers = {g: BottomKSampler(cfg["n_samples"], P) for g in self.groups}
        self.counts = dict.fromkeys(self.groups, 0)
        diag: list[list[np.ndarray]] = [[], [], []]
        self.n_rows = self.n_excluded = 0
        for A, y, w, t in self._chunks("POPS pass 2: corrections"):
            rows = corrections_block(A, y, _scaled(w, t, self.scales), self.sol, cfg["threshold"])
            self._accumulate(rows, t)
            if cfg["keep_diag"]:
                for lst, arr in zip(diag, (rows.residuals, rows.leverages, rows.keep), strict=True):
                    lst.append(arr)
            self.n_rows += A.shape[0]
            self.n_excluded += int((~rows.keep).sum())
        self.diag = [np.concatenate(d) if cfg["keep_diag"] else None for d in diag]

    def _accumulate(self, rows: PopsRows, t: np.ndarray) -> None:
        n = rows.keep.size
        sub = self.cfg["n_samples"] is not None
        keys = self.rng.random(n) if sub else np.zeros(n)
        index = np.arange(self.n_rows, self.n_rows + n)
        for g in self.groups:
            m = _group_mask(rows.keep, t, g)
            C = _take(rows.corrections, m)
            self.counts[g] += C.shape[0]
            if self._need_moments():
                self.moments[g].update(C)
            if self.cfg["posterior"] == "ensemble":
                self.samplers[g].update(_take(keys, m), _take(index, m), C)
        self._cache(rows, t)

    def _cache(self, rows: PopsRows, t: np.ndarray) -> None:
        if self.cache is None or self.cfg["posterior"] != "hypercube":
            return
        self.cached_bytes += rows.corrections.nbytes
        if self.cached_bytes > self.cfg["cache_bytes"]:
            self.cache = None
        else:
            self.cache.append((rows, t))

    def _ensembles(self) -> dict[int, EnsemblePosterior]:
        out = {}
        for g in self.groups:
            if self.counts[g]:
                members, member_rows = self.samplers[g].result()
                moment = self.moments[g].second_moment() if self._need_moments() else None
                out[g] = EnsemblePosterior(members, member_rows, self.counts[g], moment)
        return out

    def _boxes_pass(self) -> dict[int, HypercubePosterior]:
        cfg, axes, boxes = self.cfg, {}, {}
        for g in self.groups:
            if self.counts[g]:
                evals, evecs, offset = self.moments[g].principal_axes(cfg["center"])
                k = select_components(evals, cfg["fraction"], cfg["mode_threshold"])
                axes[g], boxes[g] = evals, BoxAccumulator(evecs[:, :k], offset, cfg["clip"])
        for rows, t in self._cached_or_recomputed():
            for g, box in boxes.items():
                box.update(_take(rows.corrections, _group_mask(rows.keep, t, g)))
        return {
            g: HypercubePosterior(box.components, *box.bounds(), box.offset, axes[g],
                                  self.moments[g].second_moment(), self.counts[g])
            for g, box in boxes.items()
        }

    def _cached_or_recomputed(self) -> Iterator[tuple[PopsRows, np.ndarray]]:
        if self.cache is not None:
            yield from self.cache
            return
        for A, y, w, t in self._chunks("POPS pass 3: hypercube"):
            w_eff = _scaled(w, t, self.scales)
            yield corrections_block(A, y, w_eff, self.sol, self.cfg["threshold"]), t
