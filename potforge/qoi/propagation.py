"""Parameter uncertainty of a fitted linear potential propagated to material properties.

Four methods, each giving per QoI ``value`` (the fitted model's), ``std``, ``lower``, ``upper``:

* ``"linear"`` — first order through the exact sensitivities dQ/dθ
  (:mod:`potforge.qoi.sensitivity`: envelope theorem and implicit differentiation, no
  re-relaxation per sample): ``Q(θ) ≈ Q(θ̄) + ∇Q·(θ − θ̄)``, with **exact** extremes of the
  linear functional over the posterior (:meth:`LinearPotential.functional_bounds`).  Cost: one
  property suite plus descriptor passes, whatever the posterior size.
* ``"implicit"`` — the ``n_candidates`` posterior members with the lowest and the highest
  linearised value of each QoI (from the exact dQ/dθ; the first of each attain the linear
  bounds) and ``n_samples`` random samples are evaluated nonlinearly,
  but their relaxed structures are predicted by implicit differentiation instead of relaxed:
  one Newton step from the fitted model's minimum with the fitted model's Hessian
  (:mod:`potforge.qoi.implicit`).  Second-order accurate; a parameter vector costs single-point
  calculations only (plus the Hessians, once).  Bounds: the extremes over the QoI's own
  candidates and the samples; ``std`` from the samples.
* ``"resample"`` — brute force: every one of ``n_samples`` parameter vectors from the posterior
  recomputes every QoI from scratch, relaxations included; bounds are the sample extremes (with
  the fitted value), ``std`` the sample spread.  Use it to check the linearisation.
* ``"auto"`` (default) — per QoI, the cheapest of the three that is accurate *for that QoI*:
  the linear bounds are checked against the implicit values at the QoI's two extreme members;
  if they differ by more than ``tol`` × the half-width, the QoI is nonlinear over the
  posterior: it is evaluated implicitly at all its ``2 n_candidates`` candidates, the two
  members giving the lowest and highest implicit value are fully re-relaxed (where one cannot
  be — a slab that falls apart at that member — the next most extreme), and the QoI takes
  ``"implicit"`` if those agree to ``tol``, else ``"resample"`` (the re-relaxed values at those
  two members).  Two cases are flagged and warned about: both extremes on one side of the fitted
  value (strongly nonlinear; the bounds are inner bounds), and a structure that exists at none
  of the candidates (the linear bounds are kept, unchecked).  The member that maximises the
  linearisation need not maximise the QoI itself when the curvature differs between members,
  hence the candidates.  Cost over ``"linear"``:
  two single-QoI implicit evaluations per QoI (plus their Hessians), and per nonlinear QoI
  ``2 (n_candidates − 1)`` more and two relaxed evaluations.  ``std`` is first order.

``std`` and ``lower``/``upper`` describe the same posterior, but ``std`` is a typical deviation
(for an ensemble: the RMS over its members of the deviation from the fitted value) and the
bounds are its extremes: POPS members are heavy-tailed, so the bounds lie many std from the
value.  Every entry says which in words (``std_meaning``, ``bounds_meaning``).

The fitted model's relaxations are recorded once and taken over by each QoI's own record (no
relaxation is redone at the fitted parameters); the work at posterior parameter vectors uses the
model's LAMMPS pair style where it is the same potential (:mod:`potforge.qoi.fast`).
Warnings name the options as the caller spells them (:func:`~potforge.properties.settings.
option_name`: ``n_candidates`` from Python, ``--candidates`` under the CLI) and point at the
caller's line.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from potforge.errors import ModelError
from potforge.options import N_CANDIDATES
from potforge.params import Integer, Real
from potforge.properties.base import is_compound, progress_bar, serial_blas, warn_at_caller
from potforge.properties.settings import Setting, option_name
from potforge.qoi.fast import fast_calculator


@dataclass
class _Stability:
    """Posterior parameter vectors evaluated, and those at which some QoI came out mechanically
    or dynamically unstable (the QoI exists, but is flagged), with each such QoI's first
    message — summarised in one :class:`UnstableWarning` instead of one per vector.  One per
    :func:`property_uncertainty` call, passed explicitly to every :func:`_evaluate` of it."""

    vectors: int = 0
    flagged: int = 0
    qois: dict[str, str] = field(default_factory=dict)

    def warn(self) -> None:
        from potforge.properties.base import UnstableWarning

        if self.flagged:
            warn_at_caller(
                f"{self.flagged} of {self.vectors} posterior parameter vectors evaluated give an "
                f"unstable lattice for {', '.join(self.qois)} (values kept; first: "
                f"{next(iter(self.qois.values()))})",
                UnstableWarning,
            )


METHODS = ("auto", "linear", "implicit", "resample")
"""Propagation methods (``"auto"`` picks one of the others per QoI)."""

AUTO_TOL = 0.1
"""``"auto"``: largest disagreement at the extreme members, as a fraction of the half-width,
for which a cheaper method counts as accurate."""


N_SAMPLES = 16
"""``"implicit"``/``"resample"``: default number of random posterior samples."""

OPTIONS: dict[str, Setting] = {
    "n_samples": Setting(
        "n_samples", N_SAMPLES, Integer(low=1), "posterior samples", option="n_samples"
    ),
    "n_candidates": Setting(
        "n_candidates",
        N_CANDIDATES,
        Integer(low=1),
        "candidate members per side",
        option="n_candidates",
    ),
    "newton_steps": Setting(
        "newton_steps", 1, Integer(low=1), "Newton steps per relaxation", option="newton_steps"
    ),
    "tol": Setting("tol", AUTO_TOL, Real(low=0), "auto's accuracy threshold", option="tol"),
}
"""The propagation options of :func:`property_uncertainty`, each with its allowed range."""


def check_options(**options: Any) -> dict[str, Any]:
    """Each given propagation option (:data:`OPTIONS`) checked: a bad one is one
    :class:`~potforge.properties.base.SettingError` sentence naming it (``--candidates`` under
    the CLI), its value and what is allowed."""
    return {k: OPTIONS[k].check(v) for k, v in options.items()}


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
    n_samples: int = N_SAMPLES,
    seed: int = 0,
    newton_steps: int = 1,
    tol: float = AUTO_TOL,
    n_candidates: int = N_CANDIDATES,
    progress: bool | None = None,
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
    n_candidates : int
        ``"implicit"``/``"auto"``: posterior members per side evaluated as candidates for the
        extremes of a nonlinear QoI (:data:`N_CANDIDATES`; 1 = only the linearised extremes).
    progress : bool or None
        Progress bars (:mod:`potforge.progress`; None: on a terminal only, start and done
        lines in a log).
    **settings
        Property settings (:data:`~potforge.properties.settings.SETTINGS`).  Settings, the
        options above, the QoI names and their lattices are all checked before any work.

    Returns
    -------
    dict
        ``{qoi: {"value", "unit", "std", "lower", "upper", "method", "seconds"}}`` in QoI units;
        ``"implicit"`` and ``"resample"`` add ``"samples"`` (n_samples,; ``None`` where the
        QoI does not exist at that sample: its relaxation failed or collapsed) and
        ``"unstable_samples"`` (how many such; the bounds and std are over the others);
        ``"implicit"`` adds ``"extremes"`` (the QoI at its two linearised-extreme members),
        ``"candidates"`` (at its ``2 n_candidates`` candidate members, lower side first;
        ``None`` likewise) and ``"max_newton_step"``
        (largest coordinate step of any parameter vector, Å); ``"auto"`` sets ``"method"`` to
        the method chosen and adds ``"check"``: the disagreement of ``"linear"`` with
        ``"implicit"`` at the linearised-extreme members and of ``"implicit"`` with
        re-relaxation at the members giving the implicit extremes (``None`` where not needed,
        or where the QoI does not exist at a linearised extreme), as fractions of the
        half-width, ``"unrelaxable_candidates"``: candidates passed
        over because their relaxation failed or turned unstable, and ``"flag"``: ``None``,
        ``"one_sided"`` (both extreme candidates on one side of the fitted value: strongly
        nonlinear, the bounds are inner bounds) or ``"no_relaxable_candidate"`` (the structure
        exists at none of the candidates: the linear bounds are kept, unchecked); flagged QoIs
        are also named in one UserWarning.

    Raises
    ------
    ModelError
        No posterior, an unknown method, a non-finite property value for some sample, or a
        QoI that exists at none of the samples.
    SettingError, UnknownQoIError, NotApplicableError
        A bad setting or option, an unknown QoI, or one not defined for the lattice (before
        any work).

    Warns
    -----
    UnstableWarning
        Once, when the lattice is mechanically or dynamically unstable at some of the posterior
        parameter vectors evaluated (how many, for which QoIs); the fitted model's own
        instabilities are reported as usual.
    """
    from potforge.properties.registry import check_request

    _check(model, method)
    opts = check_options(
        n_samples=n_samples, n_candidates=n_candidates, newton_steps=newton_steps, tol=tol
    )
    names, _ = check_request(element, qois, settings)
    stability = _Stability()
    try:
        with serial_blas():
            settings = _pin_compound_lattice(model, element, settings)
            return _propagate(
                model,
                element,
                names,
                method,
                opts["n_samples"],
                seed,
                opts["newton_steps"],
                opts["tol"],
                opts["n_candidates"],
                progress,
                settings,
                stability,
            )
    finally:
        stability.warn()


