"""The campaign's stages: each reads what earlier stages recorded, runs one potforge loop and
writes its files under ``OUT/stages/<name>/``.

A stage is a function ``stage(ctx) -> dict``: the dict (JSON-able) is the stage's record, stored
in the campaign's checkpoint when the stage finishes, and what later stages read (structure
hashes, model folders, oracle calls spent).  Every stage is idempotent: the heavy ones run
resumable loops in the store (:mod:`potforge.data.checkpoint`) under a loop name of the stage
and its epoch, and labels are keyed by structure and oracle, so a stage killed at any moment
and run again recomputes nothing that finished and labels nothing twice.

Data flow::

    generate  → hashes (the pool, in the store as candidates)
    select    → training (hashes labelled by information matching), model/
    fit       → training, model/ (the fit or design stage's model), parity.json, errors.json
    uq        → model/ with its posterior, scale (row → QoI inflation), calibration.json
    active    → training (fit's plus the frames MD active learning labelled), model/, curve.json
    properties (run by the runner, :func:`properties`) → OUT/properties.json, OUT/model/
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from potforge.campaign.config import Campaign
from potforge.data.store import Store
from potforge.errors import DataError, PotforgeError

Say = Callable[[str], None]


@dataclass
class Context:
    """What every stage sees: the campaign, its folder and store, the oracle, earlier records.

    Attributes
    ----------
    campaign : Campaign
    out : Path
        The campaign's output folder.
    store : Store
    oracle : potforge.oracles.Oracle
    records : dict
        Stage name → the record of its last finished run (this run's or a resumed one).
    epochs : dict
        Stage name → how many times ``--from`` restarted it (names its loops in the store).
    say : callable
        Progress lines.
    progress : bool or None
        Bars on a terminal (None) or not (False).
    client : distributed.Client or None
        A client of ``--scheduler``'s cluster; None: local workers.
    started : float
        ``time.monotonic()`` when this run began.
    """

    campaign: Campaign
    out: Path
    store: Store
    oracle: Any
    records: dict[str, dict] = field(default_factory=dict)
    epochs: dict[str, int] = field(default_factory=dict)
    say: Say = print
    progress: bool | None = None
    client: Any = None
    started: float = field(default_factory=time.monotonic)

    def folder(self, stage: str) -> Path:
        """``OUT/stages/<stage>/``, created."""
        path = self.out / "stages" / stage
        path.mkdir(parents=True, exist_ok=True)
        return path

    def loop(self, stage: str) -> str:
        """The store's loop name of ``stage`` in its current epoch."""
        return f"campaign-{stage}-{self.epochs.get(stage, 0)}"

    def calls_before(self, stage: str) -> int:
        """Oracle calls the finished stages before ``stage`` spent (their records)."""
        from potforge.campaign.config import STAGES

        earlier = STAGES[: STAGES.index(stage)]
        return sum(int(self.records.get(s, {}).get("oracle_calls", 0)) for s in earlier)

    def label_options(self) -> dict[str, Any]:
        """Keyword options of :func:`potforge.oracles.labelling.label`."""
        if self.client is not None:
            return {"client": self.client, "progress": bool(self.progress)}
        return {"workers": self.campaign.workers, "progress": self.progress is None}

    def labelled(self, hashes: list[str]) -> list[Atoms]:
        """The ``ok``-labelled structures of ``hashes``, in that order (failed ones left out)."""
        ok = {a.info.get("structure_hash"): a for a in self.store.to_atoms("ok", self.oracle.spec)}
        return [ok[h] for h in hashes if h in ok]

    def minutes_left(self) -> float:
        """Wall-time budget left to this run, minutes."""
        return self.campaign.budget.minutes - (time.monotonic() - self.started) / 60.0


def write_json(path: Path, doc: Any) -> None:
    """``doc`` as JSON at ``path``, atomically (a kill leaves the old file or the new one)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, allow_nan=False, default=_plain) + "\n")
    os.replace(tmp, path)


def _plain(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON-able: {type(x).__name__}")


def _finite(x: Any) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def template(ctx: Context):
    """The unfitted model of the ``[fit]`` table (spec and σ weights)."""
    from potforge.model import LinearPotential

    f = ctx.campaign.fit
    return LinearPotential(
        f.model,
        sigma_energy=f.sigma_energy,
        sigma_force=f.sigma_force,
        sigma_stress=f.sigma_stress,
        alpha=f.alpha,
    )


def _unlabelled(structures: list[Atoms]) -> list[Atoms]:
    out = []
    for a in structures:
        b = a.copy()
        b.calc = None
        out.append(b)
    return out


# ------------------------------------------------------------------------------ generate
def generate(ctx: Context) -> dict:
    """An entropy-maximising pool of candidates (``potforge generate``), in the store."""
    from potforge.generate.descriptors import SnapDescriptor
    from potforge.generate.generator import GeneratorSettings, crystal_state, near_equilibrium
    from potforge.generate.loop import GenerationResult, run_generation

    c, g = ctx.campaign, ctx.campaign.generate
    phase = c.property_settings.get("structure")
    phase, v0, nn = crystal_state(
        c.formula, phase, ctx.oracle, ctx.say, hint="give [property_settings] structure"
    )
    settings = GeneratorSettings(
        c.elements,
        (g.volume[0] * v0, g.volume[1] * v0),
        0.8 * nn,
        n_atoms=g.atoms,
        max_iter=g.iterations,
    )
    ctx.say(
        f"generate: {g.n} configurations of {g.atoms[0]}–{g.atoms[1]} atoms at "
        f"{settings.volume_per_atom[0]:.2f}–{settings.volume_per_atom[1]:.2f} Å³/atom, "
        f"r_min {0.8 * nn:.2f} Å"
    )
    near = near_equilibrium(c.formula, phase, v0, g.near_equilibrium, c.seed, g.near_kinds)
    near_h = ctx.store.add_candidates(near, "near_equilibrium", loop=ctx.loop("generate"))
    message = ""
    try:
        if g.n == 0:
            raise _NoGeneration
        result = run_generation(
            g.n,
            settings,
            ctx.store,
            descriptor=SnapDescriptor(c.elements),
            existing=near,  # fill what the near-equilibrium structures lack
            workers=None if ctx.client is not None else c.workers,
            client=ctx.client,
            seed=c.seed,
            progress=ctx.progress,
            loop=ctx.loop("generate"),
        )
    except _NoGeneration:
        result = GenerationResult([], [])
    except PotforgeError as exc:
        if not near:
            raise
        message = f"entropy-maximising generation failed ({exc}); the pool is the rest"
        ctx.say(f"generate: {message}")
        result = GenerationResult([], [])
    if not result.structures and not near:
        raise DataError(
            "generate: no configuration could be generated ("
            + "; ".join(sorted(set(result.failed.values())))[:300]
            + ")"
        )
    ctx.say(
        f"generate: pool of {len(result.structures)} entropy-maximising and {len(near)} "
        "near-equilibrium structures"
    )
    folder = ctx.folder("generate")
    from potforge.data.readers import write_extxyz

    write_extxyz(folder / "pool.extxyz", [*result.structures, *near])
    sets = {"entropy-maximising": result.structures, "near-equilibrium": near}
    write_json(folder / "entropy.json", _entropy_curves({k: v for k, v in sets.items() if v}))
    for k, why in sorted(result.failed.items()):
        ctx.say(f"generate: configuration {k} failed: {why}")
    return {
        "hashes": [*result.hashes, *[h for h in near_h if h not in result.hashes]],
        "failed": {str(k): v for k, v in result.failed.items()},
        "message": message,
        "oracle_calls": 0,
    }


class _NoGeneration(Exception):
    """``[generate] n = 0``: no entropy-maximising configurations."""


def _entropy_curves(sets: dict[str, list[Atoms]]) -> dict:
    """Entropy-vs-size curves (environments) of each set, in one SNAP descriptor space."""
    from potforge.generate.entropy import entropy_curve
    from potforge.generate.sets import describe_sets

    names = list(sets)
    described = describe_sets([sets[n] for n in names], bandwidth="nearest")
    curves = {}
    for k, name in enumerate(names):
        X = described.stacked(k)
        sizes = np.unique(np.geomspace(1, X.shape[0], 12).astype(int))
        curves[name] = {
            "sizes": sizes.tolist(),
            "entropy": np.asarray(entropy_curve(X, described.h, sizes)).tolist(),
        }
    return {
        "unit": "environments",
        "bandwidth": described.h,
        "space": described.rule,
        "curves": curves,
    }


# -------------------------------------------------------------------------------- select
def _pool(ctx: Context) -> list[Atoms]:
    s = ctx.campaign.select
    if s.pool:
        from potforge.data.readers import read_structures

        return _unlabelled(read_structures(s.pool, require=(), validate=True, stress_order="drop"))
    hashes = ctx.records.get("generate", {}).get("hashes")
    if not hashes:
        raise DataError("select: no candidate pool: enable [generate] or give [select] pool = FILE")
    return ctx.store.candidates(hashes=hashes)


def select(ctx: Context) -> dict:
    """Information matching (``potforge select``): the fewest labels that meet the targets."""
    from potforge.information.fisher import spectrum_plot
    from potforge.information.loop import run_selection
    from potforge.information.matching import InfeasibleError

    c, s = ctx.campaign, ctx.campaign.select
    pool = _pool(ctx)
    budget = c.budget.oracle_calls - ctx.calls_before("select") - _active_reserve(c)
    budget = max(budget, min(s.init, c.budget.oracle_calls - ctx.calls_before("select")))
    if budget < s.init:
        raise DataError(
            f"select: the budget leaves {budget} oracle calls, fewer than [select] init = {s.init}"
        )
    ctx.say(f"select: information matching over {len(pool)} candidates, at most {budget} labels")

    def observe(step) -> None:
        head = f"select: iteration {step.iteration}: {step.n_labelled} labelled"
        if step.unstable:
            ctx.say(
                f"{head}; the targets cannot be computed at this θ ({step.unstable}); "
                f"labelling {len(step.selected)} more by the initial rule"
            )
            return
        parts = [f"{n} {v:.3g}/{step.tolerance[n]:.3g}" for n, v in step.sigma.items()]
        ctx.say(f"{head}, next {len(step.selected)}, σ/target " + ", ".join(parts))

    message = ""
    first = ctx.calls_before("select")
    init, rule, attempt = s.init, s.init_rule, 0
    while True:
        try:
            result = run_selection(
                template(ctx),
                pool,
                c.selection_targets(),
                ctx.oracle,
                ctx.store,
                element=c.formula,
                init=init,
                init_rule=rule,
                seed=c.seed,
                budget=budget,
                max_iterations=s.max_iterations,
                label_options=ctx.label_options(),
                observer=observe,
                progress=False if ctx.progress is False else None,
                loop=f"{ctx.loop('select')}-{attempt}",
            )
            break
        except InfeasibleError as exc:  # what is labelled stays in the store
            done = _labelled_hashes(ctx)
            if attempt == RETRIES or len(done) + s.init > min(budget, len(pool)):
                return _select_infeasible(ctx, exc, first)
            # judged at a θ fitted to few structures (a relative tolerance is relative to
            # that θ's value): start again from what is labelled plus `init` more
            pool = [a for a in pool if a.info.get("structure_hash") in done] + _shuffled(
                [a for a in pool if a.info.get("structure_hash") not in done], c.seed + attempt
            )
            init, rule, attempt = len(done) + s.init, "first", attempt + 1
            ctx.say(
                f"select: {exc} — judged from {len(done)} labels; starting again from "
                f"those and {s.init} more"
            )
    folder = ctx.folder("select")
    result.model.save(folder / "model")
    its = [it.to_dict() for it in result.iterations]
    write_json(folder / "curve.json", {"iterations": its, "stop": result.stop})
    write_json(
        folder / "fim.json",
        {
            "data_eigenvalues": np.linalg.eigvalsh(result.data_fisher).tolist(),
            "target_eigenvalues": np.linalg.eigvalsh(result.info.fisher).tolist(),
        },
    )
    spectrum_plot(folder / "spectrum.png", result.data_fisher, result.info.fisher)
    if result.stop != "met":
        message = {
            "budget": "the budget was spent before every target was met",
            "exhausted": "the pool was used up before every target was met",
            "iterations": "max_iterations was reached before every target was met",
        }.get(result.stop, result.stop)
        ctx.say(f"select: {message}")
    training = [h for h in result.labelled if h not in result.failed]
    return {
        "training": training,
        "failed": list(result.failed),
        "stop": result.stop,
        "message": message,
        "oracle_calls": _calls(ctx) - first,
    }


RETRIES = 2
"""Fresh starts of information matching when a target is judged infeasible at a θ fitted to
few labels (each from every label so far plus ``init`` more)."""


def _calls(ctx: Context) -> int:
    """Oracle results in the store for the campaign's oracle (ok and failed)."""
    return sum(1 for _ in ctx.store.rows(oracle=ctx.oracle.spec))


def _labelled_hashes(ctx: Context, status: str | None = None) -> list[str]:
    rows = ctx.store.rows(status=status, oracle=ctx.oracle.spec)
    return [h for h in (r.key_value_pairs.get("structure_hash") for r in rows) if h]


def _shuffled(structures: list[Atoms], seed: int) -> list[Atoms]:
    order = np.random.default_rng(seed).permutation(len(structures))
    return [structures[i] for i in order]


def _select_infeasible(ctx: Context, exc: PotforgeError, first: int) -> dict:
    """The record of a selection the pool cannot satisfy: what is labelled, and the reason."""
    ok = set(_labelled_hashes(ctx, "ok"))
    every = _labelled_hashes(ctx)
    ctx.say(f"select: {exc}")
    return {
        "training": [h for h in every if h in ok],
        "failed": [h for h in every if h not in ok],
        "stop": "infeasible",
        "message": str(exc),
        "oracle_calls": _calls(ctx) - first,
    }


def _active_reserve(c: Campaign) -> int:
    """Oracle calls kept for active learning: its held-out set and every iteration's frames."""
    if not c.active.enabled:
        return 0
    return HELDOUT + c.active.frames_per_iteration * c.active.iterations


HELDOUT = 6
"""Held-out structures of the active-learning loop (their labels count toward the budget)."""


# ----------------------------------------------------------------------------------- fit
def _training(ctx: Context, stage: str) -> list[str]:
    """The training hashes of the last enabled stage before ``stage`` that has them."""
    from potforge.campaign.config import STAGES

    for s in reversed(STAGES[: STAGES.index(stage)]):
        if "training" in ctx.records.get(s, {}):
            return list(ctx.records[s]["training"])
    return []


def fit(ctx: Context) -> dict:
    """Fit the ``[fit]`` model (or design one, ``design = true``) to the labelled structures."""
    c, f = ctx.campaign, ctx.campaign.fit
    hashes = _training(ctx, "fit")
    calls = 0
    if not hashes:  # no selection: label the pool up to the budget
        hashes, calls = _label_pool(ctx)
    train = ctx.labelled(hashes)
    if len(train) < 2:
        raise DataError(f"fit: {len(train)} labelled structure(s); at least 2 are needed")
    if f.design:
        from potforge.modeldesign.search import design

        ctx.say(f"fit: designing a model of ≤ {f.max_params} parameters on {len(train)} structures")
        result = design(
            train,
            max_params=f.max_params,
            minutes=max(0.5, min(10.0, ctx.minutes_left() / 3)),
            n_trials=f.trials,
            n_folds=f.folds,
            seed=c.seed,
            element=c.formula,
            say=ctx.say,
        )
        model = result.chosen.config.model()
    else:
        model = template(ctx)
    model.fit(train, progress=False)
    folder = ctx.folder("fit")
    model.save(folder / "model")
    _parity(folder, model, train)
    ctx.say(f"fit: {model.n_params} parameters on {len(train)} structures")
    return {
        "training": [a.info["structure_hash"] for a in train],
        "oracle_calls": calls,
        "spec": str(model.terms),
        "n_params": int(model.n_params),
    }


def _label_pool(ctx: Context) -> tuple[list[str], int]:
    """Without a selection: the generated pool's first candidates up to the budget, labelled."""
    from potforge.oracles.labelling import label_candidates

    hashes = list(ctx.records.get("generate", {}).get("hashes", []))
    room = (
        ctx.campaign.budget.oracle_calls - ctx.calls_before("fit") - _active_reserve(ctx.campaign)
    )
    if not hashes:
        ok = ctx.store.to_atoms("ok", ctx.oracle.spec)
        return [a.info["structure_hash"] for a in ok if a.info.get("group") != "heldout"], 0
    hashes = hashes[: max(room, 0)]
    states = label_candidates(ctx.store, hashes, ctx.oracle, **ctx.label_options())
    return [h for h in hashes if states.get(h) == "ok"], len(hashes)


def _parity(folder: Path, model, train: list[Atoms]) -> None:
    """``parity.json`` and ``errors.json`` of the model on its training structures, per group."""
    from potforge.model.metrics import grouped_metrics, residuals

    pred = model.predict(train, progress=False)
    groups: dict[str, dict[str, list]] = {}
    for a, p in zip(train, pred, strict=True):
        g = groups.setdefault(
            str(a.info.get("group", "all")),
            {k: [] for k in ("energy_ref", "energy_pred", "force_ref", "force_pred")},
        )
        groups_add(g, a, p)
    write_json(folder / "parity.json", {"kind": "training (in-sample)", "groups": groups})
    per = grouped_metrics(train, pred)
    r = residuals(train, pred)
    rows = {name: _row(m) for name, m in per.items()}
    overall = _row({"n_structures": len(train)} | _stats(r))
    write_json(
        folder / "errors.json", {"kind": "training (in-sample)", "groups": rows, "overall": overall}
    )


def groups_add(g: dict[str, list], a: Atoms, p: dict) -> None:
    """Append one structure's energy per atom and force components to a parity group."""
    e = a.get_potential_energy() if a.calc is not None else None
    if e is not None:
        g["energy_ref"].append(float(e) / len(a))
        g["energy_pred"].append(float(p["energy"]) / len(a))
    if a.calc is not None and "forces" in a.calc.results:
        g["force_ref"] += np.asarray(a.get_forces()).ravel().tolist()
        g["force_pred"] += np.asarray(p["forces"]).ravel().tolist()


def _stats(r: dict) -> dict:
    e, f = r["energy"] * 1000.0, r["forces"]
    out: dict[str, Any] = {}
    if e.size:
        out |= {
            "energy_mae_meV_per_atom": float(np.mean(np.abs(e))),
            "energy_rmse_meV_per_atom": float(np.sqrt(np.mean(e**2))),
        }
    if f.size:
        out |= {
            "force_mae_eV_per_A": float(np.mean(np.abs(f))),
            "force_rmse_eV_per_A": float(np.sqrt(np.mean(f**2))),
        }
    return out


def _row(m: dict) -> dict:
    return {
        "n": m.get("n_structures"),
        "energy_rmse": _finite(m.get("energy_rmse_meV_per_atom")),
        "energy_mae": _finite(m.get("energy_mae_meV_per_atom")),
        "force_rmse": _finite(m.get("force_rmse_eV_per_A")),
        "force_mae": _finite(m.get("force_mae_eV_per_A")),
    }


# ------------------------------------------------------------------------------------ uq
def _posterior_options(ctx: Context) -> dict[str, Any]:
    u = ctx.campaign.uq
    if u.method == "pops":
        return {"posterior": u.posterior, "random_state": ctx.campaign.seed}
    return {"random_state": ctx.campaign.seed} if u.method == "bootstrap" else {}


def uq(ctx: Context) -> dict:
    """The posterior of the fitted model and the inflation calibrated on out-of-fold errors."""
    from potforge.model import LinearPotential
    from potforge.model.calibration import calibrate_uncertainty

    u = ctx.campaign.uq
    fitted = ctx.records.get("fit")
    if not fitted:
        raise DataError("uq: needs the [fit] stage's model: enable [fit]")
    model = LinearPotential.load(ctx.folder("fit") / "model", posterior=False)
    train = ctx.labelled(fitted["training"])
    model.fit_posterior(train, u.method, **_posterior_options(ctx))
    folder = ctx.folder("uq")
    model.save(folder / "model")
    record: dict[str, Any] = {"scale": 1.0, "per_row_type": {}, "oracle_calls": 0}
    if u.calibration != "none":
        opts = {"posterior": u.posterior} if u.method == "pops" else None
        cal = calibrate_uncertainty(
            model,
            train,
            source="pops" if u.method == "pops" else "fisher",
            coverage=u.coverage,
            method=u.calibration,
            floor=False,  # a floor is in a row's unit; QoIs take the scale alone
            n_folds=min(u.folds, len(train)),
            random_state=ctx.campaign.seed,
            posterior_options=opts,
        )
        per = {str(k): float(v) for k, v in cal.calibrator.scale_.items()}
        record |= {"scale": max(per.values()), "per_row_type": per}
        write_json(folder / "calibration.json", cal.calibrator.summary())
    ctx.say(
        f"uq: {u.method} posterior; calibrated scale {record['scale']:.3g} "
        f"({', '.join(f'{k} {v:.3g}' for k, v in record['per_row_type'].items()) or 'none'})"
    )
    return record


# -------------------------------------------------------------------------------- active
def active(ctx: Context) -> dict:
    """MD active learning from the fitted model (``potforge explore``)."""
    from potforge.active.loop import explorer_specs, run_active
    from potforge.active.starts import start_structures
    from potforge.model import LinearPotential

    c, a = ctx.campaign, ctx.campaign.active
    fitted = ctx.records.get("fit")
    if not fitted:
        raise DataError("active: needs the [fit] stage's model: enable [fit]")
    initial = _unlabelled(ctx.labelled(fitted["training"]))
    left = c.budget.oracle_calls - ctx.calls_before("active")
    if left < HELDOUT + 1:
        ctx.say(f"active: {left} oracle calls left, too few to explore (need {HELDOUT + 1})")
        return {
            "training": fitted["training"],
            "oracle_calls": 0,
            "stop": "budget",
            "message": "budget spent before active learning",
        }
    model = LinearPotential.load(ctx.folder("fit") / "model", posterior=False)
    specs = explorer_specs(
        start_structures(c.elements[0], list(a.starts)),
        list(a.temperatures),
        seed=c.seed,
        steps=a.steps,
        interval=a.interval,
    )
    ctx.say(f"active: {len(specs)} explorers, up to {a.iterations} iterations, {left} calls left")

    def observe(step) -> None:
        ctx.say(
            f"active: iteration {step.iteration}: {step.kept} kept, {step.oracle_calls} calls, "
            f"held-out force RMSE {step.heldout_rmse:.4f} eV/Å, U {step.u_mean:.4f} eV/Å"
        )

    from sklearn.base import clone

    result = run_active(
        clone(model),
        initial,
        specs,
        ctx.oracle,
        ctx.store,
        acquisition=a.acquisition,
        acquisition_settings={"quantiles": a.trust_quantiles} if a.trust_quantiles else None,
        n_heldout=HELDOUT,
        quota=a.frames_per_iteration,
        budget=left + len(initial),
        max_iterations=a.iterations,
        patience=a.patience,
        rtol=a.rtol,
        seed=c.seed,
        workers=c.workers,
        label_options=ctx.label_options(),
        observer=observe,
        progress=False if ctx.progress is False else None,
        loop=ctx.loop("active"),
    )
    folder = ctx.folder("active")
    result.model.save(folder / "model")
    steps = [s.to_dict() for s in result.steps]
    curve = [
        {
            "oracle_calls": s["oracle_calls"] - len(initial) + ctx.calls_before("active"),
            "force_rmse": s.get("heldout_rmse"),
            "energy_rmse": None,
            "predicted_sigma": s.get("u_mean"),
        }
        for s in steps
    ]
    write_json(
        folder / "curve.json",
        {
            "iterations": curve,
            "stop": result.stop,
            "force_rmse": "held-out set, eV/Å",
            "predicted_sigma": "mean U over the held-out set, eV/Å",
        },
    )
    last = result.steps[-1]
    return {
        "training": list(result.training),
        "heldout": list(result.heldout),
        "stop": result.stop,
        "oracle_calls": int(last.oracle_calls) - len(initial),
    }


STAGE_FUNCTIONS: dict[str, Callable[[Context], dict]] = {
    "generate": generate,
    "select": select,
    "fit": fit,
    "uq": uq,
    "active": active,
}
"""The stages before the final property table (which :mod:`potforge.campaign.properties`
computes)."""
