"""Zuo et al. (J. Phys. Chem. A 124, 731, 2020) Mo benchmark: potforge fits vs the published
SNAP / qSNAP, evaluated in the same run on the same ``test.json``.

Trains on ``../shared/data/mlearn/Mo/training.json`` (194 structures, 10 087 atoms):

* linear SNAP 2J=6 (``snap(twojmax=6,rcutfac=4.6)+const``), its σ_E / σ_F / σ_S (and per-group
  weights) chosen by 5-fold cross-validation over the *training* structures only;
* the same linear SNAP fitted with a Huber loss (IRLS, ``loss="huber"``), its σ_E / σ_F, Huber
  δ and per-group weights chosen by the same cross-validation (training structures only);
* quadratic SNAP 2J=6 (``snap(twojmax=6,rcutfac=4.6,quadratic=True)+const``), default weights;
* the default model (:data:`potforge.model.DEFAULT_SPEC`), default weights.

The published SNAP / qSNAP files shipped with LAMMPS are evaluated with ``pair_style snap``.
Writes ``benchmarks/results/zuo_mo.json``.

Usage: ``python benchmarks/zuo_mo.py [--quick]``
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "mlearn" / "Mo"
OUT = ROOT / "benchmarks" / "results" / "zuo_mo.json"

PUBLISHED_MAE = {"SNAP": (5.48, 0.207), "qSNAP": (2.77, 0.184)}
GAP_MAE = (2.24, 0.09)
FIT_SECONDS_TARGET = 30.0

LINEAR_SPEC = "snap(twojmax=6,rcutfac=4.6)+const"
QUAD_SPEC = "snap(twojmax=6,rcutfac=4.6,quadratic=True)+const"

SIGMA_E_GRID = (3e-5, 1e-4, 3e-4, 1e-3)
SIGMA_F_GRID = (0.05, 0.1, 0.2, 0.3)
SIGMA_S_GRID = (0.005, 0.02, 1e3)  # eV/Å³; 1e3 = stresses effectively unused
GROUP_FACTORS = (0.3, 3.0, 10.0)
# Huber-loss search: σ_E, σ_F and δ (units of σ) first, then per-group factors, then δ again
HUBER_SIGMA_E_GRID = (1e-4, 3e-4, 1e-3)
HUBER_SIGMA_F_GRID = (0.1, 0.2, 0.3)
HUBER_DELTA_GRID = (1.0, 3.0, 10.0)
HUBER_DELTA_REFINE = (0.3, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)


def descriptor_context(train) -> tuple:
    """(model, designs, design matrix) of the linear SNAP on the training set: one descriptor
    pass shared by both CV searches and :func:`published_in_potforge`."""
    from potforge.model import LinearPotential
    from potforge.model.rows import assemble

    model = LinearPotential(terms=LINEAR_SPEC).setup(train)
    designs = model.structure_designs(train)
    return model, designs, assemble(designs, train)


HUBER_STAGES = {"grid": "sigma×delta", "groups": "groups", "delta": "delta"}
"""This benchmark's names of the search stages of potforge.model.cv (JSON and printout)."""


def search_doc(search, criterion: str, huber: bool = False) -> dict:
    """A :class:`potforge.model.cv.WeightSearch` as this benchmark's JSON: ``grid`` (one row
    per scored setting), ``best`` (the same object as its row in ``grid``), timing."""
    rows = []
    for r in search.rows:
        row = {
            "sigma_energy": r.sigma_energy,
            "sigma_force": r.sigma_force,
            "sigma_stress": r.sigma_stress,
            "group_weights": dict(r.group_weights) if r.group_weights else None,
            "cv_energy_mae": r.cv_energy_mae,
            "cv_force_mae": r.cv_force_mae,
            "objective": r.objective,
        }
        if huber:
            row = {
                "stage": HUBER_STAGES[r.stage],
                "loss": r.loss,
                "huber_delta": r.huber_delta,
                **row,
            }
        rows.append(row)
    return {
        "n_folds": search.n_folds,
        "grid": rows,
        "best": rows[search.best_index],
        "seconds": search.seconds,
        "criterion": criterion,
    }


