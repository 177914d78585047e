"""Model design benchmark (issue 19 "Done when"): the design search and the adaptive default on
maml Nb and mlearn Mo, beside the published SNAP / qSNAP of the same data.

For each case:

1. :func:`potforge.modeldesign.search.design` on the training files only (``--minutes`` of
   search, grouped block CV, the training FIM), with ``max_params`` from the target and the
   score's scales set a priori to the target errors (Nb: 6 meV/atom, 0.15 eV/Å; Mo: GAP's
   2.24 meV/atom, 0.09 eV/Å).  The model the search chose is fitted on all training data, then
   its learning curve (block-CV errors against the fraction of training structures, training
   data only) is measured; only then is the test file read and the chosen model evaluated on
   it, as ``potforge design --test`` does.  The Pareto front is printed with its CV errors, for
   information: nothing is picked from it by test error.
2. :func:`potforge.modeldesign.adaptive.adaptive_default` (``potforge fit --model adaptive``;
   ``potforge fit`` without ``--model`` on Nb) on the same training files, fitted and evaluated
   on the test file; on Mo also the hand-tuned default that ``potforge fit`` without ``--model``
   uses there (:data:`potforge.options.DEFAULT_SPEC`, default σ's).
3. The published models of the same data, evaluated in the same run: the quaternary SNAP on
   ``Nb_Test`` (``maml_nb.py``'s helpers; energy RMSE/MAE with its constant offset removed), the
   Mo SNAP / qSNAP on ``test.json`` (``zuo_mo.py``'s ``evaluate_published``).

Targets (issue 19): Nb ≤ 75 parameters with force RMSE ≤ 0.15 eV/Å and energy RMSE ≤ 6 meV/atom
(the chosen model's raw energy RMSE; no offset is removed from a potforge model); Mo ≤ 500
parameters at or below GAP's test MAE (2.24 meV/atom, 0.09 eV/Å).
Writes ``benchmarks/results/design.json``.

Usage: ``python benchmarks/design.py [--case nb|mo|all] [--minutes 18] [--adapt-minutes 3]``
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import maml_nb  # noqa: E402
import zuo_mo  # noqa: E402

ROOT = HERE.parent
OUT = ROOT / "benchmarks" / "results" / "design.json"

NB_TARGET = {"max_params": 75, "force_rmse_eV_per_A": 0.15, "energy_rmse_meV_per_atom": 6.0}
MO_TARGET = {
    "max_params": 500,
    "energy_mae_meV_per_atom": zuo_mo.GAP_MAE[0],
    "force_mae_eV_per_A": zuo_mo.GAP_MAE[1],
}
LITERATURE_NB = maml_nb.LITERATURE
FRACTIONS = (0.25, 0.5, 0.75, 1.0)


def log(msg: str = "") -> None:
    print(msg, flush=True)


def read_case(case: str):
    """(training structures, a function that reads the test structures): the test file is
    read only when that function is called."""
    from potforge.data.readers import read_many, read_structures

    if case == "nb":
        d = maml_nb.DATA
        train = read_many([d / f for f in maml_nb.TRAIN_FILES], stress_order="vasp")
        return train, lambda: read_structures(d / maml_nb.TEST_FILE, stress_order="vasp")
    d = zuo_mo.DATA
    train = read_structures(d / "training.json")
    return train, lambda: read_structures(d / "test.json", stress_order="mlearn-mo")


def learning_curve(model, train, designs, n_folds: int, seed: int) -> list[dict]:
    """Block-CV errors of ``model`` (set up on ``train``, its ``designs``) fitted on a fraction
    of each fold's training structures (seeded, within each group), and the in-sample errors
    of those fits: training data only.  Each fit solves the model's weighted ridge problem on
    its structures from per-structure Gram blocks (``ridge_solve_gram``; the model's loss must
    be squared), so the 20 fits cost one pass over the rows."""
    from potforge.model.cv import block_folds
    from potforge.model.metrics import error_metrics
    from potforge.modeldesign.evaluate import fold_grams, ridge_solve_gram

    assert model.loss == "squared"
    dm = model.design(train, designs=designs)
    w = dm.weights(model.sigma, model.group_weights)
    G, c = fold_grams(dm, w, np.arange(len(train)))  # one block per structure

    def fit(sub):
        m = model.with_terms()
        m.coef_ = ridge_solve_gram(G[sub].sum(axis=0), c[sub].sum(axis=0), model.alpha)
        return m

    folds = block_folds(train, n_folds, seed)
    groups = np.array([str(a.info.get("group", "all")) for a in train])
    rows = []
    for f in FRACTIONS:
        rng = np.random.default_rng(seed)
        held: list = [None] * len(train)
        fit_e, fit_f = [], []
        n_used = []
        for k in range(n_folds):
            pool = np.flatnonzero(folds != k)
            sub = []
            for g in sorted(set(groups[pool])):
                idx = pool[groups[pool] == g]
                n = max(1, int(round(f * len(idx))))
                sub.extend(sorted(rng.choice(idx, n, replace=False).tolist()))
            m = fit(sub)
            out = np.flatnonzero(folds == k)
            for i, p in zip(out, m.predict_designs([designs[i] for i in out]), strict=True):
                held[i] = p
            ins = error_metrics(
                [train[i] for i in sub], m.predict_designs([designs[i] for i in sub])
            )
            fit_e.append(ins["energy_mae_meV_per_atom"])
            fit_f.append(ins["force_mae_eV_per_A"])
            n_used.append(len(sub))
        cv = error_metrics(train, held)
        rows.append(
            {
                "fraction": f,
                "mean_training_structures": float(np.mean(n_used)),
                "cv_energy_mae_meV_per_atom": cv["energy_mae_meV_per_atom"],
                "cv_force_mae_eV_per_A": cv["force_mae_eV_per_A"],
                "cv_energy_rmse_meV_per_atom": cv["energy_rmse_meV_per_atom"],
                "cv_force_rmse_eV_per_A": cv["force_rmse_eV_per_A"],
                "fit_energy_mae_meV_per_atom": float(np.mean(fit_e)),
                "fit_force_mae_eV_per_A": float(np.mean(fit_f)),
            }
        )
    return rows


def per_term(model) -> dict[str, int]:
    out: dict[str, int] = {}
    for name in model.param_names:
        t = name.split("[", 1)[0].split(".", 1)[0]
        out[t] = out.get(t, 0) + 1
    return out


def fitted_metrics(model, test, case: str) -> dict:
    preds = model.predict(test, progress=False)
    if case == "nb":
        return maml_nb.test_metrics(test, preds)
    from potforge.model.metrics import error_metrics

    return error_metrics(test, preds)


START = {"nb": (("snap", 0),), "mo": (("qsnap", 2),)}
"""Start model of the search (library terms, rung): Nb from the smallest SNAP; Mo from the
adaptive default's form, quadratic SNAP 2J=6 (a parameter budget of 500 holds it whole)."""


