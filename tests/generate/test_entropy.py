"""The QUESTS kernel entropy core: definitions, bounds, agreement with quests, the joint entropy
and its gradient, blocking/threading invariance, and input checks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from potforge.errors import DataError
from potforge.generate.entropy import (
    DEFAULT_BANDWIDTH,
    delta_entropy,
    diversity,
    entropy,
    entropy_curve,
    entropy_reference,
    joint_entropy,
    kernel_sums,
    overlap,
    prefix_entropies,
    self_sums,
    silverman_bandwidth,
)

H_TEST = 0.03


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    """Descriptor-like rows at the scale of the bandwidth: kernels neither all 1 nor all 0."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6)) * 0.04 + 0.3
    Y = rng.normal(size=(37, 6)) * 0.05 + 0.3
    return X, Y


def brute_sums(Y: np.ndarray, X: np.ndarray, h: float) -> np.ndarray:
    return np.exp(-cdist(Y, X, "sqeuclidean") / (2 * h * h)).sum(axis=1)


@pytest.fixture(scope="module")
def w_descriptors() -> np.ndarray:
    """Real QUESTS descriptors (63 components) of rattled 54-atom bcc W cells."""
    pytest.importorskip("quests")
    from ase.build import bulk
    from quests.descriptor import get_descriptors

    frames = []
    for i, (a, rattle) in enumerate([(3.165, 0.02), (3.165, 0.08), (3.10, 0.05), (3.22, 0.12)]):
        atoms = bulk("W", "bcc", a=a, cubic=True).repeat(3)
        atoms.rattle(rattle, seed=i)
        frames.append(atoms)
    return get_descriptors(frames)


# --------------------------------------------------------------------------- definitions


def test_kernel_sums_equal_the_dense_definition(data):
    X, Y = data
    assert np.allclose(kernel_sums(Y, X, H_TEST), brute_sums(Y, X, H_TEST), rtol=1e-12, atol=0)
    assert np.allclose(self_sums(X, H_TEST), brute_sums(X, X, H_TEST), rtol=1e-12, atol=0)
    assert kernel_sums(np.zeros((0, 6)), X, H_TEST).shape == (0,)
    assert np.array_equal(kernel_sums(Y, np.zeros((0, 6)), H_TEST), np.zeros(len(Y)))


def test_entropy_bounds_and_extremes(data):
    X, _ = data
    n = len(X)
    H = entropy(X, H_TEST)
    assert 0 < H < np.log(n)
    same = np.tile(X[:1], (50, 1))
    assert entropy(same, H_TEST) == pytest.approx(0.0, abs=1e-12)
    assert diversity(same, H_TEST) == pytest.approx(0.0, abs=1e-12)
    far = np.eye(20) * 10.0  # every pair 14 Å⁻¹ apart: all off-diagonal kernels vanish
    assert entropy(far, H_TEST) == pytest.approx(np.log(20), rel=1e-12)
    assert diversity(far, H_TEST) == pytest.approx(np.log(20), rel=1e-12)
    s = brute_sums(X, X, H_TEST)
    assert H == pytest.approx(-np.mean(np.log(s / n)), rel=1e-12)
    assert diversity(X, H_TEST) == pytest.approx(np.log(np.sum(1 / s)), rel=1e-12)


def test_delta_entropy_of_members_is_not_positive_and_overlap(data):
    X, Y = data
    dH = delta_entropy(X[:50], X, H_TEST)
    assert np.all(dH <= 0)  # each member's own kernel is 1, so the sum is ≥ 1
    assert np.allclose(dH, -np.log(brute_sums(X[:50], X, H_TEST)), rtol=1e-12)
    assert overlap(X[:50], X, H_TEST) == 1.0
    far = X[:5] + 5.0
    assert np.all(delta_entropy(far, X, H_TEST) > 690)  # not covered (saturates at the floor)
    assert overlap(far, X, H_TEST) == 0.0
    mixed = np.vstack([X[:3], far])
    assert overlap(mixed, X, H_TEST) == pytest.approx(3 / 8)
    expected = np.mean(-np.log(brute_sums(Y, X, H_TEST)) < 1e-5)
    assert overlap(Y, X, H_TEST) == expected


def test_entropy_curve_and_prefix_entropies(data):
    X, _ = data
    sizes = [10, 400, 100, 10]
    curve = entropy_curve(X, H_TEST, sizes, seed=3)
    perm = np.random.default_rng(3).permutation(len(X))
    expected = [entropy(X[perm[:s]], H_TEST) for s in sizes]
    assert np.allclose(curve, expected, rtol=1e-12)
    assert curve[0] == curve[3]
    assert np.allclose(
        prefix_entropies(X, [1, 7, 250], H_TEST),
        [0.0, entropy(X[:7], H_TEST), entropy(X[:250], H_TEST)],
        rtol=1e-12,
        atol=1e-15,
    )


