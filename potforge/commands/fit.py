"""``potforge fit``: fit a linear potential to labelled structures and report its errors.

Without --model the model is the hand-tuned default where the data's elements have one (Mo),
else the default form adapted to the data: its cutoff from the neighbour shells, its ZBL range
below the closest pair, its σ_E / σ_F by grouped cross-validation on the training data within
--adapt-minutes (σ's given on the command line are kept); `--model adaptive` asks for that on
any element.  The choice and its reasons go to adaptive.json; --test never enters it."""

from __future__ import annotations

import argparse
import time
from typing import cast

from potforge.commands._common import (
    add_output_options,
    add_stress_order,
    capped_jobs,
    load_config,
    parse_pairs,
    posterior_size_line,
    progress,
    read_labelled,
    uq_line,
    write_json,
)
from potforge.commands._posterior import add_posterior_options, posterior_options
from potforge.errors import DataError
from potforge.options import DEFAULT_SPEC, GROUP_WEIGHT, LOSSES
from potforge.options import MODEL_PARAMETERS as _P
from potforge.params import Real


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``fit`` verb to ``sub``."""
    p = sub.add_parser("fit", help="fit a linear potential", description=__doc__)
    p.add_argument(
        "--train",
        nargs="+",
        default=None,
        metavar="FILE",
        help="training data (mlearn/maml .json, extxyz, ASE .db); required here or in --config",
    )
    p.add_argument("--test", nargs="*", default=[], metavar="FILE", help="test data")
    add_stress_order(p)
    add_output_options(p)
    p.add_argument(
        "--config",
        metavar="FILE",
        help="TOML or YAML file of options (keys: the long options, e.g. "
        'sigma-force = 0.1, train = ["a.json"]); the command line wins',
    )
    p.add_argument(
        "--model",
        default=None,
        metavar="SPEC",
        help=f"model spec, or 'adaptive' (default: {DEFAULT_SPEC} on Mo, where it was tuned; "
        "adaptive on other elements)",
    )
    p.add_argument(
        "--adapt-minutes",
        type=Real(low=0, low_open=True).argtype(),
        default=3.0,
        help="time budget of the adaptive default's σ search, minutes, > 0 (default 3)",
    )
    p.add_argument(
        "--sigma-energy",
        type=_P["sigma_energy"].argtype(),
        default=None,
        help="expected energy error, eV/atom, > 0 (default 1e-4)",
    )
    p.add_argument(
        "--sigma-force",
        type=_P["sigma_force"].argtype(),
        default=None,
        help="expected force error, eV/Å, > 0 (default 0.2)",
    )
    p.add_argument(
        "--sigma-stress",
        type=_P["sigma_stress"].argtype(),
        default=None,
        help="expected stress error, eV/Å³, > 0 (default 0.005)",
    )
    p.add_argument(
        "--group-weight",
        action="append",
        default=None,
        metavar="GROUP=W",
        help="extra weight factor ≥ 0 of a group's rows (repeatable), e.g. --group-weight AIMD=0.5",
    )
    p.add_argument(
        "--alpha",
        type=_P["alpha"].argtype(),
        default=None,
        help="ridge strength ≥ 0 (default 1e-10)",
    )
    p.add_argument(
        "--loss",
        choices=LOSSES,
        default=None,
        help="loss on σ-normalised residuals (default squared; huber and l1 by IRLS)",
    )
    p.add_argument(
        "--huber-delta",
        type=_P["huber_delta"].argtype(),
        default=None,
        help="Huber threshold in units of σ, > 0 (default 1.345; with --loss huber only)",
    )
    p.add_argument(
        "--jobs",
        type=_P["n_jobs"].argtype(),
        default=1,
        help="processes for descriptors (default 1)",
    )
    p.add_argument(
        "--uq",
        choices=("none", "pops", "bayes", "bootstrap"),
        default="none",
        help="also fit an uncertainty posterior (stored in the model folder; adds coverage "
        "metrics); default none (see `potforge uq`)",
    )
    add_posterior_options(p, default="none")
    p.set_defaults(func=run, parser=p)


def group_weights(pairs: list[str] | None) -> dict[str, float] | None:
    """``--group-weight`` values as LinearPotential's ``group_weights``."""
    if not pairs:
        return None
    weight = GROUP_WEIGHT.argtype()
    out = {}
    for group, text in parse_pairs(pairs, "--group-weight").items():
        try:
            out[group] = weight(text)
        except argparse.ArgumentTypeError as exc:
            raise DataError(f"--group-weight {group}: {exc}") from None
    return out


