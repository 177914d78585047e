"""maml Nb (Li et al., npj Comput. Mater. 6, 70, 2020) benchmark: potforge fits beside the
published quaternary Ta-W-Nb-Mo SNAP, evaluated in the same run on ``Nb_Test``.

Trains on ``Nb_AIMD + Nb_Elastic + Nb_Surface`` from ``../shared/data/maml-NbMoTaW`` and reports
test RMSEs (energy meV/atom, raw and after removing the constant per-atom offset; force eV/Å
per component) and parameter counts.  Also checks the maml ``outputs.stress`` convention: a
linear SNAP fitted to energies and forces only (σ_stress = 1e3 eV/Å³, i.e. stresses unused),
and the published SNAP, predict the stresses of ``Nb_Elastic``; the raw label columns are
compared with the predicted components under several candidate orders and signs.
Writes ``benchmarks/results/maml_nb.json``.

Usage: ``python benchmarks/maml_nb.py [--quick]``
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

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "maml-NbMoTaW"
OUT = ROOT / "benchmarks" / "results" / "maml_nb.json"
TRAIN_FILES = ("Nb_AIMD.json", "Nb_Elastic.json", "Nb_Surface.json")
TEST_FILE = "Nb_Test.json"
SNAP_FILES = ("snap-Ta-W-Nb-Mo.snapcoeff", "snap-Ta-W-Nb-Mo.snapparam")

MODELS = {  # name: (spec, LinearPotential keyword arguments); weights fixed a priori, not tuned
    "linear SNAP 2J=6": ("snap(twojmax=6,rcutfac=4.6)+const", {}),
    "linear SNAP 2J=6, σ_E=1e-3 σ_F=0.05": (
        "snap(twojmax=6,rcutfac=4.6)+const",
        {"sigma_energy": 1e-3, "sigma_force": 0.05},
    ),
    "default (qSNAP 2J=6 + ZBL)": (None, {}),  # DEFAULT_SPEC, filled in at run time
    "small composable": (
        "pair(n_basis=12,rcut=5.5)+embed(n_basis=8,rcut=5.0)+snap(twojmax=4,rcutfac=4.6)+zbl+const",
        {},
    ),
}
QUICK_MODELS = ("linear SNAP 2J=6", "small composable")
LITERATURE = {
    "n_params": 75,
    "force_rmse_eV_per_A": 0.172,
    "energy_rmse_meV_per_atom": 13.0,
    "note": "composable Nb model in the literature, on its own (different) Nb dataset",
}

# Candidate readings of the six raw maml stress columns: for ASE's (xx, yy, zz, yz, xz, xy),
# which raw column, and the sign that turns the raw value into ASE's tension-positive stress.
ORDERS = {
    "VASP xx yy zz xy yz zx (reader)": (0, 1, 2, 4, 5, 3),
    "xx yy zz xy zx yz (mlearn)": (0, 1, 2, 5, 4, 3),
    "xx yy zz yz xz xy (ASE/Voigt)": (0, 1, 2, 3, 4, 5),
    "xx yy zz zx yz xy": (0, 1, 2, 4, 3, 5),
}


def published_snap_commands(tmp: Path) -> list[str]:
    """Copy the quaternary SNAP into ``tmp``, dropping the obsolete ``diagonalstyle`` line."""
    coeff, param = SNAP_FILES
    (tmp / coeff).write_text((DATA / coeff).read_text())
    lines = (DATA / param).read_text().splitlines()
    (tmp / param).write_text(
        "\n".join(x for x in lines if not x.strip().startswith("diagonalstyle")) + "\n"
    )
    return ["pair_style snap", f"pair_coeff * * {coeff} {param} Nb"]


def published_n_params() -> tuple[int, int]:
    """(coefficients per element, elements) of the published quaternary SNAP."""
    toks = [
        ln.split()
        for ln in (DATA / SNAP_FILES[0]).read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    n_el, n_coef = int(toks[0][0]), int(toks[0][1])
    return n_coef, n_el


def lammps_predict(structures, commands, workdir) -> list[dict]:
    from potforge.engines.lammps import LammpsCalculator

    calc = LammpsCalculator(commands, ["Nb"], workdir=workdir)
    out = []
    for a in structures:
        calc.calculate(a, ["energy", "forces", "stress"])
        out.append(dict(calc.results))
    return out


def test_metrics(structures, predictions) -> dict:
    """error_metrics plus energy RMSE/MAE after removing the mean per-atom energy error."""
    from potforge.model.metrics import error_metrics, residuals

    m = error_metrics(structures, predictions)
    e = residuals(structures, predictions)["energy"]
    e0 = e - e.mean()
    m["energy_offset_meV_per_atom"] = float(e.mean() * 1000.0)
    m["energy_rmse_offset_removed_meV_per_atom"] = float(np.sqrt(np.mean(e0**2)) * 1000.0)
    m["energy_mae_offset_removed_meV_per_atom"] = float(np.mean(np.abs(e0)) * 1000.0)
    return m


def stress_convention(raw_kbar: np.ndarray, pred_ase: np.ndarray) -> dict:
    """Compare raw maml stress columns (kbar) with predicted ASE stresses (eV/Å³).

    Returns the raw-column × predicted-component correlation matrix, and per candidate order the
    correlation, least-squares slope and RMSE of (sign·raw) against the prediction in kbar.
    """
    from potforge.data.readers import KBAR

    pred = pred_ase / KBAR  # kbar, ASE order, tension positive
    corr = np.full((6, 6), np.nan)
    for i in range(6):
        for j in range(6):
            if raw_kbar[:, i].std() > 0 and pred[:, j].std() > 0:
                corr[i, j] = np.corrcoef(raw_kbar[:, i], pred[:, j])[0, 1]
    # only structures with a non-zero shear label say anything about the shear order
    shear = np.abs(raw_kbar[:, 3:]).max(axis=1) > 1e-8
    out = {
        "corr_raw_col_vs_pred_ase": corr.round(4).tolist(),
        "pred_ase_order": ["xx", "yy", "zz", "yz", "xz", "xy"],
        "n_structures": len(raw_kbar),
        "n_with_shear": int(shear.sum()),
        "candidates": {},
    }
    for name, order in ORDERS.items():
        for sign in (-1.0, 1.0):
            lab = sign * raw_kbar[:, list(order)]
            d, s = lab[:, :3].ravel(), lab[shear][:, 3:].ravel()
            pd_, ps = pred[:, :3].ravel(), pred[shear][:, 3:].ravel()
            res = {}
            for part, x, y in (("diagonal", d, pd_), ("shear", s, ps)):
                res[part] = {
                    "corr": float(np.corrcoef(x, y)[0, 1]),
                    "slope_pred_vs_label": float(np.dot(x, y) / np.dot(x, x)),
                    "rmse_kbar": float(np.sqrt(np.mean((x - y) ** 2))),
                }
            key = f"{'-' if sign < 0 else '+'}1 × raw, {name}"
            out["candidates"][key] = res
    best = max(out["candidates"], key=lambda k: out["candidates"][k]["shear"]["corr"])
    out["best_shear_candidate"] = best
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the qSNAP model")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    missing = [f for f in (*TRAIN_FILES, TEST_FILE, *SNAP_FILES) if not (DATA / f).exists()]
    if missing:
        print(
            f"maml_nb: data folder {DATA.resolve()} lacks {', '.join(missing)}; "
            "nothing to benchmark.",
            file=sys.stderr,
        )
        return 2

    from potforge.data.readers import read_many, read_structures
    from potforge.model import DEFAULT_SPEC, LinearPotential
    from potforge.model.fitting import weighted_lstsq
    from potforge.model.rows import assemble

    MODELS["default (qSNAP 2J=6 + ZBL)"] = (DEFAULT_SPEC, {})
    t_start = time.perf_counter()
    # AIMD/Surface/Test hold no sheared cell to detect the shear order from: VASP's, as Elastic
    train = read_many([DATA / f for f in TRAIN_FILES], stress_order="vasp")
    test = read_structures(DATA / TEST_FILE, stress_order="vasp")
    elastic = [a for a in train if a.info["group"] == "Elastic"]
    n_train_atoms = sum(len(a) for a in train)
    print(
        f"training: {len(train)} structures, {n_train_atoms} atoms "
        f"({', '.join(TRAIN_FILES)}); test: {len(test)} structures, "
        f"{sum(len(a) for a in test)} atoms ({TEST_FILE})"
    )

    with tempfile.TemporaryDirectory() as tmp:
        cmds = published_snap_commands(Path(tmp))
        pub_test = lammps_predict(test, cmds, tmp)
        pub_elastic = lammps_predict(elastic, cmds, tmp)
    n_coef, n_el = published_n_params()
    published = {
        "metrics": test_metrics(test, pub_test),
        "n_params_per_element": n_coef,
        "n_params_total": n_coef * n_el,
    }

    # --- stress convention: energies + forces only, then predict the Elastic stresses ---------
    raw = np.array(
        [
            json.loads((DATA / "Nb_Elastic.json").read_text())[a.info["index"]]["outputs"]["stress"]
            for a in elastic
        ],
        dtype=float,
    )
    probe = LinearPotential(terms=MODELS["linear SNAP 2J=6"][0]).setup(train)
    designs = probe.structure_designs(train)
    dm = assemble(designs, train)
    coef = weighted_lstsq(dm.A, dm.y, dm.weights((1e-4, 0.2, 1e3)), probe.alpha)
    el_idx = [k for k, a in enumerate(train) if a.info["group"] == "Elastic"]
    pred_el = probe.predict_designs([designs[k] for k in el_idx], coef)
    stress_check = {
        "fit": "linear SNAP 2J=6, σ_E=1e-4 eV/atom, σ_F=0.2 eV/Å, σ_S=1e3 eV/Å³ (no stress)",
        "potforge_EF_only": stress_convention(raw, np.array([p["stress"] for p in pred_el])),
        "published_SNAP": stress_convention(raw, np.array([p["stress"] for p in pub_elastic])),
    }
    print(
        f"\nStress convention on Nb_Elastic ({len(elastic)} structures, "
        f"{stress_check['potforge_EF_only']['n_with_shear']} with non-zero shear labels): "
        "correlation / slope of prediction vs label"
    )
    print(
        f"{'candidate reading of raw outputs.stress':<44} {'predictor':<20} "
        f"{'diag r':>7} {'slope':>6} {'shear r':>8} {'slope':>6}"
    )
    for who in ("potforge_EF_only", "published_SNAP"):
        for key, res in stress_check[who]["candidates"].items():
            print(
                f"{key:<44} {who:<20} {res['diagonal']['corr']:>7.3f} "
                f"{res['diagonal']['slope_pred_vs_label']:>6.2f} {res['shear']['corr']:>8.3f} "
                f"{res['shear']['slope_pred_vs_label']:>6.2f}"
            )
    for who in ("potforge_EF_only", "published_SNAP"):
        c = np.array(stress_check[who]["corr_raw_col_vs_pred_ase"])
        print(f"{who}: corr(raw column i, predicted ASE component j), j = xx yy zz yz xz xy")
        for i in range(6):
            print(f"   raw[{i}] " + " ".join(f"{x:>6.2f}" for x in c[i]))

    # --- potforge models ------------------------------------------------------------------------
    names = QUICK_MODELS if args.quick else tuple(MODELS)
    models = []
    for name in names:
        spec, kw = MODELS[name]
        model = LinearPotential(terms=spec, **kw).fit(train)
        per_term: dict[str, int] = {}
        for pname in model.param_names:
            term = pname.split("[", 1)[0]
            per_term[term] = per_term.get(term, 0) + 1
        models.append(
            {
                "name": name,
                "spec": spec,
                "weights": {
                    "sigma_energy": model.sigma_energy,
                    "sigma_force": model.sigma_force,
                    "sigma_stress": model.sigma_stress,
                },
                "n_params": int(model.n_params),
                "n_params_per_term": per_term,
                "fit_info": dict(model.fit_info_),
                "metrics": test_metrics(test, model.predict(test)),
            }
        )

    print(
        "\nNb_Test RMSE (energy meV/atom; 'E-RMSE−off' after removing the mean per-atom "
        "energy error; force eV/Å per component)"
    )
    hdr = (
        f"{'model':<46} {'P':>5} {'E-RMSE':>7} {'offset':>7} {'E-RMSE−off':>10} "
        f"{'F-RMSE':>7} {'F-MAE':>6} {'S-RMSE GPa':>10} {'fit s':>6}"
    )
    print(hdr)
    print("-" * len(hdr))
    pm = published["metrics"]
    print(
        f"{'published Ta-W-Nb-Mo SNAP (LAMMPS)':<46} {n_coef:>5} "
        f"{pm['energy_rmse_meV_per_atom']:>7.1f} {pm['energy_offset_meV_per_atom']:>7.1f} "
        f"{pm['energy_rmse_offset_removed_meV_per_atom']:>10.2f} "
        f"{pm['force_rmse_eV_per_A']:>7.3f} {pm['force_mae_eV_per_A']:>6.3f} "
        f"{pm['stress_rmse_GPa']:>10.2f}"
    )
    for r in models:
        m = r["metrics"]
        print(
            f"{'potforge ' + r['name']:<46} {r['n_params']:>5} "
            f"{m['energy_rmse_meV_per_atom']:>7.2f} {m['energy_offset_meV_per_atom']:>7.2f} "
            f"{m['energy_rmse_offset_removed_meV_per_atom']:>10.2f} "
            f"{m['force_rmse_eV_per_A']:>7.3f} {m['force_mae_eV_per_A']:>6.3f} "
            f"{m['stress_rmse_GPa']:>10.2f} {r['fit_info']['fit_seconds']:>6.2f}"
        )
    print(
        f"{'literature composable Nb (other dataset)':<46} {LITERATURE['n_params']:>5} "
        f"{LITERATURE['energy_rmse_meV_per_atom']:>7.1f} {'':>7} {'':>10} "
        f"{LITERATURE['force_rmse_eV_per_A']:>7.3f}"
    )
    print(
        f"published SNAP: {n_coef} coefficients per element ({n_coef * n_el} for all {n_el} "
        "elements); only the Nb block acts here"
    )
    for r in models:
        print(f"  {r['name']}: parameters per term {r['n_params_per_term']}")

    total = time.perf_counter() - t_start
    print(f"\ntotal runtime {total:.1f} s")
    doc = {
        "benchmark": "maml Nb: train Nb_AIMD+Nb_Elastic+Nb_Surface, test Nb_Test",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "note": "2 shared cores, n_jobs=1",
        },
        "quick": args.quick,
        "n_train_structures": len(train),
        "n_train_atoms": n_train_atoms,
        "published_snap": published,
        "literature_reference": LITERATURE,
        "models": models,
        "stress_convention": stress_check,
        "total_seconds": total,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
