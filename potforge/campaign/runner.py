"""``potforge run``: the campaign's stages in order, resumable, into one output folder.

The store (``OUT/campaign.db`` unless the campaign names another) is the single source of truth:
every oracle result is written to it as it arrives, keyed by structure and oracle, and each
stage's record is committed to it (the ``campaign`` loop of
:class:`~potforge.data.checkpoint.Checkpoint`) when the stage finishes.  A run killed at any
moment and started again skips the finished stages, resumes the unfinished one from its own
checkpoints, and labels nothing twice.

A stage reruns (in a new *epoch*, a fresh loop in the store whose labels it still reuses) when
``--from`` names it or an earlier stage, when its settings — its table, the list of enabled
stages, the budget — differ from those of its finished run, or when an earlier stage reran.
A failed stage is recorded in the timeline with its reason and the stages that need it fail
with theirs; the others still run, the property table and the report are written.

The output folder is used when it is new or empty, resumed when it holds this campaign (same
elements, oracle and targets: :func:`~potforge.campaign.config.check_same_campaign`), and
refused otherwise; ``force=True`` deletes what a campaign writes there (:data:`PRODUCTS`,
nothing else) and starts over.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from potforge.campaign.config import (
    STAGES,
    Campaign,
    check_same_campaign,
    fingerprint,
    load_campaign,
    resolved_toml,
)
from potforge.campaign.learning import active, fit, uq
from potforge.campaign.stages import FIRST_ROUND, Context, Say, generate, select, write_json
from potforge.data.checkpoint import Checkpoint
from potforge.data.store import Store
from potforge.errors import DataError, PotforgeError

STAGE_FUNCTIONS = {"generate": generate, "select": select, "fit": fit, "uq": uq, "active": active}
"""The stages before the final property table (:mod:`potforge.campaign.properties`)."""

RESOLVED = "campaign.resolved.toml"
PRODUCTS = (
    RESOLVED,
    "campaign.db",
    "state.json",
    "timeline.json",
    "provenance.json",
    "properties.json",
    "report.html",
    "log.txt",
    "stages",
    "model",
)
"""What a campaign writes into its output folder (what ``force`` may delete)."""


@dataclasses.dataclass
class CampaignResult:
    """The outcome of :func:`run_campaign`.

    Attributes
    ----------
    out : Path
    timeline : list of dict
        Per stage: stage, status (done, failed, skipped), started, finished, oracle_calls,
        message.
    properties : dict
        ``properties.json`` (empty when the stage did not run).
    oracle_calls : int
        Oracle results in the store for the campaign's oracle.
    report : Path or None
    """

    out: Path
    timeline: list[dict]
    properties: dict
    oracle_calls: int
    report: Path | None

    @property
    def failed(self) -> list[str]:
        """Stages that failed."""
        return [t["stage"] for t in self.timeline if t["status"] == "failed"]

    def missed(self) -> dict[str, list[str]]:
        """Target QoIs with a failed or unjudged verdict → the reasons."""
        out = {}
        for name, q in self.properties.get("qois", {}).items():
            if q.get("target") and not (q.get("precision_met") and q.get("accurate") is not False):
                out[name] = q.get("reasons") or ["no bounds"]
        return out


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def prepare_folder(campaign: Campaign, out: Path, force: bool = False) -> None:
    """Make ``out`` ready for ``campaign`` (see the module docstring) and write its resolved
    campaign file; a DataError names the folder and why it is refused."""
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file, not a folder")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if entries and RESOLVED not in entries:
        raise DataError(
            f"--out {out} holds files potforge did not write ({', '.join(entries[:3])}"
            f"{', ...' if len(entries) > 3 else ''}): give a new or empty folder"
        )
    if entries:
        try:
            old = load_campaign(out / RESOLVED)
        except DataError as exc:
            raise DataError(f"--out {out}: its {RESOLVED} cannot be read ({exc})") from None
        if force:
            for name in PRODUCTS:
                p = out / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
        else:
            check_same_campaign(old, campaign)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (RESOLVED + ".tmp")
    tmp.write_text(resolved_toml(campaign), encoding="utf-8")
    os.replace(tmp, out / RESOLVED)


def stage_key(campaign: Campaign, stage: str) -> dict[str, Any]:
    """What a finished stage's results depend on, beside the earlier stages' results."""
    return {
        "settings": json.loads(json.dumps(dataclasses.asdict(getattr(campaign, stage)))),
        "enabled": campaign.enabled_stages(),
        "budget": dataclasses.asdict(campaign.budget),
        "fit": dataclasses.asdict(campaign.fit) if stage in ("select", "fit") else None,
        "property_settings": campaign.property_settings
        if stage in ("select", "properties")
        else None,
    }


def plan(ck: Checkpoint, campaign: Campaign, epochs: dict[str, int], start: str | None):
    """Bump the epoch of every finished stage that must rerun; return the names of those that
    must (re)run, in order, and why the first one does."""
    enabled = campaign.enabled_stages()
    rerun, why = False, ""
    todo = []
    for s in enabled:
        done = ck.output(s, epochs.get(s, 0), None)
        changed = done is not None and done.get("key") != stage_key(campaign, s)
        if s == start or changed:
            if not rerun:
                why = f"--from {s}" if s == start else f"the [{s}] settings changed"
            rerun = True
        if rerun and done is not None:
            epochs[s] = epochs.get(s, 0) + 1
            done = None
        if done is None:
            todo.append(s)
            rerun = True  # everything after a stage that runs runs again
    return todo, why


def run_campaign(
    campaign: Campaign,
    out: str | Path,
    *,
    start: str | None = None,
    scheduler: str | None = None,
    force: bool = False,
    say: Say = print,
    progress: bool | None = None,
    argv: list[str] | None = None,
) -> CampaignResult:
    """Run (or resume) ``campaign`` into ``out``.

    Parameters
    ----------
    campaign : Campaign
    out : str or Path
        Output folder (new, empty, or holding this campaign).
    start : str, optional
        Rerun from this stage (``--from``), one of :data:`~potforge.campaign.config.STAGES`.
    scheduler : str, optional
        Dask scheduler address; overrides the campaign's ``scheduler``.
    force : bool, default=False
        Start over in a folder that holds a potforge campaign (any campaign).
    say : callable
        Progress lines (also appended to ``OUT/log.txt``).
    progress : bool or None
        Bars on a terminal (None) or not (False).
    argv : list of str, optional
        The command line, for the provenance.

    Returns
    -------
    CampaignResult
    """
    from potforge.campaign.report import build_report
    from potforge.oracles.labelling import dask_client

    out = Path(out)
    if start is not None and start not in STAGES:
        raise DataError(f"--from {start!r}: valid stages are {', '.join(STAGES)}")
    if start is not None and not getattr(campaign, start).enabled:
        raise DataError(f"--from {start}: the [{start}] stage is switched off (enabled = false)")
    oracle = campaign.make_oracle()
    prepare_folder(campaign, out, force)
    with (out / "log.txt").open("a", encoding="utf-8") as log:

        def tell(line: str) -> None:
            say(line)
            log.write(f"{_now()} {line}\n")
            log.flush()

        store = Store(campaign.store or out / "campaign.db")
        ck = Checkpoint(store, "campaign", fingerprint(campaign))
        state_path = out / "state.json"
        state = json.loads(state_path.read_text()) if state_path.is_file() else {}
        epochs: dict[str, int] = state.get("epochs", {})
        rounds: list[dict] = state.get("rounds") or [_new_round(FIRST_ROUND, epochs, campaign)]
        todo, why = plan(ck, campaign, epochs, start)
        if rounds[-1]["round"] > 0 and any(s not in ROUND_STAGES for s in todo):
            rounds = [_new_round(FIRST_ROUND, epochs, campaign)]  # a new pool: start again
        rounds[-1]["epochs"] = _round_epochs(campaign, epochs, rounds[-1]["round"])
        write_json(state_path, {"epochs": epochs, "rounds": rounds})
        done_before = [s for s in campaign.enabled_stages() if s not in todo]
        if done_before:
            tell(f"resuming: {', '.join(done_before)} finished in an earlier run")
        if why:
            tell(f"rerunning from {todo[0]} ({why})")
        ctx = Context(campaign, out, store, oracle, epochs=epochs, say=tell, progress=progress)
        timeline = _past_timeline(ck, rounds[:-1])
        address = scheduler or campaign.scheduler
        with dask_client(workers=campaign.workers, scheduler=address) as client:
            ctx.client = client
            while True:
                ctx.round = rounds[-1]
                _run_round(ctx, ck, todo, timeline, log)
                rounds[-1]["end"] = _round_end(ctx)
                nxt, stop = decide(campaign, rounds, ctx.minutes_left())
                if nxt is None:
                    break
                nxt = _new_round(nxt, epochs, campaign, bump=True)
                rounds.append(nxt)
                write_json(state_path, {"epochs": epochs, "rounds": rounds})
                tell(f"— round {nxt['round']} — {nxt['why']}")
                todo = list(nxt["epochs"])
        write_json(state_path, {"epochs": epochs, "rounds": rounds})
        if "properties" in ctx.records:
            _refinement(ctx, rounds, stop)
        log_calls = ctx.calls()
        write_json(out / "timeline.json", timeline)
        _provenance(out, campaign, oracle, store, argv, log_calls)
        report = build_report(out)
        tell(f"report: {report}")
    props = json.loads((out / "properties.json").read_text()) if "properties" in ctx.records else {}
    return CampaignResult(out, timeline, props, log_calls, report)


ROUND_STAGES = ("select", "fit", "uq", "active", "properties")
"""The stages a further refinement round runs again."""


def _round_epochs(campaign: Campaign, epochs: dict[str, int], index: int) -> dict[str, int]:
    """Stage → its epoch, for the stages of a round (every enabled one in the first)."""
    names = STAGES if index == 0 else ROUND_STAGES
    return {s: epochs.get(s, 0) for s in names if getattr(campaign, s).enabled}


def _new_round(
    r: dict, epochs: dict[str, int], campaign: Campaign, bump: bool = False
) -> dict[str, Any]:
    """A round's state with its stages' epochs (bumped: a new epoch for each of them)."""
    out = {**FIRST_ROUND, **r}
    if bump:
        for s in _round_epochs(campaign, epochs, out["round"]):
            epochs[s] = epochs.get(s, 0) + 1
    out["epochs"] = _round_epochs(campaign, epochs, out["round"])
    return out


def _run_round(ctx: Context, ck: Checkpoint, todo: list[str], timeline: list[dict], log) -> None:
    """The stages of ``ctx.round``: finished ones loaded from their checkpoints, the others
    run; each gets a timeline entry (the first round: every stage, switched-off ones too)."""
    from potforge.campaign.properties import properties

    campaign, index = ctx.campaign, int(ctx.round["round"])
    for s in STAGES:
        if index > 0 and s not in ROUND_STAGES:
            if s not in ctx.records and getattr(campaign, s).enabled:  # resumed in a later round
                rec = ck.output(s, ctx.epochs.get(s, 0))
                if rec is not None:
                    ctx.records[s] = rec["record"]
            continue
        entry = {
            "stage": s,
            "round": index,
            "status": "skipped",
            "started": None,
            "finished": None,
            "oracle_calls": None,
            "message": "switched off",
        }
        if index == 0 or getattr(campaign, s).enabled:
            timeline.append(entry)
        if not getattr(campaign, s).enabled:
            ctx.records.pop(s, None)
            continue
        epoch = ctx.epochs.get(s, 0)
        if s not in todo:
            rec = ck.output(s, epoch)
            ctx.records[s] = rec["record"]
            entry |= _done(rec, "finished in an earlier run")
            continue
        ctx.records.pop(s, None)  # the last round's record is not this round's
        if ctx.minutes_left() <= 0 and s != "properties":
            entry["message"] = "wall-time budget spent"
            ctx.say(
                f"{s}: skipped, the wall-time budget ({campaign.budget.minutes:g} min) is spent"
            )
            continue
        fn = properties if s == "properties" else STAGE_FUNCTIONS[s]
        started = _now()
        entry |= {"status": "running", "started": started, "message": ""}
        write_json(ctx.out / "timeline.json", timeline)
        ctx.say(f"— stage {s} —")
        try:
            rec = ck.run(s, epoch, _stage_call(fn, ctx, s, started))
        except Exception as exc:  # recorded; the stages that do not need it still run
            text = str(exc) if isinstance(exc, PotforgeError) else _crash(exc, log)
            entry |= {"status": "failed", "finished": _now(), "message": text}
            ctx.say(f"{s}: failed: {text}")
            write_json(ctx.out / "timeline.json", timeline)
            continue
        ctx.records[s] = rec["record"]
        entry |= _done(rec, rec["record"].get("message", ""))
        write_json(ctx.out / "timeline.json", timeline)


def _done(rec: dict, message: str) -> dict[str, Any]:
    return {
        "status": "done",
        "started": rec["started"],
        "finished": rec["finished"],
        "oracle_calls": rec["record"].get("oracle_calls"),
        "message": message,
    }


def _past_timeline(ck: Checkpoint, rounds: list[dict]) -> list[dict]:
    """Timeline entries of the finished rounds, from their stages' checkpoints."""
    out = []
    for r in rounds:
        for s, epoch in r.get("epochs", {}).items():
            rec = ck.output(s, epoch)
            if rec is not None:
                out.append({"stage": s, "round": r["round"]} | _done(rec, "an earlier round"))
    return out