def run_design(case: str, train, args) -> dict:
    """The search, the chosen model's fit and learning curve: training data only."""
    from potforge.modeldesign.evaluate import DesignCache, ScoreWeights
    from potforge.modeldesign.search import design

    if case == "nb":
        max_params = NB_TARGET["max_params"]
        weights = ScoreWeights(
            energy_scale=NB_TARGET["energy_rmse_meV_per_atom"],
            force_scale=NB_TARGET["force_rmse_eV_per_A"],
        )
        element = "Nb"
    else:
        max_params = MO_TARGET["max_params"]
        weights = ScoreWeights(
            energy_scale=MO_TARGET["energy_mae_meV_per_atom"],
            force_scale=MO_TARGET["force_mae_eV_per_A"],
        )
        element = "Mo"
    t = time.perf_counter()
    cache = DesignCache(train)
    result = design(
        train,
        start=START[case],
        fixed="const",
        max_params=max_params,
        minutes=args.minutes,
        n_trials=args.trials,
        n_folds=args.folds,
        seed=args.seed,
        weights=weights,
        element=element,
        reference=None,
        cache=cache,
        say=lambda s: log(f"  design: {s}"),
    )
    search_s = time.perf_counter() - t
    for w, n, sec in result.timings:
        log(f"  design time: {w}: {n} evaluated, {sec:.0f} s")
    t = time.perf_counter()
    model = result.chosen.config.model().setup(train)
    designs = cache.designs(model)  # the search's descriptor rows: no new pass
    model.fit(train, designs=designs, progress=False)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    curve = learning_curve(model, train, designs, args.folds, args.seed)
    curve_s = time.perf_counter() - t
    ev = result.chosen.evaluation
    return {
        "model": model,
        "doc": {
            "max_params": max_params,
            "start": [list(r) for r in START[case]],
            "score_weights": {
                "energy_scale": weights.energy_scale,
                "force_scale": weights.force_scale,
            },
            "chosen": result.chosen.to_dict(),
            "chosen_params_per_term": per_term(model),
            "chosen_fim": {
                "condition": ev.condition,
                "n_sloppy": ev.n_sloppy,
                "sloppy_terms": ev.sloppy_terms,
                "eigenvalues": ev.eigenvalues,
            },
            "pareto": [t.to_dict() for t in result.pareto],
            "trials": [t.to_dict() for t in result.trials],
            "log": result.log,
            "timings": [
                {"step": w, "evaluated": n, "seconds": sec} for w, n, sec in result.timings
            ],
            "learning_curve": curve,
            "seconds": {"search": search_s, "fit": fit_s, "learning_curve": curve_s},
        },
        "result": result,
    }