def weight_search(ctx, train, n_folds: int, with_groups: bool):
    """Choose σ_E, σ_F, σ_S (then per-group factors) for the linear SNAP by CV on the training
    set (:func:`potforge.model.search_weights`); the search and its JSON."""
    from potforge.model import search_weights

    model, designs, _ = ctx
    search = search_weights(
        model,
        train,
        n_folds=n_folds,
        sigma_energy=SIGMA_E_GRID,
        sigma_force=SIGMA_F_GRID,
        sigma_stress=SIGMA_S_GRID,
        group_factors=GROUP_FACTORS if with_groups else (),
        energy_scale=PUBLISHED_MAE["SNAP"][0],
        force_scale=PUBLISHED_MAE["SNAP"][1],
        random_state=0,
        designs=designs,
    )
    criterion = (
        "min over configs of max(CV E-MAE/5.48 meV/atom, CV F-MAE/0.207 eV/Å); "
        "5-fold CV over training.json structures, stratified by group"
    )
    return search, search_doc(search, criterion)


def huber_search(ctx, train, n_folds: int, with_groups: bool, sigma_stress: float):
    """Choose σ_E, σ_F, Huber δ and per-group factors of the Huber-loss linear SNAP by CV on the
    training set only (same folds and criterion as :func:`weight_search`; σ_S is taken from it).

    Stages (:func:`potforge.model.search_weights`): grid over σ_E × σ_F × δ; from the best
    (σ_E, σ_F) of each δ a coordinate search over per-group factors (one group at a time, as
    for the squared loss); δ refined on a finer grid at the best weights found.
    """
    from potforge.model import LinearPotential, search_weights

    _, designs, _ = ctx
    search = search_weights(
        LinearPotential(terms=LINEAR_SPEC, loss="huber"),
        train,
        n_folds=n_folds,
        sigma_energy=HUBER_SIGMA_E_GRID,
        sigma_force=HUBER_SIGMA_F_GRID,
        sigma_stress=sigma_stress,
        group_factors=GROUP_FACTORS if with_groups else (),
        huber_delta=HUBER_DELTA_GRID,
        huber_delta_refine=HUBER_DELTA_REFINE,
        energy_scale=PUBLISHED_MAE["SNAP"][0],
        force_scale=PUBLISHED_MAE["SNAP"][1],
        random_state=0,
        designs=designs,
    )
    criterion = (
        "as weight_search (min of max(CV E-MAE/5.48, CV F-MAE/0.207)), Huber loss "
        "by IRLS; σ_S fixed to the squared-loss choice"
    )
    return search, search_doc(search, criterion, huber=True)


def evaluate_published(test, train) -> tuple[dict, dict]:
    """Metrics of the published SNAP / qSNAP files (pair_style snap in LAMMPS) on the test set
    (and on the training set, under ``train_metrics``); and their predictions (keys ``SNAP``,
    ``qSNAP`` on the test set, ``"SNAP train"``, ``"qSNAP train"`` on the training set)."""
    from potforge.engines.lammps import LammpsCalculator, potentials_dir
    from potforge.model.metrics import error_metrics

    files = {"SNAP": "Mo_Zuo_JPCA2020.snap", "qSNAP": "Mo_Zuo_JPCA2020.quadratic.snap"}
    out, preds = {}, {}
    for name, inc in files.items():
        calc = LammpsCalculator([f"include {inc}"], ["Mo"], workdir=potentials_dir())

        def predict(structures, calc=calc):
            pred = []
            for a in structures:
                calc.calculate(a, ["energy", "forces", "stress"])
                pred.append(dict(calc.results))
            return pred

        coeff = (potentials_dir() / inc.replace(".snap", ".snapcoeff")).read_text().split()
        # snapcoeff: comments, then "nelements ncoeff", then "Mo radius weight", then coefficients
        n_params = None
        for i, tok in enumerate(coeff):
            if tok == "Mo":
                n_params = int(coeff[i - 1])
                break
        preds[name] = predict(test)
        preds[name + " train"] = predict(train)
        out[name] = {
            "metrics": error_metrics(test, preds[name]),
            "n_params": n_params,
            "train_metrics": error_metrics(train, preds[name + " train"]),
        }
    return out, preds