def _round_end(ctx: Context) -> dict[str, Any]:
    """What a round ended with: oracle calls, and per selection target its σ, tolerance and
    whether σ ≤ tolerance (None where the properties stage could not judge it)."""
    qois = ctx.records.get("properties", {}).get("qois", {})
    names = [t.name for t in ctx.campaign.targets if not t.indirect]
    last = next((s for s in ("active", "fit") if s in ctx.records), None)
    return {
        "judged": "properties" in ctx.records,
        "training": list(ctx.records[last]["training"]) if last else [],
        "calls": ctx.calls(),
        "sigma": {n: qois.get(n, {}).get("sigma") for n in names},
        "tolerance": {n: qois.get(n, {}).get("tolerance") for n in names},
        "met": {n: qois.get(n, {}).get("precision_met") for n in names},
    }


def escalated(spec: str) -> str | None:
    """``spec`` with its linear ``snap`` term made quadratic (``qsnap``), or None when it has
    none."""
    from potforge.terms import parse_spec

    terms = parse_spec(spec)
    if not any(t.kind == "snap" and not t.get_params().get("quadratic") for t in terms):
        return None
    parts = []
    for t in terms:
        params = t.get_params()
        if t.kind == "snap":
            params["quadratic"] = True
        args = ",".join(f"{k}={v!r}" for k, v in params.items())
        parts.append(f"{t.kind}({args})" if args else t.kind)
    return "+".join(parts)