def check_groups(structures: list, weights: dict[str, float] | None) -> None:
    """A ``--group-weight`` for a group no structure has (a typo) is an error naming them."""
    have = {str(a.info.get("group", "all")) for a in structures}
    unknown = sorted(set(weights or {}) - have)
    if unknown:
        raise DataError(
            f"--group-weight {unknown[0]}: no training structure has this group; the groups "
            f"are {', '.join(sorted(have))}"
        )


ADAPTIVE = "adaptive"


def choose_model(args: argparse.Namespace, train: list, kw: dict):
    """Resolve ``--model`` in place (a spec): the given spec, the hand-tuned default of the
    data's elements, or the adaptive default (σ's from CV unless given, into ``kw``); returns
    the :class:`~potforge.modeldesign.adaptive.AdaptiveChoice` or None."""
    from potforge.modeldesign.adaptive import adaptive_default, tuned_spec

    if args.model not in (None, ADAPTIVE):
        return None
    tuned = tuned_spec(train) if args.model is None else None
    if tuned is not None:
        args.model = tuned
        return None
    say = (lambda line: None) if args.quiet else (lambda line: print(f"adaptive default: {line}"))
    choice = adaptive_default(train, minutes=args.adapt_minutes, seed=args.seed or 0,
                              progress=progress(args), say=say)  # fmt: skip
    args.model = choice.spec
    kw.setdefault("sigma_energy", choice.sigma_energy)
    kw.setdefault("sigma_force", choice.sigma_force)
    return choice


def run(args: argparse.Namespace) -> int:
    """``potforge fit``: read, fit (and a posterior with ``--uq``), evaluate, write the folder."""
    if args.config:
        load_config(args.config, args.parser, args)
    for flag in ("train", "out"):
        if not getattr(args, flag):
            raise DataError(f"--{flag} is required (on the command line or in --config)")
    if args.huber_delta is not None and args.loss != "huber":
        raise DataError(
            f"--huber-delta applies to --loss huber only, not --loss {args.loss or 'squared'}"
        )
    from potforge.commands._output import OutputFolder
    from potforge.model import LinearPotential
    from potforge.model.metrics import evaluate, format_table, structure_residuals, write_residuals
    from potforge.model.plots import group_error_plot, parity_plot
    from potforge.terms import parse_spec

    if args.model not in (None, ADAPTIVE):
        parse_spec(args.model)  # a bad spec fails before any file is read
    jobs = capped_jobs(args.jobs)

    inputs = [*args.train, *args.test, *([args.config] if args.config else [])]
    folder = OutputFolder(
        args.out,
        force=args.force,
        inputs=inputs,
        argv=args.argv,
        seeds={"seed": args.seed} if args.seed is not None else None,
        quiet=args.quiet,
    )
    names = ("sigma_energy", "sigma_force", "sigma_stress", "alpha", "loss", "huber_delta")
    kw = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    weights = group_weights(args.group_weight)
    post_kw = posterior_options(args, args.uq, "--uq")  # misplaced options fail before the fit
    train = read_labelled(args.train, args.stress_order)
    choice = choose_model(args, train, kw)  # before --test is read: it cannot enter the choice
    model = LinearPotential(args.model, n_jobs=jobs, group_weights=weights, **kw)
    test = read_labelled(args.test, args.stress_order) if args.test else []
    check_groups(train, model.group_weights)
    t0 = time.perf_counter()  # one descriptor pass for the fit, the posterior and the errors
    designs = model.setup(train).structure_designs(train, progress(args))
    seconds = time.perf_counter() - t0
    model.fit(train, designs=designs)
    model.fit_info_["descriptor_seconds"] = seconds
    # fit() set fit_seconds to a float (fit_info_ is typed by its mixed values)
    model.fit_info_["fit_seconds"] = cast(float, model.fit_info_["fit_seconds"]) + seconds
    if args.uq != "none":
        model.fit_posterior(train, args.uq, designs=designs, **post_kw)
    with folder.staged() as out:
        model.save(out)
        if choice is not None:
            write_json(out / "adaptive.json", choice.to_dict())
        model.to_lammps(out / "lammps", location=folder.path.resolve() / "lammps")
        report, sets = evaluate(
            model, {"train": train, "test": test}, progress(args), designs={"train": designs}
        )
        rows = [r for name, (s, p) in sets.items() for r in structure_residuals(s, p, name)]
        write_residuals(out / "residuals.csv", rows)
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
        group_error_plot(out / "group_errors.png", report)
        write_json(out / "metrics.json", report)
        if model.has_posterior:
            print(
                posterior_size_line(out / "posterior.npz", model.posterior_.info.get("n_members"))
            )
        extra = ", posterior.npz" if model.has_posterior else ""
        print(
            f"wrote {args.out}/: model.json{extra}, metrics.json, residuals.csv, parity.png, "
            "group_errors.png, lammps/potential.in, provenance.json, log.txt"
        )
    return 0