def published_in_potforge(ctx, train, published_pred_train) -> dict:
    """Is the published SNAP a potforge fit? Its 31 coefficients loaded into the linear SNAP
    (same descriptor) must reproduce LAMMPS ``pair_style snap`` on the training set; then the
    weighted least-squares fits to the training energies and forces over a sweep of energy
    weights (per-atom residuals, and total-energy residuals as in mlearn) are compared with it:
    the RMS difference of their training-set predictions from the published ones."""
    from potforge.engines.lammps import potentials_dir
    from potforge.model.rows import ROW_ENERGY, ROW_FORCE

    model, designs, dm = ctx
    tokens = (potentials_dir() / "Mo_Zuo_JPCA2020.snapcoeff").read_text().split()
    pub = np.array(tokens[-model.n_params :], dtype=float)
    # snapcoeff order: β0 (the per-atom constant) first; potforge: bispectrum then const
    coef = np.r_[pub[1:], pub[0]]
    ours = model.predict_designs(designs, coef)
    reproduce = {
        "energy_max_abs_eV": max(
            abs(p["energy"] - q["energy"]) for p, q in zip(ours, published_pred_train, strict=True)
        ),
        "force_max_abs_eV_per_A": max(
            float(np.abs(p["forces"] - q["forces"]).max())
            for p, q in zip(ours, published_pred_train, strict=True)
        ),
    }
    e_rows, f_rows = dm.row_type == ROW_ENERGY, dm.row_type == ROW_FORCE
    rows = e_rows | f_rows
    n = dm.n_atoms[dm.structure][rows]
    A, y, is_e = dm.A[rows], dm.y[rows], e_rows[rows]
    sweep = []
    for convention, scale in (("per-atom", np.ones_like(n)), ("total", n.astype(float) ** 2)):
        for w_e in np.logspace(0, 8, 17):
            sw = np.sqrt(np.where(is_e, w_e * scale, 1.0))
            c = np.linalg.lstsq(A * sw[:, None], y * sw, rcond=None)[0]
            d = A @ (c - coef)
            sweep.append(
                {
                    "energy_residual": convention,
                    "energy_weight": float(w_e),
                    "energy_rms_diff_meV_per_atom": float(np.sqrt(np.mean(d[is_e] ** 2)) * 1000.0),
                    "force_rms_diff_eV_per_A": float(np.sqrt(np.mean(d[~is_e] ** 2))),
                }
            )
    return {
        "reproduce_lammps": reproduce,
        "sweep": sweep,
        "closest_energy": min(sweep, key=lambda r: r["energy_rms_diff_meV_per_atom"]),
        "closest_force": min(sweep, key=lambda r: r["force_rms_diff_eV_per_A"]),
    }


def fit_potforge(name, spec, train, test, **kw) -> tuple[dict, list]:
    """Fit one potforge model; its row (weights, fit info, test and training metrics) and its
    test predictions."""
    from potforge.model import LinearPotential
    from potforge.model.metrics import error_metrics

    model = LinearPotential(terms=spec, **kw).fit(train)
    pred = model.predict(test)
    return {
        "name": name,
        "spec": spec,
        "weights": {
            "sigma_energy": model.sigma_energy,
            "sigma_force": model.sigma_force,
            "sigma_stress": model.sigma_stress,
            "group_weights": model.group_weights,
            "loss": model.loss,
            "huber_delta": model.huber_delta if model.loss == "huber" else None,
        },
        "n_params": int(model.n_params),
        "fit_info": {k: v for k, v in model.fit_info_.items()},
        "metrics": error_metrics(test, pred),
        "train_metrics": error_metrics(train, model.predict(train)),
    }, pred


