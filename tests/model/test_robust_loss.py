"""Robust (Huber / L1) losses by IRLS: analytic and LP references, model plumbing, persistence."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from ase.build import bulk
from scipy.optimize import linprog

from potforge.data import attach_labels
from potforge.errors import ModelError
from potforge.model import LinearPotential
from potforge.model.fitting import (
    ConvergenceWarning,
    irls_factors,
    loss_value,
    robust_lstsq,
    weighted_lstsq,
)


def _problem(seed: int = 0, n_rows: int = 300, n_out: int = 30):
    """A badly scaled linear problem with gross outliers in 10 % of the rows."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n_rows, 5)) * np.array([1.0, 10.0, 0.1, 3.0, 1.0])
    theta = rng.normal(size=5)
    y = A @ theta + 0.01 * rng.normal(size=n_rows)
    out = rng.choice(n_rows, n_out, replace=False)
    y[out] += 20.0 * rng.normal(size=n_out)
    w = rng.uniform(0.5, 2.0, n_rows)
    return A, y, w, theta


def _lad(A, y, w):
    """Weighted least absolute deviations ``min Σ |sqrt(w)(y − Aθ)|`` as a linear program."""
    R, P = A.shape
    sw = np.sqrt(w)
    c = np.concatenate([np.zeros(P), np.ones(2 * R)])
    A_eq = np.hstack([A * sw[:, None], np.eye(R), -np.eye(R)])
    bounds = [(None, None)] * P + [(0, None)] * (2 * R)
    lp = linprog(c, A_eq=A_eq, b_eq=y * sw, bounds=bounds, method="highs")
    assert lp.success
    return lp.x[:P], lp.fun


def test_huber_with_huge_delta_is_least_squares():
    A, y, w, _ = _problem()
    ls = weighted_lstsq(A, y, w, alpha=1e-8)
    fit = robust_lstsq(A, y, w, "huber", huber_delta=1e12, alpha=1e-8)
    assert fit.converged and fit.n_iter == 1
    np.testing.assert_allclose(fit.coef, ls, rtol=1e-10, atol=1e-10)
    assert np.array_equal(robust_lstsq(A, y, w, "squared").coef, weighted_lstsq(A, y, w))


def test_l1_recovers_truth_and_matches_the_lp_solution():
    A, y, w, theta = _problem()
    ls = weighted_lstsq(A, y, w)
    fit = robust_lstsq(A, y, w, "l1", tol=1e-10, max_iter=2000, l1_epsilon=1e-9)
    assert fit.converged
    lad, lad_obj = _lad(A, y, w)
    assert np.abs(ls - theta).max() > 0.3  # outliers ruin least squares ...
    assert np.abs(fit.coef - theta).max() < 0.03  # ... not least absolute deviations
    np.testing.assert_allclose(fit.coef, lad, atol=1e-6)
    r = np.sqrt(w) * (y - A @ fit.coef)
    assert np.abs(r).sum() == pytest.approx(lad_obj, rel=1e-9)


def test_huber_minimises_its_objective():
    """The IRLS fixed point has zero gradient ``Σ ψ(r_n) x_n`` and beats nearby points."""
    A, y, w, theta = _problem(seed=1)
    fit = robust_lstsq(A, y, w, "huber", huber_delta=1.0, tol=1e-12, max_iter=2000)
    assert fit.converged
    err = lambda c: np.abs((c - theta) * np.linalg.norm(A, axis=0)).max()  # noqa: E731
    assert err(fit.coef) < 0.1 * err(weighted_lstsq(A, y, w))
    X, b = A * np.sqrt(w)[:, None], y * np.sqrt(w)
    r = b - X @ fit.coef
    grad = X.T @ (np.clip(r, -1.0, 1.0))
    assert np.abs(grad).max() < 1e-8 * np.abs(X).sum()
    obj = loss_value(r, "huber", 1.0).sum()
    rng = np.random.default_rng(2)
    for _ in range(20):
        other = fit.coef + 1e-3 * rng.normal(size=5)
        assert loss_value(b - X @ other, "huber", 1.0).sum() > obj
    assert fit.objective == pytest.approx(obj, rel=1e-12)


def test_per_row_delta_inf_is_squared_on_those_rows():
    A, y, w, _ = _problem(seed=3)
    delta = np.full(len(y), np.inf)
    np.testing.assert_allclose(
        robust_lstsq(A, y, w, "huber", huber_delta=delta).coef,
        weighted_lstsq(A, y, w),
        rtol=1e-12,
        atol=1e-12,
    )
    assert np.all(irls_factors(np.array([0.0, 5.0]), "huber", np.array([np.inf, 2.0])) == [1, 0.4])


