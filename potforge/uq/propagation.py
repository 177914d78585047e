"""Parameter uncertainty of a fitted linear potential propagated to material properties.

Three methods, each giving per QoI ``value`` (the fitted model's), ``std``, ``lower``, ``upper``:

* ``"linear"`` (default) — first order through the exact sensitivities dQ/dθ
  (:mod:`potforge.properties.sensitivity`: envelope theorem and implicit differentiation, no
  re-relaxation per sample): ``Q(θ) ≈ Q(θ̄) + ∇Q·(θ − θ̄)``, with **exact** extremes of the
  linear functional over the posterior (:meth:`LinearPotential.functional_bounds`).  Cost: one
  property suite plus descriptor passes, whatever the posterior size.
* ``"implicit"`` — every one of ``n_samples`` posterior samples is evaluated nonlinearly, but
  its relaxed structures are predicted by implicit differentiation instead of relaxed: one
  Newton step from the fitted model's minimum with the fitted model's Hessian
  (:mod:`potforge.uq.implicit`).  Second-order accurate; a sample costs single-point
  calculations only (plus the Hessians, once).
* ``"resample"`` — brute force: every one of ``n_samples`` parameter vectors from the posterior
  recomputes every QoI from scratch, relaxations included; bounds are the sample extremes (with
  the fitted value), ``std`` the sample spread.  Use it to check the linearisation.

Every property in the suite has an exact gradient, so ``"linear"`` is the cheapest accurate
choice for all of them (the default); ``"implicit"`` checks the linearisation for the price of
``n_samples`` single-point suites, ``"resample"`` costs ``n_samples`` full suites.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from potforge.errors import ModelError

METHODS = ("linear", "implicit", "resample")
"""Propagation methods, cheapest first."""


def _check(model, method: str) -> None:
    if method not in METHODS:
        raise ModelError(f"unknown propagation method '{method}'; use one of {', '.join(METHODS)}")
    if not model.has_posterior:
        raise ModelError(
            "this model has no parameter posterior: run `potforge uq --model DIR --train FILE` "
            "(or LinearPotential.fit_posterior) first"
        )


def property_uncertainty(
    model,
    element: str,
    qois: Iterable[str] | None = None,
    *,
    method: str = "linear",
    n_samples: int = 16,
    seed: int = 0,
    progress: bool = True,
    **settings,
) -> dict[str, dict[str, Any]]:
    """Values and bounds of material properties under the model's parameter posterior.

    Parameters
    ----------
    model : LinearPotential
        Fitted, with a posterior (:meth:`~potforge.model.LinearPotential.fit_posterior`).
    element : str
    qois : iterable of str, optional
        Registry names (default: every QoI of the element's ground-state lattice).
    method : {"linear", "implicit", "resample"}
    n_samples : int
        Parameter samples for ``"implicit"`` and ``"resample"``.
    seed : int
        Sampling seed.
    progress : bool
        Progress bars.
    **settings
        Property settings (:data:`~potforge.properties.registry.SETTINGS`).

    Returns
    -------
    dict
        ``{qoi: {"value", "unit", "std", "lower", "upper", "method", "seconds"}}`` in QoI units;
        ``"implicit"`` and ``"resample"`` add ``"samples"`` (n_samples,); ``"implicit"`` adds
        ``"max_newton_step"`` (largest coordinate step of any sample, Å).

    Raises
    ------
    ModelError
        No posterior, an unknown method, or a non-finite property value for some sample.
    """
    from tqdm.auto import tqdm

    from potforge.properties import run_suite
    from potforge.properties.relax import relaxation_hook
    from potforge.uq.implicit import NewtonRelaxer, RelaxationRecord

    _check(model, method)
    if method == "linear":
        return _linear(model, element, qois, progress, settings)
    calc0 = model.as_calculator()
    record = RelaxationRecord() if method == "implicit" else None
    with relaxation_hook(record):
        out = run_suite(calc0, element, qois, progress=progress, **settings)
    samples = model.sample_coef(n_samples, seed)
    values = np.empty((n_samples, len(out)))
    max_step = 0.0
    for s, theta in enumerate(tqdm(samples, desc="posterior samples", disable=not progress)):
        hook = None if record is None else NewtonRelaxer(record, calc0)
        with relaxation_hook(hook):
            res = run_suite(
                model.as_calculator(theta), element, list(out), progress=False, **settings
            )
        values[s] = [res[q]["value"] for q in out]
        max_step = max(max_step, hook.max_step if hook else 0.0)
    bad = ~np.isfinite(values)
    if bad.any():
        s, k = np.argwhere(bad)[0]
        raise ModelError(
            f"posterior sample {s} gives a non-finite {list(out)[k]} ({values[s, k]}); "
            f"{int(bad.any(axis=1).sum())} of {n_samples} samples affected"
        )
    for k, q in enumerate(out):
        v, col = out[q]["value"], values[:, k]
        out[q].update(
            std=float(col.std()),
            lower=float(min(v, col.min())),
            upper=float(max(v, col.max())),
            method=method,
            samples=col.tolist(),
        )
        if record is not None:
            out[q]["max_newton_step"] = max_step
    return out


def _linear(model, element, qois, progress, settings) -> dict[str, dict[str, Any]]:
    """``"linear"``: exact gradients, exact extremes of the linearised QoIs."""
    from potforge.properties import run_suite
    from potforge.properties.sensitivity import Sensitivity

    sens = Sensitivity(model, element, **settings)
    out = run_suite(sens.calc, element, qois, progress=progress, **settings)
    grads = sens.gradients(out, progress=progress)
    G = np.array([grads[q]["gradient"] for q in out])
    std, lo, hi = model.functional_bounds(G)
    mean = G @ model.coef_
    for k, q in enumerate(out):
        v = out[q]["value"]
        out[q].update(
            std=float(std[k]),
            lower=float(v + lo[k] - mean[k]),
            upper=float(v + hi[k] - mean[k]),
            method="linear",
        )
    return out
