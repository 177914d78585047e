"""``potforge fit``: fit a linear potential to labelled structures and report its errors."""

from __future__ import annotations

import argparse

from potforge.commands._common import staged_output, write_json
from potforge.data.readers import read_many
from potforge.metrics import error_metrics, format_table, grouped_metrics
from potforge.model import DEFAULT_SPEC, LinearPotential
from potforge.plots import parity_plot


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit", help="fit a linear potential", description=__doc__)
    p.add_argument(
        "--train",
        nargs="+",
        required=True,
        metavar="FILE",
        help="training data (mlearn/maml .json, extxyz, ASE .db)",
    )
    p.add_argument("--test", nargs="*", default=[], metavar="FILE", help="test data")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--model",
        default=DEFAULT_SPEC,
        metavar="SPEC",
        help=f"model spec (default: {DEFAULT_SPEC})",
    )
    p.add_argument("--sigma-energy", type=float, default=None, help="eV/atom")
    p.add_argument("--sigma-force", type=float, default=None, help="eV/Å")
    p.add_argument("--sigma-stress", type=float, default=None, help="eV/Å³")
    p.add_argument("--alpha", type=float, default=None, help="ridge strength")
    p.add_argument("--jobs", type=int, default=1, help="processes for descriptors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    train = read_many(args.train)
    test = read_many(args.test) if args.test else []
    names = ("sigma_energy", "sigma_force", "sigma_stress", "alpha")
    kw = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    model = LinearPotential(args.model, n_jobs=args.jobs, **kw).fit(train)
    with staged_output(args.out) as out:
        model.save(out)
        model.to_lammps(out / "lammps")
        report, sets = evaluate(model, {"train": train, "test": test})
        report.update(
            n_params=model.n_params,
            fit_seconds=model.fit_info_["fit_seconds"],
            model=args.model,
            fit_info=model.fit_info_,
        )
        print(
            f"model {args.model}: {model.n_params} parameters, fit in "
            f"{model.fit_info_['fit_seconds']:.1f} s"
        )
        print(
            format_table(
                {k: report[k] for k in ("train", "test") if k in report},
                {k: report[k]["groups"] for k in ("train", "test") if k in report},
            )
        )
        parity_plot(out / "parity.png", sets)
        write_json(out / "metrics.json", report)
    print(f"wrote {args.out}/model.json, metrics.json, parity.png, lammps/potential.in")
    return 0


def evaluate(model: LinearPotential, sets: dict) -> tuple[dict, dict]:
    """Metrics (overall and per group) for each named, non-empty set of structures.

    Returns the report and, per set, the ``(structures, predictions)`` for plotting.
    """
    report: dict = {}
    evaluated: dict = {}
    for name, structs in sets.items():
        if not structs:
            continue
        preds = model.predict(structs)
        report[name] = {**error_metrics(structs, preds), "groups": grouped_metrics(structs, preds)}
        evaluated[name] = (structs, preds)
    return report, evaluated
