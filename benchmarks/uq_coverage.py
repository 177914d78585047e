"""UQ coverage benchmark: do prediction bounds envelope held-out errors, how wide are they, and
what does a POPS fit cost next to a plain ridge fit?

Parts (each a function ``part_x(args) -> dict`` registered in ``PARTS``; run with ``--parts``):

* ``a`` — synthetic misspecified problem (N=10⁴ training rows, P=100 random Fourier features of a
  3-D input, a smooth target the features cannot represent, noise 1e-4); potforge's POPS
  (ensemble, hypercube), BLR, temperature-BLR and bootstrap beside ``popsregression`` 0.4.
* ``b`` — (to add) the Zuo Mo data: same table on real energy/force/virial rows from
  ``potforge.design``; add ``part_b(args)`` and register it.
* ``c`` — (to add) teacher–student properties: propagate ``sample(K)`` to properties.

Every row of a table is produced by :func:`evaluate` (coverage = fraction of held-out labels
inside ``[lower, upper]``; widths are medians over the held-out rows, divided by the RMSE of the
mean prediction). Results go to ``benchmarks/results/uq_coverage.json``.

Usage: ``python benchmarks/uq_coverage.py [--parts a] [--n 10000] [--p 100] [--threads 1]``
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from potforge.uq import (
    BayesianLinearRegressor,
    POPSRegressor,
    ResampledEnsembleRegressor,
    TemperedBayesRegressor,
    ridge_fit,
)
from potforge.uq.synthetic import misspecified_problem

RESULTS = Path(__file__).resolve().parent / "results" / "uq_coverage.json"
# METHODS.md §4, measured with the reference code on its own N=10⁴, P=100 problem
REFERENCE = {"BLR ±2σ (param-only)": 0.20, "popsregression default": 0.83,
             "POPS ensemble (ours)": 0.96, "popsregression ensemble": 0.96}


def evaluate(name: str, predict: Callable, X: np.ndarray, y: np.ndarray) -> dict:
    """Coverage and width of ``predict(X) -> (mean, lower, upper)`` on held-out ``(X, y)``."""
    mean, lo, hi = predict(X)
    err = y - mean
    rmse = float(np.sqrt(np.mean(err**2)))
    return {
        "method": name,
        "coverage": float(np.mean((y >= lo) & (y <= hi))),
        "rmse": rmse,
        "median_halfwidth_over_rmse": float(np.median(0.5 * (hi - lo)) / rmse),
        "median_width_over_rmse": float(np.median(hi - lo) / rmse),
        "reference_coverage": REFERENCE.get(name),
    }


def median_time(fit: Callable, repeats: int) -> float:
    """Median wall time (s) of ``fit()`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fit()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _ours(model) -> Callable:
    return lambda X: model.predict(X, return_bounds=True)


def _reference_pops(model) -> Callable:
    def predict(X):
        mean, upper, lower = model.predict(X, return_bounds=True)  # popsregression: max first
        return mean, lower, upper

    return predict


def synthetic_methods(alpha: float, seed: int) -> dict[str, Callable]:
    """Fit factories ``f(X, y) -> predict`` for every method of part (a)."""
    from popsregression import POPSRegression

    def pops(**kw):
        return lambda X, y: _ours(POPSRegressor(alpha=alpha, **kw).fit(X, y))

    return {
        "POPS ensemble (ours)": pops(posterior="ensemble"),
        "POPS hypercube (ours, exact box)": pops(posterior="hypercube"),
        "POPS hypercube (ours, 90% var)": pops(posterior="hypercube", variance_fraction=0.9),
        "popsregression default": lambda X, y: _reference_pops(POPSRegression().fit(X, y)),
        "popsregression ensemble": lambda X, y: _reference_pops(
            POPSRegression(posterior="ensemble", leverage_percentile=0.0).fit(X, y)),
        "BLR ±2σ (param-only)": lambda X, y: _ours(BayesianLinearRegressor().fit(X, y)),
        "temperature-BLR (Frederiksen T=2C0/P)": lambda X, y: _ours(
            TemperedBayesRegressor().fit(X, y)),
        "bootstrap K=20 (min/max)": lambda X, y: _ours(
            ResampledEnsembleRegressor(n_members=20, alpha=alpha, random_state=seed).fit(X, y)),
    }


def part_a(args: argparse.Namespace) -> dict:
    """Synthetic misspecified problem: coverage table and fit times relative to ridge."""
    X, y, Xh, yh = misspecified_problem(args.n, args.p, n_test=args.n_test + args.n_check,
                                        noise=1e-4, random_state=args.seed)
    Xc, yc, Xt, yt = Xh[: args.n_check], yh[: args.n_check], Xh[args.n_check :], yh[args.n_check :]
    alpha = BayesianLinearRegressor().fit(X, y).alpha_  # evidence λ/β, as popsregression uses
    rows = [evaluate(name, make(X, y), Xt, yt)
            for name, make in synthetic_methods(alpha, args.seed).items()]
    cal = TemperedBayesRegressor(temperature="calibrated", coverage=0.95).fit(X, y)
    rows.append(evaluate("temperature-BLR (T calibrated on check set)",
                         _ours(cal.calibrate(Xc, yc)), Xt, yt))
    return {"settings": {"n_train": args.n, "n_features": args.p, "n_test": args.n_test,
                         "n_check": args.n_check, "noise": 1e-4, "ridge_alpha": alpha,
                         "seed": args.seed},
            "coverage": rows, "timing": synthetic_timing(X, y, alpha, args.repeats)}


def synthetic_timing(X: np.ndarray, y: np.ndarray, alpha: float, repeats: int) -> dict:
    """Median fit times (s) and their ratio to potforge's ridge (normal equations + Cholesky)."""
    from popsregression import POPSRegression
    from sklearn.linear_model import Ridge

    fits = {
        "ridge (potforge, normal eq.)": lambda: ridge_fit(X, y, alpha=alpha),
        "ridge (sklearn Ridge)": lambda: Ridge(alpha=alpha, fit_intercept=False).fit(X, y),
        "POPS ensemble (ours)": lambda: POPSRegressor(alpha=alpha).fit(X, y),
        "POPS ensemble K=500 (ours)": lambda: POPSRegressor(alpha=alpha, n_samples=500,
                                                            random_state=0).fit(X, y),
        "POPS hypercube (ours)": lambda: POPSRegressor(alpha=alpha,
                                                       posterior="hypercube").fit(X, y),
        "POPS ensemble (ours, streamed 1000-row chunks)": lambda: POPSRegressor(
            alpha=alpha, chunk_size=1000).fit(X, y),
        "popsregression default": lambda: POPSRegression().fit(X, y),
        "BLR (evidence)": lambda: BayesianLinearRegressor().fit(X, y),
        "bootstrap K=20": lambda: ResampledEnsembleRegressor(n_members=20, alpha=alpha,
                                                             random_state=0).fit(X, y),
    }
    for fit in fits.values():  # warm-up
        fit()
    seconds = {name: median_time(fit, repeats) for name, fit in fits.items()}
    base = seconds["ridge (potforge, normal eq.)"]
    return {name: {"seconds": s, "over_ridge": s / base} for name, s in seconds.items()}


PARTS: dict[str, Callable[[argparse.Namespace], dict]] = {"a": part_a}


def print_part_a(result: dict) -> None:
    """Print the coverage and timing tables of part (a)."""
    print(f"\n(a) synthetic misspecified problem {result['settings']}")
    print(f"{'method':45s} {'coverage':>8s} {'ref':>5s} {'½width/RMSE':>12s} {'width/RMSE':>11s}")
    for r in result["coverage"]:
        ref = "" if r["reference_coverage"] is None else f"{r['reference_coverage']:.2f}"
        print(f"{r['method']:45s} {r['coverage']:8.3f} {ref:>5s} "
              f"{r['median_halfwidth_over_rmse']:12.2f} {r['median_width_over_rmse']:11.2f}")
    print(f"RMSE of the mean prediction: {result['coverage'][0]['rmse']:.4g}")
    print(f"\n{'fit':48s} {'seconds':>9s} {'× ridge':>8s}")
    for name, t in result["timing"].items():
        print(f"{name:48s} {t['seconds']:9.4f} {t['over_ridge']:8.2f}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="a", help="parts to run, e.g. 'a' or 'abc'")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--p", type=int, default=100)
    parser.add_argument("--n-test", type=int, default=10_000)
    parser.add_argument("--n-check", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (1: stable timings)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    out = {"date": date.today().isoformat(), "machine": machine(args.threads)}
    with threadpool_limits(args.threads):
        for part in args.parts:
            out[part] = PARTS[part](args)
            if part == "a":
                print_part_a(out[part])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    args.out.write_text(json.dumps({**previous, **out}, indent=1))
    print(f"\nwrote {args.out}")
    return out


def machine(threads: int) -> dict:
    """Where the numbers were taken."""
    import os

    import popsregression
    import sklearn

    return {"platform": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "blas_threads": threads,
            "numpy": np.__version__, "sklearn": sklearn.__version__,
            "popsregression": popsregression.__version__}


if __name__ == "__main__":
    main()
