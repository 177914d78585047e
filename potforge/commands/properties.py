"""``potforge properties``: material properties (QoIs) of a calculator, optionally vs a reference.

Examples::

    potforge properties --calc lammps:W_2940_2017_2.snap --element W --qoi a0,C11,C12,C44,Evac
    potforge properties --calc lammps:W_zhou.eam.alloy --element W \\
        --ref lammps:W_2940_2017_2.snap --json w.json --plot w.png
    potforge properties --model fitted/ --element W --qoi a0,C44 --uq linear   # with bounds
    potforge properties --list
"""

from __future__ import annotations

import argparse
import importlib.util
from typing import Any

from potforge.errors import ModelError, OracleError
from potforge.options import N_CANDIDATES


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``properties`` verb to ``sub``."""
    p = sub.add_parser(
        "properties",
        help="material properties (QoIs) of a calculator",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--calc",
        metavar="SPEC",
        help="calculator spec: lammps:<file>, emt, gpaw, chgnet, module:Class",
    )
    src.add_argument("--model", metavar="DIR", help="folder of a fitted potforge LinearPotential")
    p.add_argument("--element", metavar="EL", help="chemical element, e.g. W")
    p.add_argument(
        "--qoi",
        metavar="A,B,...",
        help="comma-separated QoI names (default: all for the ground-state lattice)",
    )
    p.add_argument(
        "--ref",
        metavar="SPEC|FILE.json",
        help="reference: a calculator spec, or a JSON file written by --json",
    )
    p.add_argument(
        "--structure",
        choices=("bcc", "fcc", "hcp"),
        help="ground-state lattice (default: the element's reference state)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a property setting, e.g. vacancy_size=4 or fmax=1e-4 (repeatable)",
    )
    p.add_argument(
        "--uq",
        choices=("auto", "linear", "implicit", "resample", "none"),
        default=None,
        help="bounds from the model's posterior (--model with a posterior only; default auto "
        "when the model has one, values only when not): auto = per QoI "
        "the cheapest of linear/implicit/resample that agrees with the next at the QoI's extreme "
        "posterior members (default); linear = exact dQ/dθ, extremes over the posterior; "
        "implicit = posterior samples evaluated at structures predicted by one Newton step (no "
        "relaxation); resample = recompute every QoI per posterior sample; none = values only",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=None,
        metavar="K",
        help="posterior samples (≥ 1) for --uq implicit/resample (default 16; bounds are the "
        "extremes over the samples, plus the candidates for implicit)",
    )
    p.add_argument(
        "--candidates",
        type=int,
        default=None,
        metavar="K",
        help="posterior members per side (≥ 1) tried as a nonlinear QoI's extremes for --uq "
        f"auto/implicit (default {N_CANDIDATES}; 1 = the linearised extremes only)",
    )
    p.add_argument("--json", metavar="FILE", help="write {qoi: {value, unit, reference?}} here")
    p.add_argument("--plot", metavar="FILE.png", help="bar chart of deviations from --ref")
    p.add_argument("--list", action="store_true", help="list the QoIs and settings, then exit")
    p.add_argument(
        "--quiet", action="store_true", help="no progress (bars appear on a terminal only)"
    )
    p.set_defaults(func=run)


def make_calculator(spec: str):
    """ASE calculator for a spec, via :mod:`potforge.oracles` (imported lazily)."""
    if importlib.util.find_spec("potforge.oracles") is None:
        raise OracleError(f"cannot build calculator '{spec}': potforge.oracles is not installed")
    oracles = importlib.import_module("potforge.oracles")
    if hasattr(oracles, "make_calculator"):
        return oracles.make_calculator(spec)
    return oracles.make_oracle(spec).build()


def parse_settings(items: list[str]) -> dict[str, Any]:
    """``["vacancy_size=4", "fmax=1e-4"]`` → ``{"vacancy_size": 4, "fmax": 0.0001}``: each value
    parsed by its setting's declared type and checked
    (:func:`potforge.properties.settings.parse_cli_settings`)."""
    from potforge.properties.settings import parse_cli_settings

    return parse_cli_settings(items)


def _list() -> int:
    from potforge.properties import REGISTRY, SETTINGS

    print(f"{'QoI':<16}{'unit':<9}{'lattices':<13}description")
    for q in REGISTRY.values():
        print(f"{q.name:<16}{q.unit:<9}{','.join(q.lattices):<13}{q.description}")
    print("\nsettings (--set KEY=VALUE):")
    for k, s in SETTINGS.items():
        print(f"  {k:<18}{s.default!s:<8} {s.doc} ({s.allowed()})")
    return 0


def run(args: argparse.Namespace) -> int:
    """``potforge properties``: QoIs of a calculator or model (with bounds from a posterior)."""
    from potforge.properties.settings import cli_vocabulary

    if args.list:
        return _list()
    with cli_vocabulary():  # warnings name the CLI's flags; cli.main prints them one a line
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from potforge.properties import report as rep
    from potforge.properties import run_suite
    from potforge.properties.registry import check_request

    if not args.element:
        raise ModelError("--element is required (e.g. --element W)")
    if not (args.calc or args.model):
        raise ModelError("give the calculator: --calc SPEC or --model DIR")
    progress = False if args.quiet else None  # bars on a terminal only
    # every check before any work: settings, QoI names and lattices, method options
    settings = parse_settings(args.set)
    if args.structure:
        if settings.get("structure") not in (None, args.structure):
            raise ModelError(
                f"--structure {args.structure} and --set structure="
                f"{settings['structure']} disagree: give the lattice once"
            )
        settings["structure"] = args.structure
    qois = [q.strip() for q in args.qoi.split(",") if q.strip()] if args.qoi else None
    names, _ = check_request(args.element, qois, settings)
    if args.model:
        from potforge.commands._common import method_options
        from potforge.qoi.propagation import N_SAMPLES, check_options

        uq = args.uq or "auto"
        method_options(
            args,
            {"samples": ("implicit", "resample"), "candidates": ("auto", "implicit")},
            uq,
            "--uq",
        )
        opts = check_options(
            n_samples=N_SAMPLES if args.samples is None else args.samples,
            n_candidates=N_CANDIDATES if args.candidates is None else args.candidates,
        )
        results = _model_results(args, names, uq, opts, progress, settings)
    else:
        if args.uq not in (None, "none"):
            raise ModelError(
                f"--uq {args.uq} propagates a fitted model's posterior: it needs --model DIR "
                f"(with a posterior), not --calc {args.calc}"
            )
        calc = make_calculator(args.calc)
        results = run_suite(
            calc,
            args.element,
            names,
            progress=progress,
            desc=f"{args.element} properties ({args.calc})",
            **settings,
        )
    reference = None
    if args.ref:
        if args.ref.endswith(".json") or Path(args.ref).is_file():
            reference = rep.load_reference(args.ref)
        else:
            ref_calc = make_calculator(args.ref)
            ref = run_suite(
                ref_calc,
                args.element,
                list(results),
                progress=progress,
                desc=f"{args.element} reference properties ({args.ref})",
                **settings,
            )
            reference = {k: v["value"] for k, v in ref.items()}
    doc = rep.merge(results, reference)
    print(rep.format_table(doc))
    if args.json:
        rep.write_json(args.json, doc)
        print(f"wrote {args.json}")
    if args.plot:
        if reference is None:
            raise ModelError("--plot shows deviations from a reference: give --ref as well")
        label = args.model or args.calc
        rep.deviation_plot(args.plot, doc, title=f"{args.element}: {label} vs {args.ref}")
        print(f"wrote {args.plot}")
    return 0


def _model_results(args, names, uq, opts, progress, settings) -> dict:
    """Values (and bounds, with a posterior) of a fitted model's QoIs."""
    from potforge.model import LinearPotential
    from potforge.properties import run_suite
    from potforge.qoi.propagation import property_uncertainty

    model = LinearPotential.load(args.model)
    if args.uq not in (None, "none") and not model.has_posterior:
        raise ModelError(
            f"--uq {args.uq} needs a posterior in {args.model}: run `potforge uq` first "
            "(or leave out --uq for values only)"
        )
    if model.has_posterior and args.uq != "none":
        return property_uncertainty(
            model, args.element, names, method=uq, progress=progress, **opts, **settings
        )
    if not model.has_posterior and not args.quiet:
        print(f"note: {args.model} has no posterior; values only (run `potforge uq`)")
    return run_suite(
        model.as_calculator(),
        args.element,
        names,
        progress=progress,
        desc=f"{args.element} properties ({args.model})",
        **settings,
    )