def decide(campaign: Campaign, rounds: list[dict], minutes_left: float) -> tuple[dict | None, str]:
    """Whether a further round runs, and how (:class:`~potforge.campaign.config.Refine`).

    Parameters
    ----------
    campaign : Campaign
    rounds : list of dict
        The rounds so far, each with its ``end`` (:func:`_round_end`); the last one just
        finished.
    minutes_left : float
        Wall-time budget left, minutes.

    Returns
    -------
    next : dict or None
        The next round's ``round``, ``tighten``, ``model``, ``prior``, ``calls_at_start`` and
        ``why``; None when the refinement stops.
    stop : str
        Why it stops (one sentence), or ``""``.
    """
    from potforge.campaign.stages import active_reserve

    c, last = campaign, rounds[-1]
    index, end = int(last["round"]), last["end"]
    if not end["judged"]:
        return None, "the properties stage did not finish, so no target could be judged"
    unmet = [n for n, ok in end["met"].items() if not ok]
    if not unmet:
        return None, "every target's σ is within its tolerance"
    sigma, tol = end["sigma"], end["tolerance"]
    if c.refine.rounds == 0:
        return None, "no further rounds ([refine] rounds = 0)"
    if index >= c.refine.rounds:
        return None, f"the {c.refine.rounds} further round(s) of [refine] rounds are spent"
    if not (c.select.enabled and c.fit.enabled and c.properties.enabled):
        return None, "further rounds need the [select], [fit] and [properties] stages"
    blind = [n for n in unmet if sigma[n] is None or tol[n] is None]
    unmet = [n for n in unmet if n not in blind]  # a round aims at the σ it can see
    if not unmet:
        return None, f"the σ of {', '.join(blind)} could not be computed, so no round can aim at it"
    unseen = f" ({', '.join(blind)} left out: σ not computed)" if blind else ""
    reserve = active_reserve(c, later_round=True)
    room = c.budget.oracle_calls - int(end["calls"]) - reserve
    if room < 1:
        return None, (
            f"the budget is spent ({end['calls']} of {c.budget.oracle_calls} oracle calls used"
            + (f", {reserve} kept for active learning)" if reserve else ")")
        )
    if minutes_left <= 0:
        return None, f"the wall-time budget ({c.budget.minutes:g} min) is spent"
    tighten, model = dict(last.get("tighten") or {}), last.get("model")
    before = rounds[-2]["end"]["sigma"] if len(rounds) > 1 and "end" in rounds[-2] else None
    if before is not None and not any(
        before.get(n) is not None and sigma[n] <= (1 - c.refine.stall) * before[n] for n in unmet
    ):
        can = c.refine.escalate and not (model or c.fit.design)
        bigger = escalated(c.fit.model) if can else None
        change = ", ".join(f"{n} {_g(before.get(n))} → {_g(sigma[n])}" for n in unmet)
        if bigger is None:
            return None, (
                f"round {index} shrank no unmet σ by {c.refine.stall:.0%} ({change}): the "
                "model's own error limits them, not the data — "
                + (
                    "a larger model ([fit] design = true) would"
                    if model
                    else "a richer [fit] model would"
                )
            )
        why = (
            f"round {index}'s data shrank no unmet σ by {c.refine.stall:.0%} ({change}): the "
            f"data is not what limits them; refitting with quadratic SNAP ({bigger}){unseen}"
        )
        return _next(index, tighten, bigger, end, why), ""
    for n in unmet:
        tighten[n] = float(tighten.get(n, 1.0) * min(1.0, max(0.1, tol[n] / sigma[n])))
    why = "σ over tolerance " + ", ".join(f"{n} {sigma[n] / tol[n]:.3g}" for n in unmet)
    return _next(index, tighten, model, end, why + unseen + ": more data"), ""


