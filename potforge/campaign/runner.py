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
from potforge.campaign.stages import Context, Say, generate, select, write_json
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
    from potforge.campaign.properties import properties
    from potforge.campaign.report import build_report
    from potforge.oracles.labelling import dask_client

    out = Path(out)
    if start is not None and start not in STAGES:
        raise DataError(f"--from {start!r}: valid stages are {', '.join(STAGES)}")
    if start is not None and not getattr(campaign, start).enabled:
        raise DataError(f"--from {start}: the [{start}] stage is switched off (enabled = false)")
    oracle = campaign.make_oracle()
    prepare_folder(campaign, out, force)
    log = (out / "log.txt").open("a", encoding="utf-8")

    def tell(line: str) -> None:
        say(line)
        log.write(f"{_now()} {line}\n")
        log.flush()

    store = Store(campaign.store or out / "campaign.db")
    ck = Checkpoint(store, "campaign", fingerprint(campaign))
    state_path = out / "state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    epochs: dict[str, int] = state.get("epochs", {})
    todo, why = plan(ck, campaign, epochs, start)
    write_json(state_path, {"epochs": epochs})
    done_before = [s for s in campaign.enabled_stages() if s not in todo]
    if done_before:
        tell(f"resuming: {', '.join(done_before)} finished in an earlier run")
    if why:
        tell(f"rerunning from {todo[0]} ({why})")
    ctx = Context(campaign, out, store, oracle, epochs=epochs, say=tell, progress=progress)
    timeline: list[dict] = []
    address = scheduler or campaign.scheduler
    with dask_client(workers=campaign.workers, scheduler=address) as client:
        ctx.client = client
        for s in STAGES:
            entry = {
                "stage": s,
                "status": "skipped",
                "started": None,
                "finished": None,
                "oracle_calls": None,
                "message": "switched off",
            }
            timeline.append(entry)
            if not getattr(campaign, s).enabled:
                continue
            epoch = epochs.get(s, 0)
            if s not in todo:
                rec = ck.output(s, epoch)
                ctx.records[s] = rec["record"]
                entry |= {
                    "status": "done",
                    "started": rec["started"],
                    "finished": rec["finished"],
                    "oracle_calls": rec["record"].get("oracle_calls"),
                    "message": "finished in an earlier run",
                }
                continue
            if ctx.minutes_left() <= 0 and s != "properties":
                entry["message"] = "wall-time budget spent"
                tell(
                    f"{s}: skipped, the wall-time budget ({campaign.budget.minutes:g} min) is spent"
                )
                continue
            fn = properties if s == "properties" else STAGE_FUNCTIONS[s]
            started = _now()
            entry |= {"status": "running", "started": started, "message": ""}
            write_json(out / "timeline.json", timeline)
            tell(f"— stage {s} —")
            try:
                rec = ck.run(s, epoch, _stage_call(fn, ctx, s, started))
            except Exception as exc:  # recorded; the stages that do not need it still run
                text = str(exc) if isinstance(exc, PotforgeError) else _crash(exc, log)
                entry |= {"status": "failed", "finished": _now(), "message": text}
                tell(f"{s}: failed: {text}")
                write_json(out / "timeline.json", timeline)
                continue
            ctx.records[s] = rec["record"]
            entry |= {
                "status": "done",
                "finished": rec["finished"],
                "oracle_calls": rec["record"].get("oracle_calls"),
                "message": rec["record"].get("message", ""),
            }
            write_json(out / "timeline.json", timeline)
    log_calls = ctx.calls()
    write_json(out / "timeline.json", timeline)
    _provenance(out, campaign, oracle, store, argv, log_calls)
    report = build_report(out)
    tell(f"report: {report}")
    log.close()
    props = json.loads((out / "properties.json").read_text()) if "properties" in ctx.records else {}
    return CampaignResult(out, timeline, props, log_calls, report)


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
