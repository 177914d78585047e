"""Property suite: array-level cores on analytic cases, physics checks with real calculators
(LAMMPS W SNAP/EAM, ASE EMT), failure messages, registry and CLI."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT

from potforge.engines.lammps import LammpsCalculator, potentials_dir
from potforge.properties import (
    EV_A3_TO_GPA,
    REGISTRY,
    SETTINGS,
    ElementError,
    InstabilityError,
    NotApplicableError,
    PropertySuite,
    RelaxationError,
    SettingError,
    UnknownQoIError,
    UnknownSettingError,
    UnstableWarning,
    birch_murnaghan,
    check_born_stability,
    compute_phonons,
    compute_qoi,
    cubic_constants,
    elastic_from_stress_strain,
    elastic_tensor,
    fit_birch_murnaghan,
    relax_cell,
    relax_positions,
    run_suite,
    unstable_fault_energy,
)
from potforge.properties.elastic import strain_set
from potforge.properties.relax import nearest_distance
from potforge.properties.stacking import gsf_curve
from potforge.properties.structures import bulk_phase

SNAP = ["include W_2940_2017_2.snap"]
ZHOU = ["pair_style eam/alloy", "pair_coeff * * W_zhou.eam.alloy W"]


@pytest.fixture(scope="module")
def snap():
    return LammpsCalculator(SNAP, ["W"], potentials_dir())


@pytest.fixture(scope="module")
def zhou():
    return LammpsCalculator(ZHOU, ["W"], potentials_dir())


@pytest.fixture(scope="module")
def w_snap(snap):
    return PropertySuite(snap, "W")


# --- array-level cores ----------------------------------------------------------------------
def test_birch_murnaghan_fit_recovers_parameters():
    v = np.linspace(14.0, 18.0, 15)
    true = (-8.9, 15.9, 1.9, 4.3)
    fit = fit_birch_murnaghan(v, birch_murnaghan(v, *true))
    assert np.allclose(fit, true, rtol=1e-6)


def test_elastic_from_stress_strain_recovers_tensor_and_cancels_residual_stress():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(6, 6))
    c = m @ m.T + 6 * np.eye(6)
    strains = strain_set(0.005)
    stresses = strains @ c.T + rng.normal(size=6)  # same residual stress on every point
    assert np.allclose(elastic_from_stress_strain(strains, stresses), c, atol=1e-10)


def test_born_check_raises_or_warns_on_negative_eigenvalue():
    c = np.diag([2.0, 2.0, 2.0, 1.0, 1.0, -0.1])
    with pytest.raises(InstabilityError, match="mechanically unstable"):
        check_born_stability(c, "toy")
    with pytest.warns(UnstableWarning):
        assert not check_born_stability(c, "toy", raise_error=False)
    assert check_born_stability(np.eye(6), "toy")


def test_unstable_fault_energy_refines_the_maximum():
    x = np.linspace(0.0, 1.0, 8)  # maximum of sin² at 0.5 falls between samples
    y = np.sin(np.pi * x) ** 2
    assert y.max() < 0.96
    refined = unstable_fault_energy(x, y)
    assert refined <= 1.0 and abs(refined - 1.0) < (1.0 - y.max()) / 4


# --- physics with real calculators ----------------------------------------------------------
def test_bulk_modulus_from_ev_curve_matches_elastic_constants(w_snap):
    c11, c12, _ = cubic_constants(w_snap.elastic_tensor())
    b_elastic = (c11 + 2 * c12) / 3
    assert w_snap.bulk_modulus() == pytest.approx(b_elastic, rel=0.01)
    v, e = w_snap.energy_volume()
    assert v[np.argmin(e)] == pytest.approx(w_snap.ground().volume_per_atom, rel=0.02)


def test_snap_tungsten_values_are_physical(w_snap):
    a0 = w_snap.lattice_constant()
    c11, c12, c44 = (x * EV_A3_TO_GPA for x in cubic_constants(w_snap.elastic_tensor()))
    assert 3.15 < a0 < 3.21  # Å, expt 3.165
    assert 450 < c11 < 600 and 150 < c12 < 250 and 120 < c44 < 180  # GPa, expt 523/203/160
    assert 2.5 < w_snap.vacancy_formation_energy(3) < 4.0  # eV
    assert 0.0 < w_snap.phase_energy("A15") < w_snap.phase_energy("fcc")


def test_phonons_of_bcc_w_are_real_and_sensible(w_snap):
    ph = w_snap.phonons(check_stability=True)
    assert ph.stable and ph.min_frequency > -0.05
    h = ph.at("H")
    assert np.allclose(h, h[0], rtol=1e-6)  # triply degenerate at H
    assert 4.5 < h[-1] < 6.5  # THz, expt ~5.5
    n = ph.at("N")
    assert n[0] < n[1] < n[2]  # three distinct branches at N
    dist, freqs = ph.dispersion("GHPGN", n=9)
    assert freqs.shape == (36, 3) and np.all(np.abs(freqs[0]) < 0.05)
    f, dos = ph.dos(mesh=10)
    assert np.trapezoid(dos, f) == pytest.approx(3.0, rel=0.05)  # 3 modes per atom


def test_imaginary_phonon_detected_in_fcc_tungsten(snap):
    """fcc W under the SNAP potential is Born-stable but dynamically unstable."""
    fcc, _ = relax_cell(bulk_phase("W", "fcc", 4.10), snap, label="fcc W", hydrostatic=True)
    a = (4 * fcc.get_volume()) ** (1 / 3)
    cell = bulk_phase("W", "fcc", a, cubic=True)
    with pytest.warns(UnstableWarning, match="dynamically unstable"):
        ph = compute_phonons(snap, cell, supercell=3, lattice="fcc", conventional_a=a)
    assert not ph.stable and ph.min_frequency < -0.3
    with pytest.raises(InstabilityError, match="imaginary"):
        compute_phonons(
            snap, cell, supercell=3, lattice="fcc", conventional_a=a, check_stability=True
        )


def test_born_instability_detected_in_simple_cubic_tungsten(zhou):
    sc, _ = relax_cell(Atoms("W", cell=[2.6] * 3, pbc=True), zhou, label="sc W", hydrostatic=True)
    c = elastic_tensor(zhou, sc)
    assert cubic_constants(c)[2] < 0  # C44 < 0
    with pytest.raises(InstabilityError, match="mechanically unstable"):
        check_born_stability(c, "sc W")


def test_gsf_curves_have_bcc_symmetry(w_snap, snap):
    x, y = gsf_curve(snap, w_snap.ground(), "110", n_points=5, thickness=12.0)
    assert y[0] == 0 and abs(y[-1]) < 1e-8  # a full Burgers vector restores the crystal
    assert y[1] == pytest.approx(y[3], rel=1e-6)  # {110} curve is symmetric about b/2
    assert np.argmax(y) == 2
    x, y = gsf_curve(snap, w_snap.ground(), "112", n_points=5, thickness=12.0)
    assert abs(y[-1]) < 1e-8 and abs(y[1] - y[3]) > 1e-4  # {112}: twinning asymmetry


def test_fcc_and_hcp_paths_with_emt():
    calc = EMT()
    res = run_suite(
        calc,
        "Cu",
        ["a0", "C11", "C12", "C44", "Evac", "isf_111", "nu_X"],
        progress=False,
        vacancy_size=2,
        gsf_points=5,
        gsf_thickness=10.0,
        phonon_supercell=2,
    )
    assert res["a0"]["value"] == pytest.approx(3.59, abs=0.02)  # EMT Cu
    assert res["C11"]["value"] > res["C12"]["value"] > 0
    assert 0.5 < res["Evac"]["value"] < 2.0
    # EMT puts hcp Cu 0.9 meV/atom *below* fcc, so its intrinsic fault energy is negative
    d_hcp = compute_qoi("dE_hcp", calc, "Cu")
    assert -2e-3 < d_hcp < 0 and -0.05 < res["isf_111"]["value"] < 0
    hcp = PropertySuite(calc, "Cu", structure="hcp")
    g = hcp.ground()
    assert 1.5 < g.c_over_a < 1.75
    c = hcp.elastic_tensor()
    assert c[0, 0] == pytest.approx(c[1, 1], rel=1e-3)  # hexagonal symmetry


def test_multi_element_calculator_serves_each_element():
    calc = EMT()
    a_cu = compute_qoi("a0", calc, "Cu")
    a_ni = compute_qoi("a0", calc, "Ni")
    assert a_ni < a_cu


# --- failures are one clear sentence ----------------------------------------------------------
def test_element_not_in_calculator(snap):
    with pytest.raises(ElementError, match="does not describe Mo; it knows W"):
        compute_qoi("a0", snap, "Mo")
    with pytest.raises(ElementError, match="cannot evaluate W"):
        compute_qoi("a0", EMT(), "W")


def test_unknown_qoi_and_setting_list_valid_names(snap):
    with pytest.raises(UnknownQoIError, match=r"did you mean .*C11") as exc:
        compute_qoi("C1l", snap, "W")
    assert "valid: a0" in str(exc.value)
    with pytest.raises(UnknownQoIError, match="vacancy_size"):
        compute_qoi("Evac", snap, "W", vacancy_sise=3)


# (setting, bad value, what the message says is allowed)
BAD_SETTINGS = [
    ("vacancy_size", "abc", "an integer ≥ 2"),
    ("vacancy_size", -2, "an integer ≥ 2"),
    ("vacancy_size", 2.5, "an integer ≥ 2"),
    ("vacancy_size", True, "an integer ≥ 2"),
    ("sia_size", 1, "an integer ≥ 2"),
    ("fmax", -1, "a number > 0 and ≤ 1"),
    ("fmax", 0.0, "a number > 0 and ≤ 1"),
    ("fmax", float("nan"), "a number > 0 and ≤ 1"),
    ("fmax", "1e-4", "a number > 0 and ≤ 1"),
    ("steps", 0, "an integer ≥ 1"),
    ("steps", 2.0, "an integer ≥ 1"),
    ("strain", 0.5, "a number > 0 and ≤ 0.1"),
    ("ev_span", 0, "a number > 0 and ≤ 0.3"),
    ("slab_thickness", -3.0, "a number > 0"),
    ("vacuum", 0, "a number > 0"),
    ("gsf_points", 2, "an integer ≥ 3"),
    ("gsf_thickness", None, "a number > 0"),
    ("phonon_supercell", 0, "an integer ≥ 1"),
    ("shear_step", 0, "a number > 0 and ≤ 0.1"),
    ("shear_max", 1.5, "a number > 0 and ≤ 1"),
    ("check_stability", "maybe", "true or false"),
    ("check_stability", 1, "true or false"),
    ("structure", "bcd", "one of bcc, fcc, hcp, zincblende, rocksalt or none"),
    (
        "references",
        "I:dimer",
        "a mapping of element symbols to one of bcc, fcc, hcp, diamond, dimer (on the command "
        "line EL:STATE,...) or none",
    ),
]


def test_every_setting_is_declared_with_its_allowed_values():
    assert {s for s, _, _ in BAD_SETTINGS} == set(SETTINGS)
    for name, s in SETTINGS.items():
        assert s.check(s.default) == s.default, name  # every default is allowed


@pytest.mark.parametrize(("name", "value", "allowed"), BAD_SETTINGS)
def test_a_bad_setting_is_one_sentence_before_any_work(name, value, allowed):
    calc = EMT()  # a real calculator: it must never be asked for anything
    with pytest.raises(SettingError) as exc:
        run_suite(calc, "Cu", ["a0", "C44"], progress=False, **{name: value})
    assert str(exc.value) == f"property setting {name} must be {allowed}, got {value!r}" or (
        str(exc.value).startswith(f"property setting {name} must be {allowed}, got {value!r} (")
    )
    assert calc.atoms is None  # checked before any calculation
    with pytest.raises(SettingError, match=f"property setting {name} must be"):
        compute_qoi("a0", calc, "Cu", **{name: value})


def test_unknown_setting_names_the_closest_and_qoi_lattice_mismatch():
    calc = EMT()
    with pytest.raises(
        UnknownSettingError,
        match=r"unknown property setting 'vacancy_sise' "
        r"\(did you mean vacancy_size\?\); valid: structure, fmax",
    ):
        run_suite(calc, "Cu", ["a0"], progress=False, vacancy_sise=3)
    with pytest.raises(
        UnknownQoIError,
        match=r"unknown quantity of interest 'evac' \(did you "
        r"mean Evac\?\); valid: a0",
    ):
        run_suite(calc, "Cu", ["a0", "evac"], progress=False)
    with pytest.raises(
        NotApplicableError,
        match=r"^c_over_a is defined for hcp lattices only, "
        r"not for Cu fcc \(choose the lattice with structure='hcp'\)$",
    ):
        run_suite(calc, "Cu", ["a0", "c_over_a"], progress=False)
    assert calc.atoms is None


def test_unconverged_relaxation_reports_residual_force(snap):
    suite = PropertySuite(snap, "W")
    suite.ground()
    suite.steps = 2
    with pytest.raises(
        RelaxationError,
        match=r"relaxation of W vacancy \(53 atoms\) did not converge: max force "
        r"[0-9.e-]+ eV/Å after 2 steps",
    ):
        suite.vacancy_formation_energy(3)


def test_collapsing_relaxation_is_an_instability_not_a_value():
    from ase.build import bcc100
    from ase.calculators.lj import LennardJones

    slab = bcc100("W", (2, 2, 4), a=3.165, vacuum=6.0)
    # LJ minimum at 2^(1/6) σ: at the W spacing (2.74 Å) the slab only relaxes …
    relaxed, _ = relax_positions(slab, LennardJones(sigma=2.44, rc=6.0), label="W (100) slab")
    assert nearest_distance(relaxed) > 0.9 * nearest_distance(slab)
    # … at half of it, atoms fall into each other: no surface energy of a collapsed slab
    # (stopped as soon as a periodic check sees it, not at the step limit)
    with pytest.raises(
        InstabilityError,
        match=r"relaxation of W \(100\) slab \(16 atoms\) "
        r"collapsed: the shortest interatomic distance fell from 2\.7\d\d Å to "
        r".*\(after 25 steps\)",
    ):
        relax_positions(slab, LennardJones(sigma=1.2, rc=3.0), label="W (100) slab", steps=5000)
    with pytest.raises(InstabilityError, match=r"relaxation of W bcc .*collapsed"):
        compute_qoi("a0", LennardJones(sigma=1.2, rc=3.0), "W")


def test_a_collapse_that_breaks_the_calculator_is_an_instability(snap):
    """A fitted SNAP with its B0 coefficient turned attractive: the bcc cell shrinks until
    LAMMPS's neighbour lists overflow mid-relaxation — a collapse, not an engine failure."""
    from potforge.data.builders import w_structures
    from potforge.model import LinearPotential
    from potforge.oracles.labelling import label_in_process

    model = LinearPotential("snap(twojmax=2,rcutfac=4.7)+const").fit(
        label_in_process(w_structures()[:20], snap)
    )
    coef = model.coef_.copy()
    assert compute_qoi("a0", model.as_calculator(coef), "W") == pytest.approx(3.18, abs=0.05)
    coef[0] -= 20 * abs(coef[0]) + 1.0
    with pytest.raises(
        InstabilityError,
        match=r"W bcc .*collapsed: .* to 0\.\d+ Å.*the "
        r"calculator failed there: .*Neighbor list overflow",
    ):
        compute_qoi("a0", model.as_calculator(coef), "W")