def _pin_compound_lattice(model, element: str, settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with the ``structure`` of a compound set to the fitted model's lattice (the
    lower in energy of zincblende and rocksalt at the fitted parameters) when not given.

    Every posterior member then computes the QoIs of that lattice: one whose own lower lattice
    is the other would otherwise make other relaxations than those recorded for the Newton
    steps, and switch the QoIs to another structure.  Elements are returned unchanged."""
    if not is_compound(element) or settings.get("structure") is not None:
        return settings
    from potforge.properties.registry import suite_for

    lattice = suite_for(fast_calculator(model), element, **settings).lattice
    return {**settings, "structure": lattice}


def _propagate(
    model,
    element,
    qois,
    method,
    n_samples,
    seed,
    newton_steps,
    tol,
    n_candidates,
    progress,
    settings,
    stability,
):
    """:func:`property_uncertainty` after its argument checks (BLAS limited by it);
    ``stability``: the call's :class:`_Stability` summary."""
    from potforge.properties import run_suite
    from potforge.qoi.implicit import NewtonRelaxer, RelaxationRecord
    from potforge.qoi.sensitivity import Sensitivity

    # the fitted model's relaxations, recorded once: the Newton steps of every posterior vector
    # start from them, and each QoI's own record (one single-QoI suite) takes them over
    record = RelaxationRecord() if method in ("implicit", "auto") else None
    sens = Sensitivity(model, element, hook=record, **settings)
    # the values from the sensitivities' own suite: the gradients reuse its relaxed structures
    out = run_suite(
        sens.calc, element, qois, progress=progress, suite=sens.suite, blas_threads=None, **settings
    )
    names = list(out)
    if method != "resample":
        grads = sens.gradients(names, progress=progress)
        G = np.array([grads[q]["gradient"] for q in names])
    if method == "linear":
        return _linear_bounds(model, out, G)
    if method == "auto":
        return _auto(
            model,
            element,
            out,
            G,
            sens.calc,
            newton_steps,
            tol,
            n_candidates,
            progress,
            settings,
            record,
            stability,
        )
    thetas = model.sample_coef(n_samples, seed)
    implicit = method == "implicit"
    make_hook = None
    if implicit:
        assert record is not None  # made above for the implicit and auto methods
        make_hook = partial(NewtonRelaxer, record, sens.calc, newton_steps)
    unstable: list = []
    values, max_step = _evaluate(
        model,
        element,
        names,
        thetas,
        make_hook,
        progress,
        settings,
        unstable,
        desc=f"posterior samples ({method})",
        stability=stability,
    )
    if implicit:  # each QoI at its candidate members for the extremes
        cands = model.candidate_coef(G, n_candidates)
        own, ext_step = _extreme_values(
            model,
            element,
            names,
            cands.reshape(len(names), -1, cands.shape[-1]),
            sens.calc,
            newton_steps,
            progress,
            settings,
            {},
            record,
            desc="candidate members (implicit)",
            stability=stability,
        )
        max_step = max(max_step, ext_step)
    spread = _spread_words(model, method, n_samples, cands.shape[2] if implicit else n_candidates)
    for k, q in enumerate(names):
        v, col = out[q]["value"], values[:, k]
        lost = [msg for _, name, msg in unstable if name == q]
        if len(lost) == len(col):
            raise ModelError(
                f"{q} does not exist at any of the {len(col)} posterior samples: {lost[0]}"
            )
        ext = own[k][np.isfinite(own[k])] if implicit else np.empty(0)
        ok = col[np.isfinite(col)]
        out[q].update(
            std=float(ok.std()),
            lower=float(min(v, *ok, *ext)),
            upper=float(max(v, *ok, *ext)),
            method=method,
            samples=[float(c) if np.isfinite(c) else None for c in col],
            unstable_samples=len(lost),
            **spread[method],
        )
        if implicit:
            k_side = cands.shape[2]
            cand = [float(c) if np.isfinite(c) else None for c in own[k]]  # None: no structure
            out[q].update(
                extremes=[cand[0], cand[k_side]], candidates=cand, max_newton_step=max_step
            )
    return out