def run_adaptive(train, args) -> tuple:
    from potforge.modeldesign.adaptive import adaptive_default

    t = time.perf_counter()
    choice = adaptive_default(
        train,
        minutes=args.adapt_minutes,
        seed=args.seed,
        progress=False,
        say=lambda s: log(f"  adaptive default: {s}"),
    )
    model = choice.model().fit(train, progress=False)
    return model, {
        "choice": choice.to_dict(),
        "n_params": int(model.n_params),
        "seconds": time.perf_counter() - t,
    }


def summary_rows(case: str, d: dict) -> list[tuple]:
    """(name, P, E-MAE, E-RMSE, F-MAE, F-RMSE, note) of the test-set rows of ``d``."""
    eo = "energy_mae_offset_removed_meV_per_atom"
    ro = "energy_rmse_offset_removed_meV_per_atom"
    rows = []

    def add(name, p, m, note=""):
        rows.append(
            (
                name,
                p,
                m["energy_mae_meV_per_atom"],
                m["energy_rmse_meV_per_atom"],
                m["force_mae_eV_per_A"],
                m["force_rmse_eV_per_A"],
                note,
            )
        )

    add("potforge design (chosen by CV)", d["design"]["chosen"]["n_params"], d["design"]["test"])
    add("potforge adaptive default", d["adaptive"]["n_params"], d["adaptive"]["test"])
    if case == "nb":
        pm = d["published"]["metrics"]
        rows.append(
            (
                "published Ta-W-Nb-Mo SNAP (offset removed)",
                d["published"]["n_params_per_element"],
                pm[eo],
                pm[ro],
                pm["force_mae_eV_per_A"],
                pm["force_rmse_eV_per_A"],
                f"offset {pm['energy_offset_meV_per_atom']:.1f} meV/atom",
            )
        )
        for k in ("design", "adaptive"):
            m = d[k]["test"]
            d[k]["test_note"] = f"offset removed: E-MAE {m[eo]:.2f}, E-RMSE {m[ro]:.2f}"
    else:
        add(
            "potforge fit default (tuned DEFAULT_SPEC)",
            d["tuned_default"]["n_params"],
            d["tuned_default"]["test"],
        )
        for name in ("SNAP", "qSNAP"):
            p = d["published"][name]
            add(f"published {name} (LAMMPS)", p["n_params"], p["metrics"])
    return rows


