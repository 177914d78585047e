"""Relaxed ideal shear strength ⟨111⟩{110} of bcc W (real LAMMPS W SNAP): physical values, the
path's small-strain limit against the elastic tensor, independence of the reference lattice
constant, the default set and the checks before any work."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from ase.calculators.emt import EMT

from potforge.engines.lammps import LammpsCalculator, potentials_dir
from potforge.properties import (
    EV_A3_TO_GPA,
    REGISTRY,
    NotApplicableError,
    PropertyError,
    PropertySuite,
    SettingError,
    compute_qoi,
    default_qois,
    run_suite,
)
from potforge.properties.shear import OTHER, SHEAR, ideal_shear_strength, slip_frame

SNAP = ["include W_2940_2017_2.snap"]


@pytest.fixture(scope="module")
def snap():
    return LammpsCalculator(SNAP, ["W"], potentials_dir())


@pytest.fixture(scope="module")
def w_suite(snap):
    return PropertySuite(snap, "W", fmax=1e-6)


def test_slip_frame_is_a_rotation_with_s_in_the_plane():
    frame = slip_frame("110")
    np.testing.assert_allclose(frame @ frame.T, np.eye(3), atol=1e-15)
    assert np.linalg.det(frame) == pytest.approx(1.0)
    np.testing.assert_allclose(frame[0] * np.sqrt(3), [1, 1, 1], atol=1e-14)
    np.testing.assert_allclose(frame[2] * np.sqrt(2), [1, -1, 0], atol=1e-14)


def test_w_snap_ideal_shear_strength_is_physical(snap, w_suite):
    """W SNAP: τ* ≈ 18 GPa at γ* ≈ 0.19 (DFT ⟨111⟩{110}: ≈ 18 GPa at γ ≈ 0.17–0.18), about
    0.12 of the relaxed shear modulus; the relaxed tangent at γ = 0 is the cubic
    3 C44 C'/(4 C44 + C') of the elastic tensor."""
    res = w_suite.ideal_shear()
    tau = res.tau_star * EV_A3_TO_GPA
    assert 15.0 < tau < 30.0 and 0.12 < res.gamma_star < 0.25, (tau, res.gamma_star)
    assert res.tau_star >= res.taus.max() and abs(res.point.modulus) < 1e-6 * res.shear_modulus
    tol = w_suite.fmax / w_suite.ground().volume_per_atom
    assert np.abs(res.point.stress[list(OTHER)]).max() <= tol  # the five others relaxed
    assert res.point.strain[SHEAR] == res.gamma_star
    np.testing.assert_array_less(0.0, np.diff(res.taus[:-1]))  # rising up to the bracket
    c = w_suite.elastic_tensor()
    c11, c12, c44 = c[0, 0], c[0, 1], c[3, 3]
    g = 3 * c44 * (c11 - c12) / (4 * c44 + c11 - c12)
    assert res.shear_modulus == pytest.approx(g, rel=2e-3)
    assert 0.08 < res.tau_star / res.shear_modulus < 0.16
    value = compute_qoi("tau_ideal_110", snap, "W", suite=w_suite, fmax=1e-6)
    assert value == tau  # the suite's memo
    print(f"W SNAP tau_ideal_110 = {tau:.3f} GPa at gamma* = {res.gamma_star:.4f}")


def test_strength_does_not_depend_on_the_reference_lattice_constant(snap, w_suite):
    """A reference scaled by 1 + e is the same path with γ → (1 + e) γ: the same τ*, γ*/(1+e)
    (why dτ*/dθ has no ground-state lattice term)."""
    ground = w_suite.ground()
    base = ideal_shear_strength(snap, ground, fmax=1e-8)
    scaled = ideal_shear_strength(snap, dataclasses.replace(ground, a=1.01 * ground.a), fmax=1e-8)
    assert scaled.tau_star == pytest.approx(base.tau_star, rel=1e-8)
    assert scaled.gamma_star * 1.01 == pytest.approx(base.gamma_star, rel=1e-6)


def test_kept_out_of_the_default_set_and_checked_before_any_work(snap):
    assert "tau_ideal_110" in REGISTRY and REGISTRY["tau_ideal_110"].lattices == ("bcc",)
    bcc = [q.name for q in REGISTRY.values() if "bcc" in q.lattices and q.name != "tau_ideal_110"]
    assert default_qois("bcc") == bcc
    calc = EMT()
    with pytest.raises(NotApplicableError, match="tau_ideal_110 is defined for bcc"):
        run_suite(calc, "Cu", ["tau_ideal_110"], progress=False)
    with pytest.raises(SettingError, match="shear_max must be at least 2 × shear_step"):
        run_suite(calc, "Cu", ["a0"], progress=False, shear_step=0.1, shear_max=0.15)
    assert calc.atoms is None
    with pytest.raises(PropertyError, match="no maximum up to shear_max = 0.1; raise shear_max"):
        compute_qoi("tau_ideal_110", snap, "W", shear_max=0.1)
