"""A UQ posterior over ``θ − θ₀`` centred on a given parameter vector ``θ₀`` (a fitted model's
``coef_``), for weighted design rows — array in, array out.

The fitted model minimised ``Σ_n w_n (y_n − x_n·θ)² + α |S θ|²`` with ``S = diag(s)``,
``s_j = sqrt(Σ_n w_n A_nj²)`` (:func:`potforge.model.fitting.weighted_lstsq`). Everything here
works in the same column-normalised coordinates ``φ = S θ`` (rows ``x̃ = x / s``), so the ridge
is the scalar ``α`` of the fit and the conditioning is that of the fit.

* ``"pops"`` — POPS corrections about ``θ₀`` itself: residual ``e_n = y_n − x_n·θ₀``,
  ``H = X̃ᵀWX̃ + αI``, ``δφ_n = e_n H⁻¹x̃_n / (x̃_nᵀH⁻¹x̃_n)``, so ``x_n·(θ₀ + δθ_n) = y_n``
  exactly: every training row with non-zero leverage lies inside its own bounds. Posterior: the
  ensemble ``{δθ_n}`` or a box over its principal components (hypercube). Computed by the one
  POPS engine (:func:`potforge.uq.fit_pops` given the fit's metric and centre, ``solution=``),
  the same that :class:`~potforge.uq.POPSRegressor` and streamed fits use.
* ``"bayes"`` — the parameter covariance of evidence-maximised Bayesian linear regression
  (optionally temperature-inflated), bounds ``± n_sigma·std``.
* ``"bootstrap"`` — deviations ``θ_k − θ̄`` of bootstrap refits from the all-rows refit.

Bounds are for ``G·θ`` over the posterior **with the zero deviation included** (``θ₀`` itself
belongs to it), so ``G·θ₀`` always lies inside ``[lower, upper]``.
"""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from potforge.errors import DataError, ModelError
from potforge.linalg import ROW_TYPE_NAMES as ROW_TYPE_NAMES  # the one vocabulary, re-exported
from potforge.linalg import RidgeSolution, check_rows, column_list, row_type_name, solve_ridge
from potforge.options import POSTERIOR_METHODS
from potforge.uq.pops import POOLED, check_pops_options, fit_pops
from potforge.uq.posteriors import EnsemblePosterior, HypercubePosterior

METHODS = POSTERIOR_METHODS
KINDS = ("ensemble", "hypercube", "gaussian")
_ARRAYS = {
    "ensemble": ("members",),
    "hypercube": ("components", "low", "high", "offset"),
    "gaussian": ("covariance",),
}