def _extreme_values(
    model,
    element,
    names,
    members,
    calc0,
    newton_steps,
    progress,
    settings,
    records: dict,
    reuse,
    desc: str,
    stability: _Stability | None = None,
):
    """Each QoI at its own posterior members ``members`` (len(names), C, P), alone (one
    single-QoI suite per member), implicitly: its relaxations recorded under ``calc0`` and
    replaced by Newton steps.  ``records`` ({qoi: RelaxationRecord}) keeps each QoI's record
    for a later call on the same QoI; a QoI's record is made by a single-QoI suite at the fitted
    parameters that takes over the relaxations (and Hessians) of ``reuse``, the record of the
    fitted model's run.  Returns (len(names), C) values (NaN where the QoI does not exist at
    that member: its structure collapses) and the largest Newton step (Å); ``stability``: as
    for :func:`_evaluate`."""
    from potforge.properties import run_suite
    from potforge.qoi.implicit import NewtonRelaxer, RelaxationRecord

    values = np.empty(members.shape[:2])
    max_step = 0.0
    for k, q in enumerate(progress_bar(names, desc=desc, unit="QoI", progress=progress)):
        record = records.get(q)
        if record is None:
            record = RelaxationRecord(reuse=reuse)
            # a fresh calculator and suite: no shared work cached
            run_suite(
                fast_calculator(model),
                element,
                [q],
                progress=False,
                hook=record,
                blas_threads=None,
                **settings,
            )
            records[q] = record
        make_hook = partial(NewtonRelaxer, record, calc0, newton_steps)
        vals, step = _evaluate(
            model, element, [q], members[k], make_hook, False, settings, [], stability=stability
        )
        values[k] = vals[:, 0]
        max_step = max(max_step, step)
    return values, max_step