def test_run_suite_shares_work_and_flags_instability(snap):
    res = run_suite(snap, "W", ["a0", "C11", "C12", "C44"], progress=False)
    assert list(res) == ["a0", "C11", "C12", "C44"]
    assert all(r["unit"] == "GPa" for k, r in res.items() if k != "a0")
    assert res["C12"]["seconds"] < 0.1 * (res["a0"]["seconds"] + res["C11"]["seconds"])
    assert set(REGISTRY) >= {"a0", "Ecoh", "B", "Evac", "usf_110", "nu_P", "dE_A15"}


def test_a_suite_kept_by_the_caller_shares_work_and_takes_the_hook():
    """No global cache: a suite the caller keeps (``suite=``) shares its work between calls, is
    refused for another calculator or other bulk settings, and hands its relaxation hook to
    every relaxation it runs."""
    from potforge.properties import suite_for

    calc = EMT()
    seen = []

    def hook(kind, atoms, calc, run, **options):
        seen.append((kind, len(atoms)))
        return run()

    suite = suite_for(calc, "Cu", hook=hook, vacancy_size=2)
    a0 = compute_qoi("a0", calc, "Cu", suite=suite, vacancy_size=2)
    assert seen == [("cell", 1)]
    res = run_suite(calc, "Cu", ["a0", "Evac"], progress=False, suite=suite, vacancy_size=2)
    assert res["a0"]["value"] == a0 and seen == [("cell", 1), ("positions", 31)]
    assert res["a0"]["seconds"] < 0.5 * res["Evac"]["seconds"]  # memoised: no relaxation
    assert compute_qoi("a0", EMT(), "Cu") == pytest.approx(a0, rel=1e-12)  # a new suite
    with pytest.raises(SettingError, match="not of Cu under this calculator"):
        compute_qoi("a0", EMT(), "Cu", suite=suite)
    with pytest.raises(SettingError, match=r"other bulk settings: fmax=0\.0001 \(settings: 0\.001"):
        run_suite(calc, "Cu", ["a0"], progress=False, suite=suite, fmax=1e-3)
    with pytest.raises(SettingError, match="give the relaxation hook to the suite"):
        run_suite(calc, "Cu", ["a0"], progress=False, suite=suite, hook=hook)
    assert len(seen) == 2


