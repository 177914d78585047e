"""``potforge eval``: errors of a saved model on any labelled data (and, when the model has a
posterior, the coverage of the reference values by its bounds)."""

from __future__ import annotations

import argparse

from potforge.commands._common import staged_output, write_json
from potforge.commands.fit import evaluate, uq_line
from potforge.data.readers import read_many
from potforge.metrics import format_table
from potforge.model import LinearPotential
from potforge.plots import parity_plot


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a saved model on labelled data", description=__doc__)
    p.add_argument("--model", required=True, metavar="DIR", help="folder written by potforge fit")
    p.add_argument("--data", nargs="+", required=True, metavar="FILE", help="labelled data")
    p.add_argument("--out", required=True, metavar="DIR2", help="output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = LinearPotential.load(args.model)
    data = read_many(args.data)
    report, sets = evaluate(model, {"test": data})
    with staged_output(args.out) as out:
        parity_plot(out / "parity.png", sets)
        report.update(n_params=model.n_params, model=args.model)
        write_json(out / "metrics.json", report)
    print(format_table({"test": report["test"]}, {"test": report["test"]["groups"]}))
    if model.has_posterior:
        print(uq_line(report))
    print(f"wrote {args.out}/metrics.json, parity.png")
    return 0
