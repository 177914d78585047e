"""Baselines: BLR (analytic posterior, sklearn agreement, 1/N shrinkage under misspecification),
temperature-inflated BLR and bootstrap / subsample ensembles."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import BayesianRidge

from potforge.errors import ModelError, NotFittedError
from potforge.uq import (
    BayesianLinearRegressor,
    ResampledEnsembleRegressor,
    TemperedBayesRegressor,
)
from potforge.uq.synthetic import misspecified_problem, well_specified_problem


def coverage(model, X, y):
    _, lo, hi = model.predict(X, return_bounds=True)
    return float(np.mean((y >= lo) & (y <= hi)))


def test_blr_fixed_precisions_is_the_analytic_posterior():
    X, y, _ = well_specified_problem(40, 3, noise=0.2, random_state=0)
    lam, beta = 2.0, 25.0
    m = BayesianLinearRegressor(prior_precision=lam, noise_precision=beta).fit(X, y)
    S = np.linalg.inv(beta * X.T @ X + lam * np.eye(3))
    assert np.allclose(m.sigma_, S, rtol=1e-12)
    assert np.allclose(m.coef_, beta * S @ X.T @ y, rtol=1e-12)
    # one parameter by hand: S = 1 / (β Σx² + λ), m = β S Σxy
    x, yy = X[:, 0], y
    m1 = BayesianLinearRegressor(prior_precision=lam, noise_precision=beta).fit(x[:, None], yy)
    s1 = 1.0 / (beta * x @ x + lam)
    assert m1.sigma_[0, 0] == pytest.approx(s1, rel=1e-12)
    assert m1.coef_[0] == pytest.approx(beta * s1 * (x @ yy), rel=1e-12)
    Xq = np.random.default_rng(1).standard_normal((5, 3))
    _, std = m.predict(Xq, return_std=True)
    assert np.allclose(std, np.sqrt(np.einsum("ij,jk,ik->i", Xq, S, Xq)))


def test_blr_posterior_is_calibrated_when_well_specified():
    """True θ drawn from the prior, data from the model: |θ−m|/σ < 2 about 95% of the time."""
    inside = []
    for seed in range(150):
        X, y, theta = well_specified_problem(30, 3, noise=0.3, prior_std=1.0, random_state=seed)
        m = BayesianLinearRegressor(prior_precision=1.0, noise_precision=1 / 0.09).fit(X, y)
        inside.extend(np.abs(theta - m.coef_) < 2 * np.sqrt(np.diag(m.sigma_)))
    assert 0.92 < np.mean(inside) < 0.98


def test_blr_evidence_matches_sklearn_bayesian_ridge():
    X, y, _ = well_specified_problem(300, 6, noise=0.1, random_state=2)
    ref = BayesianRidge(fit_intercept=False, tol=1e-14, max_iter=100000).fit(X, y)
    m = BayesianLinearRegressor().fit(X, y)
    assert m.noise_precision_ == pytest.approx(ref.alpha_, rel=1e-8)
    assert m.prior_precision_ == pytest.approx(ref.lambda_, rel=1e-8)
    assert np.allclose(m.coef_, ref.coef_, rtol=1e-8)
    assert np.allclose(m.sigma_, ref.sigma_, rtol=1e-7, atol=1e-14)
    assert 1 / np.sqrt(m.noise_precision_) == pytest.approx(0.1, rel=0.15)


def test_blr_coverage_shrinks_with_n_under_misspecification():
    covs = []
    for n in (150, 4000):
        X, y, Xt, yt = misspecified_problem(n, 30, n_test=2000, random_state=5)
        covs.append(coverage(BayesianLinearRegressor().fit(X, y), Xt, yt))
    assert covs[1] < covs[0]
    assert covs[1] < 0.5  # ±2σ parameter-only bounds badly under-cover a wrong model


def test_tempered_blr_inflates_and_calibrates():
    X, y, Xt, yt = misspecified_problem(3000, 30, n_test=4000, random_state=6)
    blr = BayesianLinearRegressor().fit(X, y)
    fred = TemperedBayesRegressor().fit(X, y)
    cost = fred.sse_ + fred.alpha_ * fred.coef_ @ fred.coef_
    assert fred.temperature_ == pytest.approx(fred.noise_precision_ * cost / 30, rel=1e-12)
    assert fred.temperature_ == pytest.approx(3000 / 30, rel=0.05)  # ≈ (N − γ)/P
    assert np.allclose(fred.covariance_, fred.temperature_ * blr.sigma_)
    assert coverage(fred, Xt, yt) > coverage(blr, Xt, yt)
    cal = TemperedBayesRegressor(temperature="calibrated", coverage=0.9).fit(X, y)
    cal.calibrate(Xt[:2000], yt[:2000])
    assert coverage(cal, Xt[:2000], yt[:2000]) == pytest.approx(0.9, abs=2e-3)
    assert 0.85 < coverage(cal, Xt[2000:], yt[2000:]) < 0.95
    fixed = TemperedBayesRegressor(temperature=4.0).fit(X, y)
    assert np.allclose(fixed.covariance_, 4.0 * blr.sigma_)
    with pytest.raises(ModelError, match="temperature must be"):
        TemperedBayesRegressor(temperature=-1.0).fit(X, y)


def test_bootstrap_reproducible_and_consistent_with_ols_on_well_specified():
    X, y, _ = well_specified_problem(400, 4, noise=0.5, random_state=3)
    a = ResampledEnsembleRegressor(n_members=200, random_state=0).fit(X, y)
    b = ResampledEnsembleRegressor(n_members=200, random_state=0).fit(X, y)
    c = ResampledEnsembleRegressor(n_members=200, random_state=1).fit(X, y)
    assert np.array_equal(a.members_, b.members_) and not np.array_equal(a.members_, c.members_)
    ols_sd = np.sqrt(np.diag(0.25 * np.linalg.inv(X.T @ X)))
    assert np.allclose(a.members_.std(axis=0), ols_sd, rtol=0.25)
    Xq = X[:20]
    mean, lo, hi = a.predict(Xq, return_bounds=True)
    member_pred = Xq @ a.members_.T
    assert np.allclose(lo, member_pred.min(axis=1)) and np.allclose(hi, member_pred.max(axis=1))
    assert a.sample(7, random_state=0).shape == (7, 4)


def test_ensembles_shrink_with_n_and_subsample_method():
    widths = []
    for n in (200, 3200):
        X, y, Xt, _ = misspecified_problem(n, 20, n_test=500, random_state=8)
        m = ResampledEnsembleRegressor(method="subsample", n_members=30, random_state=0)
        widths.append(np.median(m.fit(X, y).predict(Xt, return_std=True)[1]))
    assert widths[1] < 0.5 * widths[0]
    X, y, Xt, _ = misspecified_problem(300, 5, n_test=50, random_state=1)
    s = ResampledEnsembleRegressor(bounds="sigma", n_sigma=3.0, random_state=0).fit(X, y)
    mean, std, lo, hi = s.predict(Xt, return_std=True, return_bounds=True)
    assert np.allclose(hi - mean, 3 * std) and np.allclose(mean - lo, 3 * std)


def test_baseline_errors():
    X, y, _ = well_specified_problem(50, 3, random_state=0)
    for est in (BayesianLinearRegressor(), TemperedBayesRegressor(), ResampledEnsembleRegressor()):
        with pytest.raises(NotFittedError):
            est.predict(X)
    Xz = np.column_stack([X, np.zeros(50)])
    with pytest.raises(ModelError, match=r"columns 3 \('zbl'\)"):
        ResampledEnsembleRegressor(column_names=["a", "b", "c", "zbl"]).fit(Xz, y)
    with pytest.raises(ModelError, match="method must be"):
        ResampledEnsembleRegressor(method="jackknife").fit(X, y)