def test_silverman_bandwidth():
    assert silverman_bandwidth(100, 1) == pytest.approx((4 / 3) ** 0.2 * 100**-0.2, rel=1e-14)
    assert silverman_bandwidth(1000, 63) == pytest.approx(
        (4 / 65) ** (1 / 67) * 1000 ** (-1 / 67), rel=1e-14
    )
    assert silverman_bandwidth(10**5, 10) < silverman_bandwidth(10**3, 10)


# --------------------------------------------------------------------------- quests agreement


def test_agrees_with_quests_on_random_descriptors(data):
    qe = pytest.importorskip("quests.entropy")
    X, Y = data
    assert entropy(X, H_TEST) == pytest.approx(float(qe.entropy(X, h=H_TEST)), rel=1e-10)
    assert diversity(X, H_TEST) == pytest.approx(float(qe.diversity(X, h=H_TEST)), rel=1e-10)
    assert np.allclose(
        delta_entropy(Y, X, H_TEST), qe.delta_entropy(Y, X, h=H_TEST), rtol=1e-10, atol=0
    )


def test_agrees_with_quests_on_w_descriptors(w_descriptors):
    import quests.entropy as qe

    X = w_descriptors
    assert X.shape == (216, 63)
    assert DEFAULT_BANDWIDTH == qe.DEFAULT_BANDWIDTH
    ref, test = X[:108], X[108:]
    assert entropy(X) == pytest.approx(float(qe.entropy(X)), rel=1e-10)
    assert diversity(X) == pytest.approx(float(qe.diversity(X)), rel=1e-10)
    ours, theirs = delta_entropy(test, ref), qe.delta_entropy(test, ref)
    assert np.allclose(ours, theirs, rtol=1e-10, atol=0)
    assert overlap(test, ref) == float(np.mean(theirs < 1e-5))
    assert overlap(ref[:20], ref) == 1.0


# --------------------------------------------------------------------------- joint entropy


def test_joint_entropy_equals_entropy_of_the_union(data):
    X, Y = data
    H, grad = joint_entropy(Y, X, H_TEST)
    union = entropy(np.vstack([X, Y]), H_TEST)
    assert H == pytest.approx(union, rel=1e-12)
    assert grad.shape == Y.shape
    H2, grad2 = joint_entropy(Y, X, H_TEST, x_sums=self_sums(X, H_TEST), block=16, threads=2)
    assert H2 == pytest.approx(H, rel=1e-12)
    assert np.allclose(grad2, grad, rtol=1e-10, atol=1e-12 * np.abs(grad).max())
    H0, g0 = joint_entropy(Y, np.zeros((0, 6)), H_TEST)  # no existing data
    assert H0 == pytest.approx(entropy(Y, H_TEST), rel=1e-12)
    assert g0.shape == Y.shape
    Hx, gx = joint_entropy(np.zeros((0, 6)), X, H_TEST)  # nothing new
    assert Hx == pytest.approx(entropy(X, H_TEST), rel=1e-12)
    assert gx.shape == (0, 6)


def test_joint_entropy_with_a_prepared_reference(data):
    X, Y = data
    ref = entropy_reference(X, H_TEST)
    assert ref.n == 400 and ref.d == 6 and ref.h == H_TEST
    assert np.allclose(ref.sums, self_sums(X, H_TEST), rtol=1e-12)
    assert not ref.C.flags.writeable and not ref.sums.flags.writeable
    H, grad = joint_entropy(Y, X, H_TEST)
    H_ref, grad_ref = joint_entropy(Y, ref)
    assert H_ref == pytest.approx(H, rel=1e-14)
    assert np.allclose(grad_ref, grad, rtol=1e-12, atol=0)
    assert joint_entropy(Y, ref, H_TEST)[0] == H_ref
    given = entropy_reference(X, H_TEST, x_sums=self_sums(X, H_TEST))
    assert joint_entropy(Y, given)[0] == pytest.approx(H, rel=1e-14)
    empty = entropy_reference(np.zeros((0, 6)), H_TEST)
    assert joint_entropy(Y, empty)[0] == pytest.approx(entropy(Y, H_TEST), rel=1e-12)
    with pytest.raises(DataError, match=r"h=0.05 differs from the bandwidth h=0.03 the reference"):
        joint_entropy(Y, ref, 0.05)
    with pytest.raises(DataError, match=r"x_sums must not be given with an EntropyReference"):
        joint_entropy(Y, ref, x_sums=ref.sums)
    with pytest.raises(DataError, match=r"Y has 5 descriptor components per environment but X"):
        joint_entropy(Y[:, :5], ref)


