"""QUESTS kernel entropy of atomic-environment descriptors: arrays in, arrays out (numpy, no ASE).

Definitions (Schwalbe-Koda et al., QUESTS; METHODS.md §2), with the Gaussian kernel
``K(x, y) = exp(−|x − y|² / 2h²)`` on descriptor rows ``x`` (units of the descriptor — Å⁻¹ for
QUESTS descriptors) and bandwidth ``h`` (same units):

* kernel sums ``s(y | X) = Σ_j K(y, x_j)`` — :func:`kernel_sums`, :func:`self_sums`;
* entropy ``H(X) = −(1/N) Σ_i ln[(1/N) Σ_j K(x_i, x_j)]`` (nats; ``0 ≤ H ≤ ln N``, ``H = 0`` when
  every environment is the same) — :func:`entropy`;
* diversity ``D(X) = ln Σ_i 1 / Σ_j K(x_i, x_j)`` (ln of an effective number of distinct
  environments) — :func:`diversity`;
* novelty ``dH(y | X) = −ln Σ_j K(y, x_j)`` (``> 0``: y is not covered by X; ``≤ 0`` for every y
  already in X) — :func:`delta_entropy`;
* overlap: the fraction of rows of Y with ``dH(y | X) < eps`` — :func:`overlap`;
* the entropy of each prefix of an ordered set (after each pick of a selection) and of random
  subsets by size — :func:`prefix_entropies`, :func:`entropy_curve`;
* the entropy of ``X ∪ Y`` and its gradient with respect to Y — :func:`joint_entropy`, the
  quantity the generator maximises (``dH/dB`` here, times ``dB/dr`` from the descriptor), with
  the fixed X prepared once by :func:`entropy_reference`.

Each has the definition and defaults of the ``quests`` package (``quests.entropy``: bandwidth
``h = 0.015`` = :data:`DEFAULT_BANDWIDTH`, the overlap threshold ``eps = 1e-5`` of
``quests.compression`` and the ``quests overlap`` command = :data:`DEFAULT_EPS`) and agrees with it
to ~1e-12 relative; only one scalar bandwidth is supported (quests also takes a vector of them).
The default bandwidth everywhere in this module is the QUESTS one, meant for raw QUESTS descriptors;
:func:`silverman_bandwidth` is the rule for *whitened* descriptors (unit covariance), which no
function here uses unless the caller passes it as ``h``.

Numerics
--------
Squared distances come from ``|y|² + |x|² − 2 y·x`` in float64, on data centred on the mean of
the reference set (which shrinks the cancellation), in one matrix product of augmented rows
``[y/h², −|y|²/2h², 1]·[x, 1, −|x|²/2h²]`` that yields the exponent ``−|y − x|²/2h²``
directly; then one in-place clip of the exponent to ``[EXP_FLOOR, 0]`` (distances clipped at 0),
one in-place ``exp`` and the row (and, where needed, column) sums — about 5 ns per kernel value
on one core, three quarters of it the matrix product.  Work is cut into tiles of at most
``block²`` kernel values (``block`` = 1024 by default, 8 MiB per tile) and never holds a larger
kernel matrix: the memory beyond the inputs is their augmented copies, ``(m + n)(d + 2)``
float64, plus one tile per thread.  For ``H(X)`` only the tiles on and above the diagonal are
computed and each off-diagonal tile's column sums are mirrored into the rows below (half the
work).  Tiles run on ``threads`` Python threads (matmul and exp release the GIL) with the BLAS
pool held at one thread meanwhile (also for ``threads=1``: one core); partial sums are added in
a fixed order, so results do not depend on ``threads`` (and differ across ``block`` sizes only
by float64 rounding).

Kernel values below ``e^−700 ≈ 1e−304`` (``|y − x| > 37.4 h``) are counted as ``e^−700``
(:data:`EXP_FLOOR`): float64 ``exp`` is 10–100× slower where its result is subnormal or
underflows, and for rows spread over ≫ 37 h most pairs are there.  A sum ``s`` of n values moves
by at most ``n·1e−304`` — nothing for the entropy's sums (``s ≥ 1``) — and the novelty ``dH`` of
a point farther than 37.4 h from all n rows of X is ``700 − ln n`` nats, where quests gives a
larger number or ``+inf`` (both say: not covered at all).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from potforge.errors import DataError

DEFAULT_BANDWIDTH = 0.015
"""QUESTS's default kernel bandwidth ``h`` (descriptor units, Å⁻¹ for QUESTS descriptors)."""
DEFAULT_EPS = 1e-5
"""QUESTS's overlap threshold: ``y`` overlaps ``X`` when ``dH(y | X) < eps``."""
DEFAULT_BLOCK = 1024
"""Tile edge: at most ``block²`` kernel values (8 MiB of float64 at 1024) per tile and thread."""
EXP_FLOOR = -700.0
"""Lowest exponent evaluated: kernel values below ``e^−700 ≈ 1e−304`` are counted as ``e^−700``
(float64 ``exp`` is 10–100× slower where its result is subnormal or underflows)."""

