"""Acquisition functions: which explored frames to label.

Each is a small object with one contract (:class:`Acquisition`): given a trajectory's frame
statistics (:class:`Frames`) and the reference statistics of the iteration, it returns the
probability of labelling each frame; :func:`pick` turns the probabilities into a selection
(rejection sampling along the trajectory until the quota is filled), after deduplicating
near-identical frames.  Chosen by name (:data:`ACQUISITIONS`).

* ``pu_pe`` — seed 004 (../shared/METHODS.md §5): ``P = P_U · P_E``, the uncertainty U
  normalised by its mean and spread on a held-out set, the energy against the trajectory's own
  mean and spread ``s_E``;
* ``trust`` — DP-GEN's window ``lo < U < hi``;
* ``dopt`` — extrapolation grade: save above ``gamma_lo``, (the explorer stops above
  ``gamma_hi``);
* ``topk`` — the largest U.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from math import sqrt
from typing import Protocol

import numpy as np
from scipy.special import erf

from potforge.errors import DataError


def p_uncertainty(
    u: np.ndarray, mean: float, std: float, shift: float = 2.0, width: float = sqrt(0.2)
) -> np.ndarray:
    """``P_U = ½[1 + erf((U − Ū − shift·σ_U)/(σ_U·width))]`` (ALmoMD's defaults).

    7.8e-4, 0.057, 0.5, 0.943, 0.999 at ``Ū + {1, 1.5, 2, 2.5, 3} σ_U``.
    """
    if not std > 0:
        raise DataError(f"the held-out spread σ_U of the uncertainty must be > 0, got {std!r}")
    return 0.5 * (1.0 + erf((np.asarray(u, dtype=float) - mean - shift * std) / (std * width)))


def p_energy(
    e: np.ndarray, mean: float, spread: float, base: float = 0.2, scale: float = 0.8
) -> np.ndarray:
    """Energetic viability ``P_E = min(1, base^((E − Ē − s_E)/(scale·s_E)))``.

    1, 0.447, 0.2, 0.04 at ``Ē + {1, 1.4, 1.8, 2.6} s_E`` (``s_E``: the trajectory's energy
    spread; not σ_E, which names a fit weight).
    """
    e = np.asarray(e, dtype=float)
    if not spread > 0:
        return np.ones_like(e)  # a flat trajectory: every frame is as viable as its mean
    return np.minimum(1.0, base ** ((e - mean - spread) / (scale * spread)))


@dataclass
class Frames:
    """Statistics of one trajectory's frames (F frames).

    Attributes
    ----------
    u : ndarray, shape (F,)
        Uncertainty per frame (``max_devi_f``, eV/Å, or another per-frame signal).
    energy : ndarray, shape (F,)
        Model energy per atom, eV/atom.
    grade : ndarray, shape (F,), optional
        Max extrapolation grade per frame.
    descriptor : ndarray, shape (F, D), optional
        Per-frame descriptors for deduplication (e.g. mean energy rows).
    """

    u: np.ndarray
    energy: np.ndarray
    grade: np.ndarray | None = None
    descriptor: np.ndarray | None = None


@dataclass
class Reference:
    """The iteration's reference statistics: U on the held-out set."""

    u_mean: float
    u_std: float
    u_quantiles: dict[float, float] = field(default_factory=dict)

    @classmethod
    def from_heldout(cls, u: Sequence[float] | np.ndarray) -> Reference:
        """Mean, spread and quantiles (0.5, 0.9, 0.99) of the held-out frames' U."""
        values = np.asarray(u, dtype=float)
        if values.size < 2:
            raise DataError("the held-out set needs at least 2 frames for its U statistics")
        q = {p: float(np.quantile(values, p)) for p in (0.5, 0.9, 0.99)}
        return cls(float(values.mean()), float(values.std(ddof=1)), q)


class Acquisition(Protocol):
    """Probability of labelling each frame of one trajectory."""

    name: str

    def __call__(self, frames: Frames, ref: Reference) -> np.ndarray: ...


@dataclass
class PuPe:
    """Seed 004's ``P_U · P_E`` (parameters as :func:`p_uncertainty`, :func:`p_energy`)."""

    shift: float = 2.0
    width: float = sqrt(0.2)
    base: float = 0.2
    scale: float = 0.8
    name: str = "pu_pe"

    def __call__(self, frames: Frames, ref: Reference) -> np.ndarray:
        pu = p_uncertainty(frames.u, ref.u_mean, ref.u_std, self.shift, self.width)
        e = np.asarray(frames.energy, dtype=float)
        pe = p_energy(e, float(e.mean()), float(e.std()), self.base, self.scale)
        return pu * pe


@dataclass
class Trust:
    """DP-GEN's trust window ``lo < U < hi`` (eV/Å); with ``quantiles`` the bounds are the
    held-out U's quantiles instead (for a linear model's spreads, whose scale is not an NN
    ensemble's)."""

    lo: float = 0.05
    hi: float = 0.15
    quantiles: tuple[float, float] | None = None
    name: str = "trust"

    def bounds(self, ref: Reference) -> tuple[float, float]:
        """The window in eV/Å for this iteration."""
        if self.quantiles is None:
            return self.lo, self.hi
        qs = ref.u_quantiles
        missing = [q for q in self.quantiles if q not in qs]
        if missing:
            raise DataError(f"trust quantiles must be among {sorted(qs)}, got {missing}")
        return qs[self.quantiles[0]], qs[self.quantiles[1]]

    def __call__(self, frames: Frames, ref: Reference) -> np.ndarray:
        lo, hi = self.bounds(ref)
        u = np.asarray(frames.u, dtype=float)
        return ((u > lo) & (u < hi)).astype(float)


@dataclass
class DOpt:
    """Extrapolation-grade thresholds: label frames with γ > ``gamma_lo``; an explorer whose
    frame exceeds ``gamma_hi`` is stopped (frames after it are never eligible)."""

    gamma_lo: float = 2.0
    gamma_hi: float = 10.0
    name: str = "dopt"

    def stop_index(self, frames: Frames) -> int | None:
        """Index of the first frame with γ > ``gamma_hi`` (the explorer stops there), or None."""
        if frames.grade is None:
            raise DataError("acquisition 'dopt' needs the frames' extrapolation grades")
        above = np.flatnonzero(np.asarray(frames.grade, dtype=float) > self.gamma_hi)
        return int(above[0]) if above.size else None

    def __call__(self, frames: Frames, ref: Reference) -> np.ndarray:
        stop = self.stop_index(frames)
        g = np.asarray(frames.grade, dtype=float)
        p = (g > self.gamma_lo).astype(float)
        if stop is not None:
            p[stop:] = 0.0  # the stopping frame and every later one are never eligible
        return p


@dataclass
class TopK:
    """The largest U first (deterministic)."""

    name: str = "topk"

    def __call__(self, frames: Frames, ref: Reference) -> np.ndarray:
        u = np.asarray(frames.u, dtype=float)
        return (u - u.min()) / max(float(np.ptp(u)), 1e-300)


ACQUISITIONS = {"pu_pe": PuPe, "trust": Trust, "dopt": DOpt, "topk": TopK}
"""Acquisitions by name."""


def make_acquisition(name: str, **settings) -> Acquisition:
    """An acquisition by name (:data:`ACQUISITIONS`) with its settings."""
    from potforge.params import unknown_name

    if name not in ACQUISITIONS:
        raise DataError(unknown_name(name, ACQUISITIONS, "acquisition"))
    cls = ACQUISITIONS[name]
    try:
        return cls(**settings)
    except TypeError:
        import dataclasses

        allowed = [f.name for f in dataclasses.fields(cls) if f.name != "name"]
        bad = sorted(set(settings) - set(allowed))
        raise DataError(unknown_name(bad[0], allowed, f"setting of acquisition {name!r}")) from None


def deduplicate(descriptor: np.ndarray, order: np.ndarray, threshold: float) -> np.ndarray:
    """Frames in ``order`` whose descriptor is farther than ``threshold`` (Euclidean, relative
    to the descriptors' median norm) from every frame kept before them."""
    X = np.asarray(descriptor, dtype=float)
    norm = float(np.median(np.linalg.norm(X, axis=1))) or 1.0
    kept: list[int] = []
    for i in order:
        if all(np.linalg.norm(X[i] - X[j]) > threshold * norm for j in kept):
            kept.append(int(i))
    return np.array(kept, dtype=int)


def pick(
    probability: np.ndarray,
    quota: int,
    rng: np.random.Generator,
    deterministic: bool = False,
    descriptor: np.ndarray | None = None,
    dedup: float = 0.0,
    max_passes: int = 20,
) -> np.ndarray:
    """Indices of the frames to label.

    Rejection sampling along the trajectory (frame order): frame i is kept when a uniform draw
    is below its probability, passing over the trajectory again until ``quota`` frames are kept
    or no frame has a chance (``max_passes``).  ``deterministic``: the ``quota`` largest
    probabilities.  With ``descriptor`` and ``dedup`` > 0, near-identical frames are dropped
    first (the more probable of two is kept).
    """
    p = np.clip(np.asarray(probability, dtype=float), 0.0, 1.0)
    if quota < 1:
        raise DataError(f"the quota of frames to label must be ≥ 1, got {quota}")
    eligible = np.flatnonzero(p > 0)
    if descriptor is not None and dedup > 0 and eligible.size:
        by_p = eligible[np.argsort(-p[eligible], kind="stable")]
        eligible = np.sort(deduplicate(np.asarray(descriptor)[:, :], by_p, dedup))
    if deterministic:
        return eligible[np.argsort(-p[eligible], kind="stable")][:quota]
    kept: list[int] = []
    for _ in range(max_passes):
        for i in eligible:
            if i not in kept and rng.random() < p[i]:
                kept.append(int(i))
                if len(kept) == quota:
                    return np.array(kept, dtype=int)
        if len(kept) == len(eligible):
            break
    return np.array(kept, dtype=int)
