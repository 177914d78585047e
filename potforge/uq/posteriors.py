"""POPS posteriors over parameter corrections δθ (relative to the base fit θ̄) and the streaming
accumulators that build them chunk by chunk.

Both posteriors answer the same three questions for new design rows ``X`` of shape ``(m, P)``:
``bounds(X)`` (exact min/max of ``x·δθ`` over the posterior), ``std(X)`` (root-mean-square of
``x·δθ`` about the mean prediction ``x·θ̄``) and ``sample(K)`` (``(K, P)`` corrections). All
outputs are in the units of the labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from potforge.errors import ModelError

_ROW_BLOCK, _MEMBER_BLOCK = 2048, 4096  # blocks of X @ δθᵀ: at most 2048 × 4096 (64 MiB)


@dataclass(frozen=True)
class EnsemblePosterior:
    """The set of pointwise-optimal corrections ``{δθ_n}`` (or a bounded subsample of it).

    Attributes
    ----------
    members : ndarray, shape (K, P)
        Corrections kept as ensemble members (all eligible rows, or a random subsample).
    member_rows : ndarray of int, shape (K,)
        Global row index of each member in the training rows (chunk order).
    n_rows : int
        N, the number of eligible rows the posterior summarises (K = N when all are kept).
    accumulated_moment : ndarray, shape (P, P), optional
        ``(1/N) Σ_n δθ_n δθ_nᵀ`` streamed over **all** N rows; needed only when K < N (when all
        rows are members it is computed from them on demand, which keeps the fit cheap).
    """

    members: np.ndarray
    member_rows: np.ndarray
    n_rows: int
    accumulated_moment: np.ndarray | None = None

    @property
    def complete(self) -> bool:
        """True when every eligible correction is a member."""
        return self.members.shape[0] == self.n_rows

    @property
    def second_moment(self) -> np.ndarray:
        """``(1/N) Σ δθ_n δθ_nᵀ``, shape (P, P)."""
        if self.accumulated_moment is not None:
            return self.accumulated_moment
        return self.members.T @ self.members / self.members.shape[0]

    def deviations(self, X: np.ndarray) -> np.ndarray:
        """``X @ membersᵀ``, shape (m, K): each member's change of each prediction."""
        return X @ self.members.T

    def summary(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(std, lower, upper)`` of ``x·δθ`` for rows ``X`` (m, P), in one pass over members.

        ``lower/upper`` are the exact min/max over the members; ``std`` is the RMS over all N
        corrections (from the members when complete, else ``sqrt(xᵀ M x)``).
        """
        lo = np.full(X.shape[0], np.inf)
        hi = np.full(X.shape[0], -np.inf)
        sq = np.zeros(X.shape[0])
        for r in range(0, X.shape[0], _ROW_BLOCK):
            rows = slice(r, r + _ROW_BLOCK)
            for start in range(0, self.members.shape[0], _MEMBER_BLOCK):
                d = X[rows] @ self.members[start : start + _MEMBER_BLOCK].T
                lo[rows] = np.minimum(lo[rows], d.min(axis=1))
                hi[rows] = np.maximum(hi[rows], d.max(axis=1))
                if self.complete:
                    sq[rows] += np.einsum("ij,ij->i", d, d)
        if self.complete:
            std = np.sqrt(sq / self.members.shape[0])
        else:
            std = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", X, self.second_moment, X), 0.0))
        return std, lo, hi

    def bounds(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact ``(min_n x·δθ_n, max_n x·δθ_n)`` over the members, each of shape (m,)."""
        return self.summary(X)[1:]

    def extremes(self, X: np.ndarray, k: int = 1) -> np.ndarray:
        """The ``k`` members with the lowest and the highest ``x·δθ``, shape (m, 2, k', P),
        k' = min(k, K): ``[:, 0, j]`` the (j+1)-th lowest, ``[:, 1, j]`` the (j+1)-th highest
        (``[:, :, 0]`` attain :meth:`bounds`)."""
        d = self.deviations(X)
        k = min(int(k), d.shape[1])
        order = np.argsort(d, axis=1, kind="stable")
        return self.members[np.stack([order[:, :k], order[:, ::-1][:, :k]], axis=1)]

    def std(self, X: np.ndarray) -> np.ndarray:
        """RMS of ``x·δθ_n`` over all N corrections, shape (m,)."""
        if self.complete:
            return self.summary(X)[0]
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", X, self.second_moment, X), 0.0))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` members, shape (n, P): without replacement when ``n ≤ K``, else with."""
        K = self.members.shape[0]
        idx = rng.choice(K, size=n, replace=n > K)
        return self.members[idx]


@dataclass(frozen=True)
class HypercubePosterior:
    """A box over principal components: ``δθ = offset + V c`` with ``low ≤ c ≤ high``.

    Attributes
    ----------
    components : ndarray, shape (P, k)
        Orthonormal principal directions ``V`` of the corrections.
    low, high : ndarray, shape (k,)
        Per-component min/max of the projections ``Vᵀ(δθ_n − offset)`` (exact, no clipping).
    offset : ndarray, shape (P,)
        Zero for the uncentred PCA (popsregression's choice), the mean correction otherwise.
    eigenvalues : ndarray, shape (P,), or None
        All eigenvalues of the (un)centred second moment, descending (None when not kept, e.g.
        for a box read back from a file: bounds, std and samples do not need it).
    second_moment : ndarray, shape (P, P), or None
        ``(1/N) Σ δθ_n δθ_nᵀ`` of the eligible rows (None when not kept).
    n_rows : int
    """

    components: np.ndarray
    low: np.ndarray
    high: np.ndarray
    offset: np.ndarray
    eigenvalues: np.ndarray | None
    second_moment: np.ndarray | None
    n_rows: int

    def _project(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = X @ self.components
        centre = X @ self.offset + a @ (0.5 * (self.low + self.high))
        return a, centre

    def bounds(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact extremes of ``x·δθ`` over the box: ``centre ∓ Σ_k |x·v_k| · halfwidth_k``."""
        a, centre = self._project(X)
        spread = np.abs(a) @ (0.5 * (self.high - self.low))
        return centre - spread, centre + spread

    def summary(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(std, lower, upper)`` for rows ``X`` (m, P)."""
        return (self.std(X), *self.bounds(X))

    def extremes(self, X: np.ndarray, k: int = 1) -> np.ndarray:
        """Box corners with extreme ``x·δθ``, shape (m, 2, k', P), k' = min(k, n_components + 1):
        ``[:, 0, 0]`` / ``[:, 1, 0]`` attain :meth:`bounds` (minimiser, maximiser); ``[:, :, j]``
        for j ≥ 1 are those corners with the component of the j-th smallest contribution
        ``|x·v| · halfwidth`` flipped (the next-most-extreme corners)."""
        a = X @ self.components  # (m, n)
        mid, half = 0.5 * (self.low + self.high), 0.5 * (self.high - self.low)
        k = min(int(k), a.shape[1] + 1)
        signs = np.repeat(np.sign(a)[:, None, :], k, axis=1)  # (m, k, n)
        flip = np.argsort(np.abs(a) * half, axis=1, kind="stable")[:, : k - 1]  # (m, k-1)
        rows = np.arange(a.shape[0])[:, None]
        signs[rows, np.arange(1, k)[None, :], flip] *= -1.0
        c = mid + np.array([-1.0, 1.0])[None, :, None, None] * signs[:, None] * half
        return self.offset + c @ self.components.T

    def std(self, X: np.ndarray) -> np.ndarray:
        """RMS of ``x·δθ`` for ``c`` uniform in the box: ``sqrt(centre² + Σ a_k² h_k²/3)``."""
        a, centre = self._project(X)
        half = 0.5 * (self.high - self.low)
        return np.sqrt(centre**2 + (a**2) @ (half**2) / 3.0)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` corrections drawn uniformly in the box, shape (n, P)."""
        c = self.low + (self.high - self.low) * rng.random((n, self.low.size))
        return self.offset + c @ self.components.T


class MomentAccumulator:
    """Streams ``Σ δθ``, ``Σ δθ δθᵀ`` and the count of corrections; O(P²) memory."""

    def __init__(self, n_features: int) -> None:
        self.total = np.zeros(n_features)
        self.outer = np.zeros((n_features, n_features))
        self.n = 0

    def update(self, C: np.ndarray) -> None:
        """Add corrections ``C`` of shape (n_chunk, P)."""
        self.total += C.sum(axis=0)
        self.outer += C.T @ C
        self.n += C.shape[0]

    def second_moment(self) -> np.ndarray:
        """``(1/N) Σ δθ δθᵀ``, shape (P, P)."""
        return self.outer / max(self.n, 1)

    def principal_axes(self, center: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Eigenvalues (descending), eigenvectors (P, P) and the offset used (P,)."""
        mean = self.total / max(self.n, 1)
        M = self.second_moment() - (np.outer(mean, mean) if center else 0.0)
        evals, evecs = np.linalg.eigh(0.5 * (M + M.T))
        order = np.argsort(evals)[::-1]
        offset = mean if center else np.zeros_like(mean)
        return evals[order], evecs[:, order], offset


class BottomKSampler:
    """Keeps the K rows with the smallest random keys seen so far (``K=None``: keep all).

    With one uniform key per row drawn in row order from one generator, the kept set does not
    depend on how the rows were split into chunks, so streaming and in-memory fits agree.
    """

    def __init__(self, k: int | None, n_features: int) -> None:
        self.k = k
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._count = 0
        self._empty = (np.empty(0), np.empty(0, dtype=int), np.empty((0, n_features)))

    def update(self, keys: np.ndarray, rows: np.ndarray, values: np.ndarray) -> None:
        """Offer candidates: keys (n,), global row indices (n,), corrections (n, P)."""
        self._parts.append((keys, rows, values))
        self._count += keys.size
        if self.k is not None and self._count > 2 * self.k:
            self._prune()

    def _prune(self) -> None:
        parts = [*self._parts, self._empty]
        keys, rows, values = (np.concatenate([p[i] for p in parts]) for i in range(3))
        if self.k is not None and keys.size > self.k:
            keep = np.argpartition(keys, self.k - 1)[: self.k]
            keys, rows, values = keys[keep], rows[keep], values[keep]
        self._parts, self._count = [(keys, rows, values)], keys.size

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """Kept corrections (K, P) and their row indices (K,), sorted by row index."""
        if len(self._parts) != 1 or (self.k is not None and self._count > self.k):
            self._prune()
        _, rows, values = self._parts[0]
        if np.all(rows[1:] > rows[:-1]):
            return values, rows
        order = np.argsort(rows, kind="stable")
        return values[order], rows[order]


class BoxAccumulator:
    """Streams the per-component extent of ``Vᵀ(δθ − offset)``: min/max, or with
    ``percentile_clipping = c > 0`` the ``c``-th and ``(100 − c)``-th percentiles
    (popsregression's ``percentile_clipping``), which keeps the projections, (n, k) floats, in
    memory until :meth:`bounds`."""

    def __init__(
        self, components: np.ndarray, offset: np.ndarray, percentile_clipping: float = 0.0
    ) -> None:
        self.components = components
        self.offset = offset
        self.clip = check_percentile_clipping(percentile_clipping)
        self.low = np.full(components.shape[1], np.inf)
        self.high = np.full(components.shape[1], -np.inf)
        self._projections: list[np.ndarray] | None = [] if self.clip > 0 else None

    def update(self, C: np.ndarray) -> None:
        """Add corrections ``C`` of shape (n_chunk, P)."""
        if C.shape[0] == 0:
            return
        proj = (C - self.offset) @ self.components
        self.low = np.minimum(self.low, proj.min(axis=0))
        self.high = np.maximum(self.high, proj.max(axis=0))
        if self._projections is not None:
            self._projections.append(proj)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The box: ``(low, high)``, each of shape (k,) (min/max, or the clipped percentiles)."""
        if not self._projections:
            return self.low, self.high
        proj = np.concatenate(self._projections)
        return (
            np.percentile(proj, self.clip, axis=0),
            np.percentile(proj, 100.0 - self.clip, axis=0),
        )


def check_percentile_clipping(value: float) -> float:
    """``value`` as a float in [0, 50), or a :class:`ModelError` naming it."""
    c = float(value)
    if not 0.0 <= c < 50.0:
        raise ModelError(
            f"percentile_clipping must lie in [0, 50) (the percent of corrections trimmed from "
            f"each end of every hypercube axis), got {value}."
        )
    return c


def select_components(
    eigenvalues: np.ndarray, variance_fraction: float = 1.0, mode_threshold: float = 1e-8
) -> int:
    """Number of leading components to keep.

    Keeps modes with eigenvalue above ``mode_threshold × max`` (popsregression's rule), then the
    fewest of those whose cumulative share of the variance reaches ``variance_fraction``.
    """
    if not 0.0 < variance_fraction <= 1.0:
        raise ModelError(f"variance_fraction must lie in (0, 1], got {variance_fraction}.")
    lam = np.clip(eigenvalues, 0.0, None)
    if lam.max() <= 0:
        return 0
    n_ok = int((lam > mode_threshold * lam.max()).sum())
    if variance_fraction >= 1.0:
        return n_ok
    share = np.cumsum(lam[:n_ok]) / lam.sum()
    return min(int(np.searchsorted(share, variance_fraction - 1e-12)) + 1, n_ok)
