"""The matching program: toy identity, dominance after rounding, agreement with the reference
package, exact preconditioning, column generation, costs and infeasibility."""

from __future__ import annotations

import numpy as np
import pytest

from potforge.errors import DataError
from potforge.information import InformationMatcher, solve_matching
from potforge.information.fisher import dominance, qoi_fisher
from potforge.information.matching import InfeasibleError, labelling_cost
from potforge.information.targets import TargetInformation, explain_shortfall


def random_problem(seed: int, P: int = 8, M: int = 60, Q: int = 3, scale: float = 0.2):
    rng = np.random.default_rng(seed)
    units = rng.lognormal(0, 2, P)  # parameters of very different scales
    fims = []
    for _ in range(M):
        A = rng.normal(size=(rng.integers(1, 4), P)) * units
        fims.append(A.T @ A)
    J = rng.normal(size=(Q, P)) / units
    fims = np.array(fims)
    # the whole pool covers the target 1/scale times over: the selection needs a fraction of it
    L = np.linalg.cholesky(fims.sum(0))
    Li = np.linalg.inv(L)
    mu = np.linalg.eigvalsh(Li @ J.T @ J @ Li.T).max()
    return fims, scale / mu * J.T @ J, J


def test_toy_identity_gives_weight_c_on_the_first_candidate_only():
    P, c = 3, 2.5
    fims = np.stack([np.eye(P), np.zeros((P, P))])
    r = solve_matching(fims, c * np.eye(P), upper=None)
    np.testing.assert_allclose(r.weights, [c, 0.0], atol=1e-6)
    assert list(r.selected) == [0] and r.n_thresholded == 1
    r1 = solve_matching(fims, 0.5 * np.eye(P))  # u = 1: label once at the oracle's precision
    np.testing.assert_allclose(r1.weights, [0.5, 0.0], atol=1e-6)
    assert list(r1.selected) == [0] and r1.dominance >= 0.5 - 1e-9


@pytest.mark.parametrize("seed", range(6))
def test_rounded_selection_dominates_on_random_problems(seed):
    fims, target, _ = random_problem(seed)
    r = solve_matching(fims, target)
    assert r.status in ("optimal", "optimal_inaccurate")
    chosen = fims[r.selected].sum(0)
    assert dominance(chosen, target) >= -1e-6 and r.dominance >= -1e-6
    assert r.dominance_solver >= -1e-5  # the solver's own weights, to its accuracy
    assert r.cost >= r.objective * (1 - 1e-6)  # rounding cannot beat the relaxation
    assert np.all(r.weights >= 0) and np.all(r.weights <= 1 + 1e-7)


def test_objective_agrees_with_the_information_matching_package():
    from information_matching import ConvexOpt

    for seed in (0, 1):
        fims, target, _ = random_problem(seed, P=6, M=40)
        ref = ConvexOpt(target, {i: f for i, f in enumerate(fims)}, weight_upper_bound=1.0)
        ref.solve()  # its default solver, SDPA
        ours = solve_matching(fims, target, upper=1.0)
        assert ours.objective == pytest.approx(ref.result["value"], rel=1e-3)


def test_preconditioning_leaves_the_answer_unchanged():
    fims, target, _ = random_problem(3)
    base = solve_matching(fims, target)
    scaled = solve_matching(fims * 1e7, target * 1e7)
    assert scaled.objective == pytest.approx(base.objective, rel=1e-5)
    T = np.random.default_rng(9).normal(size=(fims.shape[1],) * 2)  # any invertible congruence
    moved = solve_matching(np.einsum("pi,mpq,qj->mij", T, fims, T), T.T @ target @ T)
    assert moved.objective == pytest.approx(base.objective, rel=1e-4)


def test_column_generation_reaches_the_full_optimum():
    fims, target, _ = random_problem(4, P=10, M=400)
    full = solve_matching(fims, target, working=400)
    small = solve_matching(fims, target, working=15)
    assert small.rounds > 1 and small.n_working < 400
    assert small.objective == pytest.approx(full.objective, rel=1e-5)


def test_costs_steer_the_selection_to_cheap_candidates():
    P = 2
    fims = np.stack([np.eye(P), np.eye(P), 0.5 * np.eye(P), 0.5 * np.eye(P)])
    cost = np.array([10.0, 10.0, 1.0, 1.0])
    r = solve_matching(fims, np.eye(P), cost=cost)
    assert set(r.selected) == {2, 3} and r.cost == pytest.approx(2.0)
    np.testing.assert_allclose(labelling_cost([2, 3], "n2"), [4, 9])
    np.testing.assert_allclose(labelling_cost([2, 3], "n3"), [8, 27])
    with pytest.raises(DataError, match="cost model"):
        labelling_cost([2], "n4")


