"""The passes of a POPS fit over a chunk source, and the per-row POPS algebra they share — the
one POPS engine (:class:`PopsPasses`) behind :func:`potforge.uq.fit_pops_streaming`,
:func:`~potforge.uq.fit_pops`, :class:`~potforge.uq.POPSRegressor` and a fitted model's posterior
(:func:`potforge.uq.centred.fit_centred_posterior`).

Pass 1 accumulates ``AᵀWA, AᵀWy`` per row type (skipped when the fit to correct is given);
pass 2 forms the corrections of each chunk and accumulates what the posterior needs (counts,
second moments when required, a bounded random subsample of members) — unless a leverage or
residual percentile filter or ``max_members`` needs every row's leverage, residual or the final
count first: then pass 2 only screens (O(n_rows) scalars) and a further pass accumulates the
selected rows. The hypercube's box takes one more pass. See :mod:`potforge.uq.pops` for the
public entry points.
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
        ``coef`` (P,) is θ̄ (or the given centre, when the fit was given a ``solution``).
    posteriors : dict[int, EnsemblePosterior | HypercubePosterior]
        Key ``POOLED`` (-1) always; one key per row type too when ``per_type`` was set.
    type_scales : dict[int, float]
        Weight multiplier applied to each row type (all 1.0 unless ``whiten_by_type``).
    n_rows, n_excluded : int
        Rows seen, and rows excluded for leverage at or below the threshold.
    residuals, leverages, keep : ndarray, shape (n_rows,) or None
        Per-row diagnostics, kept only when ``keep_row_diagnostics`` was set.
    settings : dict
        The options that shaped the posterior.
    n_excluded_with_residual : int
        Excluded rows (zero leverage) with a non-zero residual and a positive weight: rows no
        correction can move, that the posterior therefore cannot cover.
    n_filtered, n_filtered_residual : int
        Usable rows whose corrections ``leverage_percentile`` / ``residual_percentile`` dropped
        (each counted on its own; a row may fail both).
    used_by_type : dict[int, int]
        Rows whose corrections the pooled posterior summarises, per row type (types with none
        left out).
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
    n_excluded_with_residual: int = 0
    n_filtered: int = 0
    n_filtered_residual: int = 0
    used_by_type: dict[int, int] = field(default_factory=dict)

    @property
    def n_used(self) -> int:
        """Rows whose corrections the pooled posterior summarises."""
        return int(self.posteriors[POOLED].n_rows)


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
    """The passes of a POPS fit over a chunk source (see the module docstring).

    Pass 1 (skipped when a ``solution`` is given) accumulates the normal equations; pass 2 forms
    the corrections and, unless a filter or ``max_members`` needs every row's leverage or the
    final count first, accumulates the posteriors' moments and members; otherwise those are
    accumulated by a further pass over the selected rows. The hypercube's box takes one more
    pass. Later passes reuse pass 2's corrections while they fit in ``cache_bytes`` (``None``:
    no limit), else recompute them chunk by chunk (identically).
    """

    def __init__(self, cfg: dict, source: Callable, rng: np.random.Generator, validate: bool):
        self.cfg, self.source, self.rng, self.validate = cfg, source, rng, validate
        self.deferred = (
            cfg["max_members"] is not None
            or cfg["leverage_percentile"] > 0
            or cfg["residual_percentile"] < 100
        )
        keep_cache = self.deferred or cfg["posterior"] == "hypercube"
        self.cache: list[tuple[PopsRows, np.ndarray]] | None = [] if keep_cache else None
        self.cached_bytes = 0
        self.members: dict[int, np.ndarray | None] = {}  # max_members: rows kept per group

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
        """All passes over the chunks: the fit's normal equations, the corrections and the
        posterior(s)."""
        cfg = self.cfg
        if cfg["solution"] is None:
            neq = self._normal_equations()
            self.scales = _type_scales(neq, cfg["alpha"], cfg["names"]) if cfg["whiten"] else {}
            G, b = neq.combined(self.scales)
            self.sol = solve_ridge(G, b, alpha=cfg["alpha"], column_names=cfg["names"])
        else:
            self.sol, self.scales = cfg["solution"], {}
        self._start_accumulators()
        self._corrections_pass()
        if self.n_kept == 0:
            raise ModelError(
                f"none of the {self.n_rows} rows has leverage above {cfg['threshold']}: no row "
                "has leverage enough to give a correction (rows whose design is zero or whose "
                "weight is zero have none), so POPS has no corrections to use."
            )
        if self.deferred:
            self._select()
            self._start_accumulators()
            self._accumulate_pass()
        posts: dict[int, EnsemblePosterior | HypercubePosterior] = dict(
            self._ensembles() if cfg["posterior"] == "ensemble" else self._boxes_pass()
        )
        return PopsResult(
            solution=self.sol,
            posteriors=posts,
            type_scales={k: self.scales.get(k, 1.0) for k in sorted(self.types)},
            n_rows=self.n_rows,
            n_excluded=self.n_excluded,
            residuals=self.diag[0],
            leverages=self.diag[1],
            keep=self.diag[2],
            settings={
                k: cfg[k]
                for k in (
                    "alpha",
                    "posterior",
                    "n_samples",
                    "max_members",
                    "leverage_percentile",
                    "residual_percentile",
                    "clip",
                )
            },
            n_excluded_with_residual=self.n_excluded_with_residual,
            n_filtered=self.n_filtered,
            n_filtered_residual=self.n_filtered_residual,
            used_by_type={k: v for k, v in sorted(self.used_by_type.items()) if v},
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

    # --- accumulators -------------------------------------------------------------------------
    def _start_accumulators(self) -> None:
        self.moments: dict[int, MomentAccumulator] = {}
        self.samplers: dict[int, BottomKSampler] = {}
        self.counts: dict[int, int] = {}
        self.used_by_type: dict[int, int] = {}

    def _groups_of(self, t: np.ndarray) -> list[int]:
        """The posteriors a chunk with row types ``t`` feeds (started on first sight)."""
        groups = [POOLED] + ([int(k) for k in np.unique(t)] if self.cfg["per_type"] else [])
        P = self.sol.coef.size
        for g in groups:
            if g not in self.counts:
                self.moments[g] = MomentAccumulator(P)
                self.samplers[g] = BottomKSampler(self.cfg["n_samples"], P)
                self.counts[g] = 0
        return groups

    @property
    def groups(self) -> list[int]:
        """The pooled group, then every row type seen."""
        return [POOLED] + sorted(g for g in self.counts if g != POOLED)

    def _need_moments(self, g: int) -> bool:
        cfg = self.cfg
        return (
            cfg["posterior"] == "hypercube"
            or cfg["n_samples"] is not None
            or self.members.get(g) is not None
        )

    # --- pass 2: corrections (and, unless deferred, the posteriors' moments and members) ------
    def _corrections_pass(self) -> None:
        cfg = self.cfg
        diag: list[list[np.ndarray]] = [[], [], []]
        screen: list[list[np.ndarray]] = [[], [], [], []]  # keep, leverage, |r|√w, row type
        self.n_rows = self.n_excluded = self.n_excluded_with_residual = self.n_kept = 0
        self.types: set[int] = set()
        for A, y, w, t in self._chunks("POPS pass 2: corrections"):
            w_eff = _scaled(w, t, self.scales)
            rows = corrections_block(A, y, w_eff, self.sol, cfg["threshold"])
            if self.deferred:
                for lst, arr in zip(
                    screen,
                    (rows.keep, rows.leverages, np.sqrt(w_eff) * np.abs(rows.residuals), t),
                    strict=True,
                ):
                    lst.append(arr)
            else:
                self._accumulate(rows, rows.keep, t, self.n_rows)
            self._cache(rows, t)
            if cfg["keep_diag"]:
                for lst, arr in zip(diag, (rows.residuals, rows.leverages, rows.keep), strict=True):
                    lst.append(arr)
            self.types.update(int(k) for k in np.unique(t))
            self.n_rows += A.shape[0]
            self.n_kept += int(rows.keep.sum())
            self.n_excluded += int((~rows.keep).sum())
            self.n_excluded_with_residual += int(
                ((~rows.keep) & (np.abs(rows.residuals) > 0) & (w_eff > 0)).sum()
            )
        self.diag = [np.concatenate(d) if cfg["keep_diag"] else None for d in diag]
        self.screen = [np.concatenate(s) for s in screen] if self.deferred else []
        self.n_filtered = self.n_filtered_residual = 0

    def _accumulate(self, rows: PopsRows, use: np.ndarray, t: np.ndarray, start: int) -> None:
        """Add the corrections of the rows ``use`` (n,) of one chunk starting at row ``start``."""
        n = use.size
        sub = self.cfg["n_samples"] is not None
        keys = self.rng.random(n) if sub else np.zeros(n)
        index = np.arange(start, start + n)
        kinds, counts = np.unique(t[use], return_counts=True)
        for k, c in zip(kinds, counts, strict=True):
            self.used_by_type[int(k)] = self.used_by_type.get(int(k), 0) + int(c)
        for g in self._groups_of(t):
            m = _group_mask(use, t, g)
            C = _take(rows.corrections, m)
            self.counts[g] += C.shape[0]
            if self._need_moments(g):
                self.moments[g].update(C)
            if self.cfg["posterior"] == "ensemble":
                chosen = self.members.get(g)
                if chosen is not None:  # max_members: only the drawn rows become members
                    m = m & chosen[start : start + n]
                    C = _take(rows.corrections, m)
                self.samplers[g].update(_take(keys, m), _take(index, m), C)

    def _cache(self, rows: PopsRows, t: np.ndarray) -> None:
        if self.cache is None:
            return
        self.cached_bytes += rows.corrections.nbytes
        limit = self.cfg["cache_bytes"]
        if limit is not None and self.cached_bytes > limit:
            self.cache = None
        else:
            self.cache.append((rows, t))

    def _cached_or_recomputed(self, desc: str) -> Iterator[tuple[PopsRows, np.ndarray]]:
        if self.cache is not None:
            yield from self.cache
            return
        for A, y, w, t in self._chunks(desc):
            w_eff = _scaled(w, t, self.scales)
            yield corrections_block(A, y, w_eff, self.sol, self.cfg["threshold"]), t

    # --- filters and max_members: which rows' corrections the posteriors use --------------------
    def _select(self) -> None:
        cfg = self.cfg
        keep, lev, resid, t = self.screen
        lev_p, res_p = cfg["leverage_percentile"], cfg["residual_percentile"]
        ok = np.ones(int(keep.sum()), bool)
        if lev_p > 0:
            h = lev[keep]
            top = h >= np.percentile(h, lev_p)
            ok &= top
            self.n_filtered = int((~top).sum())
        if res_p < 100:
            r = resid[keep]
            small = r <= np.percentile(r, res_p)
            ok &= small
            self.n_filtered_residual = int((~small).sum())
        if not ok.any():
            raise ModelError(
                f"leverage_percentile={lev_p:g} and residual_percentile={res_p:g} together leave "
                "no correction: the rows with the largest leverages all have large residuals; "
                "relax one of the two filters."
            )
        self.use = keep.copy()
        self.use[keep] = ok
        k = cfg["max_members"]
        groups = [POOLED] + (sorted(self.types) if cfg["per_type"] else [])
        for g in groups:
            rows = np.flatnonzero(_group_mask(self.use, t, g))
            if cfg["posterior"] != "ensemble" or k is None or k >= rows.size or rows.size == 0:
                self.members[g] = None
                continue
            chosen = np.zeros(self.use.size, bool)
            chosen[rows[np.sort(self.rng.choice(rows.size, int(k), replace=False))]] = True
            self.members[g] = chosen
        self.screen = []

    def _accumulate_pass(self) -> None:
        start = 0
        for rows, t in self._cached_or_recomputed("POPS pass 3: selected corrections"):
            n = rows.keep.size
            self._accumulate(rows, self.use[start : start + n], t, start)
            start += n

    def _use_of(self, rows: PopsRows, start: int) -> np.ndarray:
        return self.use[start : start + rows.keep.size] if self.deferred else rows.keep

    # --- posteriors ---------------------------------------------------------------------------
    def _ensembles(self) -> dict[int, EnsemblePosterior]:
        out = {}
        for g in self.groups:
            if self.counts[g]:
                members, member_rows = self.samplers[g].result()
                moment = self.moments[g].second_moment() if self._need_moments(g) else None
                out[g] = EnsemblePosterior(members, member_rows, self.counts[g], moment)
        return out

    def _boxes_pass(self) -> dict[int, HypercubePosterior]:
        cfg, axes, boxes = self.cfg, {}, {}
        for g in self.groups:
            if self.counts[g]:
                evals, evecs, offset = self.moments[g].principal_axes(cfg["center"])
                k = select_components(evals, cfg["fraction"], cfg["mode_threshold"])
                axes[g], boxes[g] = evals, BoxAccumulator(evecs[:, :k], offset, cfg["clip"])
        start = 0
        desc = f"POPS pass {4 if self.deferred else 3}: hypercube"
        for rows, t in self._cached_or_recomputed(desc):
            use = self._use_of(rows, start)
            for g, box in boxes.items():
                box.update(_take(rows.corrections, _group_mask(use, t, g)))
            start += rows.keep.size
        return {
            g: HypercubePosterior(
                box.components,
                *box.bounds(),
                box.offset,
                axes[g],
                self.moments[g].second_moment(),
                self.counts[g],
            )
            for g, box in boxes.items()
        }