def test_not_converged_warns():
    A, y, w, _ = _problem()
    with pytest.warns(ConvergenceWarning, match="did not converge in 3 iterations"):
        fit = robust_lstsq(A, y, w, "l1", max_iter=3)
    assert not fit.converged and fit.n_iter == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"loss": "hubber"}, r"^loss must be one of squared, huber, l1, got 'hubber'$"),
        ({"loss": "huber", "huber_delta": -1.0}, r"^huber_delta must be positive"),
    ],
)
def test_bad_loss_is_one_sentence(kwargs, message):
    A, y, w, _ = _problem()
    with pytest.raises(ModelError, match=message):
        robust_lstsq(A, y, w, **kwargs)
    with pytest.raises(ModelError, match=message):
        LinearPotential("pair(n_basis=4)+const", **kwargs).fit([_labelled(0)])


def _labelled(k: int):
    a = bulk("W", "bcc", a=3.17, cubic=True).repeat(2)
    a.set_cell(a.cell * (1 + 0.01 * (k - 4)), scale_atoms=True)
    a.rattle(0.08, seed=k)
    return a


def _teacher_data(n: int = 8):
    spec = "snap(twojmax=2,rcutfac=4.4)+const"
    teacher = LinearPotential(spec, elements=["W"]).setup()
    teacher.coef_ = np.random.default_rng(0).normal(size=teacher.n_params) * 0.1
    data = []
    for k in range(n):
        a = _labelled(k)
        p = teacher.predict([a])[0]
        f = p["forces"].copy()
        if k == 0:
            f[0] += 5.0  # one grossly wrong force label
        data.append(attach_labels(a, p["energy"], f, p["stress"]))
    return spec, teacher, data


def test_model_robust_fit_params_and_round_trip(tmp_path):
    spec, teacher, data = _teacher_data()
    squared = LinearPotential(spec, alpha=0.0).fit(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        huber = LinearPotential(spec, alpha=0.0, loss="huber", huber_delta=0.5).fit(data)
    err = lambda m: np.abs(m.coef_ - teacher.coef_).max()  # noqa: E731
    assert err(huber) < 0.1 * err(squared)
    assert huber.fit_info_["loss"] == "huber" and huber.fit_info_["loss_converged"]
    dm = huber.design(data)  # coef_ is the least-squares fit for the IRLS weights at coef_,
    # which is what fit_posterior centres on
    wls = weighted_lstsq(dm.A, dm.y, huber._fit_weights(dm))
    np.testing.assert_allclose(wls, huber.coef_, atol=1e-5 * np.abs(huber.coef_).max())
    params = huber.get_params()
    assert params["loss"] == "huber" and params["huber_delta"] == 0.5
    clone = LinearPotential(spec).set_params(**params)
    assert clone.get_params() == params
    with pytest.raises(ModelError, match="no parameter 'los'"):
        clone.set_params(los="l1")
    huber.save(tmp_path / "m")
    back = LinearPotential.load(tmp_path / "m")
    assert back.get_params() == params
    assert np.array_equal(back.coef_, huber.coef_)
    refit = back.fit(data)
    np.testing.assert_allclose(refit.coef_, huber.coef_, rtol=1e-12, atol=1e-14)


def test_weighted_lstsq_is_lstsq_on_the_normalised_rows_and_names_null_columns():
    """The fit's solve (potforge.linalg.lstsq_ridge, the one solver's row form): SVD least
    squares on the whitened, column-normalised rows with the ridge as extra rows, unchanged by
    the move to linalg; a rank-deficient design gets linalg's one message."""
    import scipy.linalg

    A, y, w, _ = _problem()
    X = A * np.sqrt(w)[:, None]
    s = np.linalg.norm(X, axis=0)
    alpha = 1e-6
    Xa = np.vstack([X / s, np.sqrt(alpha) * np.eye(5)])
    ref = (
        scipy.linalg.lstsq(
            Xa, np.concatenate([y * np.sqrt(w), np.zeros(5)]), cond=1e-12, lapack_driver="gelsd"
        )[0]
        / s
    )
    assert np.array_equal(weighted_lstsq(A, y, w, alpha=alpha), ref)
    names = [f"p{j}" for j in range(6)]
    dup = np.column_stack([A, 2.0 * A[:, 1]])
    with pytest.raises(ModelError) as fit_error:
        weighted_lstsq(dup, y, w, names=names)
    message = str(fit_error.value)
    assert "rank-deficient (rank 5 of 6): columns 1 ('p1'), 5 ('p5') are not identifiable" in (
        message
    )
    from potforge.linalg import solve_ridge

    G = (dup * w[:, None]).T @ dup
    with pytest.raises(ModelError) as gram_error:
        solve_ridge(G, dup.T @ (w * y), column_names=names)
    assert str(gram_error.value) == message
