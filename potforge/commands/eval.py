"""``potforge eval``: errors of a saved model on any labelled data (and, when the model has a
posterior, the coverage of the reference values by its bounds)."""

from __future__ import annotations

import argparse
from pathlib import Path

from potforge.commands._common import (
    add_output_options,
    add_stress_order,
    progress,
    read_labelled,
    uq_line,
    write_json,
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``eval`` verb to ``sub``."""
    p = sub.add_parser("eval", help="evaluate a saved model on labelled data", description=__doc__)
    p.add_argument("--model", required=True, metavar="DIR", help="folder written by potforge fit")
    p.add_argument("--data", nargs="+", required=True, metavar="FILE", help="labelled data")
    add_stress_order(p)
    add_output_options(p)
    p.set_defaults(func=run)


def set_name(files: list[str]) -> str:
    """The table's name for the data: the file stem, or ``"N files"``."""
    return Path(files[0]).stem if len(files) == 1 else f"{len(files)} files"


def run(args: argparse.Namespace) -> int:
    """``potforge eval``: errors (and coverage) of a saved model on labelled data."""
    from potforge.commands._output import OutputFolder
    from potforge.errors import DataError
    from potforge.model import LinearPotential
    from potforge.model.metrics import evaluate, format_table, structure_residuals, write_residuals
    from potforge.model.plots import parity_plot

    if not args.out:
        raise DataError("--out is required: the folder for metrics.json and parity.png")
    folder = OutputFolder(
        args.out,
        force=args.force,
        inputs=[args.model, *args.data],
        argv=args.argv,
        quiet=args.quiet,
    )
    model = LinearPotential.load(args.model)
    data = read_labelled(args.data, args.stress_order)
    report, sets = evaluate(model, {"test": data}, progress(args))
    name = set_name(args.data)
    with folder.staged() as out:
        structs, preds = sets["test"]
        parity_plot(out / "parity.png", {name: (structs, preds)})
        write_residuals(out / "residuals.csv", structure_residuals(structs, preds, name))
        report.update(n_params=model.n_params, model=args.model, data=list(args.data))
        write_json(out / "metrics.json", report)
        print(format_table({name: report["test"]}, {name: report["test"]["groups"]}))
        if model.has_posterior:
            print(uq_line(report).replace("test:", f"{name}:"))
        print(
            f"wrote {args.out}/: metrics.json, residuals.csv, parity.png, provenance.json, log.txt"
        )
    return 0
