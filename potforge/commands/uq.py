"""``potforge uq``: fit an uncertainty posterior on a saved model and store it in its folder."""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from potforge.commands._common import method_options, staged_output
from potforge.data.readers import read_many
from potforge.metrics import uncertainty_metrics
from potforge.model import POSTERIOR_FILE, LinearPotential
from potforge.uq.centred import METHODS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "uq", help="fit an uncertainty posterior (POPS, BLR, bootstrap) on a model",
        description=__doc__,
    )
    p.add_argument("--model", required=True, metavar="DIR", help="folder written by potforge fit")
    p.add_argument("--train", nargs="+", required=True, metavar="FILE",
                   help="the model's training data (the posterior is fitted on its rows)")
    add_posterior_options(p, default="pops")
    p.add_argument("--jobs", type=int, default=1, help="processes for descriptors")
    p.set_defaults(func=run)


def add_posterior_options(p: argparse.ArgumentParser, default: str) -> None:
    """``--method`` style options shared by ``uq`` and ``fit --uq``."""
    if default == "pops":
        p.add_argument("--method", choices=METHODS, default="pops",
                       help="pops (misspecification-aware, default); bayes (Bayesian linear "
                       "regression, ±2σ: parameter-only, under-covers a misspecified model "
                       "unless --temperature inflates it); bootstrap (refits on resampled "
                       "rows, min/max)")
    g = p.add_argument_group("posterior options (each for the method named)")
    g.add_argument("--posterior", choices=("ensemble", "hypercube"), default=None,
                   help="pops: posterior form (default ensemble: exact, covers every training "
                   "row)")
    g.add_argument("--max-members", type=int, default=None, metavar="K",
                   help="pops ensemble: keep K random corrections (default all)")
    g.add_argument("--leverage-percentile", type=float, default=None, metavar="P",
                   help="pops: use only corrections of rows with leverage ≥ the P-th percentile "
                   "(popsregression's filter, its default 50): narrower bounds, but filtered "
                   "training rows may fall outside; default 0 keeps all")
    g.add_argument("--residual-percentile", type=float, default=None, metavar="P",
                   help="pops: drop the corrections of rows whose whitened residual lies above "
                   "the P-th percentile (outlying labels); default 100 keeps all")
    g.add_argument("--percentile-clipping", type=float, default=None, metavar="C",
                   help="pops hypercube: each axis spans the C-th to (100-C)-th percentile of "
                   "the corrections instead of min/max (popsregression's option): a much "
                   "narrower box that no longer holds every training row; default 0")
    g.add_argument("--temperature", type=_temperature, default=None, metavar="T",
                   help="bayes: multiply the BLR covariance by T, or 'frederiksen' "
                   "(Frederiksen et al. 2004: ensemble ∝ exp(−cost/T₀) with T₀ = 2·cost/P for "
                   "P parameters, i.e. the covariance times β·cost/P); default none")
    g.add_argument("--n-sigma", type=float, default=None, metavar="S",
                   help="bayes: bounds are ± S standard deviations (default 2)")
    g.add_argument("--n-members", type=int, default=None, metavar="K",
                   help="bootstrap: number of refits (default 20)")
    g.add_argument("--seed", type=int, default=None,
                   help="pops/bootstrap: seed for subsamples and resamples (default 0)")


_APPLIES = {**dict.fromkeys(("posterior", "max_members", "leverage_percentile",
                              "residual_percentile", "percentile_clipping"), ("pops",)),
            "temperature": ("bayes",), "n_sigma": ("bayes",), "n_members": ("bootstrap",),
            "seed": ("pops", "bootstrap")}
"""Posterior options (argparse ``dest``) and the methods they apply to."""


def _temperature(text: str) -> str | float:
    if text.strip().lower() == "frederiksen":
        return "frederiksen"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive number or 'frederiksen', got {text!r}") from None


def posterior_options(args: argparse.Namespace, method: str, flag: str = "--method") -> dict:
    """Keyword options of :meth:`LinearPotential.fit_posterior` for ``method`` from ``args``;
    an option given for another method is an error (``flag`` names the method option)."""
    out = method_options(args, _APPLIES, method, flag)
    if method in ("pops", "bootstrap"):
        out["random_state"] = out.pop("seed", 0)
    return out


def summary(model: LinearPotential, train_metrics: dict) -> str:
    """One screen: method, rows, timing, training coverage."""
    post = model.posterior_
    i = post.info
    rows = ", ".join(f"{n} {k}" for k, n in i["rows_by_type"].items())
    form = {"ensemble": f"ensemble of {i.get('n_members')} members",
            "hypercube": f"box over {i.get('n_components')} principal axes with non-zero "
                         "spread"
                         + (f", clipped to the {i['percentile_clipping']:g}–"
                            f"{100 - i['percentile_clipping']:g} percentiles"
                            if i.get("percentile_clipping") else ""),
            "gaussian": f"Gaussian, bounds ±{i.get('n_sigma')}σ"}[post.kind]
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
    options = posterior_options(args, args.method)  # misplaced options fail before any work
    model = LinearPotential.load(args.model)
    model.n_jobs = args.jobs
    old = (f"{model.posterior_.method} {model.posterior_.kind}" if model.has_posterior
           else None)
    train = read_many(args.train)
    t0 = time.perf_counter()
    designs = model.structure_designs(train)  # shared by the posterior and the coverage check
    seconds = time.perf_counter() - t0
    model.fit_posterior(train, args.method, designs=designs, **options)
    info = model.posterior_.info
    info.update(descriptor_seconds=seconds, fit_seconds=seconds + info["posterior_seconds"])
    metrics = uncertainty_metrics(train, model.predict_designs(designs, return_bounds=True))
    model.posterior_.info["train"] = metrics
    with staged_output(args.model) as tmp:  # all-or-nothing: a full new copy of the folder
        shutil.copytree(args.model, tmp, dirs_exist_ok=True)
        model.save(tmp)
    print(summary(model, metrics))
    if old:
        print(f"replaced the previous posterior ({old})")
    size = (Path(args.model) / POSTERIOR_FILE).stat().st_size / 2**20
    print(f"wrote {args.model}/model.json, {POSTERIOR_FILE} ({size:.1f} MiB)")
    return 0
