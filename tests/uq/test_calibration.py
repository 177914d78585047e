"""Post-hoc calibration of uncertainties (potforge.uq.calibration): analytic cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from potforge.errors import DataError, NotFittedError
from potforge.uq.calibration import (
    ConformalCalibrator,
    conformal_quantile,
    coverage_and_width,
    fisher_std,
)

Z90 = 1.6448536269514722


def gaussian(n: int, seed: int, lo: float = 0.5, hi: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(lo, hi, n)
    return rng.normal(0.0, sigma), sigma


def test_conformal_quantile_is_the_finite_sample_rank():
    scores = np.arange(1.0, 11.0)  # 10 scores: ⌈11·0.9⌉ = 10th smallest
    assert conformal_quantile(scores, 0.9) == 10.0
    assert conformal_quantile(scores, 0.5) == 6.0  # ⌈5.5⌉ = 6
    assert math.isinf(conformal_quantile(scores[:8], 0.9))  # ⌈9·0.9⌉ = 9 > 8


@pytest.mark.parametrize("method", ["conformal", "temperature"])
def test_known_gaussian_sigma_gives_z90_and_covers_fresh_samples(method):
    e, s = gaussian(20_000, 0)
    cal = ConformalCalibrator(coverage=0.9, method=method, floor=False).fit(e, s)
    assert cal.scale_[None] == pytest.approx(Z90, rel=0.03)
    assert cal.floor_[None] == 0.0
    e2, s2 = gaussian(20_000, 1)
    covered = np.mean(np.abs(e2) <= cal.transform(s2))
    assert covered == pytest.approx(0.9, abs=0.01)


def test_scale_inflates_an_overconfident_sigma():
    e, s = gaussian(10_000, 2)
    cal = ConformalCalibrator(floor=False).fit(e, s / 10.0)  # σ ten times too small
    assert cal.scale_[None] == pytest.approx(10 * Z90, rel=0.04)


def test_floor_finds_a_constant_error_component():
    # errors N(0, σ² + τ²) with τ = 1 and small σ: plain normalisation is far too wide for the
    # small-σ rows; the fitted floor recovers a τ near 1 and a narrower median band
    rng = np.random.default_rng(3)
    s = rng.uniform(0.01, 3.0, 20_000)
    e = rng.normal(0.0, np.sqrt(s**2 + 1.0))
    plain = ConformalCalibrator(floor=False).fit(e, s)
    floored = ConformalCalibrator(floor=True).fit(e, s)
    assert 0.3 < floored.floor_[None] < 3.0
    assert np.median(floored.transform(s)) < 0.8 * np.median(plain.transform(s))
    e2 = rng.normal(0.0, np.sqrt(s**2 + 1.0))
    assert np.mean(np.abs(e2) <= floored.transform(s)) == pytest.approx(0.9, abs=0.015)


def test_groups_are_calibrated_separately():
    e1, s1 = gaussian(5_000, 4)
    e2, s2 = gaussian(5_000, 5)
    e = np.concatenate([e1, 5.0 * e2])  # group "force" has errors 5× its σ
    s = np.concatenate([s1, s2])
    g = np.array(["energy"] * 5_000 + ["force"] * 5_000)
    cal = ConformalCalibrator(floor=False).fit(e, s, g)
    assert cal.groups_ == ["energy", "force"]
    assert cal.scale_["energy"] == pytest.approx(Z90, rel=0.05)
    assert cal.scale_["force"] == pytest.approx(5 * Z90, rel=0.05)
    h = cal.transform(np.array([1.0, 1.0]), np.array(["energy", "force"]))
    assert h[1] / h[0] == pytest.approx(5.0, rel=0.07)
    summary = cal.summary()
    assert summary["force"]["n"] == 5_000
    assert summary["energy"]["calibration_coverage"] == pytest.approx(0.9, abs=0.01)


def test_coverage_and_width():
    m = coverage_and_width(np.array([1.0, -2.0, 3.0, -4.0]), np.array([2.0, 2.0, 2.0, 2.0]))
    assert m["coverage"] == 0.5
    assert m["width_ratio"] == pytest.approx(2.0 / 2.5)


def test_fisher_std_is_sqrt_a_Finv_a():
    rng = np.random.default_rng(6)
    A = rng.normal(size=(50, 4)) * np.array([1.0, 10.0, 0.1, 3.0])
    w = rng.uniform(0.5, 2.0, 50)
    a = rng.normal(size=(3, 4))
    F = A.T @ (w[:, None] * A)
    expected = np.sqrt(np.einsum("ij,jk,ik->i", a, np.linalg.inv(F), a))
    np.testing.assert_allclose(fisher_std(A, w, a), expected, rtol=1e-10)


def test_fisher_std_singular_needs_alpha():
    A = np.ones((5, 2))
    with pytest.raises(DataError, match="singular"):
        fisher_std(A, np.ones(5), A)
    assert np.all(np.isfinite(fisher_std(A, np.ones(5), A, alpha=1e-8)))


@pytest.mark.parametrize(
    ("errors", "sigma", "groups", "match"),
    [
        (np.zeros(20), np.ones(19), None, "one σ per error"),
        (np.zeros(20), -np.ones(20), None, "non-negative"),
        (np.full(20, np.nan), np.ones(20), None, "finite"),
        (np.zeros((4, 5)), np.ones((4, 5)), None, "one-dimensional"),
        (np.zeros(20), np.ones(20), np.zeros(19), "one label per entry"),
        (np.zeros(5), np.ones(5), None, "too few"),
        ("abc", np.ones(3), None, "numbers"),
    ],
)
def test_bad_inputs_raise_one_sentence(errors, sigma, groups, match):
    with pytest.raises(DataError, match=match):
        ConformalCalibrator().fit(errors, sigma, groups)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"coverage": 1.5}, "coverage"),
        ({"coverage": True}, "coverage"),
        ({"method": "x"}, "one of"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(DataError, match=match):
        ConformalCalibrator(**kwargs).fit(np.zeros(20), np.ones(20))


def test_transform_checks_fit_and_groups():
    with pytest.raises(NotFittedError):
        ConformalCalibrator().transform(np.ones(3))
    e, s = gaussian(100, 7)
    g = np.array(["energy", "force"] * 50)
    cal = ConformalCalibrator().fit(e, s, g)
    with pytest.raises(DataError, match="give groups"):
        cal.transform(s)
    with pytest.raises(DataError, match="'stress' was not calibrated"):
        cal.transform(np.ones(1), np.array(["stress"]))


def test_zero_sigma_without_floor_is_an_error():
    with pytest.raises(DataError, match="sigma is zero"):
        ConformalCalibrator(floor=False).fit(np.ones(20), np.zeros(20))
    # with a floor, zero σ falls back to a constant band
    cal = ConformalCalibrator(floor=True).fit(np.ones(20), np.zeros(20))
    assert math.isinf(cal.floor_[None])


def test_rows_with_sigma_zero_by_symmetry_are_left_out_without_a_floor():
    e, s = gaussian(200, 5)
    plain = ConformalCalibrator(floor=False).fit(e, s)
    # components fixed by symmetry: σ exactly 0 (or 1e-17 of round-off) and a tiny error
    e2 = np.concatenate([e, np.full(30, 1e-12)])
    s2 = np.concatenate([s, np.zeros(15), np.full(15, 1e-17)])
    cal = ConformalCalibrator(floor=False).fit(e2, s2)
    assert cal.scale_[None] == pytest.approx(plain.scale_[None])