_T = TypeVar("_T")
_local = threading.local()


# --------------------------------------------------------------------------- input checks


def check_descriptors(
    name: str,
    A: Any,
    *,
    width: int | None = None,
    width_of: str = "X",
    allow_empty: bool = False,
) -> np.ndarray:
    """``A`` as a float64 (rows, d) array, or :class:`~potforge.errors.DataError` naming ``name``.

    Parameters
    ----------
    name : str
        The argument's name, for the message.
    A : array_like, shape (rows, d)
        Descriptor rows (one environment each); must be 2-D, numeric and finite, with ``d ≥ 1``.
    width : int or None, default=None
        Required ``d`` (the reference set's width); ``None`` accepts any.
    width_of : str, default="X"
        What has that width, for the message.
    allow_empty : bool, default=False
        Accept zero rows (shape ``(0, d)``).
    """
    try:
        arr = np.asarray(A, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(
            f"{name} must be a 2-D array of numbers (environments × descriptor components); "
            f"got a {type(A).__name__} that is not one"
        ) from None
    if arr.ndim != 2:
        raise DataError(
            f"{name} must be a 2-D array (environments, descriptor components); got shape "
            f"{arr.shape}"
        )
    if arr.shape[1] == 0:
        raise DataError(
            f"{name} must have at least one descriptor component; got shape {arr.shape}"
        )
    if arr.shape[0] == 0 and not allow_empty:
        raise DataError(f"{name} must hold at least one environment; got shape {arr.shape}")
    if width is not None and arr.shape[1] != width:
        raise DataError(
            f"{name} has {arr.shape[1]} descriptor components per environment but {width_of} has "
            f"{width}; both must have the same width"
        )
    if not np.isfinite(arr).all():
        i, j = np.argwhere(~np.isfinite(arr))[0]
        raise DataError(f"{name} must be finite; {name}[{i}, {j}] is {arr[i, j]}")
    return arr


def _check_h(h: Any) -> float:
    if isinstance(h, bool) or not isinstance(h, int | float | np.integer | np.floating):
        raise DataError(
            f"h (the kernel bandwidth) must be one positive number; got {h!r} "
            "(a vector of bandwidths is not supported)"
        )
    value = float(h)
    if not (math.isfinite(value) and value > 0):
        raise DataError(f"h (the kernel bandwidth) must be a finite number > 0; got {h!r}")
    return value


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise DataError(f"{name} must be an integer ≥ {low}; got {value!r}")
    return int(value)


def resolve_threads(threads: int | None) -> int:
    """The number of worker threads: ``threads`` itself (an int ≥ 1), or for ``None`` the value of
    ``OMP_NUM_THREADS`` when it is set to a positive integer, else ``os.cpu_count()``."""
    if threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "").strip()
        if env.isdigit() and int(env) > 0:
            return int(env)
        return os.cpu_count() or 1
    return _check_int("threads", threads, 1)


# --------------------------------------------------------------------------- tiled core


_controller: Any = None
_controller_lock = threading.Lock()


def _serial_blas() -> AbstractContextManager[Any]:
    """BLAS held at one thread inside (our threads are the parallelism; OpenBLAS's own threads on
    these small products only contend — 10× slower on a loaded 2-core machine).  The controller
    is found once (~1 ms) and reused (~10 µs a use); a no-op without threadpoolctl."""
    global _controller
    if _controller is None:
        with _controller_lock:
            if _controller is None:
                try:
                    from threadpoolctl import ThreadpoolController
                except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
                    _controller = False
                else:
                    _controller = ThreadpoolController()
    if _controller is False:  # pragma: no cover
        return nullcontext()
    return _controller.limit(limits=1, user_api="blas")


