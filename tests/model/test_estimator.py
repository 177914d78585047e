"""LinearPotential keeps scikit-learn's estimator contract (the checks of check_estimator that
apply to a model of atomic structures)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from sklearn.base import clone

from potforge.data import attach_labels
from potforge.errors import NotFittedError
from potforge.model import LinearPotential

SPEC = "snap(twojmax=2,rcutfac=4.0)+const"


@pytest.fixture(scope="module")
def data():
    out = []
    for k in range(5):
        a = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 1))
        a.rattle(0.05, seed=k)
        a.calc = EMT()
        out.append(attach_labels(a, a.get_potential_energy(), a.get_forces(), a.get_stress()))
    return out


def test_clone_and_params_round_trip():
    m = LinearPotential(SPEC, alpha=1e-6, group_weights={"AIMD": 0.5})
    params = m.get_params(deep=True)
    assert params["terms"] == SPEC and params["alpha"] == 1e-6
    c = clone(m)
    assert c is not m and c.get_params() == params
    assert LinearPotential().set_params(**params).get_params() == params
    assert (
        repr(m) == "LinearPotential('snap(twojmax=2,rcutfac=4.0)+const', "
        "group_weights={'AIMD': 0.5}, alpha=1e-06)"
    )


def test_parameters_after_terms_are_keyword_only():
    with pytest.raises(TypeError):
        LinearPotential(SPEC, ["Cu"])  # type: ignore[misc]


def test_fit_returns_self_and_fitted_state_ends_in_underscore(data):
    m = LinearPotential(SPEC)
    before = set(vars(m))
    assert m.fit(data) is m
    added = set(vars(m)) - before
    assert added and all(name.endswith("_") for name in added), added
    assert clone(m).get_params() == m.get_params()
    assert not hasattr(clone(m), "coef_")  # a clone is unfitted


def test_unfitted_model_says_so():
    with pytest.raises(NotFittedError, match="this LinearPotential is not fitted yet: call fit"):
        LinearPotential(SPEC).predict([bulk("Cu")])


def test_saved_model_keeps_its_spec(data, tmp_path):
    m = LinearPotential(SPEC, sigma_force=0.1).fit(data)
    m.save(tmp_path / "m")
    back = LinearPotential.load(tmp_path / "m")
    assert back.get_params() == m.get_params()
    np.testing.assert_array_equal(back.coef_, m.coef_)


def test_design_rows_of_unlabelled_structures(data):
    """Rows of unlabelled candidates are the rows their labels would get in the fit."""
    m = LinearPotential(SPEC).fit(data)
    labelled = m.design(data)
    bare = [a.copy() for a in data]  # copies drop the labels
    for a in bare:
        a.calc = None
    assert m.design(bare).A.shape[0] == 0  # assemble: labelled rows only
    rows = m.design_rows(bare)
    np.testing.assert_array_equal(rows.A, labelled.A)
    np.testing.assert_array_equal(rows.row_type, labelled.row_type)
    np.testing.assert_array_equal(rows.structure, labelled.structure)
    assert np.isnan(rows.y).all()
    w = rows.weights(m.sigma)
    fisher = rows.A.T @ (w[:, None] * rows.A)  # information of the candidates, AᵀWA
    np.testing.assert_allclose(
        fisher, labelled.A.T @ (labelled.weights(m.sigma)[:, None] * labelled.A)
    )
    slab = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    slab.pbc = (True, True, False)
    rows = m.design_rows([slab], use=("energy", "force"))
    assert rows.A.shape == (1 + 3 * len(slab), m.n_params)


def test_with_terms_shares_the_built_terms_and_keeps_them_through_fit(data):
    prepared = LinearPotential(SPEC).setup(data)
    copy = prepared.with_terms()
    assert copy.terms_ is prepared.terms_ and not hasattr(copy, "coef_")
    copy.fit(data[:3], designs=copy.structure_designs(data[:3]))
    assert copy.terms_ is prepared.terms_  # fit with given designs does not set up again
    again = prepared.with_terms(copy.coef_)
    np.testing.assert_array_equal(again.coef_, copy.coef_)
    assert again.get_params() == prepared.get_params()
