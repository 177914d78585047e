"""POPS: exact pointwise identity, training coverage, streaming = in-memory, popsregression
agreement, exact hypercube extremes, rank deficiency and zero-leverage handling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.base import clone

from potforge.errors import DataError, ModelError, NotFittedError
from potforge.uq import (
    POOLED,
    POPSRegressor,
    fit_pops,
    fit_pops_streaming,
    pops_corrections,
    ridge_fit,
    select_components,
)
from potforge.uq.synthetic import misspecified_problem

ALPHA = 1e-6


@pytest.fixture(scope="module")
def problem():
    X, y, Xt, yt = misspecified_problem(600, 12, n_test=200, random_state=3)
    w = np.random.default_rng(4).uniform(0.2, 3.0, X.shape[0])
    t = np.random.default_rng(5).integers(0, 3, X.shape[0])
    return X, y, w, t, Xt, yt


def direct_pops(X, y, w, alpha):
    """Textbook POPS with an explicit inverse (the reference the library must reproduce)."""
    Ainv = np.linalg.inv(X.T @ (w[:, None] * X) + alpha * np.eye(X.shape[1]))
    theta = Ainv @ X.T @ (w * y)
    e = y - X @ theta
    h = w * np.einsum("ij,jk,ik->i", X, Ainv, X)
    corr = (e / h)[:, None] * (X @ Ainv) * w[:, None]
    return theta, e, h, corr


def test_matches_textbook_formulas(problem):
    X, y, w, _, _, _ = problem
    theta, e, h, corr = direct_pops(X, y, w, ALPHA)
    res = fit_pops(X, y, w, alpha=ALPHA)
    assert np.allclose(res.solution.coef, theta, rtol=0, atol=1e-10 * np.abs(theta).max())
    assert np.allclose(res.residuals, e, atol=1e-10)
    assert np.allclose(res.leverages, h, atol=1e-12)
    assert np.allclose(res.posteriors[POOLED].members, corr, atol=1e-9 * np.abs(corr).max())


@pytest.mark.parametrize("posterior", ["ensemble", "hypercube"])
def test_exact_identity_and_training_rows_inside_bounds(problem, posterior):
    X, y, w, _, _, _ = problem
    m = POPSRegressor(alpha=ALPHA, posterior=posterior).fit(X, y, sample_weight=w)
    rows = pops_corrections(X, y, m.result_.solution, w)
    fitted = np.einsum("ij,ij->i", X, m.coef_ + rows.corrections)
    assert np.max(np.abs(fitted - y)) < 1e-10
    mean, lo, hi = m.predict(X, return_bounds=True)
    assert np.all(lo <= y + 1e-10) and np.all(y <= hi + 1e-10)
    assert np.all(lo <= mean) and np.all(mean <= hi)  # δθ = 0 lies inside the hull of ±corrections
    assert m.n_excluded_ == 0


def test_ensemble_bounds_are_member_extremes_and_std_is_rms(problem):
    X, y, w, _, Xt, _ = problem
    m = POPSRegressor(alpha=ALPHA).fit(X, y, sample_weight=w)
    d = Xt @ m.corrections_.T
    mean, std, lo, hi = m.predict(Xt, return_std=True, return_bounds=True)
    assert np.allclose(lo - mean, d.min(axis=1), atol=1e-12)
    assert np.allclose(hi - mean, d.max(axis=1), atol=1e-12)
    assert np.allclose(std, np.sqrt((d**2).mean(axis=1)), rtol=1e-10)
    assert np.allclose(m.predict(Xt, return_std=True)[1], std, rtol=1e-10)
    M = m.misspecification_cov_
    assert np.allclose(std, np.sqrt(np.einsum("ij,jk,ik->i", Xt, M, Xt)), rtol=1e-8)


def test_hypercube_bounds_are_exact_box_extremes():
    X, y, _, _ = misspecified_problem(300, 5, random_state=7)
    m = POPSRegressor(alpha=ALPHA, posterior="hypercube").fit(X, y)
    V, lo, hi = m.components_, m.box_low_, m.box_high_
    assert V.shape == (5, 5)
    corners = np.array(list(itertools.product(*zip(lo, hi, strict=True))))  # (32, k)
    Xq = np.random.default_rng(0).standard_normal((40, 5))
    vals = Xq @ V @ corners.T
    mean, blo, bhi = m.predict(Xq, return_bounds=True)
    assert np.allclose(bhi - mean, vals.max(axis=1), atol=1e-12)
    assert np.allclose(blo - mean, vals.min(axis=1), atol=1e-12)
    samples = m.sample(500, random_state=1) - m.coef_
    pred = Xq @ samples.T
    assert np.all(pred <= (bhi - mean)[:, None] + 1e-12)
    assert np.all(pred >= (blo - mean)[:, None] - 1e-12)


@pytest.mark.parametrize("posterior", ["ensemble", "hypercube"])
@pytest.mark.parametrize("chunk", [1, 37, 250])
def test_streaming_equals_in_memory(problem, posterior, chunk):
    X, y, w, t, Xt, _ = problem
    opts = dict(alpha=ALPHA, posterior=posterior, per_type=True, whiten_by_type=True)
    ref = fit_pops(X, y, w, t, **opts)
    chunks = [
        (X[s : s + chunk], y[s : s + chunk], w[s : s + chunk], t[s : s + chunk])
        for s in range(0, len(y), chunk)
    ]
    streamed = fit_pops_streaming(chunks, **opts)
    assert np.allclose(streamed.solution.coef, ref.solution.coef, rtol=0, atol=1e-10)
    assert set(streamed.posteriors) == set(ref.posteriors) == {POOLED, 0, 1, 2}
    for g, post in ref.posteriors.items():
        for a, b in zip(post.summary(Xt), streamed.posteriors[g].summary(Xt), strict=True):
            assert np.allclose(a, b, rtol=0, atol=1e-10 * max(1.0, np.abs(a).max()))


def test_streaming_subsample_is_chunking_invariant_and_streams_all_rows(problem):
    X, y, w, _, Xt, _ = problem
    full = POPSRegressor(alpha=ALPHA).fit(X, y, w)
    a = POPSRegressor(alpha=ALPHA, n_samples=50, random_state=11).fit(X, y, w)
    b = POPSRegressor(alpha=ALPHA, n_samples=50, random_state=11, chunk_size=7).fit(X, y, w)
    c = POPSRegressor(alpha=ALPHA, n_samples=50, random_state=11)
    c.fit_chunks(lambda: ((X[s : s + 64], y[s : s + 64], w[s : s + 64]) for s in range(0, 600, 64)))
    assert a.corrections_.shape == (50, 12)
    for other in (b, c):
        assert np.array_equal(a.member_rows_, other.member_rows_)
        assert np.allclose(a.corrections_, other.corrections_, atol=1e-12)
    assert np.allclose(a.corrections_, full.corrections_[a.member_rows_], atol=1e-12)
    # std uses the streamed second moment of all 600 corrections, not the 50 members
    assert np.allclose(a.predict(Xt, return_std=True)[1], full.predict(Xt, return_std=True)[1])
    d = POPSRegressor(alpha=ALPHA, n_samples=50, random_state=12).fit(X, y, w)
    assert not np.array_equal(a.member_rows_, d.member_rows_)


def test_hypercube_cache_limit_recomputes_identically(problem):
    X, y, w, _, Xt, _ = problem
    a = fit_pops(X, y, w, alpha=ALPHA, posterior="hypercube", chunk_size=100)
    b = fit_pops(X, y, w, alpha=ALPHA, posterior="hypercube", chunk_size=100, cache_bytes=0)
    for u, v in zip(
        a.posteriors[POOLED].summary(Xt), b.posteriors[POOLED].summary(Xt), strict=True
    ):
        assert np.allclose(u, v, atol=1e-12)


def test_one_shot_iterator_is_refused(problem):
    X, y, *_ = problem
    with pytest.raises(DataError, match="one-shot"):
        fit_pops_streaming(iter([(X, y)]))


def test_zero_leverage_rows_are_excluded_and_counted(problem):
    X, y, w, _, Xt, _ = problem
    X2 = np.vstack([X, np.zeros((3, X.shape[1])), X[:2]])
    y2 = np.concatenate([y, [1.0, -2.0, 0.5], y[:2] + 1.0])
    w2 = np.concatenate([w, np.ones(3), [0.0, 0.0]])  # two zero-weight rows: leverage 0
    m = POPSRegressor(alpha=ALPHA).fit(X2, y2, sample_weight=w2)
    assert m.n_excluded_ == 5
    assert m.corrections_.shape[0] == X.shape[0]
    assert np.all(np.isfinite(m.corrections_))
    assert np.all(np.isfinite(np.column_stack(m.predict(Xt, True, True))))
    mh = POPSRegressor(alpha=ALPHA, posterior="hypercube").fit(X2, y2, sample_weight=w2)
    assert np.all(np.isfinite(np.column_stack(mh.predict(Xt, True, True))))
    with pytest.raises(ModelError, match="no row has leverage"):
        POPSRegressor(alpha=1.0).fit(np.zeros((4, 3)), np.ones(4))


def test_leverage_threshold_filters_rows(problem):
    X, y, w, *_ = problem
    m0 = POPSRegressor(alpha=ALPHA).fit(X, y, w)
    thr = float(np.median(m0.leverages_))
    m = POPSRegressor(alpha=ALPHA, leverage_threshold=thr).fit(X, y, w)
    assert m.n_excluded_ == int((m0.leverages_ <= thr).sum())
    assert np.array_equal(m.member_rows_, np.flatnonzero(m0.leverages_ > thr))


def test_rank_deficiency_names_the_columns():
    X, y, _, _ = misspecified_problem(200, 6, random_state=1)
    Xd = np.column_stack([X, X[:, 2], np.zeros(200)])  # column 6 duplicates 2; column 7 is zero
    names = [f"term{i}" for i in range(8)]
    with pytest.raises(ModelError, match=r"columns 2 \('term2'\), 6 \('term6'\), 7 \('term7'\)"):
        POPSRegressor(column_names=names).fit(Xd, y)
    with pytest.raises(ModelError, match="rank 6 of 8"):
        ridge_fit(Xd, y)
    m = POPSRegressor(alpha=1e-6).fit(Xd, y)  # ridge makes it identifiable
    assert np.all(np.isfinite(m.coef_))
    with pytest.raises(ModelError, match="column_names has 3 entries"):
        POPSRegressor(column_names=["a", "b", "c"]).fit(X, y)


def test_whitening_equalises_type_mse_and_per_type_posteriors():
    X, y, _, _ = misspecified_problem(900, 10, random_state=2)
    t = np.repeat([0, 1, 2], 300)
    y = y + np.where(t == 1, 0.5, 0.0) * np.random.default_rng(0).standard_normal(900)
    m = POPSRegressor(alpha=ALPHA, whiten_by_type=True, per_type=True).fit(X, y, row_type=t)
    s = np.array([m.type_scales_[k] for k in t])
    e = y - X @ m.coef_
    mse = [np.mean(e[t == k] ** 2) * m.type_scales_[k] for k in (0, 1, 2)]
    assert np.allclose(mse, mse[0], rtol=1e-6)
    assert m.type_scales_[1] < m.type_scales_[0]  # the noisy type is down-weighted
    ref = ridge_fit(X, y, weights=s, alpha=ALPHA)
    assert np.allclose(ref.coef, m.coef_, atol=1e-10)
    lo1, hi1 = m.predict(X[t == 1], return_bounds=True, row_type=1)[1:]
    assert np.all((y[t == 1] >= lo1 - 1e-10) & (y[t == 1] <= hi1 + 1e-10))
    assert m.posteriors_[1].members.shape[0] == 300
    with pytest.raises(ModelError, match="no posterior for row_type 5"):
        m.predict(X, return_bounds=True, row_type=5)


def test_sampling_reproducible_and_shapes(problem):
    X, y, w, *_ = problem
    m = POPSRegressor(alpha=ALPHA).fit(X, y, w)
    s1, s2 = m.sample(20, random_state=0), m.sample(20, random_state=0)
    assert s1.shape == (20, 12) and np.array_equal(s1, s2)
    assert all(np.any(np.all(np.isclose(r - m.coef_, m.corrections_), axis=1)) for r in s1)
    assert m.sample(2000, random_state=0).shape == (2000, 12)  # more than N: with replacement


def test_select_components_variance_fraction():
    lam = np.array([10.0, 5.0, 3.0, 1.0, 1e-12])
    assert select_components(lam) == 4
    assert select_components(lam, variance_fraction=0.5) == 1
    assert select_components(lam, variance_fraction=0.75) == 2
    with pytest.raises(ModelError):
        select_components(lam, variance_fraction=0.0)


def test_variance_fraction_narrows_hypercube(problem):
    X, y, w, _, Xt, _ = problem
    full = POPSRegressor(alpha=ALPHA, posterior="hypercube").fit(X, y, w)
    part = POPSRegressor(alpha=ALPHA, posterior="hypercube", variance_fraction=0.9).fit(X, y, w)
    assert part.components_.shape[1] < full.components_.shape[1]
    wf = np.subtract(*full.predict(Xt, return_bounds=True)[2:0:-1])
    wp = np.subtract(*part.predict(Xt, return_bounds=True)[2:0:-1])
    assert np.median(wp) < np.median(wf)


def test_not_fitted_clone_and_bad_input(problem):
    X, y, *_ = problem
    m = POPSRegressor(alpha=ALPHA, posterior="hypercube")
    with pytest.raises(NotFittedError):
        m.predict(X)
    with pytest.raises(NotFittedError):
        m.sample(3)
    assert clone(m).get_params()["posterior"] == "hypercube"
    with pytest.raises(ModelError, match="posterior must be"):
        POPSRegressor(posterior="box").fit(X, y)
    with pytest.raises(DataError, match="labels y contain NaN"):
        POPSRegressor().fit(X, np.where(np.arange(len(y)) == 3, np.nan, y))
    m.fit(X, y)
    with pytest.raises(DataError, match="has 3 columns but the model has 12"):
        m.predict(X[:, :3])


# ---- agreement with the reference implementation (popsregression 0.4) --------------------------
popsregression = pytest.importorskip("popsregression")


def _reference(X, y, w, posterior, clip=0.0):
    ref = popsregression.POPSRegression(
        posterior=posterior, leverage_percentile=0.0, percentile_clipping=clip
    )
    return ref.fit(X, y, sample_weight=w)


@pytest.mark.parametrize("weighted", [False, True])
def test_agrees_with_popsregression_ensemble(weighted):
    X, y, Xt, _ = misspecified_problem(800, 20, n_test=100, random_state=9)
    w = np.random.default_rng(1).uniform(0.5, 2.0, 800) if weighted else None
    ref = _reference(X, y, w, "ensemble")
    ours = POPSRegressor(alpha=ref.lambda_ / ref.alpha_).fit(X, y, sample_weight=w)
    scale = np.abs(ours.corrections_).max()
    assert np.allclose(ours.coef_, ref.coef_, rtol=0, atol=1e-9 * np.abs(ref.coef_).max())
    assert np.allclose(ours.leverages_, ref._leverage_scores, atol=1e-10)
    assert np.allclose(ours.corrections_, ref.posterior_samples_.T, rtol=0, atol=1e-9 * scale)
    M = ref.misspecification_sigma_
    assert np.allclose(ours.misspecification_cov_, M, rtol=0, atol=1e-9 * np.abs(M).max())
    mean, hi_ref, lo_ref = ref.predict(Xt, return_bounds=True)
    _, lo, hi = ours.predict(Xt, return_bounds=True)
    assert np.allclose(lo, lo_ref, atol=1e-9) and np.allclose(hi, hi_ref, atol=1e-9)


@pytest.mark.parametrize("clip", [0.0, 5.0])
def test_agrees_with_popsregression_hypercube(clip):
    X, y, Xt, _ = misspecified_problem(800, 20, n_test=100, random_state=9)
    ref = _reference(X, y, None, "hypercube", clip)
    ours = POPSRegressor(
        alpha=ref.lambda_ / ref.alpha_, posterior="hypercube", percentile_clipping=clip
    ).fit(X, y)
    V_ref, (lo_ref, hi_ref) = ref._hypercube_support, ref._hypercube_bounds
    V = ours.components_
    order = np.argsort(-np.einsum("ij,jk,ik->i", V_ref.T, ours.misspecification_cov_, V_ref.T))
    V_ref, lo_ref, hi_ref = V_ref[:, order], lo_ref[order], hi_ref[order]
    sign = np.sign(np.einsum("ij,ij->j", V, V_ref))
    assert V.shape == V_ref.shape
    assert np.allclose(V * sign, V_ref, atol=1e-7)
    lo_al = np.where(sign > 0, lo_ref, -hi_ref)
    hi_al = np.where(sign > 0, hi_ref, -lo_ref)
    assert np.allclose(ours.box_low_, lo_al, atol=1e-8)
    assert np.allclose(ours.box_high_, hi_al, atol=1e-8)
    # the reference bounds are extremes over random box samples: inside our exact extremes
    mean, hi_r, lo_r = ref.predict(Xt, return_bounds=True)
    _, lo, hi = ours.predict(Xt, return_bounds=True)
    assert np.all(hi_r <= hi + 1e-10) and np.all(lo_r >= lo - 1e-10)


def test_progress_bars_do_not_change_results(problem, capsys):
    X, y, w, _, Xt, _ = problem
    a = fit_pops(X, y, w, alpha=ALPHA, posterior="hypercube", chunk_size=100, progress=True)
    b = fit_pops(X, y, w, alpha=ALPHA, posterior="hypercube", chunk_size=100)
    assert "POPS pass 2" in capsys.readouterr().err
    assert np.allclose(a.posteriors[POOLED].bounds(Xt), b.posteriors[POOLED].bounds(Xt))


def test_percentile_clipping_trims_the_box_the_same_streamed_or_in_memory(problem):
    X, y, w, _, Xt, _ = problem
    full = POPSRegressor(alpha=ALPHA, posterior="hypercube").fit(X, y, w)
    clipped = POPSRegressor(alpha=ALPHA, posterior="hypercube", percentile_clipping=5.0)
    clipped.fit(X, y, w)
    assert np.allclose(clipped.components_, full.components_)
    assert np.all(clipped.box_low_ > full.box_low_) and np.all(clipped.box_high_ < full.box_high_)
    # each axis keeps the central 90 % of the projected corrections
    C = POPSRegressor(alpha=ALPHA).fit(X, y, w).corrections_
    proj = C @ clipped.components_
    inside = (proj >= clipped.box_low_ - 1e-12) & (proj <= clipped.box_high_ + 1e-12)
    assert np.allclose(inside.mean(axis=0), 0.9, atol=2.0 / C.shape[0])
    # no cache: pass 3 recomputes the corrections chunk by chunk, same percentiles
    streamed = fit_pops(
        X,
        y,
        w,
        alpha=ALPHA,
        posterior="hypercube",
        percentile_clipping=5.0,
        chunk_size=100,
        cache_bytes=0,
    ).posteriors[POOLED]
    assert np.allclose(streamed.low, clipped.box_low_, atol=1e-10)
    assert np.allclose(streamed.high, clipped.box_high_, atol=1e-10)
    _, lo_f, hi_f = full.predict(Xt, return_bounds=True)
    _, lo_c, hi_c = clipped.predict(Xt, return_bounds=True)
    assert np.all(hi_c - lo_c < hi_f - lo_f)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"posterior": "hypercube", "percentile_clipping": 50.0}, r"\[0, 50\).*got 50.0"),
        ({"posterior": "hypercube", "percentile_clipping": -1}, r"\[0, 50\).*got -1"),
        ({"posterior": "ensemble", "percentile_clipping": 5.0}, "no box to clip"),
    ],
)
def test_bad_percentile_clipping_is_refused(problem, kw, match):
    X, y, w, _, _, _ = problem
    with pytest.raises(ModelError, match=match):
        POPSRegressor(alpha=ALPHA, **kw).fit(X, y, w)


# ---- the one engine: filters, max_members and a given centre, streamed or in memory ------------
def _selected_rows(h, e, w, keep, lev_p, res_p):
    """Rows a leverage / residual percentile filter keeps, by hand (percentiles of usable rows)."""
    ok = keep.copy()
    if lev_p > 0:
        ok &= h >= np.percentile(h[keep], lev_p)
    if res_p < 100:
        r = np.sqrt(w) * np.abs(e)
        ok &= r <= np.percentile(r[keep], res_p)
    return np.flatnonzero(ok & keep)


@pytest.mark.parametrize("lev_p, res_p", [(30.0, 100.0), (0.0, 80.0), (10.0, 90.0)])
def test_percentile_filters_keep_the_rows_they_name(problem, lev_p, res_p):
    X, y, w, _, _, _ = problem
    theta, e, h, corr = direct_pops(X, y, w, ALPHA)
    m = POPSRegressor(alpha=ALPHA, leverage_percentile=lev_p, residual_percentile=res_p)
    m.fit(X, y, w)
    rows = _selected_rows(h, e, w, h > 1e-12, lev_p, res_p)
    assert np.array_equal(m.member_rows_, rows)
    assert np.allclose(m.corrections_, corr[rows], atol=1e-9 * np.abs(corr).max())
    assert m.result_.n_used == rows.size
    if lev_p > 0:
        assert m.result_.n_filtered == pytest.approx((lev_p / 100) * len(y), abs=1)
    if res_p < 100:
        assert m.result_.n_filtered_residual == pytest.approx((1 - res_p / 100) * len(y), abs=1)


@pytest.mark.parametrize(
    "posterior, opts",
    [
        ("ensemble", {"leverage_percentile": 20.0, "residual_percentile": 90.0}),
        ("ensemble", {"max_members": 40, "random_state": 3}),
        (
            "ensemble",
            {"max_members": 40, "random_state": 3, "leverage_percentile": 50.0, "per_type": True},
        ),
        ("ensemble", {"n_samples": 40, "random_state": 3, "residual_percentile": 70.0}),
        ("hypercube", {"leverage_percentile": 20.0, "residual_percentile": 90.0, "per_type": True}),
        ("hypercube", {"residual_percentile": 90.0, "percentile_clipping": 5.0}),
    ],
)
@pytest.mark.parametrize("chunk", [37, 250])
def test_filters_and_subsamples_streamed_equal_in_memory(problem, posterior, opts, chunk):
    """Every option of the one engine gives the same posterior in memory, streamed from chunks
    (with the cache) and streamed with the corrections recomputed (no cache)."""
    X, y, w, t, Xt, _ = problem
    kw = dict(alpha=ALPHA, posterior=posterior, **opts)
    ref = fit_pops(X, y, w, t, **kw)
    chunks = [
        (X[s : s + chunk], y[s : s + chunk], w[s : s + chunk], t[s : s + chunk])
        for s in range(0, len(y), chunk)
    ]
    for cache in (None, 0):
        streamed = fit_pops_streaming(chunks, cache_bytes=cache, **kw)
        assert set(streamed.posteriors) == set(ref.posteriors)
        assert streamed.n_filtered == ref.n_filtered
        assert streamed.n_filtered_residual == ref.n_filtered_residual
        assert streamed.used_by_type == ref.used_by_type
        for g, post in ref.posteriors.items():
            other = streamed.posteriors[g]
            assert other.n_rows == post.n_rows
            if posterior == "ensemble":
                assert np.array_equal(other.member_rows, post.member_rows)
            for a, b in zip(post.summary(Xt), other.summary(Xt), strict=True):
                assert np.allclose(a, b, rtol=0, atol=1e-10 * max(1.0, np.abs(a).max()))


def test_max_members_draws_from_the_counted_corrections(problem):
    X, y, w, _, Xt, _ = problem
    full = fit_pops(X, y, w, alpha=ALPHA, leverage_percentile=25.0).posteriors[POOLED]
    res = fit_pops(X, y, w, alpha=ALPHA, leverage_percentile=25.0, max_members=60, random_state=5)
    post = res.posteriors[POOLED]
    pick = np.sort(np.random.default_rng(5).choice(full.n_rows, 60, replace=False))
    assert np.array_equal(post.member_rows, full.member_rows[pick])
    assert np.array_equal(post.members, full.members[pick])
    # std is the RMS over all the used corrections, not over the 60 members
    assert post.n_rows == full.n_rows and not post.complete
    assert np.allclose(post.std(Xt), full.std(Xt), rtol=1e-10)
    big = fit_pops(X, y, w, alpha=ALPHA, max_members=10**6, random_state=5).posteriors[POOLED]
    assert big.complete and big.members.shape[0] == len(y)


def test_given_solution_centres_the_corrections_on_it(problem):
    """``solution=`` takes the corrections about a given fit (a model's coef_): each row's
    correction makes it fit exactly, whatever the centre."""
    X, y, w, t, Xt, _ = problem
    sol = ridge_fit(X, y, w, alpha=ALPHA)
    centre = sol.coef + 1e-3 * np.random.default_rng(0).standard_normal(sol.coef.size)
    given = type(sol)(centre, sol.chol, sol.alpha, sol.inverse)
    res = fit_pops(X, y, w, t, solution=given, per_type=True, leverage_percentile=10.0)
    post = res.posteriors[POOLED]
    rows = post.member_rows
    fitted = np.einsum("ij,ij->i", X[rows], centre + post.members)
    assert np.max(np.abs(fitted - y[rows])) < 1e-10
    assert np.array_equal(res.solution.coef, centre)
    assert set(res.posteriors) == {POOLED, 0, 1, 2}
    assert sum(res.used_by_type.values()) == post.n_rows
    # about its own ridge solution, a given solution is the plain fit
    same = fit_pops(X, y, w, solution=sol).posteriors[POOLED]
    plain = fit_pops(X, y, w, alpha=ALPHA).posteriors[POOLED]
    assert np.array_equal(same.members, plain.members)
    with pytest.raises(ModelError, match="whiten_by_type .* cannot keep a given solution"):
        fit_pops(X, y, w, t, solution=sol, whiten_by_type=True)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"posterior": "hypercube", "max_members": 5}, "max_members=5 subsamples the ensemble"),
        ({"max_members": 0}, "max_members must be a positive integer, got 0"),
        ({"max_members": 5, "n_samples": 5}, "two rules for the same subsample"),
        ({"leverage_percentile": 100.0}, r"leverage_percentile must lie in \[0, 100\), got 100.0"),
        ({"residual_percentile": 0.0}, r"residual_percentile must lie in \(0, 100\], got 0.0"),
    ],
)
def test_bad_engine_options_are_refused(problem, kw, match):
    X, y, w, _, _, _ = problem
    with pytest.raises(ModelError, match=match):
        fit_pops(X, y, w, alpha=ALPHA, **kw)


def test_filters_that_leave_nothing_are_refused():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 3))
    X[:25] *= 100.0  # the 25 rows of largest leverage ...
    y = X @ np.ones(3) + np.where(np.arange(50) < 25, 10.0, 0.0)  # ... have the largest residuals
    with pytest.raises(ModelError, match="together leave no correction"):
        fit_pops(X, y, alpha=ALPHA, leverage_percentile=60.0, residual_percentile=40.0)


def test_agrees_with_popsregression_leverage_filter():
    """popsregression's default leverage_percentile=50 through the one engine."""
    X, y, Xt, _ = misspecified_problem(800, 20, n_test=100, random_state=9)
    ref = popsregression.POPSRegression(posterior="ensemble").fit(X, y)  # leverage_percentile=50
    ours = POPSRegressor(alpha=ref.lambda_ / ref.alpha_, leverage_percentile=50.0).fit(X, y)
    scale = np.abs(ours.corrections_).max()
    assert np.array_equal(ours.member_rows_, np.flatnonzero(ref._leverage_mask))
    assert np.allclose(ours.corrections_, ref.posterior_samples_.T, rtol=0, atol=1e-9 * scale)
    M = ref.misspecification_sigma_
    assert np.allclose(ours.misspecification_cov_, M, rtol=0, atol=1e-9 * np.abs(M).max())
    _, hi_ref, lo_ref = ref.predict(Xt, return_bounds=True)
    _, lo, hi = ours.predict(Xt, return_bounds=True)
    assert np.allclose(lo, lo_ref, atol=1e-9) and np.allclose(hi, hi_ref, atol=1e-9)
