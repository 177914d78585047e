"""Cross-validated weight search (potforge.model.cv): folds, the stated objective, determinism,
argument checks; real fits on small Cu cells labelled by ASE's EMT calculator."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from potforge.data import attach_labels
from potforge.errors import DataError, ModelError
from potforge.model import (
    CVScore,
    LinearPotential,
    WeightSearch,
    cv_folds,
    cv_score,
    search_weights,
)
from potforge.model.cv import objective
from potforge.model.metrics import residuals

SPEC = "snap(twojmax=2,rcutfac=4.0)+const"
GRID = {"sigma_energy": (1e-3, 1e-2), "sigma_force": (0.05, 0.2), "sigma_stress": 1e3}


def _labelled(a, group: str):
    a.calc = EMT()
    out = attach_labels(a, a.get_potential_energy(), a.get_forces(), a.get_stress())
    out.info["group"] = group
    return out


@pytest.fixture(scope="module")
def data():
    """13 Cu cells in three groups: rattled (AIMD), strained (Elastic), with a vacancy."""
    out = []
    for k in range(6):
        a = bulk("Cu", "fcc", a=3.6, cubic=True)
        a.rattle(0.08, seed=k)
        out.append(_labelled(a, "AIMD"))
    for k, eps in enumerate((-0.02, -0.01, 0.01, 0.02)):
        a = bulk("Cu", "fcc", a=3.6, cubic=True)
        a.set_cell(a.cell * (1 + eps), scale_atoms=True)
        a.rattle(0.02, seed=10 + k)
        out.append(_labelled(a, "Elastic"))
    for k in range(3):
        a = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
        del a[k]
        a.rattle(0.03, seed=20 + k)
        out.append(_labelled(a, "Vacancy"))
    return out


@pytest.fixture(scope="module")
def search(data) -> WeightSearch:
    return search_weights(
        SPEC, data, n_folds=3, group_factors=(0.3, 3.0), random_state=1, progress=False, **GRID
    )


def test_folds_partition_the_data_stratified_by_group(data):
    fold = cv_folds(data, 3, random_state=0)
    assert fold.shape == (len(data),) and fold.dtype.kind == "i"
    assert set(fold.tolist()) == {0, 1, 2}  # every structure in exactly one fold, none empty
    sizes = np.bincount(fold)
    assert sizes.sum() == len(data) and sizes.max() - sizes.min() <= 1
    groups = np.array([a.info["group"] for a in data])
    for g in set(groups):  # each group dealt round-robin: its share per fold differs by ≤ 1
        share = np.bincount(fold[groups == g], minlength=3)
        assert share.max() - share.min() <= 1, (g, share)
    assert np.array_equal(cv_folds(data, 3, random_state=0), fold)
    assert not all(np.array_equal(cv_folds(data, 3, random_state=s), fold) for s in range(1, 6))


def test_folds_need_enough_structures(data):
    with pytest.raises(DataError, match="needs at least 20 structures, got 13"):
        cv_folds(data, 20)
    with pytest.raises(ModelError, match="n_folds must be an integer ≥ 2, got 1"):
        cv_folds(data, 1)


def test_cv_score_is_the_pooled_held_out_error_of_real_fits(data):
    """cv_score against k separate LinearPotential fits, each predicting its held-out fold."""
    kw = {"sigma_energy": 1e-3, "sigma_force": 0.1, "sigma_stress": 0.02}
    got = cv_score(LinearPotential(SPEC, **kw), data, n_folds=3, random_state=2, progress=False)
    fold = cv_folds(data, 3, random_state=2)
    e, f = [], []
    for k in range(3):
        train = [a for a, i in zip(data, fold, strict=True) if i != k]
        held = [a for a, i in zip(data, fold, strict=True) if i == k]
        r = residuals(held, LinearPotential(SPEC, **kw).fit(train, progress=False).predict(held))
        e.append(r["energy"])
        f.append(r["forces"])
    e_mae = np.mean(np.abs(np.concatenate(e))) * 1000.0
    f_mae = np.mean(np.abs(np.concatenate(f)))
    assert isinstance(got, CVScore) and got.stage == "grid" and got.loss == "squared"
    assert (got.sigma_energy, got.sigma_force, got.sigma_stress) == (1e-3, 0.1, 0.02)
    np.testing.assert_allclose([got.cv_energy_mae, got.cv_force_mae], [e_mae, f_mae], rtol=1e-8)
    assert got.objective == objective(got.cv_energy_mae, got.cv_force_mae, 5.0, 0.2)


def test_search_returns_the_best_by_the_stated_objective(data, search):
    rows = search.rows
    grid = [r for r in rows if r.stage == "grid"]
    assert len(grid) == 4 and rows[:4] == tuple(grid)  # σ_S × σ_E × σ_F, grid first
    assert [(r.sigma_energy, r.sigma_force) for r in grid] == [
        (1e-3, 0.05),
        (1e-3, 0.2),
        (1e-2, 0.05),
        (1e-2, 0.2),
    ]
    for r in rows:  # objective = max(E-MAE / 5 meV/atom, F-MAE / 0.2 eV/Å)
        assert r.objective == max(r.cv_energy_mae / 5.0, r.cv_force_mae / 0.2)
    # the group stage: from the best grid row, each of the 3 groups × 2 factors
    start = min(grid, key=lambda r: r.objective)
    groups = [r for r in rows if r.stage == "groups"]
    assert len(groups) == 3 * 2 and len(rows) == 10
    for r in groups:
        assert (r.sigma_energy, r.sigma_force) == (start.sigma_energy, start.sigma_force)
        assert set(r.group_weights.values()) <= {0.3, 3.0}
    # the chosen row: the first with the smallest objective, and the best grid row at worst
    lowest = min(r.objective for r in rows)
    assert search.best.objective == lowest
    assert search.best_index == [r.objective for r in rows].index(lowest)
    assert search.best.objective <= start.objective
    # its scores are reproduced by cv_score of a model with its weights
    again = cv_score(
        LinearPotential(SPEC, **search.best_params),
        data,
        n_folds=3,
        random_state=1,
        progress=False,
    )
    assert again.objective == pytest.approx(search.best.objective, rel=1e-10)
    model = search.model()
    assert isinstance(model, LinearPotential) and model.terms == SPEC
    assert model.get_params()["sigma_energy"] == search.best.sigma_energy
    assert model.group_weights == search.best.group_weights
    assert "max(CV E-MAE/5 meV/atom, CV F-MAE/0.2 eV/Å); 3-fold" in search.criterion


def test_search_is_deterministic_for_a_seed(data, search):
    model = LinearPotential(SPEC).setup(data)
    designs = model.structure_designs(data, progress=False)
    again = search_weights(
        model,
        data,
        n_folds=3,
        group_factors=(0.3, 3.0),
        random_state=1,
        progress=False,
        designs=designs,
        **GRID,
    )
    assert [r.as_dict() for r in again.rows] == [r.as_dict() for r in search.rows]
    assert again.best_index == search.best_index
    assert np.array_equal(again.folds, search.folds)
    other = search_weights(
        SPEC,
        data,
        n_folds=3,
        group_factors=(),
        random_state=7,
        progress=False,
        designs=designs,
        **GRID,
    )
    assert not np.array_equal(other.folds, search.folds)
    assert [r.cv_energy_mae for r in other.rows] != [r.cv_energy_mae for r in search.rows[:4]]


def test_huber_search_crosses_delta_and_refines_it(data):
    s = search_weights(
        LinearPotential(SPEC, loss="huber"),
        data,
        n_folds=3,
        sigma_energy=1e-3,
        sigma_force=(0.05, 0.2),
        sigma_stress=1e3,
        group_factors=(3.0,),
        huber_delta=(1.0, 3.0),
        huber_delta_refine=(1.0, 2.0),
        energy_scale=4.0,
        force_scale=0.1,
        progress=False,
    )
    stages = [r.stage for r in s.rows]
    # 2 σ_F × 2 δ; one group pass (3 groups × 1 factor) from each δ's best; δ refine (1 or 2)
    assert stages[:4] == ["grid"] * 4 and stages[4:10] == ["groups"] * 6
    assert set(stages[10:]) == {"delta"} and 1 <= len(stages[10:]) <= 2
    assert [r.huber_delta for r in s.rows[:4]] == [1.0, 3.0, 1.0, 3.0]
    assert {r.loss for r in s.rows} == {"huber"}
    for r in s.rows:
        assert r.objective == max(r.cv_energy_mae / 4.0, r.cv_force_mae / 0.1)
    assert s.best.objective == min(r.objective for r in s.rows)
    assert s.best_params["loss"] == "huber" and s.best_params["huber_delta"] == s.best.huber_delta


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sigma_energy": (1e-3, -1.0)}, r"sigma_energy\[1\] must be a number > 0, got -1.0"),
        ({"sigma_force": ()}, "sigma_force must be a number > 0 or a non-empty sequence"),
        ({"group_factors": "abc"}, "group_factors must be a number ≥ 0 or a sequence of them"),
        ({"n_folds": 1.5}, "n_folds must be an integer ≥ 2, got 1.5"),
        ({"random_state": "x"}, "random_state must be an integer ≥ 0 or none, got 'x'"),
        ({"energy_scale": 0.0}, "energy_scale must be a number > 0, got 0.0"),
        ({"huber_delta": 2.0}, "need a Huber-loss model"),
    ],
)
def test_bad_arguments_are_one_sentence(data, kwargs, message):
    with pytest.raises(ModelError, match=message):
        search_weights(SPEC, data, progress=False, **kwargs)


def test_bad_model_and_unlabelled_data(data):
    with pytest.raises(ModelError, match="spec_or_model must be"):
        search_weights(3, data, progress=False)
    with pytest.raises(ModelError, match="sigma_force must be a number > 0"):
        cv_score(LinearPotential(SPEC, sigma_force=-1.0), data, progress=False)
    with pytest.raises(DataError, match="no 'energy' label"):
        search_weights(SPEC, [*data[:3], bulk("Cu", cubic=True)], n_folds=2, progress=False)