@pytest.mark.parametrize("existing", [400, 0])
def test_joint_entropy_gradient_matches_central_differences(data, existing):
    X, Y = data
    X = X[:existing]
    Y = Y[:8]
    xs = self_sums(X, H_TEST)
    _, grad = joint_entropy(Y, X, H_TEST, x_sums=xs)
    step = 1e-6
    fd = np.empty_like(Y)
    for a in range(Y.shape[0]):
        for k in range(Y.shape[1]):
            up, down = Y.copy(), Y.copy()
            up[a, k] += step
            down[a, k] -= step
            fd[a, k] = (
                joint_entropy(up, X, H_TEST, x_sums=xs)[0]
                - joint_entropy(down, X, H_TEST, x_sums=xs)[0]
            ) / (2 * step)
    assert np.abs(grad).max() > 1e-2  # a real slope, not a flat region
    assert np.allclose(grad, fd, rtol=1e-5, atol=1e-6 * np.abs(grad).max())


def test_joint_entropy_gradient_points_away_from_crowding():
    """A new point on top of an existing one gains entropy by moving off it, away from it."""
    X = np.array([[0.0, 0.0]])
    Y = np.array([[0.01, 0.0]])
    _, grad = joint_entropy(Y, X, 0.05)
    assert grad[0, 0] > 0 and abs(grad[0, 1]) < 1e-12


# --------------------------------------------------------------------------- blocking, threads


def test_blocked_results_do_not_depend_on_block_or_threads(data):
    X, Y = data
    X = X[:200]
    ref_k = kernel_sums(Y, X, H_TEST, block=1024, threads=1)
    ref_s = self_sums(X, H_TEST, block=1024, threads=1)
    for block in (3, 64, 150):
        one = kernel_sums(Y, X, H_TEST, block=block, threads=1)
        assert np.allclose(one, ref_k, rtol=1e-12, atol=0)
        assert np.array_equal(kernel_sums(Y, X, H_TEST, block=block, threads=3), one)
        sym = self_sums(X, H_TEST, block=block, threads=1)
        assert np.allclose(sym, ref_s, rtol=1e-12, atol=0)
        assert np.array_equal(self_sums(X, H_TEST, block=block, threads=2), sym)
    assert entropy(X, H_TEST, block=13, threads=2) == pytest.approx(entropy(X, H_TEST), rel=1e-13)


def test_threads_none_reads_omp_num_threads(monkeypatch):
    from potforge.generate.entropy import resolve_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert resolve_threads(None) == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert resolve_threads(None) >= 1
    assert resolve_threads(5) == 5


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda X: entropy(X[0]), r"X must be a 2-D array \(environments, descriptor"),
        (lambda X: entropy(np.zeros((0, 6))), r"X must hold at least one environment"),
        (lambda X: entropy(np.zeros((5, 0))), r"X must have at least one descriptor component"),
        (lambda X: entropy("abc"), r"X must be a 2-D array of numbers"),
        (
            lambda X: kernel_sums(X, X[:, :3]),
            r"Y has 6 descriptor components per environment but X has 3; both must have the same",
        ),
        (
            lambda X: delta_entropy(X[:, :4], X),
            r"Y has 4 descriptor components per environment but X has 6",
        ),
        (lambda X: entropy(np.where(X == X[1, 2], np.nan, X)), r"X must be finite; X\[1, 2\]"),
        (lambda X: entropy(X, h=0.0), r"h \(the kernel bandwidth\) must be a finite number > 0"),
        (lambda X: entropy(X, h=-1), r"must be a finite number > 0; got -1"),
        (lambda X: entropy(X, h=np.array([0.1, 0.2])), r"h .* must be one positive number"),
        (lambda X: entropy(X, threads=0), r"threads must be an integer ≥ 1; got 0"),
        (lambda X: entropy(X, block=0), r"block must be an integer ≥ 1; got 0"),
        (lambda X: overlap(X, X, eps=float("nan")), r"eps .* must be finite"),
        (
            lambda X: joint_entropy(X[:3], X, x_sums=np.ones(3)),
            r"x_sums must be 400 finite positive kernel sums of X over itself",
        ),
        (
            lambda X: joint_entropy(np.zeros((0, 6)), np.zeros((0, 6))),
            r"X and Y are both empty",
        ),
        (lambda X: entropy_curve(X, 0.03, [0, 5]), r"sizes must be a non-empty list of integers"),
        (lambda X: entropy_curve(X, 0.03, [401]), r"in \[1, 400\]; got \[401\]"),
        (lambda X: prefix_entropies(X, [5, 5]), r"strictly increasing list of integers"),
        (lambda X: silverman_bandwidth(0, 3), r"n must be an integer ≥ 1; got 0"),
    ],
)
def test_bad_input_raises_one_clear_data_error(data, call, message):
    X, _ = data
    with pytest.raises(DataError, match=message):
        call(X)