def paired_bootstrap(test, pred_a, pred_b, n_boot: int = 10_000, seed: int = 0) -> dict:
    """Test-set MAE difference a − b (energy meV/atom, force eV/Å) with a 95 % interval from
    resampling the test *structures* with replacement (both models on the same resample)."""
    from potforge.model.metrics import residuals

    n_at = np.array([len(a) for a in test])
    cuts = np.cumsum(3 * n_at)[:-1]
    per = {}
    for key, pred in (("a", pred_a), ("b", pred_b)):
        r = residuals(test, pred)
        per[key] = (
            np.abs(r["energy"]) * 1000.0,
            np.array([np.abs(f).sum() for f in np.split(np.ravel(r["forces"]), cuts)]),
        )
    counts = np.random.default_rng(seed).multinomial(
        len(test), np.full(len(test), 1 / len(test)), size=n_boot
    )
    n_f = counts @ (3 * n_at)
    d_e = counts @ (per["a"][0] - per["b"][0]) / len(test)
    d_f = counts @ (per["a"][1] - per["b"][1]) / n_f
    out = {}
    for key, d in (("energy_mae_meV_per_atom", d_e), ("force_mae_eV_per_A", d_f)):
        lo, hi = np.percentile(d, [2.5, 97.5])
        out[key] = {
            "difference_interval_95": [float(lo), float(hi)],
            "fraction_a_not_worse": float(np.mean(d <= 0)),
        }
    out["n_boot"] = n_boot
    return out


