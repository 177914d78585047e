"""Benchmark: the whole property suite for W under the shipped SNAP potential.

Run ``python benchmarks/properties.py`` (options: ``--qoi a0,C11``, ``--out FILE``).  Prints value,
unit and wall time per QoI, the total, and writes ``benchmarks/results/properties.json``.
Shared work (bulk relaxation, elastic tensor, phonons, each GSF curve) is charged to the first QoI
that needs it, as :func:`potforge.properties.run_suite` reports.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from potforge.engines.lammps import LammpsCalculator, potentials_dir
from potforge.properties import default_qois, run_suite

RESULTS = Path(__file__).resolve().parent / "results" / "properties.json"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qoi", help="comma-separated QoIs (default: every bcc QoI)")
    parser.add_argument("--out", default=str(RESULTS), help="JSON output file")
    args = parser.parse_args(argv)

    calc = LammpsCalculator(["include W_2940_2017_2.snap"], ["W"], potentials_dir())
    qois = args.qoi.split(",") if args.qoi else default_qois("bcc")
    t0 = time.perf_counter()
    res = run_suite(calc, "W", qois)
    total = time.perf_counter() - t0

    print(f"\nW, lammps:W_2940_2017_2.snap — {len(res)} QoIs")
    print(f"{'QoI':<16}{'value':>12}  {'unit':<8}{'seconds':>9}")
    for name, r in res.items():
        print(f"{name:<16}{r['value']:>12.5g}  {r['unit']:<8}{r['seconds']:>9.2f}")
    print(f"{'total':<38}{total:>9.2f}")

    doc = {
        "benchmark": "properties",
        "element": "W",
        "calculator": "lammps:W_2940_2017_2.snap",
        "machine": f"{platform.machine()} Linux, {os.cpu_count()} cores (shared)",
        "date": time.strftime("%Y-%m-%d"),
        "total_seconds": total,
        "qois": res,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")
    return doc


if __name__ == "__main__":
    main()