# --- CLI --------------------------------------------------------------------------------------
def test_cli_table_json_and_plot(tmp_path, capsys):
    pytest.importorskip("potforge.oracles")
    from potforge.cli import main

    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps({"a0": {"value": 3.165, "unit": "Å"}, "C11": 523.0}))
    out, png = tmp_path / "w.json", tmp_path / "w.png"
    rc = main(
        [
            "properties",
            "--calc",
            "lammps:W_zhou.eam.alloy",
            "--element",
            "W",
            "--qoi",
            "a0,C11,Ecoh",
            "--ref",
            str(ref),
            "--json",
            str(out),
            "--plot",
            str(png),
            "--quiet",
        ]
    )
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["a0"]["unit"] == "Å" and doc["a0"]["reference"] == 3.165
    assert "reference" not in doc["Ecoh"] and doc["C11"]["unit"] == "GPa"
    assert png.stat().st_size > 5000
    table = capsys.readouterr().out
    assert "rel. dev." in table and "C11" in table


# (--set/--qoi arguments, what the one error line says)
BAD_CLI = [
    (["--set", "vacancy_size=abc"], "--set vacancy_size must be an integer ≥ 2, got 'abc'"),
    (["--set", "vacancy_size=-2"], "--set vacancy_size must be an integer ≥ 2, got '-2'"),
    (
        ["--set", "check_stability=maybe"],
        "--set check_stability must be true or false, got 'maybe'",
    ),
    (["--set", "fmax=-1"], "--set fmax must be a number > 0 and ≤ 1, got '-1'"),
    (["--set", "fmax"], "--set expects KEY=VALUE"),
    (
        ["--set", "vacancy_sise=3"],
        "unknown property setting 'vacancy_sise' (did you mean vacancy_size?)",
    ),
    (
        ["--set", "structure=bcd"],
        "--set structure must be one of bcc, fcc, hcp, zincblende, rocksalt or none, got "
        "'bcd' (did you mean bcc?)",
    ),
    (["--qoi", "a0,Evak"], "unknown quantity of interest 'Evak' (did you mean Evac?)"),
    (
        ["--qoi", "a0,c_over_a"],
        "c_over_a is defined for hcp lattices only, not for Cu fcc "
        "(choose the lattice with --structure hcp)",
    ),
    (
        ["--structure", "bcc", "--set", "structure=fcc"],
        "--structure bcc and --set structure=fcc disagree",
    ),
]


