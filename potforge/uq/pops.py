"""POPS — pointwise-optimal parameter sets — on a weighted design matrix, in memory or streamed.

Swinburne & Perez, Mach. Learn.: Sci. Technol. 6, 015008 (2025). For the weighted ridge fit
``θ̄ = (AᵀWA + αI)⁻¹ AᵀWy`` and ``Ainv = (AᵀWA + αI)⁻¹``, each training row ``n`` gives

* residual ``e_n = y_n − x_n·θ̄`` (label units),
* leverage ``h_n = w_n x_nᵀ Ainv x_n`` (dimensionless, the whitened hat-matrix diagonal),
* the pointwise-optimal correction
  ``δθ_n = (e_n / h_n) w_n Ainv x_n = e_n Ainv x_n / (x_nᵀ Ainv x_n)`` — the smallest
  change in the ``AᵀWA + αI`` metric that fits row ``n`` exactly, so
  ``x_n·(θ̄ + δθ_n) = y_n``. The row weight cancels: it sets the fit and the leverage, not the
  direction of the correction.

The posterior over ``θ − θ̄`` is the ensemble ``{δθ_n}`` or a box over its principal components
(:mod:`potforge.uq.posteriors`). Everything runs over chunks of rows with O(P²) memory (plus the
K ensemble members kept): pass 1 accumulates ``AᵀWA, AᵀWy`` per row type, pass 2 forms the
corrections and accumulates their moments and a bounded random subsample, pass 3 (hypercube only)
takes the min/max of their projections (or, with ``percentile_clipping``, their percentiles, which
needs the projections in memory). The leverage / residual percentile filters and ``max_members``
keep O(n_rows) scalars and take one pass more (:mod:`potforge.uq._passes`, the one engine). The
in-memory functions are the one-chunk case; a fitted model's posterior
(:func:`potforge.uq.centred.fit_centred_posterior`) is this engine about the model's ``coef_``
(``solution=``).

Rows with ``h_n ≤ leverage_threshold`` (e.g. all-zero rows, zero-weight rows) have no usable
correction: they are excluded and counted, never turned into NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from potforge.errors import DataError, ModelError
from potforge.linalg import NormalEquations, RidgeSolution, check_rows, solve_ridge
from potforge.uq._base import UQRegressor
from potforge.uq._passes import POOLED, PopsPasses, PopsResult, PopsRows, corrections_block
from potforge.uq.posteriors import EnsemblePosterior, check_percentile_clipping

__all__ = [
    "POOLED",
    "POPSRegressor",
    "PopsResult",
    "PopsRows",
    "fit_pops",
    "fit_pops_streaming",
    "pops_corrections",
    "ridge_fit",
]
Chunks = Iterable[tuple] | Callable[[], Iterable[tuple]]


def pops_corrections(
    A: np.ndarray,
    y: np.ndarray,
    solution: RidgeSolution,
    weights: np.ndarray | None = None,
    leverage_threshold: float = 1e-12,
) -> PopsRows:
    """Residuals, leverages and pointwise-optimal corrections of rows ``A`` for a ridge solution.

    Parameters
    ----------
    A : ndarray, shape (n, P)
    y : ndarray, shape (n,)
    solution : RidgeSolution
        From :func:`ridge_fit` (or :func:`potforge.linalg.solve_ridge`).
    weights : ndarray, shape (n,), optional
        Row weights (ones when omitted), as used in the fit.
    leverage_threshold : float
        Rows with ``h_n`` at or below it are excluded (``keep`` False, correction zero).
    """
    A, y, w, _ = check_rows(A, y, weights, n_features=solution.coef.size)
    return corrections_block(A, y, w, solution, leverage_threshold)


def ridge_fit(
    A: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
    alpha: float = 0.0,
    column_names: Sequence[str] | None = None,
) -> RidgeSolution:
    """Weighted ridge fit ``θ̄ = (AᵀWA + αI)⁻¹ AᵀWy``; ModelError names unidentifiable columns."""
    A, y, w, t = check_rows(A, y, weights)
    neq = NormalEquations(A.shape[1])
    neq.update(A, y, w, np.zeros_like(t))
    return solve_ridge(*neq.combined(), alpha=alpha, column_names=column_names)


def fit_pops(
    A: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
    row_type: np.ndarray | None = None,
    *,
    chunk_size: int | None = None,
    **options,
) -> PopsResult:
    """In-memory POPS: :func:`fit_pops_streaming` over row chunks of ``A`` (all rows by default).

    Parameters
    ----------
    A, y, weights, row_type
        See :mod:`potforge.linalg` for shapes and units.
    chunk_size : int, optional
        Rows per chunk; ``None`` processes all rows at once.
    **options
        Passed to :func:`fit_pops_streaming`; ``keep_row_diagnostics`` defaults to True here.
    """
    A, y, w, t = check_rows(A, y, weights, row_type)
    step = A.shape[0] if chunk_size is None else int(chunk_size)
    if step < 1:
        raise DataError(f"chunk_size must be a positive integer, got {chunk_size}.")

    def chunks() -> Iterator[tuple]:
        for s in range(0, A.shape[0], step):
            yield A[s : s + step], y[s : s + step], w[s : s + step], t[s : s + step]

    options.setdefault("keep_row_diagnostics", True)
    options.setdefault("cache_bytes", 2**28)
    return fit_pops_streaming(chunks, _validated=True, **options)


def fit_pops_streaming(
    chunks: Chunks,
    *,
    alpha: float = 0.0,
    posterior: str = "ensemble",
    n_samples: int | None = None,
    max_members: int | None = None,
    leverage_threshold: float = 1e-12,
    leverage_percentile: float = 0.0,
    residual_percentile: float = 100.0,
    whiten_by_type: bool = False,
    per_type: bool = False,
    variance_fraction: float = 1.0,
    mode_threshold: float = 1e-8,
    center: bool = False,
    percentile_clipping: float = 0.0,
    random_state: int | np.random.Generator | None = None,
    column_names: Sequence[str] | None = None,
    keep_row_diagnostics: bool = False,
    progress: bool = False,
    cache_bytes: int | None = 0,
    solution: RidgeSolution | None = None,
    _validated: bool = False,
) -> PopsResult:
    """POPS over row chunks in O(P²) memory (plus ``n_samples`` ensemble members).

    Parameters
    ----------
    chunks : re-iterable of tuples, or callable returning a fresh iterable
        Each chunk is ``(A, y[, weights[, row_type]])`` with shapes ``(n_c, P)``, ``(n_c,)``...
        It is traversed two (ensemble) or three (hypercube) times, so a one-shot generator is
        refused; pass a list or a function that re-opens the data.
    alpha : float
        Ridge strength added to ``AᵀWA``; 0 raises ModelError on rank-deficient designs.
    posterior : {"ensemble", "hypercube"}
    n_samples : int, optional
        Ensemble: keep a uniform random subsample of this many corrections (all when None),
        streamed (one uniform key per row, so the subsample does not depend on the chunking).
    max_members : int, optional
        Ensemble: keep a uniform random subsample of this many of the used corrections, drawn as
        ``sort(rng.choice(N, max_members, replace=False))`` once their number N is known (a
        fitted model's rule, :func:`~potforge.uq.centred.fit_centred_posterior`, so a saved
        seed keeps its members); one pass more than ``n_samples``, with which it cannot be
        combined. Refused with the hypercube (a box over all corrections).
    leverage_threshold : float
        Rows with ``h_n ≤ leverage_threshold`` are excluded and counted.
    leverage_percentile : float
        Also drop the corrections of rows whose leverage is below this percentile (in [0, 100))
        of the usable rows' leverages — popsregression's filter (its default is 50): low-leverage
        rows give the largest corrections ``e_n/h_n``, so this narrows the bounds, but dropped
        rows are no longer guaranteed to lie inside their own bounds. 0 (default) keeps all.
    residual_percentile : float
        Also drop the corrections of rows whose whitened residual ``√w_n |e_n|`` lies above this
        percentile (in (0, 100]) of the usable rows' — a filter against outlying labels. 100
        (default) keeps all. Either filter keeps the usable rows' leverages and residuals,
        O(n_rows) floats, in memory and takes one pass more.
    whiten_by_type : bool
        Rescale each row type's weights so all types have the same weighted mean squared
        residual (iterated to self-consistency on the accumulated moments, no extra pass).
    per_type : bool
        Also build one posterior per row type, from that type's corrections only.
    variance_fraction, mode_threshold : float
        Hypercube component selection (see :func:`~potforge.uq.posteriors.select_components`).
    center : bool
        Hypercube PCA about the mean correction (False: about θ̄, as popsregression).
    percentile_clipping : float
        Hypercube: each axis spans the ``[c, 100 − c]`` percentiles of the projected corrections
        instead of their min/max (popsregression's option, in [0, 50)). The box then no longer
        contains every correction, so training rows are no longer guaranteed inside their
        bounds; it keeps the projections, (n_rows, k) floats, in memory during pass 3.
    random_state : int or Generator, optional
        Drives the ensemble subsample (one uniform key per row, in row order).
    column_names : sequence of str, optional
        Names for the rank-deficiency message.
    keep_row_diagnostics : bool
        Keep per-row residuals, leverages and the keep mask (O(n_rows) memory).
    progress : bool
        Show tqdm bars over the chunks.
    cache_bytes : int or None
        Keep pass-2 corrections in memory up to this many bytes (None: no limit) so the later
        passes (hypercube box, filters, ``max_members``) need not recompute them (they re-read
        the chunks once the cache would exceed it). 0 here (true O(P²) streaming);
        :func:`fit_pops` uses 256 MiB since its rows are in memory anyway.
    solution : RidgeSolution, optional
        Take the corrections about this fit instead of the ridge fit of the chunks: its ``coef``
        is the centre (e.g. a fitted model's parameters), its factor and inverse the metric
        ``(AᵀWA + αI)⁻¹`` (:func:`potforge.linalg.solve_ridge`). Skips pass 1; ``alpha`` and
        ``whiten_by_type`` do not apply.
    """
    check_pops_options(
        posterior,
        n_samples,
        percentile_clipping,
        max_members=max_members,
        leverage_percentile=leverage_percentile,
        residual_percentile=residual_percentile,
    )
    if solution is not None and whiten_by_type:
        raise ModelError(
            "whiten_by_type refits the row-type weights, so it cannot keep a given solution "
            "(fit without solution=, or without whiten_by_type)."
        )
    cfg = dict(
        alpha=alpha,
        posterior=posterior,
        n_samples=n_samples,
        max_members=None if max_members is None else int(max_members),
        threshold=leverage_threshold,
        leverage_percentile=float(leverage_percentile),
        residual_percentile=float(residual_percentile),
        whiten=whiten_by_type,
        per_type=per_type,
        fraction=variance_fraction,
        mode_threshold=mode_threshold,
        center=center,
        names=column_names,
        clip=float(percentile_clipping),
        keep_diag=keep_row_diagnostics,
        progress=progress,
        cache_bytes=cache_bytes,
        solution=solution,
    )
    rng = np.random.default_rng(random_state)
    return PopsPasses(cfg, _reopener(chunks), rng, validate=not _validated).run()


def check_pops_options(
    posterior: str,
    n_samples: int | None,
    clip: float,
    *,
    max_members: int | None = None,
    leverage_percentile: float = 0.0,
    residual_percentile: float = 100.0,
) -> None:
    """Raise :class:`ModelError` for an unknown posterior form, a non-positive ``n_samples`` or
    ``max_members`` (or both given), ``max_members`` with the hypercube, a
    ``percentile_clipping`` outside [0, 50) or given without the hypercube, or a percentile
    filter out of its range."""
    if posterior not in ("ensemble", "hypercube"):
        raise ModelError(f"posterior must be 'ensemble' or 'hypercube', got {posterior!r}.")
    if check_percentile_clipping(clip) > 0 and posterior != "hypercube":
        raise ModelError(
            f"percentile_clipping={clip} trims the axes of the hypercube posterior; the "
            f"{posterior!r} posterior has no box to clip (use posterior='hypercube')."
        )
    if n_samples is not None and int(n_samples) < 1:
        raise ModelError(f"n_samples must be a positive integer or None, got {n_samples}.")
    if max_members is not None:
        if posterior == "hypercube":
            raise ModelError(
                f"max_members={max_members} subsamples the ensemble posterior; the hypercube "
                "is a box over all corrections (use posterior='ensemble')."
            )
        if int(max_members) < 1:
            raise ModelError(f"max_members must be a positive integer, got {max_members}.")
        if n_samples is not None:
            raise ModelError(
                f"n_samples={n_samples} and max_members={max_members} are two rules for the "
                "same subsample; give one."
            )
    lev_p, res_p = float(leverage_percentile), float(residual_percentile)
    if not 0.0 <= lev_p < 100.0:
        raise ModelError(f"leverage_percentile must lie in [0, 100), got {lev_p}.")
    if not 0.0 < res_p <= 100.0:
        raise ModelError(f"residual_percentile must lie in (0, 100], got {res_p}.")


def _reopener(chunks: Chunks) -> Callable[[], Iterable[tuple]]:
    if callable(chunks):
        return chunks
    if iter(chunks) is chunks:
        raise DataError(
            "chunks is a one-shot iterator but POPS needs 2-3 passes; pass a list of chunks "
            "or a function that returns a fresh iterator."
        )
    return lambda: chunks


class POPSRegressor(UQRegressor):
    """Misspecification-aware linear regression (POPS) with exact prediction bounds.

    Parameters
    ----------
    alpha : float, default 0.0
        Ridge strength on ``AᵀWA``; with 0 a rank-deficient design raises ModelError naming the
        unidentifiable columns.
    posterior : {"ensemble", "hypercube"}, default "ensemble"
    n_samples : int, optional
        Ensemble members kept (random subsample of the corrections); all when None.
    leverage_threshold : float, default 1e-12
        Rows with leverage at or below it are excluded (``n_excluded_``).
    leverage_percentile : float, default 0.0
        Drop the corrections of rows below this percentile of the usable leverages
        (popsregression's ``leverage_percentile``; see :func:`fit_pops_streaming`).
    residual_percentile : float, default 100.0
        Drop the corrections of rows whose whitened residual lies above this percentile.
    whiten_by_type, per_type : bool, default False
        Equalise the weighted MSE of the row types; build one posterior per row type too.
    variance_fraction, mode_threshold, center, percentile_clipping
        Hypercube settings (see :func:`fit_pops_streaming`).
    chunk_size : int, optional
        Rows per chunk in ``fit`` (bounds the O(chunk × P) work arrays).
    random_state : int, optional
    column_names : sequence of str, optional
        Column names used in error messages.
    progress : bool, default False

    Attributes
    ----------
    coef_ : ndarray, shape (P,)
        Base fit θ̄.
    posterior_ : EnsemblePosterior or HypercubePosterior
        The pooled posterior over ``θ − θ̄``; ``posteriors_`` holds the per-type ones too.
    corrections_ : ndarray, shape (K, P)
        Ensemble members (ensemble posterior only); ``member_rows_`` their training rows.
    components_, box_low_, box_high_ : ndarray
        Hypercube directions (P, k) and box (k,) (hypercube posterior only).
    misspecification_cov_ : ndarray, shape (P, P)
        Second moment of all corrections about θ̄.
    residuals_, leverages_ : ndarray, shape (n_rows,)
    n_excluded_, type_scales_, n_features_in_, result_ (the :class:`PopsResult`)

    Notes
    -----
    ``predict(..., return_std=True)`` gives the RMS of ``x·δθ`` over the posterior (no
    epistemic/noise term, unlike popsregression which adds BayesianRidge's ``sigma_``); bounds are
    exact extremes over the posterior, so each training row used lies inside its own bounds
    (unless ``percentile_clipping`` trims the hypercube).
    """

    def __init__(
        self,
        *,
        alpha: float = 0.0,
        posterior: str = "ensemble",
        n_samples: int | None = None,
        leverage_threshold: float = 1e-12,
        leverage_percentile: float = 0.0,
        residual_percentile: float = 100.0,
        whiten_by_type: bool = False,
        per_type: bool = False,
        variance_fraction: float = 1.0,
        mode_threshold: float = 1e-8,
        center: bool = False,
        percentile_clipping: float = 0.0,
        chunk_size: int | None = None,
        random_state: int | None = None,
        column_names: Sequence[str] | None = None,
        progress: bool = False,
    ) -> None:
        self.alpha = alpha
        self.posterior = posterior
        self.n_samples = n_samples
        self.leverage_threshold = leverage_threshold
        self.leverage_percentile = leverage_percentile
        self.residual_percentile = residual_percentile
        self.whiten_by_type = whiten_by_type
        self.per_type = per_type
        self.variance_fraction = variance_fraction
        self.mode_threshold = mode_threshold
        self.center = center
        self.percentile_clipping = percentile_clipping
        self.chunk_size = chunk_size
        self.random_state = random_state
        self.column_names = column_names
        self.progress = progress

    def _options(self) -> dict:
        names = (
            "alpha",
            "posterior",
            "n_samples",
            "leverage_threshold",
            "leverage_percentile",
            "residual_percentile",
            "whiten_by_type",
            "per_type",
            "variance_fraction",
            "mode_threshold",
            "center",
            "percentile_clipping",
            "random_state",
            "column_names",
            "progress",
        )
        return {k: getattr(self, k) for k in names}

    def fit(self, X, y, sample_weight=None, row_type=None) -> POPSRegressor:
        """Fit on design rows ``X`` (n, P), labels ``y`` (n,), weights (n,), row types (n,)."""
        res = fit_pops(X, y, sample_weight, row_type, chunk_size=self.chunk_size, **self._options())
        return self._set_result(res)

    def fit_chunks(self, chunks: Chunks) -> POPSRegressor:
        """Streaming fit over re-iterable chunks ``(A, y[, weights[, row_type]])``."""
        return self._set_result(fit_pops_streaming(chunks, **self._options()))

    def _set_result(self, res: PopsResult) -> POPSRegressor:
        self.result_ = res
        self.coef_ = res.solution.coef
        self.n_features_in_ = self.coef_.size
        self.posteriors_ = res.posteriors
        self.posterior_ = res.posteriors[POOLED]
        self.residuals_, self.leverages_ = res.residuals, res.leverages
        self.n_excluded_, self.type_scales_ = res.n_excluded, res.type_scales
        post = self.posterior_
        if isinstance(post, EnsemblePosterior):
            self.corrections_, self.member_rows_ = post.members, post.member_rows
        else:
            self.components_, self.box_low_, self.box_high_ = post.components, post.low, post.high
        return self

    @property
    def misspecification_cov_(self) -> np.ndarray:
        """Second moment ``(1/N) Σ δθ_n δθ_nᵀ`` of the pooled corrections, shape (P, P)."""
        self._check_fitted()
        moment = self.posterior_.second_moment
        if moment is None:
            raise ModelError("this POPS posterior kept no second moment of its corrections")
        return moment

    def _post(self, row_type: int | None):
        if row_type is None:
            return self.posterior_
        if int(row_type) not in self.posteriors_:
            raise ModelError(
                f"no posterior for row_type {row_type}: fit with per_type=True "
                f"(have {sorted(k for k in self.posteriors_ if k != POOLED)})."
            )
        return self.posteriors_[int(row_type)]

    def predict(self, X, return_std=False, return_bounds=False, row_type=None, **kw: Any):
        """Mean ``X @ coef_`` (m,), optional RMS std (m,) and exact ``(lower, upper)`` (m,).

        ``row_type`` (an int) selects that row type's posterior (``per_type=True`` fits).
        """
        return super().predict(X, return_std, return_bounds, row_type=row_type)

    def _std(self, X, row_type=None, **kw: Any):
        return self._post(row_type).std(X)

    def _bounds(self, X, row_type=None, **kw: Any):
        return self._post(row_type).bounds(X)

    def _summary(self, X, row_type=None, **kw: Any):
        return self._post(row_type).summary(X)

    def _sample_deltas(self, n, rng, row_type=None, **kw: Any):
        return self._post(row_type).sample(n, rng)
