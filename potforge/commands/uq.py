"""``potforge uq``: fit an uncertainty posterior on a saved model and store it in its folder."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from potforge.commands._common import (
    add_quiet,
    add_stress_order,
    capped_jobs,
    posterior_size_line,
    progress,
    read_labelled,
)
from potforge.commands._posterior import add_posterior_options, posterior_options
from potforge.options import MODEL_PARAMETERS

if TYPE_CHECKING:
    from potforge.model import LinearPotential


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``uq`` verb to ``sub``."""
    p = sub.add_parser(
        "uq",
        help="fit an uncertainty posterior (POPS, BLR, bootstrap) on a model",
        description=__doc__,
    )
    p.add_argument("--model", required=True, metavar="DIR", help="folder written by potforge fit")
    p.add_argument(
        "--train",
        nargs="+",
        required=True,
        metavar="FILE",
        help="the model's training data (the posterior is fitted on its rows)",
    )
    add_stress_order(p)
    add_posterior_options(p, default="pops")
    p.add_argument(
        "--jobs",
        type=MODEL_PARAMETERS["n_jobs"].argtype(),
        default=1,
        help="processes for descriptors (default 1)",
    )
    add_quiet(p, log=False)
    p.set_defaults(func=run)


def summary(model: LinearPotential, train_metrics: dict) -> str:
    """One screen: method, rows, timing, training coverage."""
    post = model.posterior_
    i = post.info
    rows = ", ".join(f"{n} {k}" for k, n in i["rows_by_type"].items())
    form = {
        "ensemble": f"ensemble of {i.get('n_members')} members",
        "hypercube": f"box over {i.get('n_components')} principal axes with non-zero "
        "spread"
        + (
            f", clipped to the {i['percentile_clipping']:g}–"
            f"{100 - i['percentile_clipping']:g} percentiles"
            if i.get("percentile_clipping")
            else ""
        ),
        "gaussian": f"Gaussian, bounds ±{i.get('n_sigma')}σ",
    }[post.kind]
    lines = [
        f"posterior: {post.method} ({form}), {model.n_params} parameters",
        f"rows: {i['n_rows']} ({rows}) from {i['n_structures']} structures",
    ]
    if "n_excluded" in i:
        lines.append(f"rows with ~zero leverage (no correction, excluded): {i['n_excluded']}")
    lines.append(
        f"fit: {i['fit_seconds']:.2f} s (descriptors {i['descriptor_seconds']:.2f} s, "
        f"posterior {i['posterior_seconds']:.2f} s)"
    )
    m = train_metrics
    lines.append(
        f"training coverage: energies {m['energy_coverage']:.3f} (median half-width "
        f"{m['energy_bound_median_meV_per_atom']:.3g} meV/atom), forces "
        f"{m['force_coverage']:.3f} (median half-width {m['force_bound_median_eV_per_A']:.3g} "
        "eV/Å)"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """``potforge uq``: fit a posterior on a saved model and store it in the model's folder."""
    import warnings

    from potforge.commands._output import replace_files
    from potforge.errors import DataError
    from potforge.model import MODEL_FILE, POSTERIOR_FILE, LinearPotential
    from potforge.model.metrics import uncertainty_metrics

    options = posterior_options(args, args.method)  # misplaced options fail before any work
    folder = Path(args.model)
    if folder.is_file():
        raise DataError(f"--model {folder}: give the model's folder, not a file in it")
    if not (folder / MODEL_FILE).is_file():
        raise DataError(f"--model {folder}: no {MODEL_FILE} there (is it a potforge model folder?)")
    try:
        model = LinearPotential.load(folder)
        old = f"{model.posterior_.method} {model.posterior_.kind}" if model.has_posterior else None
    except DataError as exc:  # an unreadable posterior is what this command repairs
        model = LinearPotential.load(folder, posterior=False)
        warnings.warn(f"replacing an unreadable posterior: {exc}", stacklevel=1)
        old = "unreadable"
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(f"--model {folder}: cannot write in this folder (permission denied)")
    model.n_jobs = capped_jobs(args.jobs)
    train = read_labelled(args.train, args.stress_order, not args.quiet)
    t0 = time.perf_counter()
    designs = model.structure_designs(train, progress(args))  # for posterior and coverage
    seconds = time.perf_counter() - t0
    model.fit_posterior(train, args.method, designs=designs, **options)
    info = model.posterior_.info
    info.update(descriptor_seconds=seconds, fit_seconds=seconds + info["posterior_seconds"])
    metrics = uncertainty_metrics(train, model.predict_designs(designs, return_bounds=True))
    model.posterior_.info["train"] = metrics
    replace_files(folder, model.save)  # only model.json and posterior.npz, each atomically
    if not args.quiet:
        print(summary(model, metrics))
        if old:
            print(f"replaced the previous posterior ({old})")
        print(
            f"wrote {folder}/{MODEL_FILE}, "
            + posterior_size_line(folder / POSTERIOR_FILE, info.get("n_members"))
        )
    return 0
