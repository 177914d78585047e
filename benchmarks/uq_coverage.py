"""UQ coverage benchmark: do prediction bounds envelope held-out errors, how wide are they, and
what does a POPS fit cost next to a plain ridge fit?

Parts (each a function ``part_x(args) -> dict`` registered in ``PARTS``; run with ``--parts``):

* ``a`` — synthetic misspecified problem (N=10⁴ training rows, P=100 random Fourier features of a
  3-D input, a smooth target the features cannot represent, noise 1e-4); potforge's POPS
  (ensemble, hypercube), BLR, temperature-BLR and bootstrap beside ``popsregression`` 0.4.
* ``b`` — the Zuo Mo data (``../shared/data/mlearn/Mo``): fit linear SNAP 2J=6 (CV-chosen weights
  from the Zuo Mo benchmark) and the default model on ``training.json``, fit each posterior with
  ``LinearPotential.fit_posterior`` (POPS ensemble / hypercube, BLR, tempered BLR, bootstrap;
  all centred on the fitted ``coef_``), and measure on ``test.json``: fraction of energies (per
  structure) and force components inside the bounds, median bound half-width, and the ratio of
  the median half-width (upper − lower)/2 to the median |actual error| (the target metric: a
  symmetric bound holds an error only if its half-width exceeds it; full widths are 2×).
* ``c`` — teacher–student W properties: SNAP 2J=4 / 2J=6 (+ZBL) and pair+embedding (+ZBL)
  students fitted to the 33 ``potforge demo`` structures labelled by the shipped W SNAP (the
  teacher); per QoI (a0, C11, C12, C44, Evac, four surface energies) exact dQ/dθ, then every
  posterior's exact extremes of the linearised QoI: is the teacher's value inside, and how wide
  are the bounds next to the actual error?

* ``d`` — property propagation methods side by side (:func:`potforge.qoi.propagation
  .property_uncertainty`): ``linear`` (exact dQ/dθ, exact extremes), ``implicit`` (per sample,
  Newton-predicted structures, no relaxation) and ``resample`` (per sample, full relaxations)
  for the SNAP 2J=6 student of part c with its POPS ensemble; the same K draws for the two
  sampling methods; per QoI the deviation from brute force of each method's per-sample values,
  the teacher inside each method's bounds, and the wall times.

Every row of a table is produced by :func:`evaluate` (coverage = fraction of held-out labels
inside ``[lower, upper]``; widths are medians over the held-out rows, divided by the RMSE of the
mean prediction). Results go to ``benchmarks/results/uq_coverage.json``.

Usage: ``python benchmarks/uq_coverage.py [--parts ab] [--n 10000] [--p 100] [--threads 1]
[--quick]``
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from potforge.uq import (
    BayesianLinearRegressor,
    POPSRegressor,
    ResampledEnsembleRegressor,
    TemperedBayesRegressor,
    ridge_fit,
)
from potforge.uq.synthetic import misspecified_problem

RESULTS = Path(__file__).resolve().parent / "results" / "uq_coverage.json"
# METHODS.md §4, measured with the reference code on its own N=10⁴, P=100 problem
REFERENCE = {
    "BLR ±2σ (param-only)": 0.20,
    "popsregression default": 0.83,
    "POPS ensemble (ours)": 0.96,
    "popsregression ensemble": 0.96,
}


def evaluate(name: str, predict: Callable, X: np.ndarray, y: np.ndarray) -> dict:
    """Coverage and width of ``predict(X) -> (mean, lower, upper)`` on held-out ``(X, y)``."""
    mean, lo, hi = predict(X)
    err = y - mean
    rmse = float(np.sqrt(np.mean(err**2)))
    return {
        "method": name,
        "coverage": float(np.mean((y >= lo) & (y <= hi))),
        "rmse": rmse,
        "median_halfwidth_over_rmse": float(np.median(0.5 * (hi - lo)) / rmse),
        "median_width_over_rmse": float(np.median(hi - lo) / rmse),
        "reference_coverage": REFERENCE.get(name),
    }


def median_time(fit: Callable, repeats: int) -> float:
    """Median wall time (s) of ``fit()`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fit()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _ours(model) -> Callable:
    return lambda X: model.predict(X, return_bounds=True)


def _reference_pops(model) -> Callable:
    def predict(X):
        mean, upper, lower = model.predict(X, return_bounds=True)  # popsregression: max first
        return mean, lower, upper

    return predict


def synthetic_methods(alpha: float, seed: int) -> dict[str, Callable]:
    """Fit factories ``f(X, y) -> predict`` for every method of part (a)."""
    from popsregression import POPSRegression

    def pops(**kw):
        return lambda X, y: _ours(POPSRegressor(alpha=alpha, **kw).fit(X, y))

    return {
        "POPS ensemble (ours)": pops(posterior="ensemble"),
        "POPS hypercube (ours, exact box)": pops(posterior="hypercube"),
        "POPS hypercube (ours, 90% var)": pops(posterior="hypercube", variance_fraction=0.9),
        "popsregression default": lambda X, y: _reference_pops(POPSRegression().fit(X, y)),
        "popsregression ensemble": lambda X, y: _reference_pops(
            POPSRegression(posterior="ensemble", leverage_percentile=0.0).fit(X, y)
        ),
        "BLR ±2σ (param-only)": lambda X, y: _ours(BayesianLinearRegressor().fit(X, y)),
        "temperature-BLR (Frederiksen T=2C0/P)": lambda X, y: _ours(
            TemperedBayesRegressor().fit(X, y)
        ),
        "bootstrap K=20 (min/max)": lambda X, y: _ours(
            ResampledEnsembleRegressor(n_members=20, alpha=alpha, random_state=seed).fit(X, y)
        ),
    }


def part_a(args: argparse.Namespace) -> dict:
    """Synthetic misspecified problem: coverage table and fit times relative to ridge."""
    X, y, Xh, yh = misspecified_problem(
        args.n, args.p, n_test=args.n_test + args.n_check, noise=1e-4, random_state=args.seed
    )
    Xc, yc, Xt, yt = Xh[: args.n_check], yh[: args.n_check], Xh[args.n_check :], yh[args.n_check :]
    alpha = BayesianLinearRegressor().fit(X, y).alpha_  # evidence λ/β, as popsregression uses
    rows = [
        evaluate(name, make(X, y), Xt, yt)
        for name, make in synthetic_methods(alpha, args.seed).items()
    ]
    cal = TemperedBayesRegressor(temperature="calibrated", coverage=0.95).fit(X, y)
    rows.append(
        evaluate(
            "temperature-BLR (T calibrated on check set)", _ours(cal.calibrate(Xc, yc)), Xt, yt
        )
    )
    return {
        "settings": {
            "n_train": args.n,
            "n_features": args.p,
            "n_test": args.n_test,
            "n_check": args.n_check,
            "noise": 1e-4,
            "ridge_alpha": alpha,
            "seed": args.seed,
        },
        "coverage": rows,
        "timing": synthetic_timing(X, y, alpha, args.repeats),
    }


def synthetic_timing(X: np.ndarray, y: np.ndarray, alpha: float, repeats: int) -> dict:
    """Median fit times (s) and their ratio to potforge's ridge (normal equations + Cholesky)."""
    from popsregression import POPSRegression
    from sklearn.linear_model import Ridge

    fits = {
        "ridge (potforge, normal eq.)": lambda: ridge_fit(X, y, alpha=alpha),
        "ridge (sklearn Ridge)": lambda: Ridge(alpha=alpha, fit_intercept=False).fit(X, y),
        "POPS ensemble (ours)": lambda: POPSRegressor(alpha=alpha).fit(X, y),
        "POPS ensemble K=500 (ours)": lambda: POPSRegressor(
            alpha=alpha, n_samples=500, random_state=0
        ).fit(X, y),
        "POPS hypercube (ours)": lambda: POPSRegressor(alpha=alpha, posterior="hypercube").fit(
            X, y
        ),
        "POPS ensemble (ours, streamed 1000-row chunks)": lambda: POPSRegressor(
            alpha=alpha, chunk_size=1000
        ).fit(X, y),
        "popsregression default": lambda: POPSRegression().fit(X, y),
        "BLR (evidence)": lambda: BayesianLinearRegressor().fit(X, y),
        "bootstrap K=20": lambda: ResampledEnsembleRegressor(
            n_members=20, alpha=alpha, random_state=0
        ).fit(X, y),
    }
    for fit in fits.values():  # warm-up
        fit()
    seconds = {name: median_time(fit, repeats) for name, fit in fits.items()}
    base = seconds["ridge (potforge, normal eq.)"]
    return {name: {"seconds": s, "over_ridge": s / base} for name, s in seconds.items()}


MO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mlearn" / "Mo"
# linear SNAP 2J=6 weights chosen by 5-fold CV on the training set (BENCHMARKS.md, Zuo Mo)
LINEAR_SNAP = (
    "linear SNAP 2J=6 (CV weights)",
    "snap(twojmax=6,rcutfac=4.6)+const",
    {
        "sigma_energy": 3e-4,
        "sigma_force": 0.2,
        "sigma_stress": 0.005,
        "group_weights": {"Elastic": 3.0, "Surface": 0.3},
    },
)
PART_B_METHODS = {
    "POPS ensemble": ("pops", {"posterior": "ensemble"}),
    "POPS ensemble, leverage ≥ p0.5": (
        "pops",
        {"posterior": "ensemble", "leverage_percentile": 0.5},
    ),
    "POPS ensemble, leverage ≥ p1": ("pops", {"posterior": "ensemble", "leverage_percentile": 1.0}),
    "POPS ensemble, leverage ≥ p10": (
        "pops",
        {"posterior": "ensemble", "leverage_percentile": 10.0},
    ),
    "POPS ensemble, leverage ≥ p50": (
        "pops",
        {"posterior": "ensemble", "leverage_percentile": 50.0},
    ),
    "POPS ensemble, residual ≤ p90": (
        "pops",
        {"posterior": "ensemble", "residual_percentile": 90.0},
    ),
    "POPS hypercube": ("pops", {"posterior": "hypercube"}),
    "POPS hypercube, clip 2.5 %": ("pops", {"posterior": "hypercube", "percentile_clipping": 2.5}),
    "POPS hypercube, clip 5 %": ("pops", {"posterior": "hypercube", "percentile_clipping": 5.0}),
    "BLR ±2σ": ("bayes", {}),
    "tempered BLR (Frederiksen)": ("bayes", {"temperature": "frederiksen"}),
    "bootstrap K=20 (min/max)": ("bootstrap", {"n_members": 20, "random_state": 0}),
}


def part_b(args: argparse.Namespace) -> dict:
    """Zuo Mo: coverage of held-out energies and force components by each posterior's bounds."""
    from potforge.data import read_structures
    from potforge.model import DEFAULT_SPEC, LinearPotential
    from potforge.model.metrics import residuals, uncertainty_metrics

    train = read_structures(args.mo / "training.json")
    test = read_structures(args.mo / "test.json", stress_order="mlearn-mo")  # only xy sheared
    models = [LINEAR_SNAP]
    if not args.quick:
        models.append(("default model (DEFAULT_SPEC)", DEFAULT_SPEC, {}))
    out = {
        "settings": {
            "data": str(args.mo),
            "n_train": len(train),
            "n_test": len(test),
            "n_test_atoms": int(sum(len(a) for a in test)),
        },
        "models": [],
    }
    for label, spec, kw in models:
        model = LinearPotential(spec, **kw).setup(train)
        t0 = time.perf_counter()
        d_train = model.structure_designs(train)
        t_desc = time.perf_counter() - t0
        d_test = model.structure_designs(test)
        model.fit(train, designs=d_train)
        # the ridge fit of a potential: descriptors of the training set + the weighted solve
        ridge_fit_seconds = t_desc + model.fit_info_["solve_seconds"]
        err = residuals(test, model.predict_designs(d_test))
        med_e = float(np.median(np.abs(err["energy"])))
        med_f = float(np.median(np.abs(err["forces"])))
        # the narrowest constant-width band holding 90 % of the test errors (uses the test labels:
        # a floor for any bound of constant width, not a method)
        oracle = {
            k: float(np.quantile(np.abs(err[k]), 0.9) / np.median(np.abs(err[k])))
            for k in ("energy", "forces")
        }
        rows = []
        for name, (method, opts) in PART_B_METHODS.items():
            t0 = time.perf_counter()
            model.fit_posterior(train, method, designs=d_train, **opts)
            t_post = time.perf_counter() - t0
            t0 = time.perf_counter()
            preds = model.predict_designs(d_test, return_bounds=True)
            t_pred = time.perf_counter() - t0
            m = uncertainty_metrics(test, preds)
            e_half = m["energy_bound_median_meV_per_atom"] / 1000.0
            f_half = m["force_bound_median_eV_per_A"]
            rows.append(
                {
                    "method": name,
                    "energy_coverage": m["energy_coverage"],
                    "force_coverage": m["force_coverage"],
                    "stress_coverage": m["stress_coverage"],
                    "energy_bound_median_meV_per_atom": m["energy_bound_median_meV_per_atom"],
                    "force_bound_median_eV_per_A": f_half,
                    "energy_width_over_error": 2 * e_half / med_e,
                    "force_width_over_error": 2 * f_half / med_f,
                    "energy_halfwidth_over_error": e_half / med_e,
                    "force_halfwidth_over_error": f_half / med_f,
                    "posterior_seconds": t_post,
                    "test_bounds_seconds": t_pred,
                    "fit_over_ridge_fit": (ridge_fit_seconds + t_post) / ridge_fit_seconds,
                    "info": {
                        k: v
                        for k, v in model.posterior_.info.items()
                        if isinstance(v, int | float | str)
                    },
                }
            )
        out["models"].append(
            {
                "model": label,
                "spec": spec,
                "n_params": model.n_params,
                "weights": {
                    k: v
                    for k, v in model.get_params().items()
                    if k.startswith("sigma") or k == "group_weights"
                },
                "descriptor_seconds_train": t_desc,
                "ridge_fit_seconds": ridge_fit_seconds,
                "fit_solve_seconds": model.fit_info_["solve_seconds"],
                "test_energy_median_abs_error_meV_per_atom": 1000 * med_e,
                "test_force_median_abs_error_eV_per_A": med_f,
                "test_energy_mae_meV_per_atom": 1000 * float(np.mean(np.abs(err["energy"]))),
                "test_force_mae_eV_per_A": float(np.mean(np.abs(err["forces"]))),
                "oracle_constant_band_90_halfwidth_over_error": oracle,
                "methods": rows,
            }
        )
    return out


def print_part_b(result: dict) -> None:
    """Print the coverage table of part (b) and the targets."""
    s = result["settings"]
    print(
        f"\n(b) Zuo Mo: train {s['n_train']} structures, test {s['n_test']} structures / "
        f"{s['n_test_atoms']} atoms ({3 * s['n_test_atoms']} force components)"
    )
    for m in result["models"]:
        print(
            f"\n{m['model']}: {m['n_params']} parameters; ridge fit (training descriptors + "
            f"solve) {m['ridge_fit_seconds']:.2f} s; test median |error| "
            f"{m['test_energy_median_abs_error_meV_per_atom']:.2f} meV/atom, "
            f"{m['test_force_median_abs_error_eV_per_A']:.3f} eV/Å (MAE "
            f"{m['test_energy_mae_meV_per_atom']:.2f}, {m['test_force_mae_eV_per_A']:.3f})"
        )
        print(
            f"{'method':30s} {'E cov':>6s} {'F cov':>6s} {'E ½w meV/at':>12s} "
            f"{'F ½w eV/Å':>10s} {'E ½w/|err|':>11s} {'F ½w/|err|':>11s} {'post. s':>7s} "
            f"{'bounds s':>8s} {'fit/ridge':>9s}"
        )
        for r in m["methods"]:
            print(
                f"{r['method']:30s} {r['energy_coverage']:6.3f} {r['force_coverage']:6.3f} "
                f"{r['energy_bound_median_meV_per_atom']:12.3g} "
                f"{r['force_bound_median_eV_per_A']:10.3g} "
                f"{r['energy_halfwidth_over_error']:11.2f} "
                f"{r['force_halfwidth_over_error']:11.2f} {r['posterior_seconds']:7.2f} "
                f"{r['test_bounds_seconds']:8.2f} {r['fit_over_ridge_fit']:9.2f}"
            )
        o = m["oracle_constant_band_90_halfwidth_over_error"]
        print(
            f"{'(oracle constant band, 90 %)':30s} {0.9:6.3f} {0.9:6.3f} {'':>12s} {'':>10s} "
            f"{o['energy']:11.2f} {o['forces']:11.2f}"
        )
        for r in m["methods"]:
            if not r["method"].startswith("POPS"):
                continue
            for what in ("energy", "force"):
                cov, ratio = r[f"{what}_coverage"], r[f"{what}_halfwidth_over_error"]
                ok = cov >= 0.9 and ratio <= 4.0
                print(
                    f"  {'PASS' if ok else 'FAIL'}  {r['method']} {what}: coverage ≥ 0.90 "
                    f"({cov:.3f}), median half-width ≤ 4× median |error| ({ratio:.2f}×; "
                    f"full width {2 * ratio:.2f}×)"
                )
            cost = r["fit_over_ridge_fit"]
            print(
                f"  {'PASS' if cost <= 1.5 else 'FAIL'}  {r['method']}: fit ≤ 1.5× the ridge "
                f"fit ({cost:.2f}×)"
            )


TEACHER = "lammps:W_2940_2017_2.snap"
PART_C_QOIS = [
    "a0",
    "C11",
    "C12",
    "C44",
    "Evac",
    "gamma_surf_100",
    "gamma_surf_110",
    "gamma_surf_111",
    "gamma_surf_211",
]
PART_C_STUDENTS = {
    "SNAP 2J=4 + ZBL": "snap(twojmax=4,rcutfac=4.7)+zbl(inner=1.0,outer=1.6)+const",
    "SNAP 2J=6 + ZBL": "snap(twojmax=6,rcutfac=4.7)+zbl(inner=1.0,outer=1.6)+const",
    "pair + embedding + ZBL": (
        "pair(n_basis=10,r_min=2.0,rcut=5.5)+embed(n_basis=6,rcut=5.5)"
        "+zbl(inner=1.0,outer=1.6)+const"
    ),
}


def part_c(args: argparse.Namespace) -> dict:
    """Teacher–student W properties: is the teacher's value inside each posterior's bounds?

    Students are fitted to the 33 W structures of ``potforge demo`` labelled by the shipped W
    SNAP (the teacher); every QoI gets its exact dQ/dθ once per student, then each posterior's
    exact extremes of ``dQ/dθ · θ`` (linear propagation, :mod:`potforge.qoi.propagation`); the
    posteriors of :data:`AUTO_METHODS` also with the default ``"auto"`` propagation (nonlinear
    QoIs evaluated at their extreme members, re-relaxed).  ``--exhaustive``: every POPS ensemble
    member evaluated implicitly for each QoI that auto leaves outside.
    """
    from potforge.data.builders import w_structures
    from potforge.model import LinearPotential
    from potforge.oracles import make_oracle
    from potforge.oracles.labelling import label_in_process
    from potforge.properties import PropertyError, run_suite
    from potforge.qoi.sensitivity import Sensitivity

    teacher = make_oracle(TEACHER).build()
    data = label_in_process(w_structures(), teacher)
    t0 = time.perf_counter()
    ref = run_suite(teacher, "W", PART_C_QOIS, progress=False)
    out = {
        "settings": {
            "teacher": TEACHER,
            "n_train": len(data),
            "qois": PART_C_QOIS,
            "teacher_suite_seconds": time.perf_counter() - t0,
        },
        "reference": {q: ref[q]["value"] for q in PART_C_QOIS},
        "students": [],
    }
    for student, spec in PART_C_STUDENTS.items():
        model = LinearPotential(spec).fit(data)
        designs = model.structure_designs(data, progress=False)
        t0 = time.perf_counter()
        sens, grads, failed = Sensitivity(model, "W", steps=2000), {}, {}
        for q in PART_C_QOIS:
            try:
                grads[q] = sens.gradient(q)
            except PropertyError as exc:  # reported, left out of the coverage
                failed[q] = str(exc)
        t_sens = time.perf_counter() - t0
        qois = list(grads)
        G = np.array([grads[q][1] for q in qois])
        values = np.array([grads[q][0] for q in qois])
        truth = np.array([out["reference"][q] for q in qois])
        err = np.abs(values - truth)
        rows = []
        for name, (method, opts) in PART_B_METHODS.items():
            t0 = time.perf_counter()
            model.fit_posterior(data, method, designs=designs, **opts)
            t_post = time.perf_counter() - t0
            _, lo, hi = model.functional_bounds(G)
            lower, upper = values + lo - G @ model.coef_, values + hi - G @ model.coef_
            rows.append(_coverage_row(name, qois, values, truth, lower, upper, t_post))
        # the default propagation ("auto": per QoI linear, implicit or re-relaxed extremes)
        for name in AUTO_METHODS:
            method, opts = PART_B_METHODS[name]
            model.fit_posterior(data, method, designs=designs, **opts)
            rows.append(_auto_row(model, name, qois, values, truth))
            if name == "POPS ensemble" and args.exhaustive:
                rows[-1]["exhaustive"] = _exhaustive(model, rows[-1])
        out["students"].append(
            {
                "student": student,
                "spec": spec,
                "n_params": model.n_params,
                "suite_and_sensitivities_seconds": t_sens,
                "relative_errors": {q: float(err[k] / abs(truth[k])) for k, q in enumerate(qois)},
                "failed": failed,
                "methods": rows,
            }
        )
    return out


AUTO_METHODS = (
    "POPS ensemble",
    "POPS hypercube",
    "BLR ±2σ",
    "tempered BLR (Frederiksen)",
    "bootstrap K=20 (min/max)",
)
"""Part (c) posteriors also propagated with ``"auto"`` (linear rows are the cheap screen)."""


def _auto_row(model, name, qois, values, truth) -> dict:
    """Part (c) row of ``name``'s posterior under ``"auto"`` propagation; a QoI that cannot be
    evaluated at any of its candidate members (every one collapses) is reported and left out."""
    from potforge.errors import ModelError
    from potforge.qoi.propagation import property_uncertainty

    t0 = time.perf_counter()
    try:
        res = property_uncertainty(model, "W", qois, progress=False, steps=2000)
    except ModelError:  # find which QoI(s): each alone
        res = {}
        for q in qois:
            try:
                res.update(property_uncertainty(model, "W", [q], progress=False, steps=2000))
            except ModelError as exc:
                res[q] = {"error": str(exc)}
    for q in qois:  # the structure exists at none of its candidates: left out, as unchecked
        if res[q].get("check", {}).get("flag") == "no_relaxable_candidate":
            res[q] = {
                "error": f"{q}: the structure exists at none of its "
                f"{res[q]['check']['unrelaxable_candidates']} candidate members"
            }
    ok = [k for k, q in enumerate(qois) if "error" not in res[q]]
    lower, upper = (np.array([res[qois[k]][b] for k in ok]) for b in ("lower", "upper"))
    row = _coverage_row(
        f"{name}, auto propagation",
        [qois[k] for k in ok],
        values[ok],
        truth[ok],
        lower,
        upper,
        time.perf_counter() - t0,
    )
    row["chosen"] = {q: res[q]["method"] for q in row["qois"]}
    row["check"] = {q: res[q]["check"] for q in row["qois"]}
    row["failed"] = {q: res[q]["error"] for q in qois if "error" in res[q]}
    return row


def _exhaustive(model, row) -> dict:
    """Every POPS ensemble member evaluated implicitly for each nonlinear QoI whose teacher
    value ``"auto"`` left outside: is the miss the candidate search's or the posterior's?"""
    from potforge.qoi.propagation import _extreme_values
    from potforge.qoi.sensitivity import Sensitivity

    post = model.posterior_
    thetas = model.coef_ + post.arrays["members"] / post.scale
    missed = [q for q, r in row["qois"].items() if not r["inside"] and row["chosen"][q] != "linear"]
    if not missed:
        return {}
    t0 = time.perf_counter()  # one pass: every missed QoI at every member
    vals, _ = _extreme_values(
        model,
        "W",
        missed,
        np.broadcast_to(thetas, (len(missed), *thetas.shape)),
        Sensitivity(model, "W", steps=2000).calc,
        1,
        False,
        {"steps": 2000},
    )
    seconds = (time.perf_counter() - t0) / len(missed)
    return {
        q: {
            "members": len(thetas),
            "min": float(v.min()),
            "max": float(v.max()),
            "seconds": seconds,
        }
        for q, v in zip(missed, vals, strict=True)
    }


def _coverage_row(name, qois, values, truth, lower, upper, seconds) -> dict:
    """Part (c) row of one posterior/propagation: which teacher values lie inside, widths."""
    inside = (truth >= lower) & (truth <= upper)
    ratio = (upper - lower) / np.maximum(np.abs(values - truth), 1e-12 * np.abs(truth))
    return {
        "method": name,
        "coverage": float(inside.mean()),
        "median_width_over_error": float(np.median(ratio)),
        "median_halfwidth_over_error": float(np.median(ratio)) / 2,
        "posterior_seconds": seconds,
        "qois": {
            q: {
                "value": float(values[k]),
                "lower": float(lower[k]),
                "upper": float(upper[k]),
                "inside": bool(inside[k]),
            }
            for k, q in enumerate(qois)
        },
    }


def print_part_c(result: dict) -> None:
    """Print, per student and posterior, which teacher values lie inside the bounds."""
    s = result["settings"]
    print(
        f"\n(c) teacher–student W properties: teacher {s['teacher']}, {s['n_train']} training "
        f"structures; ✓ = teacher value inside the bounds"
    )
    head = "".join(f"{q[:9]:>10s}" for q in s["qois"])
    w = 1 + max(len(r["method"]) for st in result["students"] for r in st["methods"])
    for st in result["students"]:
        print(
            f"\n{st['student']} ({st['n_params']} params; suite + dQ/dθ "
            f"{st['suite_and_sensitivities_seconds']:.1f} s)"
        )
        errs = st["relative_errors"]
        print(
            f"{'relative error':{w}s}"
            + "".join(f"{errs[q]:>10.3f}" if q in errs else f"{'failed':>10s}" for q in s["qois"])
        )
        print(f"{'method':{w}s}{head}{'cov':>7s}{'½w/|err|':>9s}")
        for r in st["methods"]:
            marks = "".join(
                f"{'-' if q not in r['qois'] else '✓' if r['qois'][q]['inside'] else '✗':>10s}"
                for q in s["qois"]
            )
            print(
                f"{r['method']:{w}s}{marks}{r['coverage']:7.2f}"
                f"{r['median_halfwidth_over_error']:9.2f}"
            )
        pops_auto = next(
            r for r in st["methods"] if r["method"] == "POPS ensemble, auto propagation"
        )
        print(
            f"{'  POPS auto chose':{w}s}"
            + "".join(f"{pops_auto['chosen'].get(q, '-')[:9]:>10s}" for q in s["qois"])
        )
        chk = pops_auto["check"]
        print(
            f"{'  unrelaxable candidates':{w}s}"
            + "".join(
                f"{chk[q]['unrelaxable_candidates'] if q in chk else '-':>10}" for q in s["qois"]
            )
        )
        for r in st["methods"]:
            for q, msg in r.get("failed", {}).items():
                print(f"  {r['method']}: {q} left out: {msg}")
        for q, e in pops_auto.get("exhaustive", {}).items():
            print(
                f"  all {e['members']} POPS members, implicit {q}: [{e['min']:.4f}, "
                f"{e['max']:.4f}] vs teacher {result['reference'][q]:.4f} ({e['seconds']:.0f} s)"
            )
        for q, msg in st["failed"].items():
            print(f"  {q} not computed (left out of the coverage): {msg}")
        for r in st["methods"]:
            if r["method"].startswith("POPS"):
                ratio = r["median_halfwidth_over_error"]
                ok = r["coverage"] >= 0.9 and ratio <= 4.0
                print(
                    f"  {'PASS' if ok else 'FAIL'}  {r['method']}: coverage ≥ 0.90 "
                    f"({r['coverage']:.2f}), median half-width ≤ 4× |error| "
                    f"({ratio:.2f}×; full width {2 * ratio:.2f}×)"
                )


PART_D_STUDENT = "SNAP 2J=6 + ZBL"


def part_d(args: argparse.Namespace) -> dict:
    """Linear vs implicit vs resampled propagation of the POPS ensemble to W properties."""
    from potforge.data.builders import w_structures
    from potforge.model import LinearPotential
    from potforge.oracles import make_oracle
    from potforge.oracles.labelling import label_in_process
    from potforge.properties import run_suite
    from potforge.qoi.propagation import property_uncertainty
    from potforge.qoi.sensitivity import Sensitivity

    teacher = make_oracle(TEACHER).build()
    data = label_in_process(w_structures(), teacher)
    ref = run_suite(teacher, "W", PART_C_QOIS, progress=False)
    spec = PART_C_STUDENTS[PART_D_STUDENT]
    model = LinearPotential(spec).fit(data).fit_posterior(data, "pops", progress=False)
    k, settings = args.samples, {"steps": 2000}
    out = {
        "settings": {
            "student": PART_D_STUDENT,
            "spec": spec,
            "n_samples": k,
            "qois": PART_C_QOIS,
            "posterior": "POPS ensemble",
        },
        "methods": {},
    }
    # auto with tol=0 re-relaxes every QoI at the two of its candidate members with the extreme
    # implicit values: the reference for the bounds themselves; "auto k=1" is auto with the
    # linearised extremes as the only candidates
    runs = {m: {"method": m} for m in ("linear", "implicit", "resample", "auto")}
    runs["auto k=1"] = {"method": "auto", "n_candidates": 1}
    runs["relaxed extremes"] = {"method": "auto", "tol": 0.0}
    for name, options in runs.items():
        t0 = time.perf_counter()
        res = property_uncertainty(
            model, "W", PART_C_QOIS, n_samples=k, progress=False, **options, **settings
        )
        out["methods"][name] = {"seconds": time.perf_counter() - t0, "qois": res}
    # the linearisation evaluated at the same draws, for the per-sample comparison
    sens = Sensitivity(model, "W", **settings)
    draws = model.sample_coef(k, seed=0) - model.coef_
    brute = out["methods"]["resample"]["qois"]
    rows = {}
    for q in PART_C_QOIS:
        value, grad = sens.gradient(q)
        b = np.array(brute[q]["samples"], dtype=float)  # NaN: the QoI collapsed at that draw
        spread = float(np.nanmax(np.abs(b - value)))
        lin = value + draws @ grad
        imp = np.array(out["methods"]["implicit"]["qois"][q]["samples"], dtype=float)
        exact = out["methods"]["relaxed extremes"]["qois"][q]
        half = 0.5 * (exact["upper"] - exact["lower"])
        rows[q] = {
            "auto_method": out["methods"]["auto"]["qois"][q]["method"],
            "auto_check": out["methods"]["auto"]["qois"][q]["check"],
            "bound_dev": {
                m: max(
                    abs(r["qois"][q]["lower"] - exact["lower"]),
                    abs(r["qois"][q]["upper"] - exact["upper"]),
                )
                / half
                for m, r in out["methods"].items()
                if m in ("linear", "implicit", "auto", "auto k=1")
            },
            "teacher": ref[q]["value"],
            "value": value,
            "resample_spread": spread,
            "linear_dev": float(np.nanmax(np.abs(lin - b)) / spread),
            "implicit_dev": float(np.nanmax(np.abs(imp - b)) / spread),
            "inside": {
                m: bool(r["qois"][q]["lower"] <= ref[q]["value"] <= r["qois"][q]["upper"])
                for m, r in out["methods"].items()
            },
        }
    out["qois"] = rows
    out["max_newton_step_A"] = out["methods"]["implicit"]["qois"][PART_C_QOIS[0]]["max_newton_step"]
    return out


def print_part_d(result: dict) -> None:
    """Print the per-sample deviation of linear and implicit from brute force, and timings."""
    s = result["settings"]
    print(
        f"\n(d) property propagation, {s['student']} student, {s['posterior']}, "
        f"K={s['n_samples']} draws (same draws for implicit and resample)"
    )
    print(
        "max over draws of |method − resample| / max |resample − fitted value|; "
        "✓ = teacher inside that method's bounds"
    )
    print(
        "bounds: max |bound − bound from re-relaxed extreme members| / its half-width "
        "(extreme members: of the candidates, those with extreme implicit values)"
    )
    print(
        f"{'QoI':16s}{'spread':>10s}{'linear':>9s}{'implicit':>10s}   lin imp res aut a/1"
        f"{'bounds: lin':>13s}{'imp':>7s}{'auto':>7s}{'a/1':>7s}  auto chose"
    )
    for q, r in result["qois"].items():
        marks = " ".join(
            f"{'✓' if r['inside'][m] else '✗':>3s}"
            for m in ("linear", "implicit", "resample", "auto", "auto k=1")
        )
        dev = r["bound_dev"]
        print(
            f"{q:16s}{r['resample_spread']:10.3g}{r['linear_dev']:9.3f}"
            f"{r['implicit_dev']:10.3f}   {marks}{dev['linear']:13.3f}{dev['implicit']:7.3f}"
            f"{dev['auto']:7.3f}{dev['auto k=1']:7.3f}  {r['auto_method']}"
        )
    t = {m: r["seconds"] for m, r in result["methods"].items()}
    print(
        "seconds: "
        + ", ".join(f"{m} {v:.1f}" for m, v in t.items())
        + f"; implicit/resample {t['implicit'] / t['resample']:.2f}; largest Newton step "
        f"{result['max_newton_step_A']:.3g} Å"
    )


def print_part_a(result: dict) -> None:
    """Print the coverage and timing tables of part (a)."""
    print(f"\n(a) synthetic misspecified problem {result['settings']}")
    print(f"{'method':45s} {'coverage':>8s} {'ref':>5s} {'½width/RMSE':>12s} {'width/RMSE':>11s}")
    for r in result["coverage"]:
        ref = "" if r["reference_coverage"] is None else f"{r['reference_coverage']:.2f}"
        print(
            f"{r['method']:45s} {r['coverage']:8.3f} {ref:>5s} "
            f"{r['median_halfwidth_over_rmse']:12.2f} {r['median_width_over_rmse']:11.2f}"
        )
    print(f"RMSE of the mean prediction: {result['coverage'][0]['rmse']:.4g}")
    print(f"\n{'fit':48s} {'seconds':>9s} {'× ridge':>8s}")
    for name, t in result["timing"].items():
        print(f"{name:48s} {t['seconds']:9.4f} {t['over_ridge']:8.2f}")


PARTS: dict[str, Callable[[argparse.Namespace], dict]] = {
    "a": part_a,
    "b": part_b,
    "c": part_c,
    "d": part_d,
}
PRINTERS: dict[str, Callable[[dict], None]] = {
    "a": print_part_a,
    "b": print_part_b,
    "c": print_part_c,
    "d": print_part_d,
}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="a", help="parts to run, e.g. 'a' or 'abc'")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--p", type=int, default=100)
    parser.add_argument("--n-test", type=int, default=10_000)
    parser.add_argument("--n-check", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (1: stable timings)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--mo", type=Path, default=MO, help="folder with the Zuo Mo json files")
    parser.add_argument("--quick", action="store_true", help="part b: linear SNAP only")
    parser.add_argument("--samples", type=int, default=32, help="part d: posterior draws")
    parser.add_argument(
        "--exhaustive",
        action="store_true",
        help="part c: every POPS member implicitly for each QoI auto misses",
    )
    args = parser.parse_args(argv)
    out = {"date": date.today().isoformat(), "machine": machine(args.threads)}
    with threadpool_limits(args.threads):
        for part in args.parts:
            out[part] = PARTS[part](args)
            PRINTERS[part](out[part])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    args.out.write_text(json.dumps({**previous, **out}, indent=1))
    print(f"\nwrote {args.out}")
    return out


def machine(threads: int) -> dict:
    """Where the numbers were taken."""
    import os

    import popsregression
    import sklearn

    return {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "blas_threads": threads,
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "popsregression": popsregression.__version__,
    }


if __name__ == "__main__":
    main()