def test_fixed_information_is_free_and_can_meet_the_target():
    fims, target, _ = random_problem(5)
    r = solve_matching(fims, target, fixed=2 * target)
    assert r.status == "met" and not len(r.selected)
    part = solve_matching(fims, target, fixed=0.5 * target)
    whole = solve_matching(fims, target)
    assert part.objective < whole.objective


def test_infeasible_pool_names_the_uninformed_qoi():
    fims = np.stack([np.diag([1.0, 1.0, 0.0])] * 4)  # nothing informs θ2
    J = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # Q0 ∝ θ0, Q1 ∝ θ2
    S = np.diag([0.5, 0.5]) ** 2
    with pytest.raises(InfeasibleError) as err:
        solve_matching(fims, qoi_fisher(J, S))
    info = TargetInformation(["a0", "Evac"], np.array([3.2, 3.0]), J, S, qoi_fisher(J, S))
    msg = explain_shortfall(err.value.available, info)
    assert "Evac (no information at all; add vacancy cells)" in msg and "a0" not in msg
    # enough candidates but not enough precision: says by how much
    S2 = np.diag([0.1, 0.5]) ** 2
    J2 = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    with pytest.raises(InfeasibleError) as err:
        solve_matching(fims, qoi_fisher(J2, S2))
    info = TargetInformation(["a0", "C44"], np.array([3.2, 160]), J2, S2, qoi_fisher(J2, S2))
    assert "a0 (σ 0.5 Å > 0.1 Å (5×)" in explain_shortfall(err.value.available, info)


def test_bad_inputs_are_one_sentence():
    fims, target, _ = random_problem(0)
    with pytest.raises(DataError, match=r"shape \(8, 8\)"):
        solve_matching(fims, target[:3, :3])
    with pytest.raises(DataError, match="cost"):
        solve_matching(fims, target, cost=-np.ones(len(fims)))
    with pytest.raises(DataError, match="solver"):
        solve_matching(fims, target, solver="MOSEK")
    with pytest.raises(DataError, match="zero"):
        solve_matching(fims, 0 * target)
    bad = fims.copy()
    bad[0, 0, 1] += 1.0
    with pytest.raises(DataError, match="symmetric"):
        solve_matching(bad, target)


def test_estimator_follows_scikit_learn_and_reweighting_keeps_dominance():
    from sklearn.base import clone

    fims, target, _ = random_problem(2, M=80)
    est = clone(InformationMatcher(reweight=2)).fit(fims, target)
    plain = InformationMatcher().fit(fims, target)
    assert est.result_.dominance >= -1e-6
    assert est.result_.n_thresholded <= plain.result_.n_thresholded
    assert est.get_params()["reweight"] == 2


def test_every_solver_answers_the_same_program():
    fims, target, _ = random_problem(7, P=6, M=50)
    a = solve_matching(fims, target, solver="CLARABEL")
    c = solve_matching(fims, target, solver="SDPA")
    assert c.objective == pytest.approx(a.objective, rel=1e-4)
    assert solve_matching(fims, target).solver == "CLARABEL"  # auto: SDPA can end the process
    b = solve_matching(fims, target, solver="SCS")
    assert b.objective == pytest.approx(a.objective, rel=2e-2)
    assert b.dominance >= -1e-6  # rounding checks the exact matrices, whatever the solver


def test_each_qoi_meets_every_tolerance_for_no_more_than_the_joint_target():
    from potforge.information.fisher import predicted_sigma
    from potforge.information.matching import each_qoi

    for seed in range(3):
        fims, _, J = random_problem(seed, P=8, M=80)
        # tolerances the whole pool meets 5 times over, per QoI
        tol = 0.5 * np.sqrt(5.0) * predicted_sigma(fims.sum(0) / 5.0, J)
        joint = solve_matching(fims, qoi_fisher(J, np.diag(tol**2)))
        each = solve_matching(fims, each_qoi(J, tol))
        sigma = predicted_sigma(fims[each.selected].sum(0), J)
        assert np.all(sigma <= tol * (1 + 1e-5))
        assert each.objective <= joint.objective * (1 + 1e-6)  # a weaker demand
        assert each.coverage <= 1 + 1e-6
