"""Posterior options shared by ``potforge uq`` and ``potforge fit --uq``."""

from __future__ import annotations

import argparse

from potforge.commands._common import method_options
from potforge.errors import DataError
from potforge.options import POSTERIOR_METHODS as METHODS
from potforge.params import Integer, Real


def add_posterior_options(p: argparse.ArgumentParser, default: str) -> None:
    """``--method`` style options shared by ``uq`` and ``fit --uq``."""
    if default == "pops":
        p.add_argument(
            "--method",
            choices=METHODS,
            default="pops",
            help="pops (misspecification-aware, default); bayes (Bayesian linear "
            "regression, ±2σ: parameter-only, under-covers a misspecified model "
            "unless --temperature inflates it); bootstrap (refits on resampled "
            "rows, min/max)",
        )
    g = p.add_argument_group("posterior options (each for the method named)")
    g.add_argument(
        "--posterior",
        choices=("ensemble", "hypercube"),
        default=None,
        help="pops: posterior form (default ensemble: exact, covers every training row)",
    )
    g.add_argument(
        "--max-members",
        type=Integer(low=1).argtype(),
        default=None,
        metavar="K",
        help="pops ensemble: keep K random corrections (default all)",
    )
    g.add_argument(
        "--leverage-percentile",
        type=Real(low=0, high=100, high_open=True).argtype(),
        default=None,
        metavar="P",
        help="pops: use only corrections of rows with leverage ≥ the P-th percentile "
        "(popsregression's filter, its default 50): narrower bounds, but filtered "
        "training rows may fall outside; default 0 keeps all",
    )
    g.add_argument(
        "--residual-percentile",
        type=Real(low=0, high=100, low_open=True).argtype(),
        default=None,
        metavar="P",
        help="pops: drop the corrections of rows whose whitened residual lies above "
        "the P-th percentile (outlying labels); default 100 keeps all",
    )
    g.add_argument(
        "--percentile-clipping",
        type=Real(low=0, high=50, high_open=True).argtype(),
        default=None,
        metavar="C",
        help="pops hypercube: each axis spans the C-th to (100-C)-th percentile of "
        "the corrections instead of min/max (popsregression's option): a much "
        "narrower box that no longer holds every training row; default 0",
    )
    g.add_argument(
        "--temperature",
        type=_temperature,
        default=None,
        metavar="T",
        help="bayes: multiply the BLR covariance by T, or 'frederiksen' "
        "(Frederiksen et al. 2004: ensemble ∝ exp(−cost/T₀) with T₀ = 2·cost/P for "
        "P parameters, i.e. the covariance times β·cost/P); default none",
    )
    g.add_argument(
        "--n-sigma",
        type=Real(low=0, low_open=True).argtype(),
        default=None,
        metavar="S",
        help="bayes: bounds are ± S standard deviations (default 2)",
    )
    g.add_argument(
        "--n-members",
        type=Integer(low=2).argtype(),
        default=None,
        metavar="K",
        help="bootstrap: number of refits (default 20)",
    )
    g.add_argument(
        "--seed",
        type=Integer(low=0).argtype(),
        default=None,
        help="pops/bootstrap: seed for subsamples and resamples (default 0)",
    )


_APPLIES = {
    **dict.fromkeys(
        (
            "posterior",
            "max_members",
            "leverage_percentile",
            "residual_percentile",
            "percentile_clipping",
        ),
        ("pops",),
    ),
    "temperature": ("bayes",),
    "n_sigma": ("bayes",),
    "n_members": ("bootstrap",),
    "seed": ("pops", "bootstrap"),
}
"""Posterior options (argparse ``dest``) and the methods they apply to."""


def _temperature(text: str) -> str | float:
    if text.strip().lower() == "frederiksen":
        return "frederiksen"
    try:
        value = float(text)
        if not value > 0 or value == float("inf"):
            raise ValueError
        return value
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive number or 'frederiksen', got {text!r}"
        ) from None


def posterior_options(args: argparse.Namespace, method: str, flag: str = "--method") -> dict:
    """Keyword options of :meth:`LinearPotential.fit_posterior` for ``method`` from ``args``;
    an option given for another method is an error (``flag`` names the method option)."""
    out = method_options(args, _APPLIES, method, flag)
    form = out.get("posterior") or "ensemble"
    if out.get("percentile_clipping") is not None and form != "hypercube":
        raise DataError("--percentile-clipping applies to --posterior hypercube only")
    if out.get("max_members") is not None and form != "ensemble":
        raise DataError(
            "--max-members applies to the ensemble posterior only, not --posterior hypercube"
        )
    if method in ("pops", "bootstrap"):
        out["random_state"] = out.pop("seed", 0)
    return out
