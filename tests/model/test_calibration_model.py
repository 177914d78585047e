"""Calibrated uncertainties of a fitted LinearPotential (potforge.model.calibration): out-of-fold
cross-fitting on the training data, inflated bounds on new structures — a small SNAP on a subset
of the real Mo DFT data, so the file stays fast."""

from __future__ import annotations

import numpy as np
import pytest

from potforge.data import read_structures
from potforge.errors import ModelError
from potforge.model import LinearPotential
from potforge.model.calibration import calibrate_uncertainty

SPEC = "snap(twojmax=4,rcutfac=4.6)+const"


@pytest.fixture(scope="module")
def fitted(mo_train, mo_test):
    train = read_structures(mo_train)[::4]
    test = read_structures(mo_test, stress_order="mlearn-mo")[::3]
    model = LinearPotential(SPEC).setup(train)
    designs = model.structure_designs(train, progress=False)
    model.fit(train, designs=designs)
    model.fit_posterior(train, designs=designs)
    return model, train, designs, test


@pytest.mark.parametrize("source", ["pops", "fisher"])
def test_out_of_fold_calibration_covers_its_own_rows(fitted, source):
    model, train, designs, _ = fitted
    cal = calibrate_uncertainty(model, train, source=source, n_folds=4, designs=designs)
    oof = cal.oof
    assert oof["errors"].shape == oof["sigma"].shape == oof["fold"].shape
    assert set(cal.calibrator.groups_) == {"energy", "force", "stress"}
    half = cal.calibrator.transform(oof["sigma"], oof["groups"])
    for rt in ("energy", "force"):
        m = oof["groups"] == rt
        assert np.mean(np.abs(oof["errors"][m]) <= half[m]) >= 0.9
    # out-of-fold energy errors are larger (RMS) than the in-sample residuals of the final fit
    # (the energy rows carry most of the weight)
    r_in = model.design(train, designs=designs)
    in_sample = (r_in.A @ model.coef_ - r_in.y)[r_in.row_type == 0]
    assert np.sqrt(np.mean(oof["errors"][oof["row_type"] == 0] ** 2)) > np.sqrt(
        np.mean(in_sample**2)
    )


def test_predict_gives_symmetric_inflated_bounds(fitted):
    model, train, designs, test = fitted
    cal = calibrate_uncertainty(model, train, source="pops", n_folds=4, designs=designs)
    plain = model.predict(test, progress=False)
    preds = cal.predict(model, test)
    for p, q, a in zip(preds, plain, test, strict=True):
        assert p["energy"] == pytest.approx(q["energy"])
        lo, hi = p["energy_bounds"]
        assert lo < p["energy"] < hi and hi - p["energy"] == pytest.approx(p["energy"] - lo)
        assert p["forces_bounds"].shape == (2, len(a), 3)
        assert np.all(p["forces_bounds"][0] <= p["forces"])


def test_fisher_predict_needs_training_rows(fitted):
    model, train, designs, test = fitted
    cal = calibrate_uncertainty(model, train, source="fisher", n_folds=4, designs=designs)
    with pytest.raises(ModelError, match="training rows"):
        cal.predict(model, test)
    preds = cal.predict(model, test, train=model.design(train, designs=designs))
    assert np.all(np.isfinite(preds[0]["forces_bounds"]))


def test_bad_arguments(fitted):
    model, train, designs, _ = fitted
    with pytest.raises(ModelError, match="source must be one of"):
        calibrate_uncertainty(model, train, source="magic", designs=designs)
    with pytest.raises(ModelError, match="label_precision"):
        calibrate_uncertainty(
            model, train, source="fisher", label_precision=(1.0, -1.0, 1.0), designs=designs
        )
