"""LinearPotential fit/save/load, on real data and real LAMMPS."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from potforge.data import attach_labels, read_structures
from potforge.errors import DataError, ModelError, NotFittedError
from potforge.model import LinearPotential

SMALL = "snap(twojmax=4,rcutfac=4.6)+pair(n_basis=8,rcut=5.0)+zbl+const"


@pytest.fixture(scope="module")
def mo_small(mo_train):
    return read_structures(mo_train)[::5]


def test_fit_recovers_a_model_of_its_own_form(tmp_path):
    """Labels made by a known θ are fitted back exactly (weighted LSQ is exact on its own model)."""
    spec = "snap(twojmax=2,rcutfac=4.4)+pair(n_basis=7,r_min=2.2,rcut=4.8)+const"
    teacher = LinearPotential(spec, elements=["W"]).setup()
    rng = np.random.default_rng(0)
    teacher.coef_ = rng.normal(size=teacher.n_params) * 0.1
    data = []
    for k in range(12):
        a = bulk("W", "bcc", a=3.17, cubic=True).repeat(2)
        a.set_cell(a.cell * (1 + 0.01 * (k - 6)), scale_atoms=True)
        a.rattle(0.08, seed=k)
        p = teacher.predict([a])[0]
        data.append(attach_labels(a, p["energy"], p["forces"], p["stress"]))
    student = LinearPotential(teacher.terms_, alpha=0.0).fit(data)
    np.testing.assert_allclose(student.coef_, teacher.coef_, rtol=1e-6, atol=1e-9)


def test_save_load_round_trip_is_exact(mo_small, tmp_path):
    m = LinearPotential(SMALL + "+embed(n_basis=6,rcut=5.0)").fit(mo_small[:6])
    m.save(tmp_path / "m")
    back = LinearPotential.load(tmp_path / "m")
    assert np.array_equal(back.coef_, m.coef_)
    a, b = m.predict(mo_small[6:8]), back.predict(mo_small[6:8])
    for x, y in zip(a, b, strict=True):
        assert x["energy"] == y["energy"]
        assert np.array_equal(x["forces"], y["forces"])
        assert np.array_equal(x["stress"], y["stress"])


def test_ensemble_from_one_descriptor_pass(mo_small):
    m = LinearPotential(SMALL).fit(mo_small[:6])
    designs = m.structure_designs(mo_small[6:8])
    thetas = m.coef_ + 1e-3 * np.random.default_rng(1).normal(size=(4, m.n_params))
    many = m.predict_designs(designs, thetas)
    for k in range(4):
        one = m.predict_designs(designs, thetas[k])
        for s in range(2):
            assert many[s]["energy"][k] == pytest.approx(one[s]["energy"], rel=1e-12)
            np.testing.assert_allclose(many[s]["forces"][k], one[s]["forces"], atol=1e-12)
            np.testing.assert_allclose(many[s]["stress"][k], one[s]["stress"], atol=1e-14)


def test_calculator_matches_predict(mo_small):
    m = LinearPotential(SMALL).fit(mo_small[:6])
    a = mo_small[7].copy()
    a.calc = m.as_calculator()
    p = m.predict([mo_small[7]])[0]
    assert a.get_potential_energy() == pytest.approx(float(p["energy"]), rel=1e-12)
    np.testing.assert_allclose(a.get_stress(), p["stress"], atol=1e-14)


def test_model_errors():
    with pytest.raises(NotFittedError):
        LinearPotential().predict([bulk("W")])
    with pytest.raises(DataError, match="empty"):
        LinearPotential().fit([])
    with pytest.raises(ModelError, match="unknown term 'snapp'.*did you mean snap"):
        LinearPotential("snapp").setup([bulk("W")])
    m = LinearPotential("pair(n_basis=8)+const", elements=["W"]).setup()
    m.coef_ = np.zeros(m.n_params)
    with pytest.raises(DataError, match="element.*Mo.*does not know"):
        m.predict([bulk("Mo")])


def test_rank_deficient_design_names_the_terms():
    a = bulk("W", "bcc", a=3.17, cubic=True)
    data = [attach_labels(a.copy(), -10.0, np.zeros((2, 3)))]  # one perfect crystal: no info
    with pytest.raises(ModelError, match="rank-deficient"):
        LinearPotential("snap(twojmax=2)+const", alpha=0.0).fit(data)
