"""Selection of structures from a pool: greedy entropy (exact, incremental), FPS and random
baselines, atom budgets, input checks."""

from __future__ import annotations

import numpy as np
import pytest

from potforge.errors import DataError
from potforge.generate.compress import (
    farthest_point,
    greedy_entropy,
    prefix_entropy,
    random_subset,
)
from potforge.generate.entropy import entropy

H = 0.03


def far_pool(sizes, seed=0, d=8):
    """Structures whose environments are all mutually far apart (≫ h): kernels vanish between
    any two distinct environments."""
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, d)) * 3.0 for n in sizes]


@pytest.fixture(scope="module")
def overlapping_pool():
    """Structures at the scale of the bandwidth, so that picks interact."""
    rng = np.random.default_rng(1)
    return [
        rng.normal(size=(int(rng.integers(3, 15)), 5)) * 0.04 + rng.normal(size=5) * 0.03
        for _ in range(40)
    ]


def union_entropy(envs, order):
    return entropy(np.vstack([envs[i] for i in order]), H)


def test_greedy_never_picks_a_duplicate_before_every_distinct_structure():
    distinct = far_pool([6, 3, 9, 4, 7, 5])
    pool = distinct + [distinct[0].copy(), distinct[2].copy(), distinct[2].copy()]
    sel = greedy_entropy(pool, k=len(pool), h=H)
    assert sorted(sel.indices[:6].tolist()) == list(range(6))
    assert set(sel.indices[6:].tolist()) == {6, 7, 8}
    assert np.all(np.diff(sel.entropy[:6]) > 0)  # each distinct structure adds entropy
    assert sel.entropy[5] == pytest.approx(np.log(34), rel=1e-12)  # all 34 environments apart


def test_greedy_is_the_exact_greedy_on_the_entropy_of_the_union(overlapping_pool):
    pool = overlapping_pool
    sel = greedy_entropy(pool, k=8, h=H)
    chosen: list[int] = []
    for _ in range(8):
        rest = [i for i in range(len(pool)) if i not in chosen]
        chosen.append(max(rest, key=lambda i: union_entropy(pool, chosen + [i])))
    assert sel.indices.tolist() == chosen
    exact = [union_entropy(pool, chosen[: t + 1]) for t in range(8)]
    assert np.allclose(sel.entropy, exact, rtol=1e-12)
    assert sel.atoms.tolist() == np.cumsum([len(pool[i]) for i in chosen]).tolist()
    other = greedy_entropy(pool, k=8, h=H, block=4, threads=2)
    assert other.indices.tolist() == chosen
    assert np.allclose(other.entropy, sel.entropy, rtol=1e-12)


def test_greedy_beats_random_where_the_pool_is_copies_of_few_structures():
    """8 structures of 5 far-apart environments, 4 identical copies of each: one copy of each
    (ln 40, the most any 8 picks can have) is greedy's pick; random draws repeat some."""
    base = far_pool([5] * 8, seed=2)
    pool = [base[i % 8].copy() for i in range(32)]
    greedy = greedy_entropy(pool, k=8, h=H)
    assert sorted(i % 8 for i in greedy.indices) == list(range(8))
    assert greedy.entropy[-1] == pytest.approx(np.log(40), rel=1e-12)
    randoms = [random_subset(pool, k=8, seed=s, h=H).entropy[-1] for s in range(20)]
    assert all(r <= greedy.entropy[-1] + 1e-12 for r in randoms)
    assert min(randoms) < greedy.entropy[-1] - 0.1
    fps = farthest_point(pool, k=8, h=H)  # equal means are at distance 0: FPS spreads too
    assert sorted(i % 8 for i in fps.indices) == list(range(8))


def test_farthest_point_on_structure_means(overlapping_pool):
    pool = overlapping_pool
    sel = farthest_point(pool, k=6, h=H)
    mu = np.array([e.mean(axis=0) for e in pool])
    first = int(np.argmax(np.linalg.norm(mu - mu.mean(axis=0), axis=1)))
    assert sel.indices[0] == first
    for t in range(1, 6):
        picked = sel.indices[:t]
        nearest = np.min(np.linalg.norm(mu[:, None] - mu[picked][None], axis=2), axis=1)
        nearest[picked] = -np.inf
        assert sel.indices[t] == int(np.argmax(nearest))
    exact = [union_entropy(pool, sel.indices[: t + 1]) for t in range(6)]
    assert np.allclose(sel.entropy, exact, rtol=1e-12)


def test_random_subset_is_seeded_and_distinct(overlapping_pool):
    a = random_subset(overlapping_pool, k=10, seed=4, h=H)
    b = random_subset(overlapping_pool, k=10, seed=4, h=H)
    c = random_subset(overlapping_pool, k=10, seed=5, h=H)
    assert a.indices.tolist() == b.indices.tolist() != c.indices.tolist()
    assert len(set(a.indices.tolist())) == 10
    assert a.indices.tolist() == np.random.default_rng(4).permutation(40)[:10].tolist()
    assert np.allclose(prefix_entropy(overlapping_pool, a.indices, H), a.entropy, rtol=1e-12)


@pytest.mark.parametrize("method", [greedy_entropy, farthest_point, random_subset])
def test_atom_budget_is_respected_and_filled(overlapping_pool, method):
    pool = overlapping_pool
    sizes = np.array([len(e) for e in pool])
    budget = 60
    sel = method(pool, size=budget, h=H)
    assert sel.atoms[-1] == sizes[sel.indices].sum() <= budget
    left = np.setdiff1d(np.arange(len(pool)), sel.indices)
    assert np.all(sizes[left] > budget - sel.atoms[-1])  # nothing more fits
    capped = method(pool, k=3, size=budget, h=H)
    assert len(capped.indices) == 3 and capped.atoms[-1] <= budget


def test_budget_smaller_than_every_structure_picks_nothing():
    pool = far_pool([4, 5, 6])
    for method in (greedy_entropy, farthest_point, random_subset):
        sel = method(pool, size=3, h=H)
        assert sel.indices.size == sel.entropy.size == sel.atoms.size == 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: greedy_entropy([], k=1), r"envs must be a non-empty list of \(n_s, d\)"),
        (lambda p: greedy_entropy(np.zeros((3, 4, 5)), k=1), r"envs must be a non-empty list"),
        (
            lambda p: greedy_entropy([p[0], p[1][:, :3]], k=1),
            r"envs\[1\] has 3 descriptor components per environment but envs\[0\] has 8",
        ),
        (lambda p: greedy_entropy([p[0], np.zeros((0, 8))], k=1), r"envs\[1\] must hold at least"),
        (lambda p: greedy_entropy(p, k=4), r"k=4 exceeds the pool of 3 structures"),
        (lambda p: farthest_point(p), r"give k \(structures to pick\) or size"),
        (lambda p: random_subset(p, size=0), r"size must be an integer ≥ 1; got 0"),
        (lambda p: greedy_entropy(p, k=1, h=0), r"h \(the kernel bandwidth\) must be"),
        (lambda p: prefix_entropy(p, [0, 0]), r"order must be distinct integer indices"),
        (lambda p: prefix_entropy(p, [3]), r"into the pool of 3 structures; got \[3\]"),
    ],
)
def test_bad_input_raises_one_clear_data_error(call, message):
    with pytest.raises(DataError, match=message):
        call(far_pool([4, 5, 6]))