def _auto(
    model,
    element,
    out,
    G,
    calc0,
    newton_steps,
    tol,
    n_candidates,
    progress,
    settings,
    reuse,
    stability: _Stability | None = None,
):
    """``"auto"``: per QoI the cheapest method that agrees with the next-more-exact one at the
    QoI's extreme members (module docstring); ``reuse``: the fitted model's relaxations;
    ``stability``: as for :func:`_evaluate`."""
    names = list(out)
    linear = _linear_bounds(model, {q: dict(out[q]) for q in names}, G)
    cands = model.candidate_coef(G, n_candidates)  # (Q, 2, k, P)
    records: dict[str, Any] = {}  # each QoI's relaxations at θ̄, once for both implicit passes
    implicit, _ = _extreme_values(
        model,
        element,
        names,
        cands[:, :, 0],
        calc0,
        newton_steps,
        progress,
        settings,
        records,
        reuse,
        desc="auto: implicit check at the linear extremes",
        stability=stability,
    )
    lin = np.array([[linear[q]["lower"], linear[q]["upper"]] for q in names])
    half = np.maximum(0.5 * (lin[:, 1] - lin[:, 0]), np.finfo(float).tiny)
    # a QoI that does not exist at a linearised extreme (NaN) is as nonlinear as it gets
    lin_err = np.nan_to_num(np.abs(implicit - lin).max(axis=1) / half, nan=np.inf)
    nonlinear = [k for k in range(len(names)) if lin_err[k] > tol]
    ends, relaxed, skipped = _nonlinear_extremes(
        model,
        element,
        [names[k] for k in nonlinear],
        cands[nonlinear],
        implicit[nonlinear],
        calc0,
        newton_steps,
        progress,
        settings,
        records,
        reuse,
        stability,
    )
    spread = _spread_words(model, "auto", 0, cands.shape[2])
    notes = []
    for k, q in enumerate(names):
        entry = linear[q]
        imp_err, n_skipped, flag = None, 0, None
        if k in nonlinear:
            i = nonlinear.index(k)
            n_skipped = int(skipped[i])
            v = entry["value"]
            if np.isnan(relaxed[i]).any():
                flag = "no_relaxable_candidate"
                notes.append(
                    f"{q}: the structure exists at none of its {n_skipped} candidate "
                    "members, so its linear bounds are kept unchecked"
                )
            else:
                imp_err = float(np.abs(ends[i] - relaxed[i]).max() / half[k])
                chosen, at = ("implicit", ends[i]) if imp_err <= tol else ("resample", relaxed[i])
                imp_err = imp_err if np.isfinite(imp_err) else None  # no implicit value there
                entry.update(
                    lower=float(min(v, *at)),
                    upper=float(max(v, *at)),
                    method=chosen,
                    **spread[chosen],
                )
                if (at >= v).all() or (at <= v).all():
                    flag = "one_sided"
                    notes.append(
                        f"{q}: both extreme candidates lie on one side of the fitted "
                        "value (strongly nonlinear: inner bounds; more "
                        f"{option_name('n_candidates')} or "
                        f"{option_name('method', 'resample')} may widen them)"
                    )
        entry["check"] = {
            "linear_vs_implicit": float(lin_err[k]) if np.isfinite(lin_err[k]) else None,
            "implicit_vs_relaxed": imp_err,
            "unrelaxable_candidates": n_skipped,
            "flag": flag,
        }
    if notes:
        warn_at_caller("auto propagation: " + "; ".join(notes), UserWarning)
    return linear


