"""The MD-driven active-learning loop (seed 004, ../shared/METHODS.md §5).

One iteration, every stage checkpointed in the store (:class:`potforge.data.checkpoint.Checkpoint`):

1. ``label``   — the frames chosen last (the initial and held-out sets at iteration 0) go through
   the labelling engine into the store; a failed oracle call is recorded and skipped;
2. ``fit``     — the model on every labelled training frame, its POPS posterior, and K
   parameter vectors drawn from it (the ensemble whose force spread is the uncertainty U);
3. ``explore`` — MD of the current model from each explorer's start, as Dask tasks; frames are
   stored as candidates; an explorer that leaves physical space is stopped and recorded, the
   others go on;
4. ``select``  — U (``max_devi_f``, or the POPS bound half-width), energy and extrapolation
   grade of every frame from one descriptor pass (:func:`potforge.active.watch.screen`); the
   acquisition's probabilities per trajectory (its own energy statistics, and its own settings
   where ``system_settings`` names the explorer: thresholds per system) against the held-out
   set's U statistics; rejection sampling until the quota; deduplication; the budget.

Each explorer's next start is its kept frame with the largest true force error (known once
labelled), else its last frame before it stopped.  The loop stops when the held-out force RMSE
and the mean held-out U change by less than ``rtol`` over the last ``patience`` iterations
(printed each iteration), when the budget of oracle calls is spent, or at ``max_iterations``.
A process killed at any moment resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from ase import Atoms
from sklearn.base import clone

from potforge.active.acquisition import Acquisition, Frames, Reference, make_acquisition, pick
from potforge.active.explore import ExplorerSpec, Trajectory, explore_many
from potforge.active.watch import UNCERTAINTIES, screen, training_grade
from potforge.data.checkpoint import Checkpoint, digest
from potforge.data.store import Store
from potforge.data.structures import labels, structure_hash
from potforge.errors import DataError
from potforge.oracles import Oracle, make_oracle
from potforge.oracles.labelling import label_candidates

LOOP = "active-learning"


@dataclass
class Step:
    """One iteration's record (also what the progress line prints).

    Attributes
    ----------
    iteration : int
    frames_seen : int
        Frames the explorers produced this iteration.
    kept : int
        Frames selected for labelling.
    oracle_calls : int
        Structures labelled so far (training, held-out and failed).
    heldout_rmse : float
        Force RMSE on the held-out set after this iteration's fit, eV/Å.
    u_mean, u_std : float
        Held-out U statistics, eV/Å.
    explorers_failed : int
    stopped : dict
        Explorer name → cause, for those stopped this iteration.
    converged : bool
    change : tuple of float or None
        Relative change of the held-out force RMSE and of the mean held-out U from the previous
        iteration (None at the first) — the stopping criterion's two numbers.
    unchanged : int
        Iterations in a row (ending here) whose two changes were both ≤ ``rtol``.
    """

    iteration: int
    frames_seen: int
    kept: int
    oracle_calls: int
    heldout_rmse: float
    u_mean: float
    u_std: float
    explorers_failed: int
    stopped: dict[str, str] = field(default_factory=dict)
    converged: bool = False
    change: tuple[float, float] | None = None
    unchanged: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return dict(self.__dict__)


@dataclass
class ActiveResult:
    """The final model, the per-iteration records, the labelled hashes and why it stopped."""

    model: Any
    steps: list[Step]
    training: list[str]
    heldout: list[str]
    stop: str


def _rmse(model, designs, structures) -> float:
    preds = model.predict_designs(designs)
    err = [p["forces"] - labels(a)["forces"] for p, a in zip(preds, structures, strict=True)]
    return float(np.sqrt(np.mean(np.concatenate([e.ravel() for e in err]) ** 2)))


def heldout_structures(initial: Sequence[Atoms], n: int, rattle: float, seed: int) -> list[Atoms]:
    """The loop's held-out set: ``n`` rattled copies (``rattle`` Å, seeds ``seed + 1000 + k``)
    of the first initial configurations, in turn (group ``"heldout"``)."""
    out = []
    for k in range(n):
        a = initial[k % len(initial)].copy()
        a.rattle(rattle, seed=seed + 1000 + k)
        a.info["group"] = "heldout"
        out.append(a)
    return out


def run_active(
    model,
    initial: Sequence[Atoms],
    explorers: Sequence[ExplorerSpec],
    oracle: Oracle | str,
    store: Store | str,
    *,
    acquisition: str = "pu_pe",
    acquisition_settings: dict[str, Any] | None = None,
    system_settings: dict[str, dict[str, Any]] | None = None,
    uncertainty: str = "max_devi_f",
    n_heldout: int = 6,
    heldout_rattle: float = 0.05,
    n_ensemble: int = 32,
    quota: int = 10,
    budget: int = 200,
    max_iterations: int = 20,
    patience: int = 3,
    rtol: float = 0.05,
    dedup: float = 0.0,
    seed: int = 0,
    workers: int | None = None,
    client: Any = None,
    threads: int = 1,
    label_options: dict[str, Any] | None = None,
    observer: Callable[[Step], None] | None = None,
    progress: bool | None = None,
    loop: str = LOOP,
    max_seconds: float | None = None,
) -> ActiveResult:
    """Run (or resume) the active-learning loop.

    Parameters
    ----------
    model : LinearPotential
        Unfitted template.
    initial : sequence of ase.Atoms
        The starting training configurations (labelled at iteration 0).
    explorers : sequence of ExplorerSpec
        MD tasks; each iteration restarts them from their next start (see the module notes).
    oracle : Oracle or str
    store : Store or str
    acquisition : {"pu_pe", "trust", "dopt", "topk"}, default="pu_pe"
    acquisition_settings : dict, optional
        Settings of the acquisition (e.g. ``{"lo": 0.05, "hi": 0.15}`` for trust).
    system_settings : dict, optional
        Thresholds per system: explorer-name pattern (``fnmatch``, e.g. ``"vacancy-*"`` or
        ``"*-3000K"``) → settings that override ``acquisition_settings`` for the explorers it
        matches (later patterns override earlier ones).  A pattern matching no explorer is an
        error.
    uncertainty : {"max_devi_f", "pops_halfwidth"}, default="max_devi_f"
        The per-frame U: the force spread over the K samples, or the half-width of the POPS
        posterior's force bounds (max over atoms), for the acquisition and the held-out
        statistics alike.
    n_heldout : int, default=6
        Size of the held-out set for U's statistics and the stopping test: rattled copies
        (``heldout_rattle`` Å) of initial configurations; their labels count toward the budget.
    n_ensemble : int, default=32
        K parameter vectors drawn from the POPS posterior.
    quota : int, default=10
        Frames to label per iteration (shared among the explorers).
    budget : int, default=200
        Most oracle calls, initial and held-out sets included.
    max_iterations, patience : int
        ``max_iterations`` rounds of exploration; the frames of the last one are labelled and
        fitted too (a final record with no exploration).
    rtol : float, default=0.05
        Relative change of the held-out force RMSE and mean U below which an iteration counts
        as unchanged; ``patience`` unchanged iterations in a row stop the loop.
    dedup : float, default=0.0
        Deduplication distance of frames within a batch (relative descriptor distance).
    seed : int
    workers : int, optional
        Dask workers for the explorers (and the labelling unless ``label_options`` says).
    client : distributed.Client, optional
        A running cluster's client for the explorers and the labelling (instead of
        ``workers``).
    threads : int, default=1
        Threads of the descriptor pass that screens the frames.
    label_options : dict, optional
        Keyword arguments of :func:`potforge.oracles.labelling.label`.
    observer : callable, optional
        Called with each finished :class:`Step`.
    progress : bool or None
    loop : str
        The loop's name in the store.
    max_seconds : float, optional
        Wall-time budget of this call, s: once spent, the loop stops after the current
        iteration's fit (stop reason ``"time"``; rerunning resumes).
    """
    oracle = make_oracle(oracle) if isinstance(oracle, str) else oracle
    store = store if isinstance(store, Store) else Store(store)
    initial, explorers = list(initial), list(explorers)
    if not initial:
        raise DataError("the active-learning loop needs at least one initial configuration")
    if not explorers:
        raise DataError("the active-learning loop needs at least one explorer")
    if budget < len(initial) + n_heldout + 1:
        raise DataError(
            f"budget {budget} must exceed the {len(initial)} initial and {n_heldout} held-out "
            "oracle calls"
        )
    for name, value in (("quota", quota), ("n_ensemble", n_ensemble), ("patience", patience)):
        if value < 1 or (name == "n_ensemble" and value < 2):
            raise DataError(f"{name} must be ≥ {2 if name == 'n_ensemble' else 1}, got {value}")
    names = [e.name for e in explorers]
    if len(set(names)) != len(names):
        raise DataError("explorer names must be unique")
    if uncertainty not in UNCERTAINTIES:
        from potforge.params import unknown_name

        raise DataError(unknown_name(uncertainty, UNCERTAINTIES, "uncertainty"))
    halfwidth = uncertainty == "pops_halfwidth"
    acq_for = system_acquisitions(acquisition, acquisition_settings, system_settings, names)
    heldout = heldout_structures(initial, n_heldout, heldout_rattle, seed)
    init_h = [structure_hash(a) for a in initial]
    held_h = [structure_hash(a) for a in heldout]
    settings = {
        "model": {k: str(v) for k, v in clone(model).get_params().items() if k != "n_jobs"},
        "oracle": oracle.key,
        "initial": digest(init_h),
        "explorers": [
            {k: (str(v) if k == "structure" else v) for k, v in e.__dict__.items()}
            | {"structure": structure_hash(e.structure)}
            for e in explorers
        ],
        "acquisition": acquisition,
        "acquisition_settings": acquisition_settings or {},
        "system_settings": system_settings or {},
        "uncertainty": uncertainty,
        "n_heldout": n_heldout,
        "n_ensemble": n_ensemble,
        "quota": quota,
        "budget": budget,
        "seed": seed,
        "dedup": dedup,
    }
    ck = Checkpoint(store, loop, settings)
    ck.run("candidates", 0, lambda st: len(st.add_candidates(initial + heldout, "initial")))
    where = {"client": client} if client is not None else {"workers": workers}
    lab_kw = where | {"progress": bool(progress)} | dict(label_options or {})
    prepared = clone(model).setup(initial)
    training: list[str] = list(init_h)
    starts = {e.name: e.structure for e in explorers}
    steps: list[Step] = []
    history: list[tuple[float, float]] = []
    stop = "iterations"
    unchanged = 0
    t_start = time.monotonic()
    if max_seconds is not None and not max_seconds > 0:
        raise DataError(f"max_seconds must be > 0, got {max_seconds!r}")
    batch = init_h + held_h
    fitted = prepared

    for it in range(max_iterations + 1):  # the last pass only labels and fits the last batch

        def do_label(st, batch: list[str] = batch) -> dict[str, str]:
            return label_candidates(st.store, batch, oracle, **lab_kw)

        states = ck.run("label", it, do_label)
        if it > 0:
            training += [h for h in batch if states.get(h) == "ok"]
        ok = {a.info.get("structure_hash"): a for a in store.to_atoms("ok", oracle.spec)}
        train = [ok[h] for h in training if h in ok]
        held = [ok[h] for h in held_h if h in ok]
        if len(held) < 2:
            raise DataError("fewer than 2 held-out structures could be labelled")
        calls = (
            len(init_h)
            + len(held_h)
            + sum(len(ck.output("select", i)["selected"]) for i in range(it))
        )

        fresh: dict[str, Any] = {}

        def do_fit(st, train=train, it=it, fresh=fresh):
            m = prepared.with_terms()
            designs = m.structure_designs(train, progress)
            m.fit(train, designs=designs)
            m.fit_posterior(train, designs=designs, progress=progress)
            coefs = m.sample_coef(n_ensemble, seed=seed + it)
            fresh["model"] = m
            return {"coef": m.coef_.tolist(), "ensemble": coefs.tolist()}

        fit = ck.run("fit", it, do_fit)
        fitted = fresh.get("model") or prepared.with_terms(np.asarray(fit["coef"]))
        if uncertainty == "pops_halfwidth" and not fitted.has_posterior:  # resumed: the
            fitted.fit_posterior(train, progress=progress)  # posterior around the stored θ
        coefs = np.asarray(fit["ensemble"])
        held_designs = fitted.structure_designs(held, progress, threads=threads)
        u_held = screen(fitted, held, coefs, halfwidth=halfwidth, designs=held_designs).signal(
            uncertainty
        )
        ref = Reference.from_heldout(u_held)
        rmse = _rmse(fitted, held_designs, held)
        history.append((rmse, ref.u_mean))
        change = None
        if len(history) > 1:
            (r0, u0), (r1, u1) = history[-2:]
            change = (abs(r1 - r0) / max(r0, 1e-300), abs(u1 - u0) / max(u0, 1e-300))
            unchanged = unchanged + 1 if max(change) <= rtol else 0
        converged = unchanged >= patience
        left = budget - calls
        late = max_seconds is not None and time.monotonic() - t_start >= max_seconds
        if converged or left <= 0 or late or it == max_iterations:
            steps.append(
                Step(
                    it,
                    0,
                    0,
                    calls,
                    rmse,
                    ref.u_mean,
                    ref.u_std,
                    0,
                    {},
                    converged,
                    change,
                    unchanged,
                )  # fmt: skip
            )
            if observer is not None:
                observer(steps[-1])
            stop = (
                "converged" if converged else "budget" if left <= 0 else "time" if late
                else "iterations"
            )  # fmt: skip
            break

        specs = [replace(e, structure=starts[e.name], seed=e.seed + 7919 * it) for e in explorers]

        def do_explore(st, specs=specs, model=fitted):
            trajs = explore_many(model, specs, workers=workers, client=client, progress=progress)
            out = []
            for t in trajs:
                for a in t.frames:
                    a.info["explorer"] = t.name
                hashes = st.add_candidates(t.frames, "md") if t.frames else []
                out.append({"trajectory": t.to_dict(), "frames": hashes})
            return out

        explored = ck.run("explore", it, do_explore)

        def do_select(
            st,
            explored=explored,
            left=left,
            model=fitted,
            it=it,
            train=train,
            coefs=coefs,
            ref=ref,
        ):
            grade = None
            if acquisition == "dopt":  # the force-spanned columns (a const term has none)
                grade = training_grade(model, model.structure_designs(train, progress), seed=seed)
            chosen: list[str] = []
            stops: dict[str, int] = {}
            share = max(1, quota // max(1, sum(bool(e["frames"]) for e in explored)))
            pick_rng = np.random.default_rng(seed + 104729 * (it + 1))
            for e in explored:
                if not e["frames"]:
                    continue
                name = e["trajectory"]["name"]
                frames = st.store.candidates(hashes=e["frames"])
                sc = screen(model, frames, coefs, grade, threads=threads, halfwidth=halfwidth)
                stats = Frames(sc.signal(uncertainty), sc.energy, sc.gamma, sc.descriptor)
                acq = acq_for[name]
                stop_index = getattr(acq, "stop_index", None)
                if stop_index is not None and (k := stop_index(stats)) is not None:
                    stops[name] = k
                idx = pick(
                    acq(stats, ref),
                    share,
                    pick_rng,
                    deterministic=acquisition == "topk",
                    descriptor=sc.descriptor,
                    dedup=dedup,
                )
                chosen += [e["frames"][i] for i in idx if e["frames"][i] not in chosen]
            chosen = chosen[: min(quota, left)]
            st.record_selection(chosen, None)
            return {"selected": chosen, "stopped": stops}

        sel = ck.run("select", it, do_select)
        batch = list(sel["selected"])
        failed = {
            e["trajectory"]["name"]: e["trajectory"]["stopped"]
            for e in explored
            if e["trajectory"]["stopped"]
        }
        cut = sel.get("stopped", {})  # dopt: the frame whose γ passed gamma_hi
        for name, k in cut.items():
            failed.setdefault(name, f"extrapolation grade above gamma_hi at frame {k}")
        steps.append(
            Step(
                it,
                sum(len(e["frames"]) for e in explored),
                len(batch),
                calls,
                rmse,
                ref.u_mean,
                ref.u_std,
                len(failed),
                failed,
                False,
                change,
                unchanged,
            )
        )
        if observer is not None:
            observer(steps[-1])
        # next starts: each explorer's last frame (before any stop); refined below once labelled
        for e in explored:
            name = e["trajectory"]["name"]
            last = e["frames"][: cut.get(name, len(e["frames"]))][-1:]
            if last:
                starts[name] = store.candidates(hashes=last)[0]
        kept_by = {}
        for e in explored:
            mine = [h for h in batch if h in set(e["frames"])]
            if mine:
                kept_by[e["trajectory"]["name"]] = mine
        if kept_by:
            _restart_from_worst(store, oracle, kept_by, starts, fitted, lab_kw, batch, ck, it)
    return ActiveResult(fitted, steps, training, held_h, stop)


def _restart_from_worst(store, oracle, kept_by, starts, model, lab_kw, batch, ck, it) -> None:
    """Label this iteration's batch now (the next iteration's label stage then finds it done),
    and restart each explorer from its kept frame with the largest true force error."""

    ck.run("label", it + 1, lambda st: label_candidates(st.store, batch, oracle, **lab_kw))
    ok = {a.info.get("structure_hash"): a for a in store.to_atoms("ok", oracle.spec)}
    for name, hashes in kept_by.items():
        frames = [ok[h] for h in hashes if h in ok]
        if not frames:
            continue
        preds = model.predict_designs(model.structure_designs(frames, False))
        err = [
            np.abs(p["forces"] - labels(a)["forces"]).max()
            for p, a in zip(preds, frames, strict=True)
        ]
        best = frames[int(np.argmax(err))].copy()
        best.calc = None
        starts[name] = best


def system_acquisitions(
    name: str,
    settings: dict[str, Any] | None,
    systems: dict[str, dict[str, Any]] | None,
    explorers: Sequence[str],
) -> dict[str, Acquisition]:
    """One acquisition per explorer: ``settings``, overridden by every ``systems`` pattern
    (``fnmatch`` on the explorer name) that matches it, in order.

    Raises
    ------
    DataError
        For an unknown acquisition or setting, or a pattern that matches no explorer.
    """
    from fnmatch import fnmatchcase

    systems = dict(systems or {})
    for pattern, extra in systems.items():
        if not isinstance(extra, dict):
            raise DataError(f"system settings for {pattern!r} must be a table of settings")
        if not any(fnmatchcase(e, pattern) for e in explorers):
            raise DataError(
                f"system pattern {pattern!r} matches no explorer; the explorers are "
                + ", ".join(explorers)
            )
    out = {}
    for e in explorers:
        merged = dict(settings or {})
        for pattern, extra in systems.items():
            if fnmatchcase(e, pattern):
                merged |= extra
        out[e] = make_acquisition(name, **merged)
    return out


def explorer_specs(
    structures: dict[str, Atoms],
    temperatures: Sequence[float],
    seed: int = 0,
    pressures: Sequence[float] | None = None,
    **settings: Any,
) -> list[ExplorerSpec]:
    """One explorer per (structure, temperature[, pressure]): ``{name: Atoms}`` × temperatures
    (K) [× pressures (GPa, for ``ensemble="npt"``)] → specs named ``"<name>-<T>K"`` (or
    ``"<name>-<T>K-<P>GPa"``), each with its own seed, and the given settings (steps,
    interval, engine, ensemble, t_end...)."""
    if pressures is not None and settings.get("ensemble") != "npt":
        raise DataError("pressures need the npt ensemble (ensemble='npt', --ensemble npt)")
    out = []
    for i, (name, atoms) in enumerate(structures.items()):
        for j, t in enumerate(temperatures):
            for k, p in enumerate([None] if pressures is None else pressures):
                extra: dict[str, Any] = {} if p is None else {"pressure": float(p)}
                out.append(
                    ExplorerSpec(
                        name=f"{name}-{t:g}K" + ("" if p is None else f"-{p:g}GPa"),
                        structure=atoms,
                        temperature=float(t),
                        seed=seed + 31 * i + j + 1009 * k,
                        **settings,
                        **extra,
                    )
                )
    return out


__all__ = [
    "ActiveResult",
    "Step",
    "Trajectory",
    "explorer_specs",
    "run_active",
    "system_acquisitions",
]
