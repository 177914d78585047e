"""Fisher information: exact blocks from design rows, QoI information, analysis."""

from __future__ import annotations

import numpy as np
import pytest

from potforge.errors import DataError
from potforge.information.fisher import (
    GPA,
    LabelPrecision,
    analyse,
    candidate_owners,
    coverage,
    dominance,
    information_fraction,
    predicted_sigma,
    qoi_fisher,
    spectrum_plot,
    structure_fisher,
    target_covariance,
    whitened_span_fraction,
)
from potforge.linalg import ENERGY, FORCE, STRESS


def test_structure_fisher_blocks_are_exact_and_sum_to_AtWA():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(40, 6))
    w = rng.uniform(0.5, 2.0, 40)
    owner = rng.integers(0, 5, 40)
    F = structure_fisher(A, w, owner, 6)
    assert F.shape == (6, 6, 6)
    for m in range(6):
        rows = owner == m
        np.testing.assert_allclose(F[m], (A[rows] * w[rows, None]).T @ A[rows], atol=1e-12)
    np.testing.assert_allclose(F.sum(0), A.T @ (w[:, None] * A), rtol=1e-12)
    assert not F[5].any()  # a candidate without rows carries nothing


def test_pool_fisher_of_real_structures_equals_AtWA_at_the_label_precision():
    from potforge.data.builders import w_structures
    from potforge.information.loop import candidate_fisher, pool_fisher
    from potforge.model import LinearPotential

    pool = w_structures(0)[::6]
    model = LinearPotential("snap(twojmax=2)+const").setup(pool)
    lp = LabelPrecision(energy=2e-3, force=0.1, stress=0.5)
    F = pool_fisher(model, pool, lp, progress=False, chunk=2)
    fine, owner = candidate_fisher(model, pool, lp, False, chunk=3, per_atom_forces=True)
    assert len(fine) == sum(len(a) + 1 for a in pool)  # each atom, plus energy and stress
    np.testing.assert_array_equal(np.bincount(owner), [len(a) + 1 for a in pool])
    for k in range(len(pool)):
        np.testing.assert_allclose(fine[owner == k].sum(0), F[k], rtol=1e-10, atol=1e-300)
    for k, a in enumerate(pool):
        dm = model.design_rows([a])
        sig = np.array([2e-3, 0.1, 0.5 * GPA])[dm.row_type]
        np.testing.assert_allclose(F[k], dm.A.T @ (dm.A / sig[:, None] ** 2), rtol=1e-10)
        assert set(dm.row_type) == {ENERGY, FORCE, STRESS}  # every candidate has a 3-D cell


def test_per_atom_force_candidates_partition_the_structure():
    row_type = np.array([ENERGY, *[FORCE] * 6, *[STRESS] * 6, ENERGY, *[FORCE] * 3])
    structure = np.array([0] * 13 + [1] * 4)
    owner, of = candidate_owners(row_type, structure, per_atom_forces=True)
    # structure 0: energy+stress, atom 0, atom 1; structure 1: energy, atom 0
    assert len(of) == 5 and list(of) == [0, 0, 0, 1, 1]
    assert list(owner[1:7]) == [1, 1, 1, 2, 2, 2]
    assert owner[0] == owner[7] == 0
    plain, of1 = candidate_owners(row_type, structure)
    assert list(plain) == list(structure) and list(of1) == [0, 1]


def test_target_covariance_absolute_relative_and_correlated():
    S = target_covariance([2.0, 100.0], [0.1, 0.05], [False, True])
    np.testing.assert_allclose(S, np.diag([0.01, 25.0]))
    C = np.array([[1.0, 0.5], [0.5, 1.0]])
    S = target_covariance([2.0, 100.0], [0.1, 0.05], [False, True], C)
    assert S[0, 1] == pytest.approx(0.5 * 0.1 * 5.0)
    with pytest.raises(DataError, match="tolerance"):
        target_covariance([0.0], [0.1], True)
    with pytest.raises(DataError, match="correlation"):
        target_covariance([1.0, 1.0], [0.1, 0.1], False, np.array([[1.0, 0.2], [0.3, 1.0]]))