def _nonlinear_extremes(
    model,
    element,
    names,
    cands,
    at_linear,
    calc0,
    newton_steps,
    progress,
    settings,
    records,
    reuse,
    stability: _Stability | None = None,
):
    """``"auto"`` for the nonlinear QoIs ``names``: the implicit values at all candidates
    ``cands`` (n, 2, k, P) (those at the linearised extremes ``[:, :, 0]`` are given,
    ``at_linear`` (n, 2)), then per side the candidate with the most extreme implicit value
    re-relaxed — or, where its relaxation fails or turns unstable (the property does not exist
    at that member), the next most extreme.  ``records``: as for :func:`_extreme_values`;
    ``stability``: as for :func:`_evaluate`.
    Returns the implicit and re-relaxed values at the chosen members, each (n, 2) (NaN where
    no candidate could be relaxed), and the number of candidates skipped per QoI (n,)."""
    from potforge.properties.base import InstabilityError, RelaxationError

    k = cands.shape[2]
    members = cands.reshape(len(names), 2 * k, cands.shape[-1])
    values = np.repeat(at_linear, k, axis=1)
    more = np.ones(2 * k, bool)
    more[::k] = False  # the linearised extremes are evaluated already
    if names and more.any():
        values[:, more], _ = _extreme_values(
            model,
            element,
            names,
            members[:, more],
            calc0,
            newton_steps,
            progress,
            settings,
            records,
            reuse,
            desc="auto: implicit values at all candidates",
            stability=stability,
        )
    ends, relaxed = np.empty((len(names), 2)), np.empty((len(names), 2))
    skipped = np.zeros(len(names), int)
    for i, q in enumerate(
        progress_bar(
            names, desc="auto: re-relaxing the extreme candidates", unit="QoI", progress=progress
        )
    ):
        for side, order in enumerate((np.argsort(values[i]), np.argsort(-values[i]))):
            for j in order:
                try:
                    relaxed[i, side] = _evaluate(
                        model,
                        element,
                        [q],
                        members[i, j][None],
                        None,
                        False,
                        settings,
                        stability=stability,
                    )[0][0, 0]
                except (RelaxationError, InstabilityError):
                    skipped[i] += 1
                    continue
                ends[i, side] = values[i, j]
                break
            else:  # the structure exists at none of the candidates
                ends[i] = relaxed[i] = np.nan
                skipped[i] = 2 * k
                break
    return ends, relaxed, skipped


