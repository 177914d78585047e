"""The default campaign beside two baselines (issue 20 "Done when"): wall time, oracle calls,
property errors and bounds.

All three are :func:`potforge.campaign.runner.run_campaign` runs with the same oracle (the
shipped DFT-trained W SNAP), the same model (the default campaign's ``[fit]``: SNAP 2J=6 + ZBL +
const, its σ weights), the same targets and tolerances, the same ``uq`` (POPS + split-conformal
inflation) and the same final ``properties`` stage, each in its own output folder and store:

* **campaign** — the built-in default campaign as it is (``potforge run``);
* **(a) label the pool** — the same ``generate`` stage (the same seeded pool), every candidate
  labelled (``select`` and ``active`` off, the budget the pool's size), then fit;
* **(b) DP-GEN-style** — no information matching: the fit stage labels a small near-equilibrium
  start of the campaign's ``[select] init`` size (10: strained, rattled, vacancy, slab and
  fault cells; no entropy configurations; enough for the same calibrated uq), then MD active
  learning with
  the trust window of ../shared/METHODS.md §5 (``acquisition = "trust"``; bounds the held-out
  U's quantiles 0.5 and 0.99, because a linear model's POPS spreads do not live on an NN
  ensemble's 0.05–0.15 eV/Å), up to 8 iterations of 8 frames, stopped by DP-GEN-like
  convergence (patience 3, rtol 5 %).

Per run: wall time, oracle calls (labels in its store; the reference property evaluations are
reported apart as ``validation_calls``), and per target QoI |value − oracle value| over its
tolerance, whether the calibrated bounds contain the oracle's value, and whether their
half-width is ≤ max(4 × |error|, tolerance).  Targets: the campaign's property errors the same or
better than (a)'s and (b)'s (mean of |error| / tolerance over the targets), with ≤ 1/5 of (a)'s
oracle calls and ≤ 1/2 of (b)'s, every bound containing the oracle's value at an acceptable
half-width.

Writes ``benchmarks/results/campaign_w.json``.  Run: ``python benchmarks/campaign_w.py`` (about
5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from potforge.campaign.config import Campaign, default_campaign
from potforge.campaign.runner import run_campaign

HERE = Path(__file__).resolve().parent / "results"


def variants(base: Campaign) -> dict[str, Campaign]:
    """The campaign and its two baselines (see the module docstring)."""
    r = dataclasses.replace
    pool_size = base.generate.n + base.generate.near_equilibrium
    label_all = r(
        base,
        budget=r(base.budget, oracle_calls=pool_size, minutes=60.0),
        select=r(base.select, enabled=False),
        active=r(base.active, enabled=False),
    )
    init = base.select.init
    dpgen = r(
        base,
        budget=r(base.budget, oracle_calls=init + 6 + 8 * 8, minutes=60.0),
        generate=r(base.generate, n=0, near_equilibrium=init),
        select=r(base.select, enabled=False),
        active=r(
            base.active,
            acquisition="trust",
            trust_quantiles=(0.5, 0.99),
            iterations=8,
            frames_per_iteration=8,
            patience=3,
            rtol=0.05,
        ),
    )
    return {"campaign": base, "label_pool": label_all, "dpgen": dpgen}


def summarise(name: str, result, seconds: float) -> dict:
    """One run's numbers."""
    qois = result.properties.get("qois", {})
    rows = {}
    for q, d in qois.items():
        if not d.get("target"):
            continue
        v, ref, tol = d.get("value"), d.get("reference"), d.get("tolerance")
        err = abs(v - ref) if v is not None and ref is not None else None
        half = (d["upper"] - d["lower"]) / 2 if d.get("lower") is not None else None
        rows[q] = {
            "value": v,
            "reference": ref,
            "tolerance": tol,
            "error": err,
            "error_over_tolerance": err / tol if err is not None and tol else None,
            "halfwidth": half,
            "inside": d.get("reference_inside"),
            "halfwidth_ok": (half <= max(4 * err, tol))
            if half is not None and err is not None
            else None,
            "precision_met": d.get("precision_met"),
            "accurate": d.get("accurate"),
        }
    ratios = [
        r["error_over_tolerance"] for r in rows.values() if r["error_over_tolerance"] is not None
    ]
    return {
        "name": name,
        "seconds": seconds,
        "oracle_calls": result.oracle_calls,
        "validation_calls": result.properties.get("validation_calls"),
        "failed_stages": result.failed,
        "mean_error_over_tolerance": float(np.mean(ratios)) if ratios else None,
        "qois": rows,
        "timeline": result.timeline,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keep", help="keep the three output folders under this folder")
    args = p.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="campaign_w_"))
    runs = {}
    for name, c in variants(default_campaign()).items():
        out = root / name
        if out.exists():
            shutil.rmtree(out)
        print(f"=== {name} ===", flush=True)
        t0 = time.perf_counter()
        result = run_campaign(
            c, out, say=lambda line, n=name: print(f"[{n}] {line}", flush=True), progress=False
        )
        runs[name] = summarise(name, result, time.perf_counter() - t0)
    c, a, b = runs["campaign"], runs["label_pool"], runs["dpgen"]
    err = "mean_error_over_tolerance"

    def ratio(x, y):
        return x / y if x is not None and y else None

    inside = [r["inside"] for r in c["qois"].values()]
    width = [r["halfwidth_ok"] for r in c["qois"].values()]
    out = {
        "date": date.today().isoformat(),
        "machine": f"{platform.node()} ({platform.machine()}, 2 cores)",
        "runs": runs,
        "calls_over_label_pool": ratio(c["oracle_calls"], a["oracle_calls"]),
        "calls_over_dpgen": ratio(c["oracle_calls"], b["oracle_calls"]),
        "error_over_label_pool": ratio(c[err], a[err]),
        "error_over_dpgen": ratio(c[err], b[err]),
        "bounds_inside_fraction": float(np.mean([bool(x) for x in inside])) if inside else None,
        "bounds_width_ok_fraction": float(np.mean([bool(x) for x in width])) if width else None,
        "targets": {
            "calls_over_label_pool": 0.2,
            "calls_over_dpgen": 0.5,
            "error_over_label_pool": 1.0,
            "error_over_dpgen": 1.0,
            "bounds_inside_fraction": 1.0,
            "bounds_width_ok_fraction": 1.0,
        },
    }
    HERE.mkdir(exist_ok=True)
    (HERE / "campaign_w.json").write_text(json.dumps(out, indent=1, default=str))
    print(f"\n{'run':<11}{'wall s':>8}{'calls':>7}{'mean |err|/tol':>16}")
    for r in runs.values():
        m = r["mean_error_over_tolerance"]
        print(
            f"{r['name']:<11}{r['seconds']:8.0f}{r['oracle_calls']:7d}"
            f"{m if m is None else round(m, 3)!s:>16}"
        )
    print(f"\n{'QoI':<15}" + "".join(f"{n + ' |err|/tol':>22}" for n in runs))
    for q in c["qois"]:
        cells = []
        for r in runs.values():
            x = r["qois"].get(q, {}).get("error_over_tolerance")
            cells.append(f"{'—' if x is None else f'{x:.3g}':>22}")
        print(f"{q:<15}" + "".join(cells))
    for k in out["targets"]:
        v = out[k]
        print(f"{k}: {v if v is None else round(v, 3)} (target {out['targets'][k]})")
    print(f"wrote {HERE / 'campaign_w.json'}; folders in {root}")


if __name__ == "__main__":
    main()
