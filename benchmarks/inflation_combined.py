"""Model-error inflation, one more raw source tried: ``σ_c = sqrt(σ_FIM² + c·h_POPS²)``.

Issue 16 item 5, the Zuo Mo target that ``benchmarks/inflation_coverage.py`` missed. The same
default model, data, folds and calibrator variants as that script (its ``load``, ``score``,
``nested_estimate`` and ``choose``); the raw uncertainty of every row is the Fisher σ and the
POPS half-width combined, ``σ_c = sqrt(σ_F² + c·h_P²)``, with ``c`` on a grid (``0``: the FIM
alone, ``∞``: POPS alone). The out-of-fold σ_F and h_P are those of
:func:`potforge.model.calibration.calibrate_uncertainty` (same folds, same out-of-fold errors).
``(c, variant)`` is chosen on the training data alone by the nested cross-evaluation and rule
of ``inflation_coverage.choose``; the test files are read only to evaluate (every pair's test
numbers are stored, the chosen one is marked).

Writes ``benchmarks/results/inflation_combined.json``.
Usage: ``python benchmarks/inflation_combined.py [--sets mo,nb] [--threads 2]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
import inflation_coverage as ic  # noqa: E402

OUT = ic.ROOT / "benchmarks" / "results" / "inflation_combined.json"
GRID = [0.0, *np.logspace(-4, 2, 13).tolist(), float("inf")]
VARIANTS: dict[str, dict[str, Any]] = {
    k: v for k, v in ic.VARIANTS.items() if v["by"] == "row_type"
}


def combined(sigma_f: np.ndarray, h_pops: np.ndarray, c: float) -> np.ndarray:
    return h_pops if np.isinf(c) else np.sqrt(sigma_f**2 + c * h_pops**2)


def run_set(name: str) -> dict:
    from potforge.model import DEFAULT_SPEC, LinearPotential
    from potforge.model.calibration import calibrate_uncertainty, raw_sigma
    from potforge.model.rows import assemble
    from potforge.uq.calibration import ConformalCalibrator

    t0 = time.perf_counter()
    train, test, label = ic.load(name)
    model = LinearPotential(terms=DEFAULT_SPEC).setup(train)
    d_tr = model.structure_designs(train, progress=False)
    d_te = model.structure_designs(test, progress=False)
    model.fit(train, designs=d_tr)
    model.fit_posterior(train, "pops", designs=d_tr)
    m_tr, m_te = assemble(d_tr, train), assemble(d_te, test)
    err, t = m_te.A @ model.coef_ - m_te.y, m_te.row_type
    _, lo, hi = model.posterior_.summary(m_te.A)
    h_te = 0.5 * (hi - lo)
    f_te = raw_sigma(
        "fisher", m_te.A, train_rows=(m_tr.A, m_tr.weights(model.sigma)), alpha=model.alpha
    )
    cp = calibrate_uncertainty(model, train, source="pops", designs=d_tr, random_state=0)
    cf = calibrate_uncertainty(model, train, source="fisher", designs=d_tr, random_state=0)
    if not np.allclose(cp.oof["errors"], cf.oof["errors"]):
        raise RuntimeError("the two calibrations' out-of-fold errors differ")
    g = np.array(m_tr.groups, dtype=object)[cp.oof["structure"]]
    rows: dict = {}
    for c in GRID:
        oof = {**cp.oof, "sigma": combined(cf.oof["sigma"], cp.oof["sigma"], c)}
        for v, kw in VARIANTS.items():
            cal = ConformalCalibrator(
                coverage=ic.COVERAGE, **{k: x for k, x in kw.items() if k != "by"}
            ).fit(oof["errors"], oof["sigma"], ic.ROW_NAMES[oof["row_type"]])
            half = cal.transform(combined(f_te, h_te, c), ic.ROW_NAMES[t])
            rows[f"c={c:.3g}, {v}"] = {
                "c": c if np.isfinite(c) else "inf",
                "variant": v,
                "training_nested": ic.nested_estimate(oof, kw, g),
                "test": ic.score(err, half, t),
            }
    best = ic.choose({k: r["training_nested"] for k, r in rows.items()})
    return {"data": label, "chosen": best, "rows": rows, "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="mo,nb")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    results = {}
    with threadpool_limits(args.threads):
        for s in args.sets.split(","):
            r = results[s] = run_set(s)
            print(f"\n[{s}] {r['data']}; {r['seconds']:.0f} s; chosen on training: {r['chosen']}")
            for k, x in r["rows"].items():
                n, e = x["training_nested"], x["test"]
                print(
                    f"{'*' if k == r['chosen'] else ' '}{k:34s} train E "
                    f"{n['energy']['coverage']:.3f}/{n['energy']['width_ratio']:.2f} F "
                    f"{n['force']['coverage']:.3f}/{n['force']['width_ratio']:.2f}  test E "
                    f"{e['energy']['coverage']:.3f}/{e['energy']['width_ratio']:.2f} F "
                    f"{e['force']['coverage']:.3f}/{e['force']['width_ratio']:.2f}"
                )
    flat = {}
    for s, r in results.items():
        chosen = r["rows"][r["chosen"]]["test"]
        for rt in ic.REPORTED:
            for metric in ("coverage", "width_ratio"):
                flat[f"{s}_{rt}_{metric}"] = chosen[rt][metric]
        flat[f"{s}_target_met"] = all(
            chosen[rt]["coverage"] >= ic.COVERAGE and chosen[rt]["width_ratio"] <= 4.0
            for rt in ic.REPORTED
        )
    doc = {**flat, "date": time.strftime("%Y-%m-%d"), "machine": "2-core shared VM", **results}
    args.out.write_text(json.dumps(doc, indent=1, default=str))
    print(f"\nwrote {args.out}")
    return doc


if __name__ == "__main__":
    main()
