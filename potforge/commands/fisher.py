"""``potforge fisher``: what the Fisher information of a data set says about a saved model —
its spectrum, conditioning, sloppy directions and the terms they involve, and (with --qoi or
--targets) how much of each property's target information the data carries."""

from __future__ import annotations

import argparse

from potforge.commands._common import add_output_options, parse_pairs, write_json


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``fisher`` verb to ``sub``."""
    p = sub.add_parser(
        "fisher", help="Fisher-information analysis of a data set for a model", description=__doc__
    )
    p.add_argument("--model", required=True, metavar="DIR", help="folder written by potforge fit")
    p.add_argument(
        "--data", nargs="+", required=True, metavar="FILE", help="structures (labels ignored)"
    )
    p.add_argument(
        "--qoi",
        nargs="+",
        metavar="NAME=TOL",
        help="property targets, e.g. a0=0.5%% C44=5%% Evac=0.05 (tolerance absolute or %%)",
    )
    p.add_argument("--targets", metavar="FILE", help="targets.toml (instead of --qoi)")
    p.add_argument(
        "--precision",
        nargs="+",
        metavar="KEY=VALUE",
        help="label precision: energy=eV/atom force=eV/Å stress=GPa (default 0.001 0.05 0.1)",
    )
    p.add_argument("--element", help="element of the property suite (default: the model's)")
    p.add_argument(
        "--sloppy", type=int, default=3, metavar="K", help="sloppy directions to describe"
    )
    add_output_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``potforge fisher``: print the analysis, write fisher.json and spectrum.png."""

    from potforge.commands._output import OutputFolder
    from potforge.data.readers import read_many
    from potforge.errors import DataError
    from potforge.information.fisher import analyse, spectrum_plot
    from potforge.information.loop import pool_fisher
    from potforge.information.targets import (
        Targets,
        load_targets,
        target_information,
        targets_from_dict,
    )
    from potforge.model import LinearPotential

    if not args.out:
        raise DataError("--out is required: the folder for fisher.json and spectrum.png")
    if args.qoi and args.targets:
        raise DataError("give --qoi or --targets, not both")
    precision: dict[str, float] = {}
    for key, value in parse_pairs(args.precision, "--precision").items():
        try:
            precision[key] = float(value)
        except ValueError:
            raise DataError(f"--precision {key}={value!r} must be a number") from None
    targets: Targets | None = None
    if args.targets:
        targets = load_targets(args.targets)
        if precision:
            doc = targets.to_dict()
            targets = targets_from_dict(
                {
                    "precision": {**doc["precision"], **precision},
                    "targets": doc["targets"],
                    "settings": {**doc["settings"], "cost": doc["cost"]},
                },
                args.targets,
            )
    else:
        doc = {"precision": precision, "targets": parse_pairs(args.qoi, "--qoi")}
        targets = targets_from_dict(doc, "--qoi") if args.qoi else None
    inputs = [args.model, *args.data] + ([args.targets] if args.targets else [])
    folder = OutputFolder(
        args.out, force=args.force, inputs=inputs, argv=args.argv, quiet=args.quiet
    )
    model = LinearPotential.load(args.model, posterior=False)
    data = read_many(args.data, stress_order="drop", require=())
    lp = (
        targets.precision
        if targets
        else targets_from_dict({"precision": precision, "targets": {"a0": 1.0}}).precision
    )
    fims = pool_fisher(model, data, lp, None if not args.quiet else False)
    F = fims.sum(axis=0)
    info = None
    if targets is not None:
        element = args.element or model.elements_[0]
        info = target_information(model, element, targets)
    result = analyse(
        F,
        model.param_names,
        n_sloppy=args.sloppy,
        qoi_names=info.names if info else None,
        jacobian=info.jacobian if info else None,
        covariance=info.covariance if info else None,
    )
    with folder.staged() as out:
        spectrum_plot(out / "spectrum.png", F, info.fisher if info else None)
        write_json(
            out / "fisher.json",
            {**result.to_dict(), "n_structures": len(data), "precision": lp.__dict__},
        )
        lam = result.eigenvalues
        nz = lam[lam > 0]
        print(
            f"{len(data)} structures, {len(lam)} parameters: eigenvalues {lam[0]:.3g} … "
            f"{(nz[-1] if nz.size else 0):.3g}, condition number {result.condition:.3g}, "
            f"{result.n_null} null direction(s)"
        )
        for k, d in enumerate(result.sloppy, 1):
            terms = ", ".join(f"{t} {100 * v:.0f}%" for t, v in list(d["terms"].items())[:3])
            pars = ", ".join(f"{n} ({v:.2f})" for n, v in d["parameters"][:3])
            print(f"sloppy {k}: λ = {d['eigenvalue']:.3g}; terms {terms}; parameters {pars}")
        for name, d in result.qoi.items():
            print(
                f"{name}: σ {d['sigma']:.3g} against tolerance {d['tolerance']:.3g} "
                f"— the data carries {100 * d['fraction']:.0f}% of its target information"
            )
        print(f"wrote {args.out}/: fisher.json, spectrum.png, provenance.json, log.txt")
    return 0
