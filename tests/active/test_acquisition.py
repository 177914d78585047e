"""Acquisition functions and frame uncertainty: reference values of seed 004, DP-GEN's
max_devi_f, the extrapolation grade, rejection sampling."""

from __future__ import annotations

import numpy as np
import pytest

from potforge.active import (
    ExtrapolationGrade,
    Frames,
    Reference,
    force_deviation,
    make_acquisition,
    max_devi_f,
    maxvol,
    p_energy,
    p_uncertainty,
    pick,
)
from potforge.errors import DataError


def test_p_u_and_p_e_reproduce_the_reference_values():
    u = 1.0 + 0.5 * np.array([1, 1.5, 2, 2.5, 3])
    np.testing.assert_allclose(
        p_uncertainty(u, 1.0, 0.5), [7.8e-4, 0.057, 0.5, 0.943, 0.999], atol=6e-4
    )
    e = 2.0 + 0.1 * np.array([1, 1.4, 1.8, 2.6])
    np.testing.assert_allclose(p_energy(e, 2.0, 0.1), [1, 0.447, 0.2, 0.04], atol=1e-3)
    assert p_energy(np.array([1.0]), 2.0, 0.1)[0] == 1.0  # below the mean: viable
    with pytest.raises(DataError, match="σ_U"):
        p_uncertainty(u, 1.0, 0.0)


def test_max_devi_f_is_dpgens_definition():
    rng = np.random.default_rng(0)
    fs = rng.normal(size=(8, 20, 3))
    dpgen = np.max(np.linalg.norm(np.std(fs, axis=0), axis=-1), axis=-1)  # deepmd's formula
    assert max_devi_f(fs) == pytest.approx(dpgen, rel=1e-12)
    assert force_deviation(fs).shape == (20,)
    with pytest.raises(DataError, match="K ≥ 2"):
        max_devi_f(fs[:1])


def test_extrapolation_grade_is_at_most_one_on_training_rows():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(300, 12)) * rng.lognormal(0, 2, 12)
    g = ExtrapolationGrade().fit(A)
    assert g.grade(A).max() <= 1.01 + 1e-9
    assert g.grade(5 * A[:3]).min() > 1.5  # far outside the training span
    assert len(set(maxvol(A))) == 12
    rows = rng.normal(size=(4, 3, 12))
    assert g.atom_grades(rows).shape == (4,)


def test_acquisitions_by_name_and_their_probabilities():
    ref = Reference.from_heldout([0.1, 0.12, 0.08, 0.11, 0.09])
    energy = np.r_[-8.9 + 0.01 * np.sin(np.arange(16)), -8.9, -8.9, -8.89, -8.0]
    u = np.r_[np.full(16, 0.1), 0.05, 0.1, 0.3, 0.5]
    pupe = make_acquisition("pu_pe")(Frames(u, energy), ref)
    assert pupe[18] > 0.99 and pupe[19] < 0.01  # uncertain and viable / uncertain, unphysical
    assert pupe[16] < 1e-6  # certain
    frames = Frames(u=u[16:], energy=energy[16:])
    trust = make_acquisition("trust", lo=0.08, hi=0.4)(frames, ref)
    np.testing.assert_array_equal(trust, [0, 1, 1, 0])
    lo, hi = make_acquisition("trust", quantiles=(0.5, 0.99)).bounds(ref)
    assert lo == pytest.approx(0.1)
    assert make_acquisition("topk")(frames, ref).argmax() == 3
    with pytest.raises(DataError, match="grades"):
        make_acquisition("dopt")(frames, ref)
    with pytest.raises(DataError, match="did you mean 'pu_pe'"):
        make_acquisition("pupe")
    with pytest.raises(DataError, match="'lo'"):
        make_acquisition("trust", low=0.1)


def test_dopt_stops_the_explorer_at_the_first_grade_above_gamma_hi():
    ref = Reference.from_heldout([0.1, 0.12])
    g = np.array([1.0, 3.0, 12.0, 4.0, 1.5, 6.0])
    frames = Frames(np.zeros(6), np.zeros(6), grade=g)
    dopt = make_acquisition("dopt", gamma_lo=2.0, gamma_hi=10.0)
    assert dopt.stop_index(frames) == 2
    np.testing.assert_array_equal(dopt(frames, ref), [0, 1, 0, 0, 0, 0])  # after γ_hi: never
    calm = Frames(np.zeros(3), np.zeros(3), grade=np.array([1.0, 3.0, 2.5]))
    assert dopt.stop_index(calm) is None
    np.testing.assert_array_equal(dopt(calm, ref), [0, 1, 1])


def test_thresholds_per_system_by_explorer_pattern():
    from potforge.active.loop import system_acquisitions

    names = ["bulk-300K", "bulk-3000K", "vacancy-300K"]
    acq = system_acquisitions(
        "trust",
        {"lo": 0.05, "hi": 0.15},
        {"*-3000K": {"hi": 0.4}, "vacancy-*": {"lo": 0.1}},
        names,
    )
    assert (acq["bulk-300K"].lo, acq["bulk-300K"].hi) == (0.05, 0.15)
    assert (acq["bulk-3000K"].lo, acq["bulk-3000K"].hi) == (0.05, 0.4)
    assert (acq["vacancy-300K"].lo, acq["vacancy-300K"].hi) == (0.1, 0.15)
    with pytest.raises(DataError, match="'surface-\\*' matches no explorer; the explorers"):
        system_acquisitions("trust", {}, {"surface-*": {"lo": 0.1}}, names)
    with pytest.raises(DataError, match="setting of acquisition 'pu_pe'"):
        system_acquisitions("pu_pe", {}, {"bulk-*": {"lo": 0.1}}, names)
    with pytest.raises(DataError, match="must be a table"):
        system_acquisitions("pu_pe", {}, {"bulk-*": 0.1}, names)


def test_pick_fills_the_quota_by_rejection_sampling_and_dedups():
    rng = np.random.default_rng(2)
    p = np.array([0.0, 0.5, 0.5, 1.0, 0.1, 0.0])
    got = pick(p, 2, rng)
    assert len(got) == 2 and not set(got) & {0, 5}
    assert list(pick(p, 2, rng, deterministic=True)) == [3, 1]
    assert len(pick(p, 10, rng)) == 4  # every frame with a chance, no more
    X = np.array([[0, 0], [1, 0], [1.001, 0], [2, 0], [3, 0], [4, 0]], dtype=float)
    kept = pick(np.array([0, 0.9, 1.0, 0, 0, 0]), 5, rng, descriptor=X, dedup=0.01)
    assert list(kept) == [2]  # frames 1 and 2 are the same frame: the more probable stays
