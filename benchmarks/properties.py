"""Benchmark: the whole property suite for W — reference, a fitted linear model, and its dQ/dθ.

Run ``python benchmarks/properties.py`` (options: ``--qoi a0,C11``, ``--model SPEC``,
``--out FILE``).  Three timed runs in one process:

1. the suite under the shipped SNAP (``lammps:W_2940_2017_2.snap``, native LAMMPS);
2. a potforge linear model (default: linear SNAP 2J=6 + ZBL + constant) fitted to the 33 W
   structures of ``potforge demo`` labelled by that SNAP, and the same suite under it;
3. the exact sensitivities dQ/dθ of every QoI of that model (:mod:`potforge.properties.
   sensitivity`), after its values (the target: suite + sensitivities ≤ 60 s on 2 cores).

Prints the model-vs-reference table with relative errors and writes
``benchmarks/results/properties.json``.  Shared work (bulk relaxation, elastic tensor, phonons,
each GSF curve) is charged to the first QoI that needs it, as ``run_suite`` reports.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from potforge.data.builders import w_structures
from potforge.engines.lammps import LammpsCalculator, potentials_dir
from potforge.model import LinearPotential
from potforge.oracles.labelling import label_in_process
from potforge.properties import default_qois, run_suite
from potforge.qoi.sensitivity import Sensitivity

RESULTS = Path(__file__).resolve().parent / "results" / "properties.json"
MODEL = "snap(twojmax=6,rcutfac=4.7)+zbl(inner=1.0,outer=1.6)+const"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qoi", help="comma-separated QoIs (default: every bcc QoI)")
    parser.add_argument("--model", default=MODEL, help=f"model spec (default {MODEL})")
    parser.add_argument("--out", default=str(RESULTS), help="JSON output file")
    args = parser.parse_args(argv)
    qois = args.qoi.split(",") if args.qoi else default_qois("bcc")

    calc = LammpsCalculator(["include W_2940_2017_2.snap"], ["W"], potentials_dir())
    t0 = time.perf_counter()
    ref = run_suite(calc, "W", qois)
    t_ref = time.perf_counter() - t0

    model = LinearPotential(args.model).fit(label_in_process(w_structures(), calc))
    t0 = time.perf_counter()
    sens = Sensitivity(model, "W")
    values = run_suite(sens.calc, "W", qois, suite=sens.suite)  # the gradients reuse its work
    t_values = time.perf_counter() - t0
    grads = sens.gradients(qois, progress=True)
    t_total = time.perf_counter() - t0

    print(
        f"\nW: reference lammps:W_2940_2017_2.snap vs potforge {args.model} "
        f"({model.n_params} params, fitted to 33 demo structures)"
    )
    print(
        f"{'QoI':<16}{'reference':>11}{'model':>11}  {'unit':<8}{'rel.err':>8}"
        f"{'|dQ/dθ|':>10}{'ref s':>7}{'model s':>8}"
    )
    for q in qois:
        r, m = ref[q]["value"], values[q]["value"]
        g = np.linalg.norm(grads[q]["gradient"])
        print(
            f"{q:<16}{r:>11.5g}{m:>11.5g}  {ref[q]['unit']:<8}{(m - r) / abs(r):>8.3f}"
            f"{g:>10.3g}{ref[q]['seconds']:>7.2f}{values[q]['seconds']:>8.2f}"
        )
    print(
        f"reference suite {t_ref:.1f} s; model suite {t_values:.1f} s; "
        f"model suite + sensitivities {t_total:.1f} s (target ≤ 60 s)"
    )

    doc = {
        "benchmark": "properties",
        "element": "W",
        "calculator": "lammps:W_2940_2017_2.snap",
        "model": args.model,
        "n_params": model.n_params,
        "machine": f"{platform.machine()} Linux, {os.cpu_count()} cores (shared)",
        "date": time.strftime("%Y-%m-%d"),
        "total_seconds": t_ref,
        "model_suite_seconds": t_values,
        "model_suite_with_sensitivities_seconds": t_total,
        "qois": ref,
        "model_qois": {
            q: {**values[q], "gradient_norm": float(np.linalg.norm(grads[q]["gradient"]))}
            for q in qois
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")
    return doc


if __name__ == "__main__":
    main()
