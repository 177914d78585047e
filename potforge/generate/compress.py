"""Selection (compression) of a pool of structures by the entropy of their environments.

A pool is ``envs``: a list of ``(n_s, d)`` descriptor arrays, one per structure (``n_s`` ≥ 1
atoms), all of the same width ``d``.  Every method returns a :class:`Selection`: indices into the
pool in the order picked, the entropy (:func:`~potforge.generate.entropy.entropy`, nats) of the
union of the environments picked so far after each pick, and the atoms picked so far.  The limits
are ``k`` (structures) and/or ``size`` (atoms — a label budget): a structure that would take the
total past ``size`` is passed over, and selection stops at ``k`` picks or when nothing left fits.

* :func:`greedy_entropy` — at each step the structure whose environments make the entropy of the
  union largest (exact greedy on ``H``, kept fast by incremental kernel sums);
* :func:`farthest_point` — farthest-point sampling on per-structure mean descriptors (baseline);
* :func:`random_subset` — a seeded random order (baseline);
* :func:`prefix_entropy` — the entropy after each pick of any given order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from potforge.errors import DataError
from potforge.generate.entropy import (
    DEFAULT_BANDWIDTH,
    DEFAULT_BLOCK,
    _check_h,
    _check_int,
    augment,
    check_descriptors,
    kernel_tile,
    map_tiles,
    prefix_entropies,
    resolve_threads,
)


class Selection(NamedTuple):
    """Structures picked from a pool, in order.

    indices : ndarray of int, shape (k,)
        Positions in the pool, in the order picked.
    entropy : ndarray, shape (k,)
        Entropy (nats) of the union of the environments of ``indices[: t + 1]``, for each t.
    atoms : ndarray of int, shape (k,)
        Environments (atoms) of ``indices[: t + 1]``, for each t.
    """

    indices: np.ndarray
    entropy: np.ndarray
    atoms: np.ndarray


def _check_pool(envs: Any) -> list[np.ndarray]:
    if isinstance(envs, np.ndarray) or not isinstance(envs, Sequence) or len(envs) == 0:
        raise DataError(
            "envs must be a non-empty list of (n_s, d) descriptor arrays, one per structure; "
            f"got {type(envs).__name__}"
        )
    first = check_descriptors("envs[0]", envs[0])
    out = [first]
    for i, e in enumerate(envs[1:], start=1):
        out.append(check_descriptors(f"envs[{i}]", e, width=first.shape[1], width_of="envs[0]"))
    return out


def _check_limits(k: Any, size: Any, n_pool: int) -> tuple[int, int | None]:
    """``(k, size)`` checked: k picks at most (the pool when None), size atoms at most or None."""
    if k is None and size is None:
        raise DataError(
            "give k (structures to pick) or size (an atom budget), or both; got neither"
        )
    if k is not None:
        k = _check_int("k", k, 1)
        if k > n_pool:
            raise DataError(f"k={k} exceeds the pool of {n_pool} structures; k must be ≤ {n_pool}")
    if size is not None:
        size = _check_int("size", size, 1)
    return (n_pool if k is None else k), size


def _selection(
    envs: list[np.ndarray], order: list[int], h: float, block: int, threads: int | None
) -> Selection:
    indices = np.asarray(order, dtype=np.int64)
    atoms = np.cumsum([envs[i].shape[0] for i in order], dtype=np.int64)
    return Selection(indices, prefix_entropy(envs, indices, h, block=block, threads=threads), atoms)


def prefix_entropy(
    envs: Any,
    order: Any,
    h: float = DEFAULT_BANDWIDTH,
    *,
    block: int = DEFAULT_BLOCK,
    threads: int | None = None,
) -> np.ndarray:
    """Entropy of the union of ``envs[order[0]], …, envs[order[t]]`` for each t.

    One pass (:func:`~potforge.generate.entropy.prefix_entropies`): the cost of one entropy of
    the whole selection.

    Parameters
    ----------
    envs : list of array_like, each shape (n_s, d)
        The pool.
    order : array_like of int, shape (k,)
        Distinct pool indices.
    h : float, default=0.015
        Kernel bandwidth, descriptor units.
    block, threads
        As in :func:`~potforge.generate.entropy.kernel_sums`.

    Returns
    -------
    H : ndarray, shape (k,)
        Nats.
    """
    pool = _check_pool(envs)
    idx = np.asarray(order)
    if idx.size == 0:
        return np.zeros(0)
    if (
        idx.ndim != 1
        or not np.issubdtype(idx.dtype, np.integer)
        or idx.min() < 0
        or idx.max() >= len(pool)
        or np.unique(idx).size != idx.size
    ):
        raise DataError(
            f"order must be distinct integer indices into the pool of {len(pool)} structures; "
            f"got {order!r}"
        )
    X = np.vstack([pool[i] for i in idx])
    cuts = np.cumsum([pool[i].shape[0] for i in idx])
    return prefix_entropies(X, cuts, h, block=block, threads=threads)


def greedy_entropy(
    envs: Any,
    k: int | None = None,
    h: float = DEFAULT_BANDWIDTH,
    *,
    size: int | None = None,
    block: int = DEFAULT_BLOCK,
    threads: int | None = None,
) -> Selection:
    """Pick structures one at a time, each the one that makes the entropy of the union of the
    picked environments largest (exact greedy on ``H``).

    With ``S`` the environments picked so far (N of them), ``s_z = Σ_{z'∈S} K(z, z')``, and a
    candidate structure t with environments Y_t (n_t of them), the entropy after adding t is
    ``ln(N + n_t) − [Σ_{z∈S} ln(s_z + c_z(t)) + Σ_{y∈Y_t} ln(a_y + b_y)] / (N + n_t)`` with
    ``c_z(t) = Σ_{y∈Y_t} K(z, y)``, ``a_y = Σ_{z∈S} K(y, z)`` and ``b_y = Σ_{y'∈Y_t} K(y, y')``.
    All of ``a`` (every pool environment), ``b`` (once) and the matrix ``c`` (rows added as
    environments are picked) are updated incrementally: a pick costs one kernel pass of its
    environments against the pool, O(n_t · M · d) for M pool environments, plus
    O(N · structures) for the candidates' scores — never a recomputation from scratch.

    Parameters
    ----------
    envs : list of array_like, each shape (n_s, d)
        The pool: descriptors of each structure's environments.
    k : int or None, default=None
        Structures to pick at most (≤ the pool); ``None``: no limit (``size`` then required).
    h : float, default=0.015
        Kernel bandwidth, descriptor units.
    size : int or None, default=None
        Atom budget: a structure that would take the picked atoms past it is passed over.
    block, threads
        As in :func:`~potforge.generate.entropy.kernel_sums`.

    Returns
    -------
    Selection
        Indices in the order picked, the entropy after each pick, the atoms after each pick.

    Notes
    -----
    Memory: the stacked pool with its augmented copies (≈ 3 M (d + 2) float64), one kernel tile
    per thread, and ``c``: 8 bytes × (environments that can be picked) × (pool structures).
    Ties go to the lowest index.
    """
    pool = _check_pool(envs)
    k, size = _check_limits(k, size, len(pool))
    h = _check_h(h)
    block = _check_int("block", block, 1)
    nthreads = resolve_threads(threads)
    n_s = np.array([e.shape[0] for e in pool], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(n_s)])
    S, M = len(pool), int(starts[-1])
    E = np.vstack(pool)
    _, L, R = augment(E, E.mean(axis=0), h)

    # b: each environment's kernel sum within its own structure
    def own(t: int) -> np.ndarray:
        i, j = int(starts[t]), int(starts[t + 1])
        if j - i <= block:
            K = kernel_tile(L[i:j], R[i:j])
            np.fill_diagonal(K, 1.0)
            return K.sum(axis=1)
        out = np.zeros(j - i)
        for r in range(0, j - i, block):
            K = kernel_tile(L[i + r : min(j, i + r + block)], R[i:j])
            np.fill_diagonal(K[:, r:], 1.0)
            out[r : r + K.shape[0]] = K.sum(axis=1)
        return out

    b = np.concatenate(list(map_tiles(own, range(S), nthreads)))
    a = np.zeros(M)  # Σ over picked environments, for every pool environment
    cap = int(np.sort(n_s)[::-1][:k].sum())
    if size is not None:
        cap = min(cap, size)
    C = np.zeros((cap, S))  # C[z, t] = Σ_{y ∈ t} K(z, y) for picked environments z
    s_sel = np.zeros(cap)  # kernel sums of the picked environments within the picked set
    nz = 0
    available = np.ones(S, dtype=bool)
    order: list[int] = []
    entropies: list[float] = []
    budget = size if size is not None else M

    while len(order) < k:
        cand = np.flatnonzero(available & (n_s <= budget - nz))
        if cand.size == 0:
            break
        U = np.add.reduceat(np.log(a + b), starts[:-1])[cand]
        T = np.zeros(cand.size)
        if nz:
            step = max(1, block * block // cand.size)
            for r in range(0, nz, step):
                e = min(nz, r + step)
                T += np.log1p(C[r:e][:, cand] / s_sel[r:e, None]).sum(axis=0)
        N_new = nz + n_s[cand]
        L_S = float(np.sum(np.log(s_sel[:nz])))
        H = np.log(N_new) - (L_S + T + U) / N_new
        best = int(np.argmax(H))
        p = int(cand[best])
        order.append(p)
        entropies.append(float(H[best]))
        available[p] = False

        # add p: its environments' sums, a row of C for each, a += K(p, pool)
        i0, i1 = int(starts[p]), int(starts[p + 1])
        n_p = i1 - i0
        s_sel[:nz] += C[:nz, p]
        s_sel[nz : nz + n_p] = a[i0:i1] + b[i0:i1]
        width = max(1, block * block // n_p)
        firsts = np.unique(np.searchsorted(starts[:-1], np.arange(0, M, width), side="left"))
        firsts = firsts[firsts < S]
        chunks = [
            (int(t0), int(t1)) for t0, t1 in zip(firsts, np.append(firsts[1:], S), strict=True)
        ]

        def against(chunk: tuple[int, int], i0: int = i0, i1: int = i1) -> np.ndarray:
            t0, t1 = chunk
            j0, j1 = int(starts[t0]), int(starts[t1])
            K = kernel_tile(L[i0:i1], R[j0:j1])
            if j0 <= i0 < j1:  # p's own block: K(y, y) = 1 exactly
                np.fill_diagonal(K[:, i0 - j0 : i1 - j0], 1.0)
            return np.concatenate(
                [K.sum(axis=0), np.add.reduceat(K, starts[t0:t1] - j0, axis=1).ravel()]
            )

        for (t0, t1), part in zip(chunks, map_tiles(against, chunks, nthreads), strict=True):
            j0, j1 = int(starts[t0]), int(starts[t1])
            a[j0:j1] += part[: j1 - j0]
            C[nz : nz + n_p, t0:t1] = part[j1 - j0 :].reshape(n_p, t1 - t0)
        nz += n_p
    return Selection(
        np.asarray(order, dtype=np.int64),
        np.asarray(entropies),
        np.cumsum(n_s[order], dtype=np.int64) if order else np.zeros(0, dtype=np.int64),
    )


def farthest_point(
    envs: Any,
    k: int | None = None,
    h: float = DEFAULT_BANDWIDTH,
    *,
    size: int | None = None,
    block: int = DEFAULT_BLOCK,
    threads: int | None = None,
) -> Selection:
    """Farthest-point sampling on per-structure *mean* descriptors (a baseline).

    Each structure is its mean environment ``μ_s`` (d,); the first pick is the structure whose
    mean is farthest from the mean of all ``μ_s``, then each next pick is the one whose mean is
    farthest (Euclidean) from its nearest picked mean.  ``h`` is used only for the entropies
    reported after each pick.

    Parameters
    ----------
    envs : list of array_like, each shape (n_s, d)
        The pool.
    k : int or None, default=None
        Structures to pick at most; ``None``: no limit (``size`` then required).
    h : float, default=0.015
        Kernel bandwidth of the reported entropies, descriptor units.
    size : int or None, default=None
        Atom budget, as in :func:`greedy_entropy`.
    block, threads
        As in :func:`~potforge.generate.entropy.kernel_sums` (for the reported entropies).

    Returns
    -------
    Selection
        Ties go to the lowest index.
    """
    pool = _check_pool(envs)
    k, size = _check_limits(k, size, len(pool))
    h = _check_h(h)
    n_s = np.array([e.shape[0] for e in pool], dtype=np.int64)
    mu = np.array([e.mean(axis=0) for e in pool])
    nearest = np.linalg.norm(mu - mu.mean(axis=0), axis=1)  # first pick: farthest from centre
    available = np.ones(len(pool), dtype=bool)
    budget = size if size is not None else int(n_s.sum())
    order: list[int] = []
    used = 0
    while len(order) < k:
        ok = available & (n_s <= budget - used)
        if not ok.any():
            break
        p = int(np.argmax(np.where(ok, nearest, -np.inf)))
        order.append(p)
        available[p] = False
        used += int(n_s[p])
        d = np.linalg.norm(mu - mu[p], axis=1)
        nearest = d if len(order) == 1 else np.minimum(nearest, d)
    return _selection(pool, order, h, block, threads)


def random_subset(
    envs: Any,
    k: int | None = None,
    seed: int = 0,
    h: float = DEFAULT_BANDWIDTH,
    *,
    size: int | None = None,
    block: int = DEFAULT_BLOCK,
    threads: int | None = None,
) -> Selection:
    """Structures in a seeded random order (a baseline): those that fit the budget are taken
    until ``k`` are picked or the pool is exhausted.

    Parameters
    ----------
    envs : list of array_like, each shape (n_s, d)
        The pool.
    k : int or None, default=None
        Structures to pick at most; ``None``: no limit (``size`` then required).
    seed : int, default=0
        Seed of the permutation (``numpy.random.default_rng``).
    h : float, default=0.015
        Kernel bandwidth of the reported entropies, descriptor units.
    size : int or None, default=None
        Atom budget, as in :func:`greedy_entropy`.
    block, threads
        As in :func:`~potforge.generate.entropy.kernel_sums` (for the reported entropies).

    Returns
    -------
    Selection
    """
    pool = _check_pool(envs)
    k, size = _check_limits(k, size, len(pool))
    h = _check_h(h)
    budget = size if size is not None else sum(e.shape[0] for e in pool)
    order: list[int] = []
    used = 0
    for p in np.random.default_rng(seed).permutation(len(pool)):
        if len(order) == k:
            break
        n = pool[int(p)].shape[0]
        if used + n <= budget:
            order.append(int(p))
            used += n
    return _selection(pool, order, h, block, threads)
