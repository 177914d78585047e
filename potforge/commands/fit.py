"""``potforge fit``: fit a linear potential to labelled structures and report its errors."""

from __future__ import annotations

import argparse
import time

from potforge.commands._common import staged_output, write_json
from potforge.commands.uq import add_posterior_options, posterior_options
from potforge.data.readers import read_many
from potforge.fitting import LOSSES
from potforge.metrics import error_metrics, format_table, grouped_metrics, uncertainty_metrics
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
    p.add_argument(
        "--loss",
        choices=LOSSES,
        default=None,
        help="loss on σ-normalised residuals (default squared; huber and l1 by IRLS)",
    )
    p.add_argument(
        "--huber-delta", type=float, default=None, help="Huber threshold in units of σ"
    )
    p.add_argument("--jobs", type=int, default=1, help="processes for descriptors")
    p.add_argument(
        "--uq",
        choices=("none", "pops", "bayes", "bootstrap"),
        default="none",
        help="also fit an uncertainty posterior (stored in the model folder; adds coverage "
        "metrics); default none (see `potforge uq`)",
    )
    add_posterior_options(p, default="none")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    train = read_many(args.train)
    test = read_many(args.test) if args.test else []
    names = ("sigma_energy", "sigma_force", "sigma_stress", "alpha", "loss", "huber_delta")
    kw = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    model = LinearPotential(args.model, n_jobs=args.jobs, **kw)
    post_kw = posterior_options(args, args.uq, "--uq")  # misplaced options fail before the fit
    if args.uq == "none":
        model.fit(train)
    else:  # one descriptor pass for the fit and the posterior
        t0 = time.perf_counter()
        designs = model.setup(train).structure_designs(train)
        seconds = time.perf_counter() - t0
        model.fit(train, designs=designs)
        model.fit_info_["descriptor_seconds"] = seconds
        model.fit_info_["fit_seconds"] += seconds
        model.fit_posterior(train, args.uq, designs=designs, **post_kw)
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
        if model.has_posterior:
            print(uq_line(report))
        print(
            format_table(
                {k: report[k] for k in ("train", "test") if k in report},
                {k: report[k]["groups"] for k in ("train", "test") if k in report},
            )
        )
        parity_plot(out / "parity.png", sets)
        write_json(out / "metrics.json", report)
    extra = ", posterior.npz" if model.has_posterior else ""
    print(f"wrote {args.out}/model.json{extra}, metrics.json, parity.png, lammps/potential.in")
    return 0


def uq_line(report: dict) -> str:
    """One line per set: coverage and median half-widths of the posterior's bounds."""
    parts = []
    for name in ("train", "test"):
        m = report.get(name)
        if m and m.get("energy_coverage") is not None:
            e_half, f_half = m["energy_bound_median_meV_per_atom"], m["force_bound_median_eV_per_A"]
            parts.append(
                f"{name}: E {m['energy_coverage']:.3f} (±{e_half:.3g} meV/atom), "
                f"F {m['force_coverage']:.3f} (±{f_half:.3g} eV/Å)"
            )
    return "coverage by the posterior's bounds, " + "; ".join(parts)


def evaluate(model: LinearPotential, sets: dict) -> tuple[dict, dict]:
    """Metrics (overall and per group) for each named, non-empty set of structures; with a
    posterior also coverage and bound widths (:func:`potforge.metrics.uncertainty_metrics`),
    overall and per group.

    Returns the report and, per set, the ``(structures, predictions)`` for plotting.
    """
    report: dict = {}
    evaluated: dict = {}
    for name, structs in sets.items():
        if not structs:
            continue
        preds = model.predict(structs, return_bounds=model.has_posterior)
        report[name] = {**error_metrics(structs, preds), "groups": grouped_metrics(structs, preds)}
        if model.has_posterior:
            report[name].update(uncertainty_metrics(structs, preds))
            by_group = grouped_metrics(structs, preds, uncertainty_metrics)
            for g, m in by_group.items():
                report[name]["groups"][g].update(m)
        evaluated[name] = (structs, preds)
    return report, evaluated