@dataclass
class ParameterPosterior:
    """A posterior over parameter deviations ``δθ = θ − θ₀``, stored in normalised coordinates.

    Attributes
    ----------
    method : {"pops", "bayes", "bootstrap"}
    kind : {"ensemble", "hypercube", "gaussian"}
    scale : ndarray, shape (P,)
        Column scales ``s``: ``δθ = δφ / s``.
    arrays : dict of str to ndarray
        ``ensemble``: ``members`` (K, P) deviations ``δφ``; ``hypercube``: ``components`` (P, k)
        orthonormal, ``low``/``high`` (k,), ``offset`` (P,) — ``δφ = offset + V c``,
        ``low ≤ c ≤ high``; ``gaussian``: ``covariance`` (P, P) of ``δφ``.
    info : dict
        JSON-serialisable settings and diagnostics (``n_sigma`` for gaussian, row counts, ...).
    """

    method: str
    kind: str
    scale: np.ndarray
    arrays: dict[str, np.ndarray]
    info: dict = field(default_factory=dict)

    @property
    def n_params(self) -> int:
        """Number of parameters P the posterior is over."""
        return int(self.scale.size)

    def _normalised(self, G: np.ndarray) -> np.ndarray:
        G = np.asarray(G, dtype=float)
        if G.ndim == 1:
            G = G[None, :]
        if G.ndim != 2 or G.shape[1] != self.n_params:
            raise DataError(
                f"functional matrix G must have shape (M, {self.n_params}) (one column per "
                f"model parameter), got {G.shape}."
            )
        if not np.all(np.isfinite(G)):
            raise DataError("functional matrix G contains NaN or infinite entries.")
        return G / self.scale

    def summary(self, G: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(std, lower, upper)`` of ``G·δθ`` over the posterior, each of shape (M,).

        ``G`` (M, P) or (P,) in the model's parameter units. ``lower ≤ 0 ≤ upper`` (the zero
        deviation belongs to every posterior); ``std`` is the RMS of ``G·δθ`` about 0 (ensembles
        and boxes) or the Gaussian standard deviation.
        """
        Gs = self._normalised(G)
        if self.kind == "gaussian":
            std = np.sqrt(
                np.maximum(np.einsum("ij,jk,ik->i", Gs, self.arrays["covariance"], Gs), 0.0)
            )
            k = float(self.info.get("n_sigma", 2.0))
            lo, hi = -k * std, k * std
        else:
            std, lo, hi = self._pops_view().summary(Gs)
        return std, np.minimum(lo, 0.0), np.maximum(hi, 0.0)

    def extremes(self, G: np.ndarray, k: int = 1) -> np.ndarray:
        """Deviations ``δθ`` with the most extreme ``G·δθ``, shape (M, 2, k', P) (parameter
        units): ``[i, 0, 0]`` attains :meth:`summary`'s ``lower[i]`` and ``[i, 1, 0]`` its
        ``upper[i]`` (the zero deviation where a bound is clamped to it); ``[i, :, j]`` for
        j ≥ 1 the next-most-extreme members (ensembles, k' = min(k, K)) or corners (boxes, one
        component flipped); a Gaussian has a single extreme point per side (k' = 1)."""
        Gs = self._normalised(G)
        if self.kind == "gaussian":
            cov = self.arrays["covariance"]
            cg = Gs @ cov  # (M, P)
            std = np.sqrt(np.maximum(np.einsum("ij,ij->i", cg, Gs), 0.0))
            n_sigma = float(self.info.get("n_sigma", 2.0))
            unit = np.divide(cg, std[:, None], out=np.zeros_like(cg), where=std[:, None] > 0)
            ext = np.stack([-n_sigma * unit, n_sigma * unit], axis=1)[:, :, None, :]
        else:
            ext = self._pops_view().extremes(Gs, k)
        value = np.einsum("mp,mkp->mk", Gs, ext[:, :, 0])
        ext[:, 0, 0][value[:, 0] > 0] = 0.0
        ext[:, 1, 0][value[:, 1] < 0] = 0.0
        return ext / self.scale

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` deviations ``δθ`` from the posterior, shape (n, P) (parameter units)."""
        n = int(n)
        if n < 1:
            raise ModelError(f"number of samples must be a positive integer, got {n}.")
        if self.kind == "gaussian":
            lam, V = np.linalg.eigh(self.arrays["covariance"])
            d = (rng.standard_normal((n, lam.size)) * np.sqrt(np.clip(lam, 0.0, None))) @ V.T
        else:
            d = self._pops_view().sample(n, rng)
        return d / self.scale

    def _pops_view(self) -> EnsemblePosterior | HypercubePosterior:
        """The ensemble or box as the POPS posterior classes (one implementation of their
        bounds, spread and sampling), over normalised deviations ``δφ``."""
        a = self.arrays
        if self.kind == "ensemble":
            k = a["members"].shape[0]
            return EnsemblePosterior(a["members"], np.arange(k), k)
        n_used = int(self.info.get("n_used", 0))
        return HypercubePosterior(
            a["components"], a["low"], a["high"], a["offset"], None, None, n_used
        )

    # --- persistence ------------------------------------------------------------------------
    def meta(self) -> dict:
        """The JSON part (method, kind, info); the arrays go to :meth:`save_arrays`."""
        return {"method": self.method, "kind": self.kind, "info": self.info}

    def save_arrays(self, path: str | Path) -> None:
        """Write ``scale`` and the arrays to an ``.npz`` file (exact float64), atomically."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            arrays: dict[str, Any] = {"scale": self.scale, **self.arrays}
            np.savez(fh, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path, meta: dict) -> ParameterPosterior:
        """Read a posterior written by :meth:`save_arrays` with its :meth:`meta` entry."""
        path = Path(path)
        if not path.exists():
            raise DataError(f"{path}: no such file (model.json names a posterior stored there)")
        try:
            kind = meta["kind"]
            with np.load(path, allow_pickle=False) as z:
                scale = z["scale"]
                arrays = {k: z[k] for k in _ARRAYS[kind]}
            post = cls(str(meta["method"]), kind, scale, arrays, dict(meta.get("info", {})))
        except (KeyError, TypeError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(
                f"{path}: not a readable posterior file ({type(exc).__name__}: {exc}); fit it "
                "again with `potforge uq`"
            ) from exc
        return post


def fit_centred_posterior(
    A: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    row_type: np.ndarray,
    coef: np.ndarray,
    *,
    alpha: float = 0.0,
    method: str = "pops",
    column_names: Sequence[str] | None = None,
    posterior: str = "ensemble",
    max_members: int | None = None,
    leverage_threshold: float = 1e-12,
    leverage_percentile: float = 0.0,
    residual_percentile: float = 100.0,
    percentile_clipping: float = 0.0,
    temperature: str | float | None = None,
    n_sigma: float = 2.0,
    n_members: int = 20,
    random_state: int | None = None,
) -> ParameterPosterior:
    """Fit a posterior over ``θ − coef`` on weighted rows (see the module docstring).

    Parameters
    ----------
    A : ndarray, shape (n, P)
        Design rows (label units per parameter unit).
    y, weights, row_type : ndarray, shape (n,)
        Labels, row weights (1/label²) and row types (0 energy, 1 force, 2 stress).
    coef : ndarray, shape (P,)
        The centre ``θ₀`` (the fitted model's parameters).
    alpha : float
        Ridge strength of the fit on the column-normalised problem.
    method : {"pops", "bayes", "bootstrap"}
    column_names : sequence of str, optional
        Parameter names for error messages.
    posterior : {"ensemble", "hypercube"}
        POPS posterior form.
    max_members : int, optional
        POPS ensemble: keep a random subsample of this many corrections (all by default; only
        kept members are guaranteed to cover their own rows).
    leverage_threshold : float
        POPS: rows with leverage ``w_n x̃ᵀH⁻¹x̃`` at or below it are excluded (counted in info).
    leverage_percentile : float
        POPS: also drop the corrections of rows whose leverage is below this percentile (0-100)
        of the usable rows' leverages — popsregression's filter (its default is 50): low-leverage
        rows give the largest corrections ``e_n/h_n``, so this narrows the bounds, but dropped
        rows are no longer guaranteed to lie inside their own bounds. 0 (default) keeps all.
    residual_percentile : float
        POPS: also drop the corrections of rows whose whitened residual ``√w_n |e_n|`` lies above
        this percentile (0-100] of the usable rows' — a filter against outlying labels, whose
        corrections widen every bound; dropped rows are no longer guaranteed to lie inside their
        own bounds. 100 (default) keeps all.
    percentile_clipping : float
        POPS hypercube: each principal axis spans the ``[c, 100 − c]`` percentiles of the
        projected corrections instead of their min/max (popsregression's option, in [0, 50)):
        a much narrower box, no longer guaranteed to contain every training row's correction
        (nor, for large ``c``, the fitted parameters themselves).
    temperature : {"frederiksen"} or float, optional
        Bayes: inflate the BLR covariance (:class:`~potforge.uq.TemperedBayesRegressor`).
    n_sigma : float
        Bayes: bounds are ``± n_sigma·std``.
    n_members : int
        Bootstrap: number of refits.
    random_state : int, optional
        Subsample / bootstrap seed.
    """
    if method not in METHODS:
        raise ModelError(f"posterior method must be one of {', '.join(METHODS)}, got {method!r}.")
    A, y, w, t = check_rows(A, y, weights, row_type)
    P = A.shape[1]
    coef = np.asarray(coef, dtype=float)
    if coef.shape != (P,) or not np.all(np.isfinite(coef)):
        raise ModelError(f"coef must be {P} finite numbers, got shape {coef.shape}.")
    if A.shape[0] == 0 or not np.any(w > 0):
        raise DataError("the posterior needs training rows with positive weight; none were given.")
    names = list(column_names) if column_names is not None else [f"column {j}" for j in range(P)]
    scale = np.sqrt(np.einsum("ij,ij,i->j", A, A, w))
    dead = np.flatnonzero(scale == 0)
    if dead.size:
        shown = column_list(dead, names)
        block = [n.rsplit(".", 1)[0] for n in names]  # "pair[W-W].B0" → "pair[W-W]"
        live_blocks = {block[j] for j in np.flatnonzero(scale > 0)}
        whole = [j for j in dead if block[j] not in live_blocks]
        if alpha <= 0 or whole:  # a whole block (e.g. an element) without data: refuse
            raise ModelError(
                f"parameter(s) {shown} have no training data (their design columns are zero in "
                f"all {A.shape[0]} rows), so no posterior can be fitted for them; add data that "
                "uses them, drop those terms, or fit with a ridge alpha > 0."
            )
        # Single basis functions out of the data's range (a pair spline's shortest knot): the
        # ridge fixed them at 0 and no row can move them, so the posterior leaves them be.
        warnings.warn(
            f"parameter(s) {shown} have no training data (their design columns are zero): the "
            "posterior gives them no spread (a structure that uses them, e.g. atoms closer "
            "than any training pair, gets bounds that do not reflect them)",
            stacklevel=3,
        )
        scale[dead] = 1.0
    An = A / scale
    info: dict = {
        "n_rows": int(A.shape[0]),
        "n_params": int(P),
        "rows_by_type": {row_type_name(k): int((t == k).sum()) for k in np.unique(t)},
        "alpha": float(alpha),
    }
    if method == "pops":
        opts = dict(
            posterior=posterior,
            max_members=max_members,
            threshold=leverage_threshold,
            leverage_percentile=leverage_percentile,
            residual_percentile=residual_percentile,
            clip=percentile_clipping,
        )
        kind, arrays = _pops(An, y, w, t, coef * scale, alpha, names, opts, random_state, info)
    elif method == "bayes":
        from potforge.uq.bayes import BayesianLinearRegressor, TemperedBayesRegressor

        if not float(n_sigma) > 0:
            raise ModelError(f"n_sigma must be positive (bounds are ± n_sigma·std), got {n_sigma}.")

        est = (
            BayesianLinearRegressor(n_sigma=n_sigma, column_names=names)
            if temperature is None
            else TemperedBayesRegressor(
                temperature=temperature, n_sigma=n_sigma, column_names=names
            )
        )
        est.fit(An, y, w)
        kind, arrays = "gaussian", {"covariance": est.covariance_}
        info.update(
            n_sigma=float(n_sigma),
            prior_precision=est.prior_precision_,
            noise_precision=est.noise_precision_,
            temperature=float(getattr(est, "temperature_", 1.0)),
        )
    else:
        from potforge.uq.ensembles import ResampledEnsembleRegressor

        est = ResampledEnsembleRegressor(
            n_members=n_members, alpha=alpha, random_state=random_state, column_names=names
        )
        est.fit(An, y, w)
        kind, arrays = "ensemble", {"members": est.members_ - est.coef_}
        info.update(n_members=int(n_members))
    return ParameterPosterior(method, kind, scale, arrays, info)


def _pops(An, y, w, t, phi, alpha, names, opts, random_state, info):
    """POPS about ``φ₀ = S θ₀`` on the normalised rows: the one engine
    (:func:`potforge.uq.fit_pops`, the rows in memory as one chunk) given the fit's metric
    ``(X̃ᵀWX̃ + αI)⁻¹`` with ``φ₀`` as its centre."""
    posterior, clip = opts["posterior"], opts["clip"]
    check_pops_options(
        posterior,
        None,
        clip,
        max_members=opts["max_members"],
        leverage_percentile=opts["leverage_percentile"],
        residual_percentile=opts["residual_percentile"],
    )
    Xw = An * np.sqrt(w)[:, None]
    sol = solve_ridge(Xw.T @ Xw, An.T @ (w * y), alpha=alpha, column_names=names)
    del Xw
    res = fit_pops(
        An,
        y,
        w,
        t,
        posterior=posterior,
        max_members=opts["max_members"],
        leverage_threshold=opts["threshold"],
        leverage_percentile=opts["leverage_percentile"],
        residual_percentile=opts["residual_percentile"],
        percentile_clipping=clip,
        random_state=random_state,
        keep_row_diagnostics=False,
        cache_bytes=None,
        solution=RidgeSolution(phi, sol.chol, sol.alpha, sol.inverse),
    )
    lev_p, res_p = float(opts["leverage_percentile"]), float(opts["residual_percentile"])
    if lev_p > 0:
        info.update(leverage_percentile=lev_p, n_filtered=res.n_filtered)
    if res_p < 100:
        info.update(residual_percentile=res_p, n_filtered_residual=res.n_filtered_residual)
    info.update(
        posterior=posterior,
        n_used=res.n_used,
        n_excluded=res.n_excluded,
        n_excluded_with_residual=res.n_excluded_with_residual,
        leverage_threshold=float(opts["threshold"]),
        used_by_type={row_type_name(k): n for k, n in res.used_by_type.items()},
    )
    post = res.posteriors[POOLED]
    if isinstance(post, EnsemblePosterior):
        info["n_members"] = int(post.members.shape[0])
        return "ensemble", {"members": post.members}
    info.update(n_components=int(post.components.shape[1]), percentile_clipping=float(clip))
    return "hypercube", {
        "components": post.components,
        "low": post.low,
        "high": post.high,
        "offset": post.offset,
    }
