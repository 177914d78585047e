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
from potforge.data.structures import structure_hash
from potforge.errors import DataError, PotforgeError

Say = Callable[[str], None]

FIRST_ROUND: dict[str, Any] = {
    "round": 0,
    "calls_at_start": 0,
    "tighten": {},
    "model": None,
    "prior": [],
    "why": "",
}
"""The first round's state (:attr:`Context.round`)."""


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
    round : dict
        The refinement round the stages run in (:func:`potforge.campaign.runner.decide`):
        ``round`` (0 first), ``calls_at_start`` (oracle calls before it), ``tighten`` (target →
        factor on its selection tolerance), ``model`` (the fit's spec when escalated, else
        None), ``prior`` (the previous round's training hashes).
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
    round: dict[str, Any] = field(default_factory=lambda: dict(FIRST_ROUND))

    def folder(self, stage: str) -> Path:
        """``OUT/stages/<stage>/``, created."""
        path = self.out / "stages" / stage
        path.mkdir(parents=True, exist_ok=True)
        return path

    def loop(self, stage: str) -> str:
        """The store's loop name of ``stage`` in its current epoch."""
        return f"campaign-{stage}-{self.epochs.get(stage, 0)}"

    def calls_before(self, stage: str) -> int:
        """Oracle calls spent before ``stage``: the earlier rounds' and those of this round's
        finished stages before it (their records)."""
        from potforge.campaign.config import STAGES

        earlier = STAGES[: STAGES.index(stage)]
        spent = sum(int(self.records.get(s, {}).get("oracle_calls", 0)) for s in earlier)
        return int(self.round["calls_at_start"]) + spent

    def label_options(self) -> dict[str, Any]:
        """Keyword options of :func:`potforge.oracles.labelling.label`."""
        if self.client is not None:
            return {"client": self.client, "progress": bool(self.progress)}
        return {"workers": self.campaign.workers, "progress": self.progress is None}

    def calls(self) -> int:
        """Oracle results in the store for the campaign's oracle (ok and failed)."""
        return sum(1 for _ in self.store.rows(oracle=self.oracle.spec))

    def labelled(self, hashes: list[str]) -> list[Atoms]:
        """The ``ok``-labelled structures of ``hashes``, in that order (failed ones left out)."""
        ok = {a.info.get("structure_hash"): a for a in self.store.to_atoms("ok", self.oracle.spec)}
        return [ok[h] for h in hashes if h in ok]

    def minutes_left(self) -> float:
        """Wall-time budget left to this run, minutes."""
        return self.campaign.budget.minutes - (time.monotonic() - self.started) / 60.0


def write_json(path: Path, doc: Any) -> None:
    """``doc`` as JSON at ``path``, atomically (a kill leaves the old file or the new one);
    non-finite numbers (an unbounded σ) are written as null."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_finite_only(doc), indent=1, allow_nan=False, default=_plain) + "\n")
    os.replace(tmp, path)


def _finite_only(x: Any) -> Any:
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite_only(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite_only(v) for v in x]
    if isinstance(x, np.ndarray):
        return _finite_only(x.tolist())
    return x


def _plain(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON-able: {type(x).__name__}")


def finite(x: Any) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def template(ctx: Context):
    """The unfitted model of the ``[fit]`` table (spec and σ weights)."""
    from potforge.model import LinearPotential

    f = ctx.campaign.fit
    return LinearPotential(
        ctx.round.get("model") or f.model,
        sigma_energy=f.sigma_energy,
        sigma_force=f.sigma_force,
        sigma_stress=f.sigma_stress,
        alpha=f.alpha,
    )


def unlabelled(structures: list[Atoms]) -> list[Atoms]:
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
    from potforge.generate.generator import (
        GeneratorSettings,
        crystal_state,
        elemental_references,
        near_equilibrium,
    )
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
    if len(c.elements) > 1 and g.near_equilibrium:  # what a formation energy is measured from
        near += elemental_references(c.elements, c.property_settings.get("references"))
    near_h = ctx.store.add_candidates(near, "near_equilibrium", loop=ctx.loop("generate"))
    message = ""

    def run(bandwidth: str, loop: str) -> GenerationResult:
        return run_generation(
            g.n,
            settings,
            ctx.store,
            descriptor=SnapDescriptor(c.elements),
            existing=near,  # fill what the near-equilibrium structures lack
            bandwidth=bandwidth,
            workers=None if ctx.client is not None else c.workers,
            client=ctx.client,
            seed=c.seed,
            progress=ctx.progress,
            loop=loop,
        )

    try:
        if g.n == 0:
            raise _NoGeneration
        try:
            result = run("nearest", ctx.loop("generate"))
        except DataError as exc:  # coincident environments (2-atom strained cells only)
            if "bandwidth" not in str(exc):
                raise
            ctx.say(f"generate: {exc}: using Silverman's rule instead")
            result = run("silverman", ctx.loop("generate") + "-silverman")
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
    curves = _entropy_curves({k: v for k, v in sets.items() if v})
    if curves is not None:
        write_json(folder / "entropy.json", curves)
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


def _entropy_curves(sets: dict[str, list[Atoms]]) -> dict | None:
    """Entropy-vs-size curves (environments) of each set, in one SNAP descriptor space; the
    bandwidth by the nearest-neighbour rule, Silverman's where every environment coincides,
    None where neither gives one."""
    from potforge.generate.entropy import entropy_curve
    from potforge.generate.sets import describe_sets

    names = list(sets)
    for rule in ("nearest", "silverman"):
        try:
            described = describe_sets([sets[n] for n in names], bandwidth=rule)
            break
        except DataError:
            continue
    else:
        return None
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

        return unlabelled(read_structures(s.pool, require=(), validate=True, stress_order="drop"))
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
    hashes = [structure_hash(a) for a in pool]  # a file's structures carry none in info
    later = bool(ctx.round.get("prior"))
    budget = c.budget.oracle_calls - ctx.calls_before("select") - active_reserve(c, later)
    budget = max(budget, min(s.init, c.budget.oracle_calls - ctx.calls_before("select")))
    init, rule = s.init, s.init_rule
    known = ctx.labelled(list(ctx.round.get("prior") or []))
    if known:  # a further round: every label so far first (labelled already), then the pool
        have = [a.info["structure_hash"] for a in known]
        rest = [i for i, h in enumerate(hashes) if h not in set(have)]
        pool = [*unlabelled(known), *[pool[i] for i in rest]]
        hashes = [*have, *[hashes[i] for i in rest]]
        init, rule, budget = len(known), "first", len(known) + max(budget, 0)
        ctx.say(
            f"select: round {ctx.round['round']}: from the {len(known)} labels so far, "
            "selection tolerances × "
            + ", ".join(f"{k} {v:.3g}" for k, v in sorted(ctx.round["tighten"].items()))
        )
    elif budget < s.init:
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
    targets, attempt = round_targets(ctx), 0
    while True:
        try:
            result = run_selection(
                template(ctx),
                pool,
                targets,
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
            if known:  # a further round asked too much of the pool: ask for less
                if attempt == RETRIES:
                    return _select_infeasible(ctx, exc, first, hashes)
                attempt += 1
                factor = {k: v ** (0.5**attempt) for k, v in ctx.round["tighten"].items()}
                targets = round_targets(ctx, factor)
                ctx.say(
                    f"select: {exc}; asking for less: tolerances × "
                    + ", ".join(f"{k} {v:.3g}" for k, v in sorted(factor.items()))
                )
                continue
            done = set(labelled_hashes(ctx)) & set(hashes)
            if attempt == RETRIES or len(done) + s.init > min(budget, len(pool)):
                return _select_infeasible(ctx, exc, first, hashes)
            # judged at a θ fitted to few structures (a relative tolerance is relative to
            # that θ's value): start again from what is labelled plus `init` more
            order = [i for i, h in enumerate(hashes) if h in done]
            rest = [i for i, h in enumerate(hashes) if h not in done]
            rng = np.random.default_rng(c.seed + attempt)
            order += [rest[k] for k in rng.permutation(len(rest))]
            pool, hashes = [pool[i] for i in order], [hashes[i] for i in order]
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
        "oracle_calls": ctx.calls() - first,
    }


def round_targets(ctx: Context, factor: dict[str, float] | None = None):
    """The campaign's selection targets, each tolerance times its factor (default this round's
    ``tighten``)."""
    import dataclasses

    targets = ctx.campaign.selection_targets()
    factor = ctx.round.get("tighten") or {} if factor is None else factor
    return dataclasses.replace(
        targets,
        targets=tuple(
            dataclasses.replace(t, tolerance=t.tolerance * float(factor.get(t.name, 1.0)))
            for t in targets.targets
        ),
    )


RETRIES = 2
"""Fresh starts of information matching when a target is judged infeasible at a θ fitted to
few labels (each from every label so far plus ``init`` more)."""


def labelled_hashes(ctx: Context, status: str | None = None) -> list[str]:
    """Structure hashes of the oracle's results in the store (of ``status``; None: all)."""
    rows = ctx.store.rows(status=status, oracle=ctx.oracle.spec)
    return [h for h in (r.key_value_pairs.get("structure_hash") for r in rows) if h]


def _select_infeasible(ctx: Context, exc: PotforgeError, first: int, pool: list[str]) -> dict:
    """The record of a selection the pool cannot satisfy: what of the pool (hashes ``pool``)
    is labelled, and the reason."""
    ok, members = set(labelled_hashes(ctx, "ok")), set(pool)
    every = [h for h in labelled_hashes(ctx) if h in members]
    ctx.say(f"select: {exc}")
    return {
        "training": [h for h in every if h in ok],
        "failed": [h for h in every if h not in ok],
        "stop": "infeasible",
        "message": str(exc),
        "oracle_calls": ctx.calls() - first,
    }


def active_reserve(c: Campaign, later_round: bool = False) -> int:
    """Oracle calls kept for active learning: its held-out set (labelled in the first round
    already: rattles of the first training structures, which every later round keeps first)
    and every iteration's frames."""
    if not c.active.enabled:
        return 0
    return (0 if later_round else HELDOUT) + c.active.frames_per_iteration * c.active.iterations


HELDOUT = 6
"""Held-out structures of the active-learning loop (their labels count toward the budget)."""
