"""Post-hoc calibration of prediction uncertainties against held-out errors — arrays only.

Parameter precision is not accuracy when no θ fits all data (a misspecified model): a raw
Fisher σ or a POPS bound says how well the data pin θ down, not how far a prediction lies from
the truth. :class:`ConformalCalibrator` maps a raw uncertainty σ (a POPS half-width or std, a
Fisher σ) to a half-width that held-out errors respect, fitted on errors ``e`` that the model
did not see (a calibration split or out-of-fold residuals of the training data — never the
test set):

* ``method="conformal"`` (split-conformal): per group, the score ``s = |e| / sqrt(σ² + τ²)``
  and its ``⌈(n + 1)·coverage⌉``-th smallest value ``q`` (the finite-sample conformal quantile);
  the calibrated half-width is ``q·sqrt(σ² + τ²)``. With ``τ = 0`` this is plain normalised
  conformal prediction; ``floor=True`` chooses ``τ`` per group from a grid (``0``, multiples of
  the median σ, and ``∞`` — a constant band) as the one whose calibrated half-widths have the
  smallest median on the calibration data, since a raw σ that varies more than the errors do
  gives needlessly wide normalised bands.
* ``method="temperature"``: a Gaussian reading, ``T² = mean(e² / (σ² + τ²))`` and half-width
  ``z·T·sqrt(σ² + τ²)`` with ``z`` the two-sided normal quantile of ``coverage``.

:func:`fisher_std` gives the raw Fisher σ of predictions, ``sqrt(a F⁻¹ aᵀ)`` with
``F = AᵀWA`` of the training rows.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

import numpy as np
from scipy.linalg import cholesky, solve_triangular
from scipy.stats import norm

from potforge.errors import DataError, check_is_fitted

CALIBRATION_METHODS = ("conformal", "temperature")
FLOOR_GRID = (0.0, *np.logspace(-2.0, 2.0, 17).tolist(), math.inf)
"""Candidate floors ``τ / median(σ)`` of a group (``∞``: a constant band)."""


ZERO_SIGMA = 1e-9
"""Without a floor, rows with σ below this fraction of the group's largest σ are left out of
the scale fit (their σ is zero by symmetry, not small by information)."""


def conformal_quantile(scores: np.ndarray, coverage: float) -> float:
    """The split-conformal quantile: the ``⌈(n + 1)·coverage⌉``-th smallest of ``n`` scores.

    Parameters
    ----------
    scores : ndarray, shape (n,)
        Non-negative conformity scores of the calibration set.
    coverage : float
        Target probability in (0, 1).

    Returns
    -------
    float
        ``q`` such that a fresh exchangeable score is ``≤ q`` with probability ≥ ``coverage``;
        ``inf`` when ``n`` is too small for that (``⌈(n + 1)·coverage⌉ > n``).
    """
    s = np.sort(np.asarray(scores, dtype=float))
    k = math.ceil((s.size + 1) * coverage)
    return float(s[k - 1]) if k <= s.size else math.inf


def _halfwidth_scale(sigma: np.ndarray, tau: float) -> np.ndarray:
    """``sqrt(σ² + τ²)``; ``τ = ∞`` is a constant band (scale 1)."""
    if math.isinf(tau):
        return np.ones_like(sigma)
    return np.sqrt(sigma**2 + tau**2)


class ConformalCalibrator:
    """Per-group inflation of raw uncertainties so held-out errors are covered.

    Parameters
    ----------
    coverage : float, default=0.9
        Target fraction of held-out errors inside ``±`` the calibrated half-width, in (0, 1).
    method : {"conformal", "temperature"}, default="conformal"
        Split-conformal quantile of the normalised scores, or a Gaussian temperature (see the
        module docstring).
    floor : bool, default=True
        Fit a floor ``τ`` per group (``sqrt(σ² + τ²)`` replaces σ), chosen from
        :data:`FLOOR_GRID` × median σ as the one with the narrowest median calibrated
        half-width on the calibration data; False keeps ``τ = 0``.

    Attributes
    ----------
    groups_ : list
        The group labels seen in :meth:`fit` (sorted; ``[None]`` without groups).
    scale_ : dict
        Per group the factor ``q`` (conformal) or ``z·T`` (temperature), dimensionless.
    floor_ : dict
        Per group the floor ``τ``, in the unit of σ (``inf``: a constant band of half-width
        ``scale_``, in the unit of the errors).
    n_samples_ : dict
        Calibration errors per group.
    calibration_coverage_ : dict
        Per group the fraction of calibration errors inside the calibrated half-widths.
    """

    def __init__(
        self, *, coverage: float = 0.9, method: str = "conformal", floor: bool = True
    ) -> None:
        self.coverage = coverage
        self.method = method
        self.floor = floor

    def _check_params(self) -> None:
        c = self.coverage
        if isinstance(c, bool) or not isinstance(c, int | float) or not 0.0 < c < 1.0:
            raise DataError(f"coverage must be a number in (0, 1), got {c!r}")
        if self.method not in CALIBRATION_METHODS:
            raise DataError(
                f"method must be one of {', '.join(CALIBRATION_METHODS)}, got {self.method!r}"
            )

    def fit(
        self,
        errors: Any,
        sigma: Any,
        groups: Any = None,
    ) -> ConformalCalibrator:
        """Fit the per-group scale (and floor) from held-out errors and their raw σ.

        Parameters
        ----------
        errors : array_like, shape (n,)
            Prediction minus label on data the model was not fitted to (any unit).
        sigma : array_like, shape (n,)
            Raw uncertainty of each prediction, same unit as ``errors``, ≥ 0.
        groups : array_like, shape (n,), optional
            Group label of each error (e.g. the row type); each group is calibrated alone.

        Returns
        -------
        self
        """
        self._check_params()
        e, s = _check_pair(errors, sigma, "errors")
        g = _check_groups(groups, e.size)
        self.groups_ = sorted(set(g.tolist()), key=str) if g is not None else [None]
        self.scale_, self.floor_, self.n_samples_, self.calibration_coverage_ = {}, {}, {}, {}
        for key in self.groups_:
            mask = np.ones(e.size, bool) if g is None else g == key
            name = "" if key is None else f" of group {key!r}"
            scale, tau = self._fit_group(np.abs(e[mask]), s[mask], name)
            self.scale_[key], self.floor_[key] = scale, tau
            self.n_samples_[key] = int(mask.sum())
            self.calibration_coverage_[key] = float(
                np.mean(np.abs(e[mask]) <= scale * _halfwidth_scale(s[mask], tau))
            )
        return self

    def _fit_group(self, abs_e: np.ndarray, s: np.ndarray, name: str) -> tuple[float, float]:
        c = self.coverage
        need = math.ceil(c / (1.0 - c) - 1e-9) if self.method == "conformal" else 2
        if abs_e.size < need:
            raise DataError(
                f"the {abs_e.size} calibration errors{name} are too few for {self.coverage:.0%} "
                f"coverage: give at least {need}"
            )
        med = float(np.median(s))
        if self.floor:
            taus = [f * med for f in FLOOR_GRID] if med > 0 else [0.0, math.inf]
        else:
            taus = [0.0]
            # rows whose σ vanishes against the others (components fixed by symmetry: a
            # dimer's transverse forces) carry no scale: leave them out of the quantile
            free = s > ZERO_SIGMA * float(np.max(s, initial=0.0))
            if free.any() and not free.all() and free.sum() >= need:
                abs_e, s = abs_e[free], s[free]
        best: tuple[float, float, float] | None = None
        for tau in taus:
            h = _halfwidth_scale(s, tau)
            if np.any(h <= 0):
                continue  # σ = 0 somewhere and no floor: the score is undefined
            scale = self._scale(abs_e / h)
            width = float(np.median(scale * h))
            if best is None or width < best[0]:
                best = (width, scale, tau)
        if best is None:
            raise DataError(
                f"sigma{name} is zero for some errors: give positive sigma or floor=True"
            )
        return best[1], best[2]

    def _scale(self, scores: np.ndarray) -> float:
        if self.method == "conformal":
            return conformal_quantile(scores, self.coverage)
        z = float(norm.ppf(0.5 + 0.5 * self.coverage))
        return z * float(np.sqrt(np.mean(scores**2)))

    def transform(self, sigma: Any, groups: Any = None) -> np.ndarray:
        """Calibrated half-widths ``scale·sqrt(σ² + τ²)`` of raw uncertainties.

        Parameters
        ----------
        sigma : array_like, shape (m,)
            Raw uncertainties (as given to :meth:`fit`), ≥ 0.
        groups : array_like, shape (m,), optional
            Group of each; required when :meth:`fit` had groups.

        Returns
        -------
        ndarray, shape (m,)
            Half-widths, in the unit of the calibration errors: the prediction ``±`` this.
        """
        check_is_fitted(self, "scale_", "call fit(errors, sigma, groups) first")
        s = _check_sigma(sigma, "sigma")
        g = _check_groups(groups, s.size)
        fitted_groups = self.groups_ != [None]
        if fitted_groups and g is None:
            raise DataError(
                f"this calibrator was fitted per group ({', '.join(map(str, self.groups_))}): "
                "give groups= to transform"
            )
        out = np.empty_like(s)
        if g is None or not fitted_groups:
            return self.scale_[None] * _halfwidth_scale(s, self.floor_[None])
        unknown = sorted(set(g.tolist()) - set(self.groups_), key=str)
        if unknown:
            raise DataError(
                f"group {unknown[0]!r} was not calibrated (calibrated: "
                f"{', '.join(map(str, self.groups_))})"
            )
        for key in self.groups_:
            mask = g == key
            out[mask] = self.scale_[key] * _halfwidth_scale(s[mask], self.floor_[key])
        return out

    def fit_transform(self, errors: Any, sigma: Any, groups: Any = None) -> np.ndarray:
        """:meth:`fit`, then :meth:`transform` of the same σ."""
        return self.fit(errors, sigma, groups).transform(sigma, groups)

    def summary(self) -> dict[str, dict[str, float | int]]:
        """Per group (by ``str`` of its label) ``scale``, ``floor``, ``n`` and the coverage on
        the calibration data — for reports and JSON."""
        check_is_fitted(self, "scale_", "call fit(errors, sigma, groups) first")
        return {
            str(k): {
                "scale": self.scale_[k],
                "floor": self.floor_[k],
                "n": self.n_samples_[k],
                "calibration_coverage": self.calibration_coverage_[k],
            }
            for k in self.groups_
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(coverage={self.coverage!r}, method={self.method!r}, "
            f"floor={self.floor!r})"
        )


def coverage_and_width(errors: Any, halfwidth: Any) -> dict[str, float]:
    """Held-out ``coverage`` (fraction of ``|e| ≤ halfwidth``), ``median_halfwidth``,
    ``median_abs_error`` and their ratio ``width_ratio`` (the target metric).

    Parameters
    ----------
    errors, halfwidth : array_like, shape (n,)
        Errors and the symmetric half-widths around the prediction, one unit.
    """
    e, h = _check_pair(errors, halfwidth, "errors")
    med_e = float(np.median(np.abs(e)))
    med_h = float(np.median(h))
    return {
        "coverage": float(np.mean(np.abs(e) <= h)),
        "median_halfwidth": med_h,
        "median_abs_error": med_e,
        "width_ratio": med_h / med_e if med_e > 0 else math.inf,
        "n": int(e.size),
    }


def fisher_std(
    A_train: Any, w_train: Any, A: Any, alpha: float = 0.0, scale: Any = None
) -> np.ndarray:
    """Fisher σ of linear predictions, ``σ_m = sqrt(a_m F⁻¹ a_mᵀ)`` with ``F = AᵀWA``.

    Parameters
    ----------
    A_train : array_like, shape (R, P)
        Design rows of the training labels.
    w_train : array_like, shape (R,)
        Label precisions ``1/σ_label²`` of those rows (units: 1/unit² of each row).
    A : array_like, shape (M, P)
        Design rows of the predicted quantities.
    alpha : float, default=0.0
        Ridge added in column-normalised coordinates (``S⁻¹FS⁻¹ + αI``, ``S`` the column
        norms of ``sqrt(W)A``) — the fit's own regularisation; 0 needs ``F`` positive definite.
    scale : array_like, shape (P,), optional
        Column scales ``S``; default the column norms of ``sqrt(W) A_train``.

    Returns
    -------
    ndarray, shape (M,)
        σ of each prediction, in the unit of its row.
    """
    At = np.asarray(A_train, dtype=float)
    w = np.asarray(w_train, dtype=float)
    Am = np.atleast_2d(np.asarray(A, dtype=float))
    if At.ndim != 2 or w.shape != (At.shape[0],):
        raise DataError(f"A_train must be (R, P) and w_train (R,); got {At.shape} and {w.shape}")
    if Am.shape[1] != At.shape[1]:
        raise DataError(
            f"A has {Am.shape[1]} columns but A_train has {At.shape[1]}: one column per parameter"
        )
    if not (np.all(np.isfinite(At)) and np.all(np.isfinite(w)) and np.all(w >= 0)):
        raise DataError("A_train must be finite and w_train finite and non-negative")
    if not alpha >= 0:
        raise DataError(f"alpha must be ≥ 0, got {alpha!r}")
    Aw = At * np.sqrt(w)[:, None]
    s = np.sqrt(np.sum(Aw**2, axis=0)) if scale is None else np.asarray(scale, dtype=float)
    s = np.where(s > 0, s, 1.0)
    G = (Aw / s).T @ (Aw / s) + alpha * np.eye(At.shape[1])
    try:
        L = cholesky(G, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        raise DataError(
            "the Fisher information AᵀWA of the training rows is singular: add alpha > 0 "
            "(the fit's ridge) or rows that inform every parameter"
        ) from None
    Z = solve_triangular(L, (Am / s).T, lower=True, check_finite=False)
    return np.sqrt(np.sum(Z**2, axis=0))


def _check_sigma(sigma: Any, name: str) -> np.ndarray:
    try:
        s = np.asarray(sigma, dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be numbers, got {str(sigma)[:60]!r}") from None
    if s.ndim != 1:
        raise DataError(f"{name} must be one-dimensional (n,), got shape {s.shape}")
    if not np.all(np.isfinite(s)) or np.any(s < 0):
        raise DataError(f"{name} must be finite and non-negative")
    return s


def _check_pair(errors: Any, sigma: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        e = np.asarray(errors, dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be numbers, got {str(errors)[:60]!r}") from None
    if e.ndim != 1 or e.size == 0:
        raise DataError(f"{name} must be a non-empty one-dimensional array, got shape {e.shape}")
    if not np.all(np.isfinite(e)):
        raise DataError(f"{name} must be finite (found NaN or inf)")
    s = _check_sigma(sigma, "sigma")
    if s.shape != e.shape:
        raise DataError(f"{name} has {e.size} entries but sigma has {s.size}: give one σ per error")
    return e, s


def _check_groups(groups: Any, n: int) -> np.ndarray | None:
    if groups is None:
        return None
    g = np.asarray(groups)
    if g.shape != (n,):
        raise DataError(f"groups must give one label per entry ({n}), got shape {g.shape}")
    if g.dtype == object and not all(isinstance(x, Hashable) for x in g.tolist()):
        raise DataError("groups must be hashable labels (strings or integers)")
    return g


__all__ = [
    "CALIBRATION_METHODS",
    "FLOOR_GRID",
    "ConformalCalibrator",
    "conformal_quantile",
    "coverage_and_width",
    "fisher_std",
]