def _evaluate(
    model,
    element,
    names,
    thetas,
    make_hook,
    progress,
    settings,
    unstable=None,
    desc: str = "posterior samples",
    stability: _Stability | None = None,
):
    """QoI values (len(thetas), len(names)) for each parameter vector, relaxations replaced by
    ``make_hook()`` (a fresh :class:`NewtonRelaxer` per vector) when given; and the largest
    Newton step (Å).  ``unstable`` (a list): a QoI whose relaxation fails or turns unstable at a
    vector is NaN there and ``(vector, qoi, message)`` is appended; otherwise the error
    propagates.  Lattices that are mechanically or dynamically unstable at some vectors (the
    QoI exists, but flagged) are counted in ``stability``, the :class:`_Stability` summary of
    the calling :func:`property_uncertainty` (one warning per call), or summarised here when
    it is None (BLAS: left as property_uncertainty limited it, else one thread per suite)."""
    from potforge.properties import run_suite
    from potforge.properties.base import InstabilityError, RelaxationError, UnstableWarning

    own = stability is None  # not given by property_uncertainty: summarise here
    stats = stability if stability is not None else _Stability()

    def suite(theta, qois):
        hook = None if make_hook is None else make_hook()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnstableWarning)  # summarised instead
            res = run_suite(
                fast_calculator(model, theta),
                element,
                qois,
                progress=False,
                hook=hook,
                blas_threads=1 if own else None,
                **settings,
            )
        flagged = [q for q in qois if res[q].get("stable") is False]
        for q in flagged:
            stats.qois.setdefault(q, res[q]["warning"])
        return [res[q]["value"] for q in qois], hook.max_step if hook else 0.0, bool(flagged)

    values = np.empty((len(thetas), len(names)))
    max_step = 0.0
    for s, theta in enumerate(progress_bar(thetas, desc=desc, unit="sample", progress=progress)):
        try:
            values[s], step, flagged = suite(theta, names)
        except (RelaxationError, InstabilityError):
            if unstable is None:
                raise
            step, flagged = 0.0, False
            for k, q in enumerate(names):  # which QoIs do not exist at this vector
                try:
                    (values[s, k],), step_q, flagged_q = suite(theta, [q])
                    step, flagged = max(step, step_q), flagged or flagged_q
                except (RelaxationError, InstabilityError) as exc:
                    values[s, k] = np.nan
                    unstable.append((s, q, str(exc)))
        max_step = max(max_step, step)
        stats.vectors += 1
        stats.flagged += flagged
    if own:
        stats.warn()
    bad = ~np.isfinite(values)
    for s, q, _ in unstable or ():
        bad[s, names.index(q)] = False
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
    words = _spread_words(model, "linear", 0, 1)["linear"]
    for k, q in enumerate(out):
        v = out[q]["value"]
        out[q].update(
            std=float(std[k]),
            lower=float(v + lo[k] - mean[k]),
            upper=float(v + hi[k] - mean[k]),
            method="linear",
            **words,
        )
    return out


def _spread_words(model, method: str, n_samples: int, per_side: int) -> dict[str, dict]:
    """What ``std`` and ``lower``/``upper`` are, in words, for each method a QoI can end up
    with (``std_meaning``, ``bounds_meaning`` of the output): both always describe the same
    posterior, but ``std`` is a typical deviation and the bounds are its extremes — for a POPS
    ensemble, whose members are heavy-tailed, the bounds lie many std from the value."""
    post = model.posterior_
    name = {"pops": "POPS", "bootstrap": "bootstrap", "bayes": "Bayesian"}.get(
        post.method, post.method
    )
    if post.kind == "ensemble":
        n = int(post.arrays["members"].shape[0])
        over = f"the {n} {name} ensemble members"
        std = f"RMS over {over} of the deviation from the fitted value"
        bounds = f"min/max over {over}"
    elif post.kind == "hypercube":
        over = f"the {name} hypercube"
        std = f"RMS over {over} (uniform in its box) of the deviation from the fitted value"
        bounds = f"extreme corners of {over}"
    else:
        over = f"the Gaussian {name} posterior"
        std = f"standard deviation of {over}"
        bounds = f"±{float(post.info.get('n_sigma', 2.0)):g} std of {over}"
    first = ", to first order (dQ/dθ·δθ)"
    linear = {"std_meaning": std + first, "bounds_meaning": bounds + first}
    cands = (
        f"the QoI's {2 * per_side} candidate members (the members of {over} with the most "
        "extreme linearised values)"
    )
    if method in ("linear", "auto"):
        return {
            "linear": linear,
            "implicit": {
                "std_meaning": linear["std_meaning"],
                "bounds_meaning": "min/max of the fitted value and the implicit values "
                f"(one Newton step per relaxation) at {cands}",
            },
            "resample": {
                "std_meaning": linear["std_meaning"],
                "bounds_meaning": "min/max of the fitted value and the fully "
                "re-relaxed values at the two of the QoI's "
                f"{2 * per_side} candidate members whose implicit "
                "values are extreme",
            },
        }
    how = (
        "implicit values (one Newton step per relaxation)"
        if method == "implicit"
        else "fully re-relaxed values"
    )
    sampled = {
        "std_meaning": f"standard deviation of the {how} at {n_samples} random samples "
        f"of {over} (where the QoI exists)"
    }
    if method == "implicit":
        sampled["bounds_meaning"] = (
            f"min/max of the fitted value and the {how} at the {n_samples} samples and at {cands}"
        )
    else:
        sampled["bounds_meaning"] = (
            f"min/max of the fitted value and the {how} at the {n_samples} samples"
        )
    return {method: sampled}