def print_tables(case: str, d: dict) -> None:
    des = d["design"]
    log(
        f"\n[{case}] Pareto front of the search (block-CV MAE on training data; shown for "
        "information, not picked from):"
    )
    log(f"{'P':>5} {'CV E-MAE':>9} {'CV F-MAE':>9} {'score':>7} {'sloppy':>6}  spec")
    for t in des["pareto"]:
        mark = (
            "  ← chosen"
            if t["summary"] == des["chosen"]["summary"]
            and (t["sigma_energy"], t["sigma_force"])
            == (des["chosen"]["sigma_energy"], des["chosen"]["sigma_force"])
            else ""
        )
        log(
            f"{t['n_params']:>5} {t['cv_energy_mae']:>9.3f} {t['cv_force_mae']:>9.4f} "
            f"{t['score']:>7.3f} {t['n_sloppy']:>6}  {t['summary']} "
            f"[σ_E {t['sigma_energy']:.3g}, σ_F {t['sigma_force']:.3g}]{mark}"
        )
    c = des["chosen"]
    if not any(t["summary"] == c["summary"] for t in des["pareto"]):
        log(
            f"{c['n_params']:>5} {c['cv_energy_mae']:>9.3f} {c['cv_force_mae']:>9.4f} "
            f"{c['score']:>7.3f} {c['n_sloppy']:>6}  {c['summary']}  ← chosen (not on the front)"
        )
    log(f"\n[{case}] learning curve of the chosen model (block CV on training data, MAE):")
    log(f"{'fraction':>8} {'structs':>7} {'CV E':>7} {'CV F':>7} {'fit E':>7} {'fit F':>7}")
    for r in des["learning_curve"]:
        log(
            f"{r['fraction']:>8.2f} {r['mean_training_structures']:>7.0f} "
            f"{r['cv_energy_mae_meV_per_atom']:>7.3f} {r['cv_force_mae_eV_per_A']:>7.4f} "
            f"{r['fit_energy_mae_meV_per_atom']:>7.3f} {r['fit_force_mae_eV_per_A']:>7.4f}"
        )
    test_name = "Nb_Test" if case == "nb" else "mlearn Mo test.json"
    log(f"\n[{case}] {test_name} (energy meV/atom, force eV/Å per component):")
    hdr = f"{'model':<44} {'P':>5} {'E-MAE':>7} {'E-RMSE':>7} {'F-MAE':>7} {'F-RMSE':>7}  note"
    log(hdr)
    log("-" * len(hdr))
    for name, p, em, er, fm, fr, note in summary_rows(case, d):
        log(f"{name:<44} {p:>5} {em:>7.2f} {er:>7.2f} {fm:>7.4f} {fr:>7.4f}  {note}")
    if case == "nb":
        lit = LITERATURE_NB
        log(
            f"{'literature composable Nb (other data set)':<44} {lit['n_params']:>5} {'':>7} "
            f"{lit['energy_rmse_meV_per_atom']:>7.2f} {'':>7} {lit['force_rmse_eV_per_A']:>7.4f}"
        )
        for k in ("design", "adaptive"):
            log(f"  {k}: {d[k]['test_note']}")
    else:
        log(
            f"{'GAP (published MAE)':<44} {'':>5} {zuo_mo.GAP_MAE[0]:>7.2f} {'':>7} "
            f"{zuo_mo.GAP_MAE[1]:>7.4f}"
        )


def run_case(case: str, args) -> dict:
    t0 = time.perf_counter()
    train, read_test = read_case(case)
    log(f"[{case}] training: {len(train)} structures, {sum(len(a) for a in train)} atoms")
    des = run_design(case, train, args)
    adaptive_model, adaptive = run_adaptive(train, args)
    tuned_model = tuned = None
    if case == "mo":
        from potforge.model import DEFAULT_SPEC, LinearPotential

        t = time.perf_counter()
        tuned_model = LinearPotential(DEFAULT_SPEC).fit(train, progress=False)
        tuned = {
            "spec": DEFAULT_SPEC,
            "n_params": int(tuned_model.n_params),
            "seconds": time.perf_counter() - t,
        }
    # every choice is made and fitted: only now is the test file read
    test = read_test()
    log(f"[{case}] test: {len(test)} structures, {sum(len(a) for a in test)} atoms")
    t = time.perf_counter()
    des["doc"]["test"] = fitted_metrics(des["model"], test, case)
    adaptive["test"] = fitted_metrics(adaptive_model, test, case)
    if tuned is not None:
        tuned["test"] = fitted_metrics(tuned_model, test, case)
    if case == "nb":
        with tempfile.TemporaryDirectory() as tmp:
            pub = maml_nb.lammps_predict(test, maml_nb.published_snap_commands(Path(tmp)), tmp)
        n_coef, n_el = maml_nb.published_n_params()
        published = {
            "metrics": maml_nb.test_metrics(test, pub),
            "n_params_per_element": n_coef,
            "n_params_total": n_coef * n_el,
        }
    else:
        published, _ = zuo_mo.evaluate_published(test, train)
    test_s = time.perf_counter() - t
    d = {
        "design": des["doc"],
        "adaptive": adaptive,
        "published": published,
        "n_train_structures": len(train),
        "n_train_atoms": sum(len(a) for a in train),
        "n_test_structures": len(test),
    }
    if tuned is not None:
        d["tuned_default"] = tuned
    d["ratios"] = ratios(case, d)
    d["seconds"] = {"total": time.perf_counter() - t0, "test_and_published": test_s}
    print_tables(case, d)
    report_target(case, d)
    return d