def map_tiles(fn: Callable[[Any], _T], tasks: Sequence[Any], threads: int) -> Iterator[_T]:
    """``fn`` over ``tasks``, results in task order, on ``threads`` threads (serially when
    ``threads == 1`` or there is one task), with BLAS held at one thread meanwhile."""
    with _serial_blas():
        if threads <= 1 or len(tasks) <= 1:
            yield from map(fn, tasks)
            return
        with ThreadPoolExecutor(max_workers=min(threads, len(tasks))) as pool:
            yield from pool.map(fn, tasks)


def _buffer(rows: int, cols: int) -> np.ndarray:
    """A per-thread float64 scratch array of shape (rows, cols), reused across tiles."""
    need = rows * cols
    buf = getattr(_local, "buf", None)
    if buf is None or buf.size < need:
        buf = np.empty(need)
        _local.buf = buf
    return buf[:need].reshape(rows, cols)


def kernel_tile(L: np.ndarray, R: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Kernel values ``K`` (a, b) between rows of augmented arrays ``L`` (a, d+2) and ``R`` (b, d+2)
    from :func:`augment` (exponent from one matrix product, clipped to ``[EXP_FLOOR, 0]``, exp in
    place).

    ``out`` (a, b) is written and returned when given (else a per-thread scratch array, valid
    until the thread's next call)."""
    if out is None:
        out = _buffer(L.shape[0], R.shape[0])
    np.matmul(L, R.T, out=out)
    np.clip(out, EXP_FLOOR, 0.0, out=out)
    np.exp(out, out=out)
    return out


def augment(
    A: np.ndarray, centre: np.ndarray, h: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centred rows ``C = A − centre`` and their augmented forms for :func:`kernel_tile`.

    Returns ``(C, L, R)``: ``C`` (n, d), ``L = [C/h², −|C|²/2h², 1]`` and
    ``R = [C, 1, −|C|²/2h²]`` (n, d+2), so that ``L_i · R_j = −|c_i − c_j|² / 2h²``.
    """
    C = A - centre
    sq = np.einsum("ij,ij->i", C, C) / (2.0 * h * h)
    n, d = C.shape
    L = np.empty((n, d + 2))
    R = np.empty((n, d + 2))
    np.multiply(C, 1.0 / (h * h), out=L[:, :d])
    L[:, d] = -sq
    L[:, d + 1] = 1.0
    R[:, :d] = C
    R[:, d] = 1.0
    R[:, d + 1] = -sq
    return C, L, R


def _cross_sums(
    L: np.ndarray, R: np.ndarray, block: int, threads: int, columns: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Row sums (m,) of the kernel between L's rows and R's rows, and its column sums (n,) when
    ``columns``; tiles of ≤ block² values."""
    m, n = L.shape[0], R.shape[0]
    rows = np.zeros(m)
    cols = np.zeros(n) if columns else None
    if m == 0 or n == 0:
        return rows, cols
    r = min(m, block)
    c = max(block, block * block // r)
    tasks = [(i, j) for i in range(0, m, r) for j in range(0, n, c)]

    def work(t: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
        i, j = t
        K = kernel_tile(L[i : i + r], R[j : j + c])
        return K.sum(axis=1), (K.sum(axis=0) if columns else None)

    for (i, j), (rs, cs) in zip(tasks, map_tiles(work, tasks, threads), strict=True):
        rows[i : i + rs.size] += rs
        if cols is not None and cs is not None:
            cols[j : j + cs.size] += cs
    return rows, cols


def _symmetric_sums(L: np.ndarray, R: np.ndarray, block: int, threads: int) -> np.ndarray:
    """Σ_j K(x_i, x_j) over the same set (n,), from the tiles on and above the diagonal only."""
    n = L.shape[0]
    out = np.zeros(n)
    b = min(n, block)
    tasks = [(i, j) for i in range(0, n, b) for j in range(i, n, b)]

    def work(t: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
        i, j = t
        K = kernel_tile(L[i : i + b], R[j : j + b])
        if i == j:
            np.fill_diagonal(K, 1.0)  # K(x, x) = 1 exactly
            return K.sum(axis=1), None
        return K.sum(axis=1), K.sum(axis=0)

    for (i, j), (rs, cs) in zip(tasks, map_tiles(work, tasks, threads), strict=True):
        out[i : i + rs.size] += rs
        if cs is not None:
            out[j : j + cs.size] += cs
    return out


# --------------------------------------------------------------------------- public API


def kernel_sums(
    Y: Any,
    X: Any,
    h: float = DEFAULT_BANDWIDTH,
    *,
    block: int = DEFAULT_BLOCK,
    threads: int | None = None,
) -> np.ndarray:
    """Kernel sums ``s_i = Σ_j K(y_i, x_j)`` of each row of ``Y`` over the set ``X``.

    Parameters
    ----------
    Y : array_like, shape (m, d)
        Query environments (may be empty).
    X : array_like, shape (n, d)
        Reference environments (may be empty: the sums are then 0).
    h : float, default=0.015
        Kernel bandwidth, descriptor units (QUESTS's default).
    block : int, default=1024
        Tile edge: at most ``block²`` kernel values per tile (8·block² bytes per thread, beyond
        the inputs' augmented copies ``(m + n)(d + 2)`` float64).
    threads : int or None, default=None
        Worker threads over tiles; ``None``: ``OMP_NUM_THREADS`` if set, else ``os.cpu_count()``.

    Returns
    -------
    s : ndarray, shape (m,)
        ``Σ_j K(y_i, x_j)``, dimensionless, in ``[0, n]``.
    """
    X = check_descriptors("X", X, allow_empty=True)
    Y = check_descriptors("Y", Y, width=X.shape[1], allow_empty=True)
    h = _check_h(h)
    block = _check_int("block", block, 1)
    threads = resolve_threads(threads)
    if Y.shape[0] == 0 or X.shape[0] == 0:
        return np.zeros(Y.shape[0])
    centre = X.mean(axis=0)
    _, LY, _ = augment(Y, centre, h)
    _, _, RX = augment(X, centre, h)
    return _cross_sums(LY, RX, block, threads)[0]


def self_sums(
    X: Any,
    h: float = DEFAULT_BANDWIDTH,
    *,
    block: int = DEFAULT_BLOCK,
    threads: int | None = None,
) -> np.ndarray:
    """Kernel sums of a set over itself, ``s_i = Σ_j K(x_i, x_j)`` (self term included, so
    ``s_i ≥ 1``), at half the cost of :func:`kernel_sums` ``(X, X)`` (symmetric tiles).

    Parameters
    ----------
    X : array_like, shape (n, d)
        Environments (may be empty).
    h : float, default=0.015
        Kernel bandwidth, descriptor units.
    block, threads
        As in :func:`kernel_sums`.

    Returns
    -------
    s : ndarray, shape (n,)
        The ``x_sums`` argument of :func:`joint_entropy`.
    """
    X = check_descriptors("X", X, allow_empty=True)
    h = _check_h(h)
    block = _check_int("block", block, 1)
    threads = resolve_threads(threads)
    if X.shape[0] == 0:
        return np.zeros(0)
    _, L, R = augment(X, X.mean(axis=0), h)
    return _symmetric_sums(L, R, block, threads)


def entropy(
    X: Any,
    h: float = DEFAULT_BANDWIDTH,
    *,
    block: int = DEFAULT_BLOCK,
    threads: int | None = None,
) -> float:
    """Kernel entropy ``H = −(1/N) Σ_i ln[(1/N) Σ_j K(x_i, x_j)]`` of a set of environments.

    Same definition and default bandwidth as ``quests.entropy.entropy``.

    Parameters
    ----------
    X : array_like, shape (N, d)
        Environments, N ≥ 1.
    h : float, default=0.015
        Kernel bandwidth, descriptor units.
    block, threads
        As in :func:`kernel_sums`.

    Returns
    -------
    H : float
        Nats; ``0 ≤ H ≤ ln N`` (0 when all rows coincide, ``ln N`` when all are far apart).
    """
    X = check_descriptors("X", X)
    s = self_sums(X, h, block=block, threads=threads)
    return float(np.log(X.shape[0]) - np.mean(np.log(s)))


def diversity(
    X: Any,
    h: float = DEFAULT_BANDWIDTH,
    *,
    block: int = DEFAULT_BLOCK,
    threads: int | None = None,
) -> float:
    """Diversity ``D = ln Σ_i 1 / Σ_j K(x_i, x_j)`` (``quests.entropy.diversity``).

    ``exp(D)`` counts the distinct environments: each point contributes ``1/s_i ≤ 1``, and a
    cluster of near-identical points contributes about 1 in all.

    Parameters
    ----------
    X : array_like, shape (N, d)
        Environments, N ≥ 1.
    h : float, default=0.015
        Kernel bandwidth, descriptor units.
    block, threads
        As in :func:`kernel_sums`.

    Returns
    -------
    D : float
        Nats; ``0 ≤ D ≤ ln N``.
    """
    X = check_descriptors("X", X)
    s = self_sums(X, h, block=block, threads=threads)
    return float(np.log(np.sum(1.0 / s)))


def delta_entropy(
    Y: Any,
    X: Any,
    h: float = DEFAULT_BANDWIDTH,
    *,
    block: int = DEFAULT_BLOCK,
    threads: int | None = None,
) -> np.ndarray:
    """Novelty ``dH(y_i | X) = −ln Σ_j K(y_i, x_j)`` of each row of ``Y`` with respect to ``X``
    (``quests.entropy.delta_entropy``).

    Parameters
    ----------
    Y : array_like, shape (m, d)
        Test environments.
    X : array_like, shape (n, d)
        Reference environments, n ≥ 1.
    h : float, default=0.015
        Kernel bandwidth, descriptor units.
    block, threads
        As in :func:`kernel_sums`.

    Returns
    -------
    dH : ndarray, shape (m,)
        Nats; ``> 0``: y is not covered by X; ``≤ 0`` for every y that is a row of X (its own
        kernel is 1); at most ``700 − ln n`` (kernel values are floored at e^−700, where
        ``quests`` would give ``+inf``).
    """
    X = check_descriptors("X", X)
    s = kernel_sums(Y, X, h, block=block, threads=threads)
    with np.errstate(divide="ignore"):
        return -np.log(s)


def overlap(
    Y: Any,
    X: Any,
    h: float = DEFAULT_BANDWIDTH,
    eps: float = DEFAULT_EPS,
    *,
    block: int = DEFAULT_BLOCK,
    threads: int | None = None,
) -> float:
    """Fraction of the rows of ``Y`` that ``X`` covers: ``mean(dH(y | X) < eps)``.

    The test of ``quests.compression.DatasetCompressor.overlap`` and the ``quests overlap``
    command (both with ``eps = 1e-5``).

    Parameters
    ----------
    Y : array_like, shape (m, d)
        Test environments, m ≥ 1.
    X : array_like, shape (n, d)
        Reference environments, n ≥ 1.
    h : float, default=0.015
        Kernel bandwidth, descriptor units.
    eps : float, default=1e-5
        Threshold on ``dH`` (nats): ``dH < eps`` means ``Σ_j K(y, x_j) > exp(−eps)``, i.e. about
        one (near-)identical environment in X.
    block, threads
        As in :func:`kernel_sums`.

    Returns
    -------
    fraction : float
        In ``[0, 1]``.
    """
    Y = check_descriptors("Y", Y)
    if isinstance(eps, bool) or not isinstance(eps, int | float | np.integer | np.floating):
        raise DataError(f"eps (the overlap threshold on dH, nats) must be a number; got {eps!r}")
    if not math.isfinite(float(eps)):
        raise DataError(f"eps (the overlap threshold on dH, nats) must be finite; got {eps!r}")
    dH = delta_entropy(Y, X, h, block=block, threads=threads)
    return float(np.mean(dH < float(eps)))


def prefix_entropies(
    X: Any,
    sizes: Iterable[int],
    h: float = DEFAULT_BANDWIDTH,
    *,
    block: int = DEFAULT_BLOCK,
    threads: int | None = None,
) -> np.ndarray:
    """Entropy of each leading block ``X[:size]`` of the rows of ``X``, for increasing sizes.

    The kernel sums are extended from each size to the next (cross tiles of the new rows against
    the old, symmetric tiles among the new), so the whole list costs one :func:`entropy` of
    ``X[:max(sizes)]`` — the entropy after each pick of a selection, or an entropy-vs-size curve.

    Parameters
    ----------
    X : array_like, shape (N, d)
        Environments in order, N ≥ 1.
    sizes : iterable of int
        Strictly increasing prefix lengths in ``[1, N]``.
    h : float, default=0.015
        Kernel bandwidth, descriptor units.
    block, threads
        As in :func:`kernel_sums`.

    Returns
    -------
    H : ndarray, shape (len(sizes),)
        Entropy (nats) of ``X[:size]`` for each size.
    """
    X = check_descriptors("X", X)
    h = _check_h(h)
    block = _check_int("block", block, 1)
    threads = resolve_threads(threads)
    n = X.shape[0]
    try:
        cuts = np.asarray(list(sizes))
    except TypeError:
        raise DataError(f"sizes must be a list of integers in [1, {n}]; got {sizes!r}") from None
    if (
        cuts.ndim != 1
        or cuts.size == 0
        or not np.issubdtype(cuts.dtype, np.integer)
        or cuts[0] < 1
        or cuts[-1] > n
        or np.any(np.diff(cuts) <= 0)
    ):
        raise DataError(
            f"sizes must be a non-empty, strictly increasing list of integers in [1, {n}]; "
            f"got {sizes!r}"
        )
    top = int(cuts[-1])
    P = X[:top]
    _, L, R = augment(P, P.mean(axis=0), h)
    s = np.zeros(top)
    out = np.empty(cuts.size)
    done = 0
    for k, size in enumerate(int(c) for c in cuts):
        rows, cols = _cross_sums(L[done:size], R[:done], block, threads, columns=True)
        if cols is not None:
            s[:done] += cols
        s[done:size] = rows + _symmetric_sums(L[done:size], R[done:size], block, threads)
        done = size
        out[k] = np.log(size) - np.mean(np.log(s[:size]))
    return out


def entropy_curve(
    X: Any,
    h: float,
    sizes: Iterable[int],
    seed: int = 0,
    *,
    block: int = DEFAULT_BLOCK,
    threads: int | None = None,
) -> np.ndarray:
    """Entropy of random subsets of ``X`` of the given sizes: the entropy-vs-size curve.

    The subsets are nested prefixes of one random permutation (seeded), so the curve is as
    smooth as one draw allows and costs one :func:`entropy` of the largest subset
    (:func:`prefix_entropies`).

    Parameters
    ----------
    X : array_like, shape (N, d)
        Environments, N ≥ 1.
    h : float
        Kernel bandwidth, descriptor units (QUESTS's default is 0.015).
    sizes : iterable of int
        Subset sizes, each in ``[1, N]``, in any order (repeats allowed).
    seed : int, default=0
        Seed of the permutation (``numpy.random.default_rng``).
    block, threads
        As in :func:`kernel_sums`.

    Returns
    -------
    H : ndarray, shape (len(sizes),)
        Entropy (nats) of the subset of each size, in the order of ``sizes``.
    """
    X = check_descriptors("X", X)
    n = X.shape[0]
    try:
        wanted = np.asarray(list(sizes))
    except TypeError:
        raise DataError(f"sizes must be a list of integers in [1, {n}]; got {sizes!r}") from None
    if (
        wanted.ndim != 1
        or wanted.size == 0
        or not np.issubdtype(wanted.dtype, np.integer)
        or wanted.min() < 1
        or wanted.max() > n
    ):
        raise DataError(f"sizes must be a non-empty list of integers in [1, {n}]; got {sizes!r}")
    unique, where = np.unique(wanted, return_inverse=True)
    perm = np.random.default_rng(seed).permutation(n)[: int(unique[-1])]
    H = prefix_entropies(X[perm], unique, h, block=block, threads=threads)
    return H[where]


def silverman_bandwidth(n: int, d: int) -> float:
    """Silverman's rule of thumb for a Gaussian kernel on *whitened* data (unit covariance):
    ``h = (4 / (d + 2))^(1/(d + 4)) · n^(−1/(d + 4))``.

    This is the bandwidth of GRSlib's generator (descriptors whitened by a Cholesky factor of
    their covariance first). It is not the default of any function in this module, which use
    QUESTS's ``h = 0.015`` for raw QUESTS descriptors; pass it as ``h`` with whitened rows.

    Parameters
    ----------
    n : int
        Number of environments, ≥ 1.
    d : int
        Descriptor dimension, ≥ 1.

    Returns
    -------
    h : float
        Bandwidth in whitened units (standard deviations).
    """
    n = _check_int("n", n, 1)
    d = _check_int("d", d, 1)
    return float((4.0 / (d + 2)) ** (1.0 / (d + 4)) * n ** (-1.0 / (d + 4)))


@dataclass(frozen=True, eq=False)
class EntropyReference:
    """Existing environments prepared once for many :func:`joint_entropy` calls (the generator's
    fixed data): their kernel sums over themselves and their centred and augmented rows, so a
    call costs only the O(m (n + m) d) kernel work, not O(n d) preparation or O(n² d) sums.

    Build it with :func:`entropy_reference`; arrays are read-only.

    Attributes
    ----------
    h : float
        Kernel bandwidth, descriptor units.
    sums : ndarray, shape (n,)
        ``Σ_{x'∈X} K(x, x')`` for each row of X (≥ 1).
    centre : ndarray, shape (d,)
        The mean of X (zeros when X is empty), subtracted from every row.
    C : ndarray, shape (n, d)
        Centred rows of X.
    R : ndarray, shape (n, d + 2)
        Right-augmented rows ``[c, 1, −|c|²/2h²]`` (:func:`augment`).
    """

    h: float
    sums: np.ndarray
    centre: np.ndarray
    C: np.ndarray
    R: np.ndarray

    @property
    def n(self) -> int:
        """Number of environments."""
        return int(self.C.shape[0])

    @property
    def d(self) -> int:
        """Descriptor width."""
        return int(self.C.shape[1])


def _check_x_sums(x_sums: Any, n: int) -> np.ndarray:
    try:
        xs = np.array(x_sums, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError("x_sums must be an array of positive numbers, self_sums(X, h)") from None
    if xs.shape != (n,) or not np.isfinite(xs).all() or (n and xs.min() <= 0):
        raise DataError(
            f"x_sums must be {n} finite positive kernel sums of X over itself, "
            f"self_sums(X, h), one per row of X; got shape {xs.shape}"
        )
    return xs


def entropy_reference(
    X: Any,
    h: float = DEFAULT_BANDWIDTH,
    x_sums: Any = None,
    *,
    block: int = DEFAULT_BLOCK,
    threads: int | None = None,
) -> EntropyReference:
    """Prepare the fixed set ``X`` for repeated :func:`joint_entropy` calls.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Existing environments (may be empty, shape (0, d)).
    h : float, default=0.015
        Kernel bandwidth, descriptor units.
    x_sums : array_like, shape (n,), optional
        :func:`self_sums` ``(X, h)`` if already known (computed here otherwise: O(n² d)).
    block, threads
        As in :func:`kernel_sums`.

    Returns
    -------
    EntropyReference
    """
    X = check_descriptors("X", X, allow_empty=True)
    h = _check_h(h)
    block = _check_int("block", block, 1)
    threads = resolve_threads(threads)
    n = X.shape[0]
    xs = (
        self_sums(X, h, block=block, threads=threads)
        if x_sums is None
        else _check_x_sums(x_sums, n)
    )
    centre = X.mean(axis=0) if n else np.zeros(X.shape[1])
    C, _, R = augment(X, centre, h)
    for arr in (xs, centre, C, R):
        arr.flags.writeable = False
    return EntropyReference(h, xs, centre, C, R)


def joint_entropy(
    Y: Any,
    X: Any,
    h: float | None = None,
    x_sums: Any = None,
    *,
    block: int = DEFAULT_BLOCK,
    threads: int | None = None,
) -> tuple[float, np.ndarray]:
    """Entropy of the union ``X ∪ Y`` and its gradient with respect to the new rows ``Y``.

    With ``Z = X ∪ Y`` (N = n + m rows) and ``s_z = Σ_{z'∈Z} K(z, z')``,
    ``H = ln N − (1/N) Σ_{z∈Z} ln s_z`` (as :func:`entropy` of ``vstack([X, Y])``) and

    ``∂H/∂y_a = −1/(N h²) Σ_{z∈Z} K(y_a, z) (z − y_a) (1/s_z + 1/s_a)``.

    Cost O(m (n + m) d) per call when the sums of the fixed set over itself are known — from
    ``x_sums`` (:func:`self_sums`) or, better for many calls, an :class:`EntropyReference` passed
    as ``X`` (:func:`entropy_reference`, which also keeps X's centred and augmented rows, an
    O(n d) preparation otherwise repeated per call) — so a generator step does not redo the
    O(n² d) part.  Memory beyond the inputs: one tile of ``max(block², m)`` kernel values and an
    (m, 2d + 2) accumulator per thread.

    Parameters
    ----------
    Y : array_like, shape (m, d)
        New environments (the generator's variables; may be empty if X is not).
    X : array_like, shape (n, d), or EntropyReference
        Existing environments, fixed (may be empty, shape (0, d)), or their prepared form.
    h : float or None, default=None
        Kernel bandwidth, descriptor units; ``None``: the reference's, or 0.015 (QUESTS's
        default) for an array.  With a reference, a different value raises.
    x_sums : array_like, shape (n,), optional
        ``Σ_{x'∈X} K(x, x')`` for each row of X (:func:`self_sums` ``(X, h)``, each ≥ 1);
        computed here when omitted; not with a reference (it has them).
    block, threads
        As in :func:`kernel_sums`.

    Returns
    -------
    H : float
        Entropy of ``X ∪ Y``, nats.
    dH_dY : ndarray, shape (m, d)
        ``∂H/∂Y``, nats per descriptor unit.
    """
    if isinstance(X, EntropyReference):
        ref = X
        if h is not None and _check_h(h) != ref.h:
            raise DataError(
                f"h={h!r} differs from the bandwidth h={ref.h!r} the reference was built with; "
                "omit h or build the reference with this h"
            )
        if x_sums is not None:
            raise DataError(
                "x_sums must not be given with an EntropyReference, which holds its own sums"
            )
    else:
        ref = entropy_reference(
            X, DEFAULT_BANDWIDTH if h is None else h, x_sums, block=block, threads=threads
        )
    h = ref.h
    Y = check_descriptors("Y", Y, width=ref.d, allow_empty=True)
    block = _check_int("block", block, 1)
    threads = resolve_threads(threads)
    n, m, d = ref.n, Y.shape[0], ref.d
    if n + m == 0:
        raise DataError("X and Y are both empty; the joint entropy needs at least one environment")
    xs = ref.sums
    N = n + m
    if m == 0:
        return float(np.log(N) - np.sum(np.log(xs)) / N), np.zeros((0, d))

    centre = ref.centre if n else Y.mean(axis=0)
    YC, LY, RY = augment(Y, centre, h)
    rows = np.zeros(m)  # s_a, a ∈ Y
    P = np.zeros((m, d))  # Σ_z K_az z / s_z
    Q = np.zeros(m)  # Σ_z K_az / s_z
    Rz = np.zeros((m, d))  # Σ_z K_az z
    ln_x = 0.0  # Σ_{x∈X} ln s_x

    if n:
        XC, RX = ref.C, ref.R
        c = max(1, block * block // m)
        tasks = list(range(0, n, c))

        def work_x(j: int) -> tuple[np.ndarray, float]:
            K = kernel_tile(LY, RX[j : j + c])
            sx = xs[j : j + c] + K.sum(axis=0)
            Xj = XC[j : j + c]
            rhs = np.empty((Xj.shape[0], 2 * d + 2))
            np.divide(Xj, sx[:, None], out=rhs[:, :d])
            np.divide(1.0, sx, out=rhs[:, d])
            rhs[:, d + 1 : 2 * d + 1] = Xj
            rhs[:, 2 * d + 1] = 1.0
            return K @ rhs, float(np.sum(np.log(sx)))

        for part, lx in map_tiles(work_x, tasks, threads):
            P += part[:, :d]
            Q += part[:, d]
            Rz += part[:, d + 1 : 2 * d + 1]
            rows += part[:, 2 * d + 1]
            ln_x += lx

    # Y against itself: row sums first (s_Y needs them), then the weighted sums with 1/s_Y.
    b = min(m, block)
    ytasks = [(i, j) for i in range(0, m, b) for j in range(0, m, b)]

    def tile_yy(i: int, j: int) -> np.ndarray:
        K = kernel_tile(LY[i : i + b], RY[j : j + b])
        if i == j:
            np.fill_diagonal(K, 1.0)
        return K

    for (i, _), rs in zip(
        ytasks, map_tiles(lambda t: tile_yy(*t).sum(axis=1), ytasks, threads), strict=True
    ):
        rows[i : i + rs.size] += rs
    inv = 1.0 / rows
    rhs_y = np.empty((m, 2 * d + 1))
    np.multiply(YC, inv[:, None], out=rhs_y[:, :d])
    rhs_y[:, d] = inv
    rhs_y[:, d + 1 :] = YC

    def work_y(t: tuple[int, int]) -> np.ndarray:
        i, j = t
        return tile_yy(i, j) @ rhs_y[j : j + b]

    for (i, _), part in zip(ytasks, map_tiles(work_y, ytasks, threads), strict=True):
        k = part.shape[0]
        P[i : i + k] += part[:, :d]
        Q[i : i + k] += part[:, d]
        Rz[i : i + k] += part[:, d + 1 :]

    H = float(np.log(N) - (ln_x + np.sum(np.log(rows))) / N)
    # Σ_z K_az (z − y_a)/s_z + Σ_z K_az (z − y_a)/s_a; the self term cancels exactly (K_aa = 1).
    grad = (P - YC * Q[:, None]) + (Rz - YC * rows[:, None]) * inv[:, None]
    grad *= -1.0 / (N * h * h)
    return H, grad