def print_grid(rows, best, lead_header: str, lead) -> None:
    """Print CV-scored weightings, one per line (``lead(row)``: the leading columns), the chosen
    one starred."""
    print(
        f"{lead_header} {'σ_E eV/atom':>12} {'σ_F eV/Å':>9} {'group weights':<50} "
        f"{'CV E-MAE':>9} {'CV F-MAE':>9} {'objective':>9}"
    )
    for r in rows:
        gw = json.dumps(r["group_weights"]) if r["group_weights"] else "-"
        print(
            f"{lead(r)} {r['sigma_energy']:>12.0e} {r['sigma_force']:>9.2f} {gw:<50} "
            f"{r['cv_energy_mae']:>9.2f} {r['cv_force_mae']:>9.3f} {r['objective']:>9.3f}"
            f"{' *' if r is best else ''}"
        )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="3-fold CV, no per-group weight search (both losses)"
    )
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    if not (DATA / "training.json").exists() or not (DATA / "test.json").exists():
        print(
            f"zuo_mo: data folder {DATA.resolve()} is absent (need training.json, test.json); "
            "nothing to benchmark.",
            file=sys.stderr,
        )
        return 2

    from potforge.data.readers import read_structures
    from potforge.model import DEFAULT_SPEC

    t_start = time.perf_counter()
    train = read_structures(DATA / "training.json")
    test = read_structures(DATA / "test.json", stress_order="mlearn-mo")  # only xy is sheared
    n_train_atoms = sum(len(a) for a in train)
    print(
        f"training: {len(train)} structures, {n_train_atoms} atoms; "
        f"test: {len(test)} structures, {sum(len(a) for a in test)} atoms"
    )

    published, published_pred = evaluate_published(test, train)

    n_folds = 3 if args.quick else 5
    ctx = descriptor_context(train)
    found, search = weight_search(ctx, train, n_folds, with_groups=not args.quick)
    b = search["best"]
    print(
        f"\nlinear SNAP weight search ({search['n_folds']}-fold CV on training.json only, "
        f"{len(search['grid'])} configs, {search['seconds']:.1f} s)"
    )
    print_grid(search["grid"], b, f"{'σ_S eV/Å³':>9}", lambda r: f"{r['sigma_stress']:>9.3g}")

    hfound, hsearch = huber_search(
        ctx, train, n_folds, with_groups=not args.quick, sigma_stress=b["sigma_stress"]
    )
    hb = hsearch["best"]
    print(
        f"\nlinear SNAP Huber-loss search ({hsearch['n_folds']}-fold CV on training.json only, "
        f"{len(hsearch['grid'])} configs, {hsearch['seconds']:.1f} s; σ_S = {b['sigma_stress']:g})"
    )
    print_grid(
        hsearch["grid"],
        hb,
        f"{'stage':<11} {'δ':>5}",
        lambda r: f"{r['stage']:<11} {r['huber_delta']:>5g}",
    )

    fitted = [
        fit_potforge(
            "potforge linear SNAP 2J=6 (CV weights)",
            LINEAR_SPEC,
            train,
            test,
            **found.best_params,
        ),
        fit_potforge(
            "potforge linear SNAP 2J=6 Huber (CV)", LINEAR_SPEC, train, test, **hfound.best_params
        ),
        fit_potforge("potforge quadratic SNAP 2J=6", QUAD_SPEC, train, test),
        fit_potforge("potforge default (DEFAULT_SPEC)", DEFAULT_SPEC, train, test),
    ]
    models = [row for row, _ in fitted]

    print("\nTest set (test.json), MAE / RMSE: energy meV/atom, force eV/Å per component")
    hdr = (
        f"{'model':<42} {'P':>5} {'E-MAE':>7} {'E-RMSE':>7} {'F-MAE':>7} {'F-RMSE':>7} "
        f"{'fit s':>6} {'(desc+solve)':>13}"
    )
    print(hdr)
    print("-" * len(hdr))
    for name in ("SNAP", "qSNAP"):
        m = published[name]["metrics"]
        print(
            f"{'published ' + name + ' (LAMMPS)':<42} {published[name]['n_params']:>5} "
            f"{m['energy_mae_meV_per_atom']:>7.2f} {m['energy_rmse_meV_per_atom']:>7.2f} "
            f"{m['force_mae_eV_per_A']:>7.3f} {m['force_rmse_eV_per_A']:>7.3f}"
        )
    print(f"{'GAP (published MAE)':<42} {'':>5} {GAP_MAE[0]:>7.2f} {'':>7} {GAP_MAE[1]:>7.3f}")
    for r in models:
        m, fi = r["metrics"], r["fit_info"]
        print(
            f"{r['name']:<42} {r['n_params']:>5} {m['energy_mae_meV_per_atom']:>7.2f} "
            f"{m['energy_rmse_meV_per_atom']:>7.2f} {m['force_mae_eV_per_A']:>7.3f} "
            f"{m['force_rmse_eV_per_A']:>7.3f} {fi['fit_seconds']:>6.2f} "
            f"{fi['descriptor_seconds']:>6.2f}+{fi['solve_seconds']:.2f}"
        )

    hfi, hw = models[1]["fit_info"], models[1]["weights"]
    print(
        f"Huber row: δ = {hw['huber_delta']:g}, σ_E = {hw['sigma_energy']:g} eV/atom, "
        f"σ_F = {hw['sigma_force']:g} eV/Å, σ_S = {hw['sigma_stress']:g} eV/Å³, group weights "
        f"{json.dumps(hw['group_weights'])}; IRLS {hfi['loss_iterations']} solves, "
        f"converged {hfi['loss_converged']}"
    )

    print("\nRatios potforge / published (MAE E, MAE F, RMSE E, RMSE F) and distance to GAP MAE")
    keys = (
        "energy_mae_meV_per_atom",
        "force_mae_eV_per_A",
        "energy_rmse_meV_per_atom",
        "force_rmse_eV_per_A",
    )
    for r in models:
        m = r["metrics"]
        r["ratios"] = {}
        for name in ("SNAP", "qSNAP"):
            p = published[name]["metrics"]
            r["ratios"][name] = {k: m[k] / p[k] for k in keys}
        r["minus_gap_mae"] = {
            "energy_meV_per_atom": m[keys[0]] - GAP_MAE[0],
            "force_eV_per_A": m[keys[1]] - GAP_MAE[1],
        }
        r["over_gap_mae"] = {"energy": m[keys[0]] / GAP_MAE[0], "force": m[keys[1]] / GAP_MAE[1]}
        for name in ("SNAP", "qSNAP"):
            rr = r["ratios"][name]
            print(f"{r['name']:<42} vs {name:<5}: " + " ".join(f"{rr[k]:.2f}" for k in keys))
        g = r["minus_gap_mae"]
        print(
            f"{r['name']:<42} − GAP: {g['energy_meV_per_atom']:+.2f} meV/atom, "
            f"{g['force_eV_per_A']:+.3f} eV/Å (× {r['over_gap_mae']['energy']:.2f}, "
            f"× {r['over_gap_mae']['force']:.2f})"
        )

    print("\nTraining set (both potforge and the published files were fitted to it), MAE E / F")
    for name in ("SNAP", "qSNAP"):
        m = published[name]["train_metrics"]
        print(
            f"{'published ' + name:<42} {m['energy_mae_meV_per_atom']:7.2f} "
            f"{m['force_mae_eV_per_A']:7.3f}"
        )
    for r in models:
        m = r["train_metrics"]
        print(f"{r['name']:<42} {m['energy_mae_meV_per_atom']:7.2f} {m['force_mae_eV_per_A']:7.3f}")

    print(
        "\nPaired bootstrap over the 23 test structures: MAE(potforge) − MAE(published SNAP), "
        "95 % interval, fraction of resamples with potforge not worse"
    )
    for r, (_, pred) in zip(models[:2], fitted[:2], strict=True):
        r["vs_published_SNAP_bootstrap"] = bs = paired_bootstrap(test, pred, published_pred["SNAP"])
        e, f = bs["energy_mae_meV_per_atom"], bs["force_mae_eV_per_A"]
        print(
            f"{r['name']:<42} E [{e['difference_interval_95'][0]:+.2f}, "
            f"{e['difference_interval_95'][1]:+.2f}] meV/atom ({e['fraction_a_not_worse']:.2f}); "
            f"F [{f['difference_interval_95'][0]:+.4f}, {f['difference_interval_95'][1]:+.4f}] "
            f"eV/Å ({f['fraction_a_not_worse']:.2f})"
        )

    reach = published_in_potforge(ctx, train, published_pred["SNAP train"])
    rl, ce, cf = reach["reproduce_lammps"], reach["closest_energy"], reach["closest_force"]
    print(
        "\nIs the published SNAP a potforge fit of training.json? Its coefficients in potforge's "
        f"linear SNAP reproduce LAMMPS to {rl['energy_max_abs_eV']:.1e} eV, "
        f"{rl['force_max_abs_eV_per_A']:.1e} eV/Å (training set)."
    )
    print(
        "Unregularised weighted fits to training energies + forces, energy weight swept "
        "1…1e8 (per-atom and total-energy residuals), RMS difference of their training "
        "predictions from the published ones:"
    )
    for tag, r in (("closest in energy", ce), ("closest in force", cf)):
        print(
            f"  {tag:<18} {r['energy_residual']:>8} residuals, weight {r['energy_weight']:.3g}: "
            f"{r['energy_rms_diff_meV_per_atom']:.2f} meV/atom, "
            f"{r['force_rms_diff_eV_per_A']:.3f} eV/Å"
        )

    lin, huber, _, default = models
    targets = []
    for label, row, ref, op in (
        ("linear SNAP 2J=6", lin, "SNAP", "≤"),
        ("linear SNAP 2J=6 Huber", huber, "SNAP", "≤"),
        ("default model", default, "qSNAP", "<"),
    ):
        for i, (what, key, unit, fmt) in enumerate(
            (
                ("energy", "energy_mae_meV_per_atom", "meV/atom", ".2f"),
                ("force", "force_mae_eV_per_A", "eV/Å", ".3f"),
            )
        ):
            v, bound = row["metrics"][key], PUBLISHED_MAE[ref][i]
            targets.append(
                (
                    f"{label} {what} MAE {op} published {ref} {bound:g} {unit}",
                    v <= bound if op == "≤" else v < bound,
                    f"{v:{fmt}}",
                )
            )
    for r in models:
        targets.append(
            (
                f"fit ≤ {FIT_SECONDS_TARGET:.0f} s: {r['name']}",
                r["fit_info"]["fit_seconds"] <= FIT_SECONDS_TARGET,
                f"{r['fit_info']['fit_seconds']:.2f} s",
            )
        )
    print("\nTargets")
    for text, ok, val in targets:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}  ({val})")

    total = time.perf_counter() - t_start
    print(f"\ntotal runtime {total:.1f} s")
    doc = {
        "benchmark": "Zuo Mo (mlearn), test.json",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "note": "2 shared cores, n_jobs=1",
        },
        "quick": args.quick,
        "n_train_structures": len(train),
        "n_train_atoms": n_train_atoms,
        "published": published,
        "published_reference_mae": {
            "SNAP": PUBLISHED_MAE["SNAP"],
            "qSNAP": PUBLISHED_MAE["qSNAP"],
            "GAP": GAP_MAE,
        },
        "weight_search": search,
        "huber_search": hsearch,
        "models": models,
        "published_in_potforge": reach,
        "targets": [{"target": t, "pass": bool(ok), "value": v} for t, ok, v in targets],
        "total_seconds": total,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1, default=float))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