def ratios(case: str, d: dict) -> dict:
    m = d["design"]["test"]
    p = d["design"]["chosen"]["n_params"]
    a = d["adaptive"]["test"]
    if case == "nb":
        pm = d["published"]["metrics"]
        r = {
            "nb_params": p,
            "nb_params_over_target": p / NB_TARGET["max_params"],
            "nb_force_rmse_over_target": m["force_rmse_eV_per_A"]
            / NB_TARGET["force_rmse_eV_per_A"],
            "nb_energy_rmse_over_target": m["energy_rmse_meV_per_atom"]
            / NB_TARGET["energy_rmse_meV_per_atom"],
            "nb_force_rmse_over_published_snap": m["force_rmse_eV_per_A"]
            / pm["force_rmse_eV_per_A"],
            "nb_energy_rmse_over_published_snap": m["energy_rmse_meV_per_atom"]
            / pm["energy_rmse_offset_removed_meV_per_atom"],
            "nb_adaptive_params": d["adaptive"]["n_params"],
            "nb_adaptive_energy_mae_over_published_snap": a["energy_mae_meV_per_atom"]
            / pm["energy_mae_offset_removed_meV_per_atom"],
            "nb_adaptive_force_mae_over_published_snap": a["force_mae_eV_per_A"]
            / pm["force_mae_eV_per_A"],
        }
        r["nb_target_met"] = int(
            p <= NB_TARGET["max_params"]
            and r["nb_force_rmse_over_target"] <= 1.0
            and r["nb_energy_rmse_over_target"] <= 1.0
        )
        return r
    snap, qsnap = d["published"]["SNAP"]["metrics"], d["published"]["qSNAP"]["metrics"]
    r = {
        "mo_params": p,
        "mo_params_over_target": p / MO_TARGET["max_params"],
        "mo_energy_mae_over_gap": m["energy_mae_meV_per_atom"] / zuo_mo.GAP_MAE[0],
        "mo_force_mae_over_gap": m["force_mae_eV_per_A"] / zuo_mo.GAP_MAE[1],
        "mo_adaptive_params": d["adaptive"]["n_params"],
    }
    for who, mm in (("adaptive", a), ("tuned_default", d["tuned_default"]["test"])):
        for name, pub in (("snap", snap), ("qsnap", qsnap)):
            r[f"mo_{who}_energy_mae_over_{name}"] = (
                mm["energy_mae_meV_per_atom"] / pub["energy_mae_meV_per_atom"]
            )
            r[f"mo_{who}_force_mae_over_{name}"] = (
                mm["force_mae_eV_per_A"] / pub["force_mae_eV_per_A"]
            )
    r["mo_target_met"] = int(
        p <= MO_TARGET["max_params"]
        and r["mo_energy_mae_over_gap"] <= 1.0
        and r["mo_force_mae_over_gap"] <= 1.0
    )
    return r


