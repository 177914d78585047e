"""Parameter uncertainty of a fitted linear potential propagated to material properties.

Four methods, each giving per QoI ``value`` (the fitted model's), ``std``, ``lower``, ``upper``:

* ``"linear"`` — first order through the exact sensitivities dQ/dθ
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
* ``"auto"`` (default) — per QoI, the cheapest of the three that is accurate *for that QoI*:
  the linear bounds are checked against the implicit values at the QoI's two extreme members;
  if they differ by more than ``tol`` × the half-width, the implicit values are checked against
  full re-relaxation at the same two members, and the first level that agrees with the next is
  used (``"resample"`` then means the two extreme members re-relaxed).  The extremes are the
  posterior members attaining the exact linearised bounds, so the check is made where the
  linearisation is worst.  Cost over ``"linear"``: two single-QoI implicit evaluations per QoI
  (plus their Hessians) and two relaxed evaluations per nonlinear QoI.  ``std`` is first order.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

import numpy as np

from potforge.errors import ModelError

METHODS = ("auto", "linear", "implicit", "resample")
"""Propagation methods (``"auto"`` picks one of the others per QoI)."""

AUTO_TOL = 0.1
"""``"auto"``: largest disagreement at the extreme members, as a fraction of the half-width,
for which a cheaper method counts as accurate."""


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
    method: str = "auto",
    n_samples: int = 16,
    seed: int = 0,
    newton_steps: int = 1,
    tol: float = AUTO_TOL,
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
    method : {"auto", "linear", "implicit", "resample"}
        See the module docstring; ``"auto"`` chooses per QoI.
    n_samples : int
        Parameter samples for ``"implicit"`` and ``"resample"``.
    seed : int
        Sampling seed.
    newton_steps : int
        ``"implicit"``/``"auto"``: Newton steps with the frozen Hessian per relaxation (1: the
        implicit-function prediction; more steps converge towards the relaxed structure far from
        the fitted parameters, one force call each, but need not converge there).
    tol : float
        ``"auto"``: accuracy threshold, a fraction of the half-width (:data:`AUTO_TOL`).
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
        (largest coordinate step of any parameter vector, Å); ``"auto"`` sets ``"method"`` to
        the method chosen and adds ``"check"``: the disagreement of ``"linear"`` with
        ``"implicit"`` and of ``"implicit"`` with re-relaxation (``None`` where not needed) at
        the extreme members, as fractions of the half-width.

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
    if method == "auto":
        return _auto(model, element, out, G, sens.calc, newton_steps, tol, progress, settings)
    thetas = model.sample_coef(n_samples, seed)
    make_hook = None if record is None else partial(NewtonRelaxer, record, sens.calc, newton_steps)
    values, max_step = _evaluate(model, element, names, thetas, make_hook, progress, settings)
    if record is not None:  # each QoI at the posterior members at its linearised extremes
        own, ext_step = _extreme_values(
            model, element, names, model.extreme_coef(G), sens.calc, newton_steps, progress,
            settings,
        )
        max_step = max(max_step, ext_step)
    for k, q in enumerate(names):
        v, col = out[q]["value"], values[:, k]
        ext = own[k] if record is not None else np.empty(0)
        out[q].update(
            std=float(col.std()),
            lower=float(min(v, *col, *ext)),
            upper=float(max(v, *col, *ext)),
            method=method,
            samples=col.tolist(),
        )
        if record is not None:
            out[q].update(extremes=ext.tolist(), max_newton_step=max_step)
    return out


def _extreme_values(model, element, names, members, calc0, newton_steps, progress, settings,
                    implicit: bool = True):
    """Each QoI at its own two posterior members ``members`` (len(names), 2, P), alone (one
    single-QoI suite per member): implicit (its relaxations recorded under ``calc0`` and
    replaced by Newton steps) or fully relaxed.  Returns (len(names), 2) values and the largest
    Newton step (Å)."""
    from tqdm.auto import tqdm

    from potforge.properties import run_suite
    from potforge.properties.relax import relaxation_hook
    from potforge.uq.implicit import NewtonRelaxer, RelaxationRecord

    values = np.empty((len(names), 2))
    max_step = 0.0
    desc = "extreme members" + (" (implicit)" if implicit else " (relaxed)")
    for k, q in enumerate(tqdm(names, desc=desc, unit="QoI", disable=not progress)):
        make_hook = None
        if implicit:
            record = RelaxationRecord()
            with relaxation_hook(record):  # a fresh calculator: no shared work cached
                run_suite(model.as_calculator(), element, [q], progress=False, **settings)
            make_hook = partial(NewtonRelaxer, record, calc0, newton_steps)
        vals, step = _evaluate(model, element, [q], members[k], make_hook, False, settings)
        values[k] = vals[:, 0]
        max_step = max(max_step, step)
    return values, max_step


def _auto(model, element, out, G, calc0, newton_steps, tol, progress, settings):
    """``"auto"``: per QoI the cheapest method that agrees with the next-more-exact one at the
    QoI's two extreme members (module docstring)."""
    names = list(out)
    linear = _linear_bounds(model, {q: dict(out[q]) for q in names}, G)
    members = model.extreme_coef(G)
    implicit, _ = _extreme_values(model, element, names, members, calc0, newton_steps,
                                  progress, settings)
    lin = np.array([[linear[q]["lower"], linear[q]["upper"]] for q in names])
    half = np.maximum(0.5 * (lin[:, 1] - lin[:, 0]), np.finfo(float).tiny)
    lin_err = np.abs(implicit - lin).max(axis=1) / half
    nonlinear = [k for k in range(len(names)) if lin_err[k] > tol]
    relaxed = np.full_like(implicit, np.nan)
    if nonlinear:
        relaxed[nonlinear], _ = _extreme_values(
            model, element, [names[k] for k in nonlinear], members[nonlinear], calc0,
            newton_steps, progress, settings, implicit=False,
        )
    for k, q in enumerate(names):
        entry = linear[q]
        imp_err = None
        if k in nonlinear:
            imp_err = float(np.abs(implicit[k] - relaxed[k]).max() / half[k])
            chosen, ends = ("implicit", implicit[k]) if imp_err <= tol else ("resample", relaxed[k])
            v = entry["value"]
            entry.update(lower=float(min(v, *ends)), upper=float(max(v, *ends)), method=chosen)
        entry["check"] = {"linear_vs_implicit": float(lin_err[k]),
                          "implicit_vs_relaxed": imp_err}
    return linear


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