@pytest.mark.parametrize(("extra", "message"), BAD_CLI)
def test_cli_bad_settings_exit_2_with_one_line(extra, message, capsys):
    pytest.importorskip("potforge.oracles")
    from potforge.cli import main

    args = ["properties", "--calc", "emt", "--element", "Cu", "--qoi", "a0", "--quiet"]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        f"potforge properties: error: {err.split(': ', 2)[2]}".rstrip()
    ]
    assert message in err


def test_cli_progress_is_named_and_never_a_bar_off_a_terminal(capsys):
    """Off a terminal (pytest's captured stderr) no bar is drawn: the model and reference
    suites each print a start and a done line under their own names; --quiet prints nothing."""
    pytest.importorskip("potforge.oracles")
    from potforge.cli import main

    args = ["properties", "--calc", "emt", "--element", "Cu", "--qoi", "a0,C11"]
    assert main([*args, "--ref", "emt"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "it/s" not in err and "%|" not in err
    assert "Cu properties (emt): 2 QoI …" in err and "Cu properties (emt): done" in err
    assert "Cu reference properties (emt): 2 QoI …" in err
    assert main([*args, "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_python_progress_bar_carries_its_name(capsys):
    run_suite(EMT(), "Cu", ["a0"], progress=True, desc="Cu under EMT")
    err = capsys.readouterr().err
    assert "Cu under EMT" in err and "QoI" in err
    run_suite(EMT(), "Cu", ["a0"], progress=False)
    assert capsys.readouterr().err == ""


def test_cli_errors_are_one_line(capsys):
    pytest.importorskip("potforge.oracles")
    from potforge.cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["properties", "--calc", "emt", "--element", "Cu", "--qoi", "a00"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown quantity of interest 'a00'" in err[0]


@pytest.mark.slow
def test_full_default_suite_for_w_snap(snap):
    res = run_suite(snap, "W", progress=False)
    assert set(res) >= {
        "a0",
        "Ecoh",
        "B",
        "C11",
        "Evac",
        "Esia_111",
        "gamma_surf_211",
        "usf_110",
        "usf_112",
        "nu_N",
        "dE_A15",
    }
    assert all(np.isfinite(r["value"]) and "warning" not in r for r in res.values())
    assert res["usf_110"]["value"] > res["gamma_surf_110"]["value"] / 3
    assert res["Esia_111"]["value"] < res["Esia_oct"]["value"]  # dumbbells beat the oct site


@pytest.mark.slow
def test_vacancy_size_convergence(w_snap):
    conv = w_snap.vacancy_convergence((3, 4, 5))
    assert list(conv) == [54, 128, 250]
    e = list(conv.values())
    assert abs(e[2] - e[1]) < abs(e[1] - e[0]) + 0.02  # converging with size