def test_predicted_sigma_and_dominance_match_the_explicit_inverse():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 4))
    F = X.T @ X
    J = rng.normal(size=(3, 4))
    np.testing.assert_allclose(predicted_sigma(F, J), np.sqrt(np.diag(J @ np.linalg.inv(F) @ J.T)))
    S = np.diag(predicted_sigma(F, J) ** 2) * 1.01
    # F covers I_QoI = JᵀΣ⁻¹J exactly when J F⁻¹ Jᵀ ⪯ Σ
    cov = J @ np.linalg.inv(F) @ J.T
    assert dominance(F, qoi_fisher(J, cov * 1.001)) >= -1e-9
    assert dominance(F, qoi_fisher(J, J @ np.linalg.inv(F) @ J.T * 0.5)) < 0
    frac = information_fraction(F, J, S)
    np.testing.assert_allclose(frac, 1.0)
    # a QoI whose gradient leaves the data's range has no information at all
    F1 = F.copy()
    F1[:, 0] = F1[0, :] = 0.0
    sig = predicted_sigma(F1, np.eye(4)[:1])
    assert np.isinf(sig[0])
    assert information_fraction(F1, np.eye(4)[:1], np.eye(1))[0] == 0.0


def test_whitened_span_fraction_is_one_in_the_span_and_zero_outside():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(20, 5))
    F = X.T @ X
    G = rng.normal(size=(2, 5))
    assert whitened_span_fraction(F, 0.3 * G[0] - 2 * G[1], G) == pytest.approx(1.0)
    # orthogonal in the whitened metric: F^{-1/2}g ⟂ F^{-1/2}G  ⇔  g F⁻¹ Gᵀ = 0
    g = rng.normal(size=5)
    Finv = np.linalg.inv(F)
    coef = np.linalg.solve(G @ Finv @ G.T, G @ Finv @ g)
    assert whitened_span_fraction(F, g - coef @ G, G) == pytest.approx(0.0, abs=1e-10)


def test_analysis_names_the_term_of_the_sloppy_direction(tmp_path):
    names = ["snap[W].B0", "snap[W].B1", "pair[W-W].c0", "const[W]"]
    F = np.diag([10.0, 5.0, 1e-6, 2.0])
    a = analyse(F, names, n_sloppy=1)
    assert a.sloppy[0]["terms"] == {
        "pair[W-W]": pytest.approx(1.0),
        "snap[W]": 0.0,
        "const[W]": 0.0,
    }
    assert a.condition == pytest.approx(1e7)
    assert a.n_null == 0
    F[2, 2] = 0.0
    assert analyse(F, names).n_null == 1 and np.isinf(analyse(F, names).condition)
    with pytest.raises(DataError, match="parameter names"):
        analyse(F, names[:2])
    out = spectrum_plot(tmp_path / "s.png", F, np.diag([1.0, 1.0, 0, 0]))
    assert out.stat().st_size > 1000


def test_label_precision_rejects_non_positive():
    with pytest.raises(DataError, match="force"):
        LabelPrecision(force=0.0)
    assert LabelPrecision().sigma[STRESS] == pytest.approx(0.1 * GPA)


def test_coverage_is_the_worst_variance_ratio_and_scale_free():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 5)) * np.array([1e4, 1.0, 1e-3, 1.0, 10.0])  # badly scaled
    F = X.T @ X
    J = rng.normal(size=(2, 5))
    S = np.diag(predicted_sigma(F, J) ** 2)
    cov = coverage(F, qoi_fisher(J, S))
    # the worst combination is at least the worst single QoI (1 here), and ≤ 1 ⇔ F ⪰ I_QoI
    M = np.linalg.solve(S, J @ np.linalg.inv(F) @ J.T)
    assert cov == pytest.approx(np.linalg.eigvals(M).real.max(), rel=1e-8)
    assert cov >= 1 - 1e-9
    assert coverage(F, qoi_fisher(J, 1.01 * cov * S)) <= 1
    assert coverage(F, qoi_fisher(J, 0.99 * cov * S)) > 1
    F1 = F.copy()
    F1[:, 2] = F1[2, :] = 0.0
    assert np.isinf(coverage(F1, qoi_fisher(np.eye(5)[2:3], np.eye(1))))