def report_target(case: str, d: dict) -> None:
    r = d["ratios"]
    c = d["design"]["chosen"]
    fim = d["design"]["chosen_fim"]
    curve = d["design"]["learning_curve"]
    log(
        f"\n[{case}] chosen: {c['summary']} [σ_E {c['sigma_energy']:.3g}, "
        f"σ_F {c['sigma_force']:.3g}], {c['n_params']} parameters "
        f"{d['design']['chosen_params_per_term']}"
    )
    log(
        f"[{case}] chosen FIM: condition {fim['condition']:.3g}, {fim['n_sloppy']} sloppy "
        f"directions {fim['sloppy_terms'] or ''}"
    )
    half, full = curve[-3], curve[-1]
    log(
        f"[{case}] learning curve, fraction {half['fraction']:g} → 1: CV E-MAE "
        f"{half['cv_energy_mae_meV_per_atom']:.3f} → {full['cv_energy_mae_meV_per_atom']:.3f} "
        f"meV/atom, CV F-MAE {half['cv_force_mae_eV_per_A']:.4f} → "
        f"{full['cv_force_mae_eV_per_A']:.4f} eV/Å; in-sample at 1: "
        f"{full['fit_energy_mae_meV_per_atom']:.3f} meV/atom, "
        f"{full['fit_force_mae_eV_per_A']:.4f} eV/Å"
    )
    if case == "nb":
        log(
            f"[{case}] target (≤ 75 P, F-RMSE ≤ 0.15 eV/Å, E-RMSE ≤ 6 meV/atom): "
            f"P {r['nb_params']}, "
            f"F-RMSE/target {r['nb_force_rmse_over_target']:.3f}, E-RMSE/target "
            f"{r['nb_energy_rmse_over_target']:.3f} → {'met' if r['nb_target_met'] else 'missed'}"
        )
    else:
        log(
            f"[{case}] target (≤ 500 P at or below GAP's MAE 2.24 meV/atom, 0.09 eV/Å): P "
            f"{r['mo_params']}, E-MAE/GAP {r['mo_energy_mae_over_gap']:.3f}, F-MAE/GAP "
            f"{r['mo_force_mae_over_gap']:.3f} → {'met' if r['mo_target_met'] else 'missed'}"
        )
    sec = d["design"]["seconds"]
    log(
        f"[{case}] wall {d['seconds']['total']:.0f} s (search {sec['search']:.0f}, "
        f"fit {sec['fit']:.0f}, learning curve {sec['learning_curve']:.0f}, adaptive default "
        f"{d['adaptive']['seconds']:.0f}, test + published "
        f"{d['seconds']['test_and_published']:.0f})"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=("nb", "mo", "all"), default="all")
    ap.add_argument("--minutes", type=float, default=18.0, help="design search budget per case")
    ap.add_argument(
        "--adapt-minutes",
        type=float,
        default=3.0,
        help="adaptive default's σ search budget per case",
    )
    ap.add_argument("--trials", type=int, default=20, help="Optuna trials at most")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    needed = {
        "nb": [
            maml_nb.DATA / f for f in (*maml_nb.TRAIN_FILES, maml_nb.TEST_FILE, *maml_nb.SNAP_FILES)
        ],
        "mo": [zuo_mo.DATA / "training.json", zuo_mo.DATA / "test.json"],
    }
    cases = ("nb", "mo") if args.case == "all" else (args.case,)
    for case in cases:
        missing = [str(p) for p in needed[case] if not p.exists()]
        if missing:
            print(f"design: missing {', '.join(missing)}; nothing to benchmark.", file=sys.stderr)
            return 2
    doc = json.loads(args.out.read_text()) if args.out.exists() else {}
    doc.setdefault("cases", {})
    for case in cases:
        d = run_case(case, args)
        d["settings"] = {
            "minutes": args.minutes,
            "adapt_minutes": args.adapt_minutes,
            "trials": args.trials,
            "folds": args.folds,
            "seed": args.seed,
        }
        d["date"] = time.strftime("%Y-%m-%d")
        doc["cases"][case] = d
        doc.update(d["ratios"])  # the target ratios as plain top-level keys
        doc[f"{case}_wall_seconds"] = d["seconds"]["total"]
        doc["benchmark"] = "model design (issue 19): design search and adaptive default"
        doc["targets"] = {"nb": NB_TARGET, "mo": MO_TARGET}
        doc["machine"] = {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "note": "2 shared cores",
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1, default=float))
        log(f"wrote {args.out} ({case})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
