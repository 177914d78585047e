"""Posterior → property bounds: linear propagation through exact dQ/dθ, brute-force resampling,
and the ``potforge properties --model DIR`` bounds (real LAMMPS descriptors, real relaxations)."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest
from ase.io import write

from potforge.cli import main
from potforge.data.builders import w_structures
from potforge.errors import ModelError
from potforge.model import LinearPotential
from potforge.oracles import make_oracle
from potforge.oracles.labelling import label_in_process
from potforge.properties import (
    InstabilityError,
    NotApplicableError,
    SettingError,
    UnknownQoIError,
    UnknownSettingError,
    compute_qoi,
)
from potforge.qoi.propagation import property_uncertainty

SPEC = "snap(twojmax=4,rcutfac=4.7)+zbl(inner=1.0,outer=1.6)+const"
SETTINGS = dict(vacancy_size=2, fmax=1e-6, steps=2000)
QOIS = ["a0", "C44", "Evac"]


@pytest.fixture(scope="module")
def w_data():
    return label_in_process(w_structures(), make_oracle("lammps:W_2940_2017_2.snap").build())


@pytest.fixture(scope="module")
def model(w_data):
    return LinearPotential(SPEC).fit(w_data).fit_posterior(w_data, progress=False)


def test_linear_and_implicit_match_resampling(model):
    lin = property_uncertainty(model, "W", QOIS, progress=False, **SETTINGS)
    for q in QOIS:
        r = lin[q]
        assert r["lower"] < r["value"] < r["upper"] and r["std"] > 0, (q, r)
    res = property_uncertainty(
        model, "W", QOIS, method="resample", n_samples=4, progress=False, **SETTINGS
    )
    imp = property_uncertainty(
        model,
        "W",
        QOIS,
        method="implicit",
        n_samples=4,
        n_candidates=2,
        progress=False,
        **SETTINGS,
    )
    samples = model.sample_coef(4, seed=0)
    from potforge.qoi.sensitivity import Sensitivity

    sens = Sensitivity(model, "W", **SETTINGS)
    for q in QOIS:
        value, grad = sens.gradient(q)
        assert res[q]["value"] == pytest.approx(value, rel=1e-12)
        linear = value + (samples - model.coef_) @ grad
        brute = np.array(res[q]["samples"])
        # the brute-force samples are the same draws, recomputed with relaxations: the first-order
        # prediction must be close (the posterior spread is small next to the curvature scale)
        spread = np.abs(linear - value).max()
        assert np.abs(brute - linear).max() < 0.2 * spread + 1e-9 * abs(value), (q, brute, linear)
        assert res[q]["lower"] <= min(brute) and res[q]["upper"] >= max(brute)
        # implicit: the same draws, nonlinear in θ at Newton-predicted structures — second order,
        # so much closer to the brute force than the linearisation wherever the curvature shows
        near = np.array(imp[q]["samples"])
        assert imp[q]["value"] == res[q]["value"] and imp[q]["method"] == "implicit"
        assert np.abs(near - brute).max() < 0.05 * spread, (q, near, brute)
        if q != "a0":  # a0 is the lattice itself: first order in both
            assert np.abs(near - brute).max() < 0.25 * np.abs(linear - brute).max(), q


def test_implicit_evaluates_the_linearised_extremes_and_converges_with_more_steps(model):
    """``implicit`` evaluates each QoI at the two posterior members attaining its linearised
    bounds; at those (far) members one Newton step is first order in a0, as the linearisation,
    and five chord steps land within 10 % of that error on the fully relaxed value."""
    from potforge.qoi.sensitivity import Sensitivity

    one, five = (
        property_uncertainty(
            model,
            "W",
            ["a0"],
            method="implicit",
            n_samples=1,
            n_candidates=1,
            newton_steps=k,
            progress=False,
            **SETTINGS,
        )["a0"]
        for k in (1, 5)
    )
    grad = Sensitivity(model, "W", **SETTINGS).gradient("a0")[1]
    members = model.extreme_coef(grad)[0]
    brute = [compute_qoi("a0", model.as_calculator(t), "W", **SETTINGS) for t in members]
    assert one["lower"] <= min(one["extremes"]) and one["upper"] >= max(one["extremes"])
    err1 = np.abs(np.array(one["extremes"]) - brute)
    err5 = np.abs(np.array(five["extremes"]) - brute)
    assert np.all(err1 > 1e-4) and np.all(err5 < 0.1 * err1), (brute, one, five)


def test_auto_picks_per_qoi_the_cheapest_method_that_agrees_at_the_extremes(model):
    """``auto``: a QoI keeps its linear bounds only where the implicit values at its two extreme
    members agree with them to ``tol`` × half-width; with ``tol=0`` nothing agrees, so every
    bound is the fully relaxed QoI at the candidate member whose implicit value is extreme
    (checked by hand against ``implicit``'s candidate values and ``compute_qoi``)."""
    from potforge.qoi.sensitivity import Sensitivity

    k = 3
    lin = property_uncertainty(model, "W", QOIS, method="linear", progress=False, **SETTINGS)
    auto = property_uncertainty(model, "W", QOIS, progress=False, n_candidates=k, **SETTINGS)
    strict = property_uncertainty(
        model, "W", QOIS, tol=0.0, progress=False, n_candidates=k, **SETTINGS
    )
    imp = property_uncertainty(
        model, "W", QOIS, method="implicit", n_samples=1, n_candidates=k, progress=False, **SETTINGS
    )
    sens = Sensitivity(model, "W", **SETTINGS)
    for q in QOIS:
        check = auto[q]["check"]
        assert auto[q]["value"] == lin[q]["value"]
        if auto[q]["method"] == "linear":
            assert check["linear_vs_implicit"] <= 0.1 and check["implicit_vs_relaxed"] is None
            assert (auto[q]["lower"], auto[q]["upper"]) == (lin[q]["lower"], lin[q]["upper"])
        else:
            assert check["linear_vs_implicit"] > 0.1, (q, check)
            assert (check["implicit_vs_relaxed"] <= 0.1) == (auto[q]["method"] == "implicit")
        assert strict[q]["method"] == "resample" and strict[q]["check"]["linear_vs_implicit"] > 0
        members = model.candidate_coef(sens.gradient(q)[1], k)[0].reshape(2 * k, -1)
        cand = np.array(imp[q]["candidates"], dtype=float)  # NaN: no such structure there
        assert cand.shape == (2 * k,)
        assert np.array_equal(
            np.array(imp[q]["extremes"], dtype=float), cand[[0, k]], equal_nan=True
        )
        brute = []
        for order in (np.argsort(cand), np.argsort(-cand)):  # NaN last on either side
            for j in order:  # the most extreme candidate whose structure exists when relaxed
                try:
                    brute.append(compute_qoi(q, model.as_calculator(members[j]), "W", **SETTINGS))
                    break
                except InstabilityError:
                    continue
        v = strict[q]["value"]
        assert strict[q]["lower"] == pytest.approx(min(v, *brute), rel=1e-9), q
        assert strict[q]["upper"] == pytest.approx(max(v, *brute), rel=1e-9), q


def test_resampled_value_is_a_real_recomputation(model):
    """One sample recomputed by hand through the registry equals the propagated sample."""
    theta = model.sample_coef(2, seed=3)[1]
    res = property_uncertainty(
        model, "W", ["a0"], method="resample", n_samples=2, seed=3, progress=False, **SETTINGS
    )
    direct = compute_qoi("a0", model.as_calculator(theta), "W", **SETTINGS)
    assert res["a0"]["samples"][1] == pytest.approx(direct, rel=1e-9)


def test_a_property_that_does_not_exist_at_a_sample_is_counted_not_bounded(model, w_data):
    """The 2J=4 student's POPS ensemble reaches parameters where its (100) slab falls below the
    bulk (γ ≤ 0): ``resample`` reports those draws (``None``, ``unstable_samples``) and bounds
    the others; ``auto`` passes over such candidates and counts them."""
    q, n = "gamma_surf_100", 8
    r = property_uncertainty(
        model, "W", [q], method="resample", n_samples=n, progress=False, **SETTINGS
    )[q]
    lost = [s for s, v in enumerate(r["samples"]) if v is None]
    assert r["unstable_samples"] == len(lost) >= 1, r
    ok = [v for v in r["samples"] if v is not None]
    assert r["lower"] == min(r["value"], *ok) > 0 and r["upper"] == max(r["value"], *ok)
    with pytest.raises(InstabilityError, match=r"W \(100\) slab (lies below the bulk|.*collapsed)"):
        compute_qoi(q, model.as_calculator(model.sample_coef(n, seed=0)[lost[0]]), "W", **SETTINGS)
    with pytest.warns(
        UserWarning,
        match=r"auto propagation: gamma_surf_100: both extreme "
        r"candidates lie on one side of the fitted value",
    ) as caught:
        auto = property_uncertainty(model, "W", [q], n_candidates=2, progress=False, **SETTINGS)[q]
    (note,) = [w for w in caught if "auto propagation" in str(w.message)]
    assert note.filename == __file__  # the caller's line, named in Python's words
    assert "more n_candidates or method='resample' may widen them" in str(note.message)
    assert auto["check"]["unrelaxable_candidates"] >= 1 and 0 < auto["lower"] < auto["upper"]
    # its upper bound is the fitted value: every candidate member lowers γ(100)
    assert auto["check"]["flag"] == "one_sided" and auto["upper"] == auto["value"]
    # the hypercube's corners: the slab exists at none of them; linear bounds, flagged
    box = (
        LinearPotential(SPEC)
        .fit(w_data)
        .fit_posterior(w_data, posterior="hypercube", progress=False)
    )
    with pytest.warns(
        UserWarning,
        match=r"gamma_surf_100: the structure exists at none of its "
        r"4 candidate members, so its linear bounds are kept unchecked",
    ):
        r = property_uncertainty(box, "W", [q], n_candidates=2, progress=False, **SETTINGS)[q]
    lin = property_uncertainty(box, "W", [q], method="linear", progress=False, **SETTINGS)[q]
    assert r["check"]["flag"] == "no_relaxable_candidate" and r["method"] == "linear"
    assert (r["lower"], r["upper"]) == (lin["lower"], lin["upper"])


def test_unstable_lattices_at_posterior_samples_give_one_summary_warning(w_data):
    """The 2J=4 student's hypercube reaches Born-unstable bcc lattices: the values are kept and
    the instability is reported once for the whole run, not once per draw."""
    from potforge.properties import UnstableWarning

    box = (
        LinearPotential(SPEC)
        .fit(w_data)
        .fit_posterior(w_data, posterior="hypercube", progress=False)
    )
    with pytest.warns(UnstableWarning) as caught:
        r = property_uncertainty(
            box, "W", ["C11", "C44"], method="resample", n_samples=4, progress=False, **SETTINGS
        )
    mine = [w for w in caught if "posterior parameter vectors" in str(w.message)]
    assert len(caught) == len(mine) == 1
    assert re.match(
        r"[1-4] of 4 posterior parameter vectors evaluated give an unstable "
        r"lattice for C11(, C44)? \(values kept; first: W bcc is mechanically "
        r"unstable",
        str(mine[0].message),
    )
    assert all(v is not None for v in r["C11"]["samples"])
    # auto evaluates many candidates, one at a time: still one warning for the call
    with pytest.warns(UnstableWarning) as caught:
        property_uncertainty(box, "W", ["C11"], n_candidates=2, progress=False, **SETTINGS)
    assert len(caught) == 1 and "parameter vectors evaluated" in str(caught[0].message)


def test_newton_relaxer_at_the_fitted_parameters_changes_nothing(model):
    """At θ̄ itself every force at the recorded minima vanishes: the Newton steps are ~0 and
    the values are the reference's; a different property list is refused by name."""
    from potforge.properties import run_suite
    from potforge.qoi.implicit import NewtonRelaxer, RelaxationRecord

    calc0 = model.as_calculator()
    record = RelaxationRecord()
    ref = run_suite(calc0, "W", QOIS, progress=False, hook=record, **SETTINGS)
    assert [(c.kind, len(c.start)) for c in record.calls] == [("cell", 1), ("positions", 15)]
    hook = NewtonRelaxer(record, calc0)
    again = run_suite(model.as_calculator(), "W", QOIS, progress=False, hook=hook, **SETTINGS)
    assert hook.max_step < 1e-5 and hook.index == len(record.calls)
    for q in QOIS:
        assert again[q]["value"] == pytest.approx(ref[q]["value"], rel=1e-6), q  # fmax 1e-6
    with pytest.raises(ModelError, match="relaxation 2 .* does not match"):
        calc = model.as_calculator()
        run_suite(
            calc,
            "W",
            ["a0", "gamma_surf_100"],
            progress=False,
            hook=NewtonRelaxer(record, calc0),
            **SETTINGS,
        )


def test_no_posterior_and_unknown_method(w_data, model):
    with pytest.raises(SettingError, match=r"^n_candidates must be an integer ≥ 1, got 0$"):
        property_uncertainty(model, "W", ["a0"], n_candidates=0)
    bare = LinearPotential(SPEC).fit(w_data)
    with pytest.raises(ModelError, match="no parameter posterior"):
        property_uncertainty(bare, "W", ["a0"])
    with pytest.raises(ModelError, match="unknown propagation method 'mc'"):
        property_uncertainty(bare, "W", ["a0"], method="mc")


def test_cli_fit_uq_properties_prints_bounds(tmp_path, w_data, capsys):
    train = tmp_path / "train.xyz"
    write(train, w_data)
    mdir = tmp_path / "model"
    assert main(["fit", "--train", str(train), "--out", str(mdir), "--model", SPEC]) == 0
    args = ["properties", "--model", str(mdir), "--element", "W", "--qoi", "a0,C44", "--quiet"]
    args += ["--set", "fmax=1e-6"]
    for method in ("resample", "linear"):  # an explicit --uq needs a posterior
        assert main([*args, "--uq", method]) == 2
        assert "needs a posterior" in capsys.readouterr().err
    assert (
        main(
            [
                "properties",
                "--calc",
                "lammps:W_2940_2017_2.snap",
                "--element",
                "W",
                "--qoi",
                "a0",
                "--uq",
                "linear",
                "--quiet",
            ]
        )
        == 2
    )
    assert "it needs --model DIR" in capsys.readouterr().err
    assert main([*args, "--uq", "linear", "--samples", "8"]) == 2
    assert "--samples applies to --uq implicit/resample only, not --uq linear" in (
        capsys.readouterr().err
    )
    assert main(["uq", "--model", str(mdir), "--train", str(train)]) == 0
    out_json = tmp_path / "props.json"
    assert main([*args, "--candidates", "2", "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "lower" in text and "upper" in text and "std" in text
    doc = json.loads(out_json.read_text())
    for q in ("a0", "C44"):
        assert doc[q]["lower"] < doc[q]["value"] < doc[q]["upper"]
        assert doc[q]["method"] in ("linear", "implicit", "resample")  # auto's choice
        assert doc[q]["check"]["linear_vs_implicit"] >= 0
        assert doc[q]["method"] in text


# (keyword arguments, error class, the message)
BAD_PROPAGATION = [
    (
        {"n_samples": 0, "method": "resample"},
        SettingError,
        r"^n_samples must be an integer ≥ 1, got 0$",
    ),
    ({"n_candidates": 2.5}, SettingError, r"^n_candidates must be an integer ≥ 1, got 2\.5$"),
    ({"newton_steps": 0}, SettingError, r"^newton_steps must be an integer ≥ 1, got 0$"),
    ({"tol": -0.1}, SettingError, r"^tol must be a number ≥ 0, got -0\.1$"),
    (
        {"vacancy_size": "abc"},
        SettingError,
        r"^property setting vacancy_size must be an integer ≥ 2, got 'abc'$",
    ),
    ({"fmax": -1}, SettingError, r"^property setting fmax must be a number > 0 and ≤ 1, got -1$"),
    (
        {"check_stability": "maybe"},
        SettingError,
        r"^property setting check_stability must be true or false, got 'maybe'$",
    ),
    ({"vacancy_sise": 3}, UnknownSettingError, r"'vacancy_sise' \(did you mean vacancy_size\?\)"),
    ({"qois": ["a0", "Evak"]}, UnknownQoIError, r"'Evak' \(did you mean Evac\?\)"),
    (
        {"qois": ["c_over_a"]},
        NotApplicableError,
        r"^c_over_a is defined for hcp lattices only, not for W bcc",
    ),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD_PROPAGATION)
def test_bad_options_settings_and_qois_fail_before_any_work(model, kwargs, error, message):
    kwargs = {"qois": ["a0", "Evac"], **kwargs}
    t0 = time.process_time()
    with pytest.raises(error, match=message):
        property_uncertainty(model, "W", kwargs.pop("qois"), progress=False, **kwargs)
    assert time.process_time() - t0 < 0.5  # a relaxed a0 + Evac alone costs more CPU than this


@pytest.fixture(scope="module")
def model_dir(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("w2j4") / "model"
    model.save(folder)
    return folder


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--uq", "implicit", "--samples", "0"], "--samples must be an integer ≥ 1, got 0"),
        (["--candidates", "0"], "--candidates must be an integer ≥ 1, got 0"),
        (["--set", "vacancy_size=-2"], "--set vacancy_size must be an integer ≥ 2, got '-2'"),
    ],
)
def test_cli_bad_propagation_options_exit_2(model_dir, extra, message, capsys):
    args = ["properties", "--model", str(model_dir), "--element", "W", "--qoi", "a0", "--quiet"]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err
    assert err == f"potforge properties: error: {message}\n"


def test_cli_warnings_are_one_line_and_name_the_flags(model_dir, capsys):
    """Under the CLI auto's warning names --candidates and --uq resample (not n_candidates or
    method='resample') and is one ``potforge properties: warning:`` line, no source line."""
    args = [
        "properties",
        "--model",
        str(model_dir),
        "--element",
        "W",
        "--qoi",
        "gamma_surf_100",
        "--candidates",
        "2",
        "--quiet",
    ]
    args += [f"--set={k}={v}" for k, v in SETTINGS.items()]
    assert main(args) == 0
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines and all(line.startswith("potforge properties: warning: ") for line in lines), err
    note = next(line for line in lines if "auto propagation" in line)
    assert "more --candidates or --uq resample may widen them" in note
    assert "n_candidates" not in err and "method=" not in err
    assert (
        "Traceback" not in err
        and ".py:" not in err
        and "warn" not in err.replace("potforge properties: warning: ", "")
    )


def test_std_and_bounds_say_what_they_are_and_share_the_posterior(model, tmp_path):
    """``std`` is the RMS over the POPS members of the linearised deviation, ``lower``/``upper``
    the extremes over the same members — both said in words in the output, the JSON and the
    table (whose footnote gives how many std the bounds lie out)."""
    from potforge.properties import report
    from potforge.qoi.sensitivity import Sensitivity

    res = property_uncertainty(
        model, "W", ["a0", "Evac"], method="linear", progress=False, **SETTINGS
    )
    sens = Sensitivity(model, "W", **SETTINGS)
    post = model.posterior_
    n = post.arrays["members"].shape[0]
    for q in ("a0", "Evac"):
        grad = sens.gradient(q)[1]
        dev = (post.arrays["members"] / post.scale) @ grad  # the members' δθ · dQ/dθ
        r = res[q]
        assert r["std"] == pytest.approx(np.sqrt(np.mean(dev**2)), rel=1e-9)
        assert r["lower"] == pytest.approx(r["value"] + min(dev.min(), 0.0), rel=1e-12)
        assert r["upper"] == pytest.approx(r["value"] + max(dev.max(), 0.0), rel=1e-12)
        assert r["std_meaning"].startswith(f"RMS over the {n} POPS ensemble members")
        assert r["bounds_meaning"].startswith(f"min/max over the {n} POPS ensemble members")
    doc = report.merge(res)
    table = report.format_table(doc)
    assert f"¹ std: RMS over the {n} POPS ensemble members" in table
    assert f"² lower/upper: min/max over the {n} POPS ensemble members" in table
    far = max(
        max(r["upper"] - r["value"], r["value"] - r["lower"]) / r["std"] for r in res.values()
    )
    assert f"{far:.1f} std from the value" in table
    written = json.loads(report.write_json(tmp_path / "p.json", doc).read_text())
    assert list(written["a0"])[:8] == [
        "value",
        "unit",
        "std",
        "lower",
        "upper",
        "method",
        "std_meaning",
        "bounds_meaning",
    ]
    sampled = property_uncertainty(
        model, "W", ["a0"], method="resample", n_samples=2, progress=False, **SETTINGS
    )["a0"]
    assert sampled["std_meaning"].startswith(
        "standard deviation of the fully re-relaxed values at 2 random samples"
    )


def test_symmetry_reduced_hessian_and_reused_relaxations(model):
    """The Newton steps' position Hessian from phonopy's irreducible displacements equals the
    brute-force central differences over every coordinate; a single-QoI record made with
    ``reuse`` takes over the fitted run's relaxations (same objects) instead of relaxing."""
    from potforge.properties import run_suite
    from potforge.qoi.fast import fast_calculator
    from potforge.qoi.implicit import HESSIAN_STEP, RelaxationRecord, _position_hessian

    record = RelaxationRecord()
    run_suite(
        model.as_calculator(),
        "W",
        ["a0", "Evac", "gamma_surf_110"],
        progress=False,
        hook=record,
        **SETTINGS,
    )
    twin = fast_calculator(model)
    for rec in record.calls[1:]:  # the 15-atom vacancy and the (110) slab
        atoms = rec.relaxed.copy()
        atoms.calc = twin
        x0 = atoms.positions.copy()
        brute = np.empty((3 * len(atoms),) * 2)
        for k in range(brute.shape[0]):
            f = []
            for sign in (1.0, -1.0):
                atoms.positions = x0
                atoms.positions[divmod(k, 3)] += sign * HESSIAN_STEP
                f.append(atoms.get_forces().ravel())
            brute[:, k] = -(f[0] - f[1]) / (2 * HESSIAN_STEP)
        sym = _position_hessian(rec.relaxed, twin)
        assert np.abs(sym - brute).max() < 1e-6 * np.abs(brute).max(), len(atoms)
    again = RelaxationRecord(reuse=record)
    value = run_suite(fast_calculator(model), "W", ["Evac"], progress=False, hook=again, **SETTINGS)
    assert [id(c) for c in again.calls] == [id(record.calls[0]), id(record.calls[1])]
    assert value["Evac"]["value"] == pytest.approx(
        compute_qoi("Evac", model.as_calculator(), "W", **SETTINGS), rel=1e-9
    )
