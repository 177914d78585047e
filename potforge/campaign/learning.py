"""The campaign's learning stages: fit (or design) the model, its uncertainty, MD active learning
(records and files as :mod:`potforge.campaign.stages` describes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from potforge.campaign.stages import (
    HELDOUT,
    Context,
    active_reserve,
    finite,
    labelled_hashes,
    template,
    unlabelled,
    write_json,
)
from potforge.data.structures import labels, structure_hash
from potforge.errors import DataError


# ----------------------------------------------------------------------------------- fit
def _training(ctx: Context, stage: str) -> list[str]:
    """The training hashes of the last enabled stage before ``stage`` that has them."""
    from potforge.campaign.config import STAGES

    for s in reversed(STAGES[: STAGES.index(stage)]):
        if "training" in ctx.records.get(s, {}):
            return list(ctx.records[s]["training"])
    return list(ctx.round.get("prior") or [])  # a further round whose selection failed


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
    room = ctx.campaign.budget.oracle_calls - ctx.calls_before("fit") - active_reserve(ctx.campaign)
    if not hashes:
        ok = ctx.store.to_atoms("ok", ctx.oracle.spec)
        return [a.info["structure_hash"] for a in ok if a.info.get("group") != "heldout"], 0
    hashes = hashes[: max(room, 0)]
    states = label_candidates(ctx.store, hashes, ctx.oracle, **ctx.label_options())
    return [h for h in hashes if states.get(h) == "ok"], len(hashes)


def _parity(folder: Path, model, train: list[Atoms]) -> None:
    """``parity.json`` and ``errors.json`` of the model on its training structures, per group."""
    from potforge.model.metrics import error_metrics, grouped_metrics

    pred = model.predict(train, progress=False)
    groups: dict[str, dict[str, list]] = {}
    for a, p in zip(train, pred, strict=True):
        g = groups.setdefault(
            str(a.info.get("group", "all")),
            {k: [] for k in ("energy_ref", "energy_pred", "force_ref", "force_pred")},
        )
        _parity_add(g, a, p)
    write_json(folder / "parity.json", {"kind": "training (in-sample)", "groups": groups})
    rows = {name: _row(m) for name, m in grouped_metrics(train, pred).items()}
    overall = _row(error_metrics(train, pred))
    write_json(
        folder / "errors.json", {"kind": "training (in-sample)", "groups": rows, "overall": overall}
    )


def _parity_add(g: dict[str, list], a: Atoms, p: dict) -> None:
    """Append one structure's energy per atom and force components to a parity group."""
    lab = labels(a)
    if "energy" in lab:
        g["energy_ref"].append(float(lab["energy"]) / len(a))
        g["energy_pred"].append(float(p["energy"]) / len(a))
    if "forces" in lab:
        g["force_ref"] += np.asarray(lab["forces"]).ravel().tolist()
        g["force_pred"] += np.asarray(p["forces"]).ravel().tolist()


def _row(m: dict) -> dict:
    return {
        "n": m.get("n_structures"),
        "energy_rmse": finite(m.get("energy_rmse_meV_per_atom")),
        "energy_mae": finite(m.get("energy_mae_meV_per_atom")),
        "force_rmse": finite(m.get("force_rmse_eV_per_A")),
        "force_mae": finite(m.get("force_mae_eV_per_A")),
    }


# ------------------------------------------------------------------------------------ uq
def posterior_options(ctx: Context) -> dict[str, Any]:
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
    model.fit_posterior(train, u.method, **posterior_options(ctx))
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
def _reused_heldout(ctx: Context, held: list[Atoms]) -> int:
    """How many of the held-out structures an earlier round labelled already (they cost this
    round nothing), counted when this epoch's loop first starts and kept in
    ``stages/active/start.json``: a resumed loop has labelled some itself, and counting those
    would change its budget (and its stored settings) from one start to the next."""
    path, loop = ctx.folder("active") / "start.json", ctx.loop("active")
    first = json.loads(path.read_text()) if path.is_file() else {}
    if first.get("loop") == loop:
        return int(first["reused_heldout"])
    done = set(labelled_hashes(ctx, "ok"))
    reused = sum(structure_hash(x) in done for x in held)
    write_json(path, {"loop": loop, "reused_heldout": reused})
    return reused


def active(ctx: Context) -> dict:
    """MD active learning from the fitted model (``potforge explore``)."""
    from potforge.active.loop import explorer_specs, heldout_structures, run_active
    from potforge.active.starts import start_structures
    from potforge.model import LinearPotential

    c, a = ctx.campaign, ctx.campaign.active
    fitted = ctx.records.get("fit")
    if not fitted:
        raise DataError("active: needs the [fit] stage's model: enable [fit]")
    initial = unlabelled(ctx.labelled(fitted["training"]))
    # a later round's held-out set is the first round's (same first structures): labelled
    held = heldout_structures(initial, HELDOUT, HELDOUT_RATTLE, c.seed) if initial else []
    reused = _reused_heldout(ctx, held)
    left = c.budget.oracle_calls - ctx.calls_before("active")
    if left < HELDOUT - reused + 1:
        need = HELDOUT - reused + 1
        ctx.say(f"active: {left} oracle calls left, too few to explore (need {need})")
        return {
            "training": fitted["training"],
            "oracle_calls": 0,
            "stop": "budget",
            "message": "budget spent before active learning",
        }
    model = LinearPotential.load(ctx.folder("fit") / "model", posterior=False)
    specs = explorer_specs(
        start_structures(c.formula, list(a.starts), lattice=c.property_settings.get("structure")),
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
        heldout_rattle=HELDOUT_RATTLE,
        quota=a.frames_per_iteration,
        budget=left + len(initial) + reused,
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
            "oracle_calls": s["oracle_calls"] - len(initial) - reused + ctx.calls_before("active"),
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
        "oracle_calls": int(last.oracle_calls) - len(initial) - reused,
    }


HELDOUT_RATTLE = 0.05
"""Rattle of the held-out copies, Å (:func:`potforge.active.loop.heldout_structures`)."""