def _g(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g}"


def _next(index: int, tighten: dict, model: str | None, end: dict, why: str) -> dict:
    return {
        "round": index + 1,
        "calls_at_start": int(end["calls"]),
        "tighten": tighten,
        "model": model,
        "prior": list(end["training"]),
        "why": why,
    }


REFINED = "refinement: "
"""How the refinement's sentence in a target's reasons starts (replaced on a resume)."""


def _refinement(ctx: Context, rounds: list[dict], stop: str) -> None:
    """Add the rounds' history to ``properties.json``, and to each target whose σ exceeds its
    tolerance the sentence that says how far the rounds took it and why they stopped."""
    path = ctx.out / "properties.json"
    doc = json.loads(path.read_text())
    history = [
        {
            "round": r["round"],
            "why": r.get("why", ""),
            "model": r.get("model"),
            "tighten": r.get("tighten", {}),
            "oracle_calls": r.get("end", {}).get("calls"),
            "sigma": r.get("end", {}).get("sigma", {}),
            "tolerance": r.get("end", {}).get("tolerance", {}),
        }
        for r in rounds
    ]
    doc["refinement"] = {"rounds": history, "stop": stop}
    for name, q in doc.get("qois", {}).items():
        q["reasons"] = [x for x in q.get("reasons", []) if not x.startswith(REFINED)]
        if q.get("target") and q.get("precision_met") is False:
            trail = " → ".join(
                "—" if h["sigma"].get(name) is None else f"{h['sigma'][name]:.3g}" for h in history
            )
            q["reasons"].append(
                f"{REFINED}σ {trail} {q.get('unit') or ''} over {len(history)} round(s) "
                f"({history[-1]['oracle_calls']} oracle calls); stopped: {stop}".replace("  ", " ")
            )
    write_json(path, doc)


def _crash(exc: Exception, log) -> str:
    """One line for an unexpected error (a bug); its traceback goes to the log."""
    import traceback

    log.write("".join(traceback.format_exception(exc)))
    return f"{type(exc).__name__}: {exc} (a potforge bug: the traceback is in log.txt)"


def _stage_call(fn, ctx: Context, stage: str, started: str):
    """The checkpoint function of one stage: the stage's record with its key and times."""

    def call(handle) -> dict:
        record = fn(ctx)
        key = stage_key(ctx.campaign, stage)
        return {"record": record, "key": key, "started": started, "finished": _now()}

    return call


def _provenance(out: Path, c: Campaign, oracle, store: Store, argv, calls: int) -> None:
    from potforge import __version__

    write_json(
        out / "provenance.json",
        {
            "potforge": __version__,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "command": " ".join(argv) if argv else None,
            "finished": _now(),
            "elements": list(c.elements),
            "oracle": oracle.spec,
            "oracle_key": oracle.key,
            "store": store.name,
            "oracle_calls": calls,
            "budget_oracle_calls": c.budget.oracle_calls,
            "seed": c.seed,
            "workers": c.workers,
        },
    )
