"""Parameter uncertainty of a fitted linear potential propagated to material properties.

Three methods, each giving per QoI ``value`` (the fitted model's), ``std``, ``lower``, ``upper``:

* ``"linear"`` (default) — first order through the exact sensitivities dQ/dθ
  (:mod:`potforge.properties.sensitivity`: envelope theorem and implicit differentiation, no
  re-relaxation per sample): ``Q(θ) ≈ Q(θ̄) + ∇Q·(θ − θ̄)``, with **exact** extremes of the
  linear functional over the posterior (:meth:`LinearPotential.functional_bounds`).  Cost: one
  property suite plus descriptor passes, whatever the posterior size.
* ``"implicit"`` — the posterior members attaining the linearised extremes of each QoI (two
  per QoI, from the exact dQ/dθ) and ``n_samples`` random samples are evaluated nonlinearly,
  but their relaxed structures are predicted by implicit differentiation instead of relaxed:
  one Newton step from the fitted model's minimum with the fitted model's Hessian
  (:mod:`potforge.uq.implicit`).  Second-order accurate; a parameter vector costs single-point
  calculations only (plus the Hessians, once).  Bounds: the extremes over the QoI's own two
  extreme members and the samples; ``std`` from the samples.
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
    newton_steps: int = 1,
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
    newton_steps : int
        ``"implicit"``: Newton steps with the frozen Hessian per relaxation (1: the
        implicit-function prediction; more steps converge towards the relaxed structure far from
        the fitted parameters, one force call each, but need not converge there).
    progress : bool
        Progress bars.
    **settings
        Property settings (:data:`~potforge.properties.registry.SETTINGS`).

    Returns
    -------
    dict
        ``{qoi: {"value", "unit", "std", "lower", "upper", "method", "seconds"}}`` in QoI units;
        ``"implicit"`` and ``"resample"`` add ``"samples"`` (n_samples,); ``"implicit"`` adds
        ``"extremes"`` (the QoI at its two linearised-extreme members) and ``"max_newton_step"``
        (largest coordinate step of any parameter vector, Å).

    Raises
    ------
    ModelError
        No posterior, an unknown method, or a non-finite property value for some sample.
    """
    from potforge.properties import run_suite
    from potforge.properties.relax import relaxation_hook
    from potforge.properties.sensitivity import Sensitivity
    from potforge.uq.implicit import NewtonRelaxer, RelaxationRecord

    _check(model, method)
    sens = Sensitivity(model, element, **settings)
    record = RelaxationRecord() if method == "implicit" else None
    with relaxation_hook(record):
        out = run_suite(sens.calc, element, qois, progress=progress, **settings)
    names = list(out)
    if method != "resample":
        grads = sens.gradients(names, progress=progress)
        G = np.array([grads[q]["gradient"] for q in names])
    if method == "linear":
        return _linear_bounds(model, out, G)
    thetas = model.sample_coef(n_samples, seed)
    if record is not None:  # the posterior members at the linearised extremes of each QoI
        thetas = np.concatenate([model.extreme_coef(G).reshape(-1, G.shape[1]), thetas])
    make_hook = None if record is None else lambda: NewtonRelaxer(record, sens.calc, newton_steps)
    values, max_step = _evaluate(model, element, names, thetas, make_hook, progress, settings)
    n_ext = len(thetas) - n_samples
    for k, q in enumerate(names):
        v, col = out[q]["value"], values[n_ext:, k]
        own = values[2 * k : 2 * k + 2, k] if n_ext else np.empty(0)
        out[q].update(
            std=float(col.std()),
            lower=float(min(v, col.min(), *own)),
            upper=float(max(v, col.max(), *own)),
            method=method,
            samples=col.tolist(),
        )
        if record is not None:
            out[q].update(extremes=own.tolist(), max_newton_step=max_step)
    return out


def _evaluate(model, element, names, thetas, make_hook, progress, settings):
    """QoI values (len(thetas), len(names)) for each parameter vector, relaxations replaced by
    ``make_hook()`` (a fresh :class:`NewtonRelaxer` per vector) when given; and the largest
    Newton step (Å)."""
    from tqdm.auto import tqdm

    from potforge.properties import run_suite
    from potforge.properties.relax import relaxation_hook

    values = np.empty((len(thetas), len(names)))
    max_step = 0.0
    for s, theta in enumerate(tqdm(thetas, desc="posterior samples", disable=not progress)):
        hook = None if make_hook is None else make_hook()
        with relaxation_hook(hook):
            res = run_suite(model.as_calculator(theta), element, names, progress=False, **settings)
        values[s] = [res[q]["value"] for q in names]
        max_step = max(max_step, hook.max_step if hook else 0.0)
    bad = ~np.isfinite(values)
    if bad.any():
        s, k = np.argwhere(bad)[0]
        raise ModelError(
            f"posterior parameter vector {s} gives a non-finite {names[k]} ({values[s, k]}); "
            f"{int(bad.any(axis=1).sum())} of {len(thetas)} vectors affected"
        )
    return values, max_step


def _linear_bounds(model, out: dict, G: np.ndarray) -> dict[str, dict[str, Any]]:
    """``"linear"``: exact extremes over the posterior of ``value + G·(θ − θ̄)``."""
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
