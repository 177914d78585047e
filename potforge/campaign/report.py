"""The campaign's static HTML report, built only from the files the stages wrote.

:func:`build_report` reads a campaign output folder and writes ``DIR/report.html``: one file,
every figure embedded as a base64 PNG, no script and no external resource, so it opens offline
from ``file://`` and can be mailed as it is.  Nothing is refitted or recomputed; a section whose
file is missing (or unreadable) shows a short "not run" note instead.  The files read, all
optional, relative to ``DIR``::

    campaign.resolved.toml        provenance.json         timeline.json        properties.json
    stages/fit/parity.json        stages/fit/errors.json  stages/select/fim.json
    stages/select/curve.json      stages/active/curve.json  stages/generate/entropy.json

Units as the stages write them: energies eV/atom in parity plots, energy errors meV/atom, forces
eV/Å; each QoI's ``tolerance`` is absolute, in the QoI's own unit.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter

VERDICTS = ("precision_met", "reference_inside", "accurate")
STATUS_COLOURS = {
    "done": "#2e7d32",
    "failed": "#c62828",
    "running": "#ef6c00",
    "skipped": "#9e9e9e",
}
CSS = """
body{font-family:sans-serif;margin:0 auto;max-width:1120px;padding:1em 1.5em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f2f2f2} td.num{text-align:right;font-variant-numeric:tabular-nums}
td.pass{background:#e3f4e4;color:#1b5e20} td.fail{background:#fbe1e1;color:#b71c1c;font-weight:bold}
td.na{color:#888} .summary{font-size:1.3em;font-weight:bold;padding:.4em .8em;display:inline-block}
.ok{background:#e3f4e4;color:#1b5e20} .bad{background:#fbe1e1;color:#b71c1c}
.note{color:#777;font-style:italic} img{max-width:100%;height:auto}
nav a{margin-right:.9em} pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.85em}
"""


def build_report(folder: str | Path) -> Path:
    """Write ``folder/report.html`` from the stage outputs found in ``folder``.

    Parameters
    ----------
    folder : str or Path
        A campaign output folder (see the module docstring for the files read; all optional).

    Returns
    -------
    Path
        The written ``report.html``.
    """
    folder = Path(folder)
    props = _load(folder, "properties.json")
    sections = [(title, fn(folder)) for title, fn in _SECTIONS]
    element = props.get("element") if isinstance(props, dict) else None
    title = "potforge campaign report" + (f": {element}" if element else "")
    nav = " ".join(f'<a href="#s{i}">{escape(t)}</a>' for i, (t, _) in enumerate(sections))
    body = "".join(
        f'<section id="s{i}"><h2>{escape(t)}</h2>{html}</section>'
        for i, (t, html) in enumerate(sections)
    )
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<link rel="icon" href="data:,"><title>{escape(title)}</title><style>{CSS}</style>'
        f"</head><body><h1>{escape(title)}</h1><nav>{nav}</nav>{body}</body></html>\n"
    )
    out = folder / "report.html"
    out.write_text(page, encoding="utf-8")
    return out


# ----------------------------------------------------------------------------- small helpers
def _load(folder: Path, rel: str) -> Any:
    """The parsed JSON at ``folder/rel``, or None when it is absent or not valid JSON."""
    try:
        return json.loads((folder / rel).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _fmt(x: Any) -> str:
    """``x`` as escaped text: floats to 4 significant digits, None as a dash, bools as yes/no."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return f"{x:.4g}"
    return escape(str(x))


def _note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """An HTML table; a cell is a value (formatted by :func:`_fmt`) or ``(html, css_class)``."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    lines = []
    for row in rows:
        cells = []
        for c in row:
            if isinstance(c, tuple):
                cells.append(f'<td class="{c[1]}">{c[0]}</td>')
            else:
                num = isinstance(c, int | float) and not isinstance(c, bool)
                cells.append(f'<td class="num">{_fmt(c)}</td>' if num else f"<td>{_fmt(c)}</td>")
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(lines)}</table>"


def _figure(width: float, height: float) -> Figure:
    """A matplotlib figure drawn by Agg (no pyplot state)."""
    return Figure(figsize=(width, height), layout="constrained")


def _img(fig: Figure, alt: str) -> str:
    """``fig`` as an ``<img>`` with an embedded PNG data URI (no metadata, so no URLs)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _section(folder: Path, rel: str, what: str, render: Callable[[Any], str]) -> str:
    """``render`` of the JSON at ``rel``, or a note when it is missing or malformed."""
    data = _load(folder, rel)
    if data is None:
        return _note(f"{what}: not run ({rel} not found).")
    try:
        return render(data)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, ZeroDivisionError) as exc:
        return _note(f"{what}: {rel} could not be read ({type(exc).__name__}: {exc}).")


def _verdict_cell(v: Any) -> tuple[str, str]:
    if v is None:
        return ("—", "na")
    return ("yes", "pass") if v else ("no", "fail")


def _met(q: dict) -> bool:
    """A target is met when no verdict failed and at least one was judged."""
    vs = [q.get(k) for k in VERDICTS]
    return False not in vs and True in vs


# ----------------------------------------------------------------------------- sections
def _targets(folder: Path) -> str:
    return _section(folder, "properties.json", "properties", _targets_html)


def _targets_html(props: dict) -> str:
    qois: dict = props["qois"]
    k = sum(_met(q) for q in qois.values())
    cls = "ok" if k == len(qois) else "bad"
    rows = []
    for name, q in qois.items():
        lo, hi = q.get("lower"), q.get("upper")
        interval = "—" if lo is None or hi is None else f"[{_fmt(lo)}, {_fmt(hi)}]"
        reasons = [] if _met(q) else q.get("reasons", [])
        rows.append(
            [name, q.get("value"), q.get("unit", ""), q.get("sigma"), (interval, "num")]
            + [q.get("reference"), q.get("tolerance")]
            + [_verdict_cell(q.get(v)) for v in VERDICTS]
            + [("<br>".join(escape(str(r)) for r in reasons), "")]
        )
    head = ["QoI", "value", "unit", "σ", "bounds", "reference", "tolerance"]
    head += ["precision met", "reference inside", "accurate", "reasons"]
    summary = f'<p class="summary {cls}">{k} of {len(qois)} targets met</p>'
    return summary + _table(head, rows)


def _property_bars(folder: Path) -> str:
    return _section(folder, "properties.json", "properties", _property_bars_html)


def _property_bars_html(props: dict) -> str:
    qois = list(props["qois"].items())
    if not qois:
        return _note("properties: no QoIs.")
    ncol = min(4, len(qois))
    nrow = -(-len(qois) // ncol)
    fig = _figure(3.0 * ncol, 1.7 * nrow)
    for i, (name, q) in enumerate(qois):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        _property_panel(ax, q)
        ax.set_title(f"{name} ({q.get('unit', '')})", fontsize=9)
    text = (
        "Value (dot) with its bounds (bar, or ±σ), the reference (black line) and the "
        "tolerance band around it (green)."
    )
    return _note(text) + _img(fig, "property values with bounds and references")


def _property_panel(ax: Any, q: dict) -> None:
    """One QoI on a horizontal axis in its own unit."""
    v, ref, tol = q["value"], q.get("reference"), q.get("tolerance")
    lo, hi, s = q.get("lower"), q.get("upper"), q.get("sigma")
    if lo is None and s is not None:
        lo, hi = v - s, v + s
    if ref is not None and tol is not None:
        ax.axvspan(ref - tol, ref + tol, color="#c8e6c9")
    if ref is not None:
        ax.axvline(ref, color="k", lw=1.2)
    colour = "#2e7d32" if _met(q) else "#c62828"
    if lo is not None and hi is not None:
        ax.errorbar([v], [0], xerr=[[v - lo], [hi - v]], fmt="o", color=colour, capsize=4)
    else:
        ax.plot([v], [0], "o", color=colour)
    ax.set_yticks([])
    ax.set_ylim(-1, 1)
    ax.tick_params(labelsize=7)
    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))


def _parity(folder: Path) -> str:
    return _section(folder, "stages/fit/parity.json", "fit", _parity_html)


def _parity_html(data: dict) -> str:
    groups = data["groups"]
    fig = _figure(8.0, 2.7 * len(groups))
    for i, (name, g) in enumerate(groups.items()):
        for j, (key, unit, size) in enumerate((("energy", "eV/atom", 12), ("force", "eV/Å", 4))):
            ax = fig.add_subplot(len(groups), 2, 2 * i + j + 1)
            ref, pred = np.asarray(g[f"{key}_ref"], float), np.asarray(g[f"{key}_pred"], float)
            ax.scatter(ref, pred, s=size, alpha=0.6, color=f"C{i}")
            both = np.concatenate([ref, pred]) if ref.size else np.array([0.0, 1.0])
            lo, hi = float(both.min()), float(both.max())
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
            ax.set_title(f"{name}: {key}", fontsize=9)
            ax.set_xlabel(f"reference ({unit})", fontsize=8)
            ax.set_ylabel(f"model ({unit})", fontsize=8)
            ax.tick_params(labelsize=7)
    return _img(fig, "parity plots per group")


def _errors(folder: Path) -> str:
    return _section(folder, "stages/fit/errors.json", "fit", _errors_html)


def _errors_html(data: dict) -> str:
    keys = ("n", "energy_rmse", "energy_mae", "force_rmse", "force_mae")
    rows = [[name] + [g.get(k) for k in keys] for name, g in data["groups"].items()]
    if "overall" in data:
        rows.append([("<b>overall</b>", "")] + [data["overall"].get(k) for k in keys])
    head = ["group", "n", "energy RMSE (meV/atom)", "energy MAE (meV/atom)"]
    return _table(head + ["force RMSE (eV/Å)", "force MAE (eV/Å)"], rows)


def _fim(folder: Path) -> str:
    return _section(folder, "stages/select/fim.json", "select", _fim_html)


def _fim_html(data: dict) -> str:
    fig = _figure(6.5, 3.4)
    ax = fig.add_subplot()
    for key, label in (("data_eigenvalues", "data"), ("target_eigenvalues", "target")):
        ev = np.sort(np.asarray(data[key], float))[::-1]
        ev = ev[ev > 0]
        ax.semilogy(np.arange(1, ev.size + 1), ev, "o-", ms=3, label=f"{label} ({ev.size} > 0)")
    ax.set_xlabel("eigenvalue index (descending)")
    ax.set_ylabel("FIM eigenvalue")
    ax.legend(fontsize=8)
    return _img(fig, "FIM spectra")


def _learning(folder: Path) -> str:
    im = _section(folder, "stages/select/curve.json", "information matching", _im_html)
    al = _section(folder, "stages/active/curve.json", "active learning", _al_html)
    rounds = _section(folder, "properties.json", "refinement", _rounds_html)
    return (
        f"<h3>Refinement rounds</h3>{rounds}"
        f"<h3>Information matching (last round)</h3>{im}<h3>Active learning (last round)</h3>{al}"
    )


def _rounds_html(props: dict) -> str:
    """Per round: oracle calls, why it ran, calibrated σ / tolerance of each target; a plot of
    those ratios against the calls."""
    ref = props.get("refinement")
    if not ref:
        return _note("refinement: not recorded (a campaign of an earlier potforge).")
    rounds = ref["rounds"]
    names = list(dict.fromkeys(n for r in rounds for n in r["sigma"]))
    ratio = {n: [_ratio(r["sigma"].get(n), r["tolerance"].get(n)) for r in rounds] for n in names}
    rows = [
        [r["round"], r["oracle_calls"], r["why"] or "first round"]
        + [None if np.isnan(ratio[n][i]) else ratio[n][i] for n in names]
        for i, r in enumerate(rounds)
    ]
    table = _table(["round", "oracle calls", "why", *(f"{n} σ/tol" for n in names)], rows)
    stop = _note(f"stopped: {ref['stop']}")
    calls = [r["oracle_calls"] for r in rounds]
    if not names or all(np.isnan(v) for n in names for v in ratio[n]):
        return table + stop
    fig = _figure(6.5, 3.4)
    ax = fig.add_subplot()
    for n in names:
        ax.plot(calls, ratio[n], "o-", ms=4, label=n)
    _ratio_axis(ax)
    ax.set_xlabel("oracle calls at the end of the round")
    ax.set_ylabel("calibrated σ / tolerance")
    ax.legend(fontsize=7, ncol=2)
    return table + stop + _img(fig, "calibrated σ over tolerance per round")


def _im_html(data: dict) -> str:
    its = data["iterations"]
    calls = [it["oracle_calls"] for it in its]
    names = list(dict.fromkeys(n for it in its for n in it["sigma"]))
    fig = _figure(6.5, 3.4)
    ax = fig.add_subplot()
    for n in names:
        r = [_ratio(it["sigma"].get(n), it["tolerance"].get(n)) for it in its]
        ax.plot(calls, r, "o-", ms=3, label=n)
    _ratio_axis(ax)
    ax.set_xlabel("oracle calls")
    ax.set_ylabel("predicted σ / tolerance")
    ax.legend(fontsize=7, ncol=2)
    return _img(fig, "information-matching learning curve")


def _ratio_axis(ax: Any) -> None:
    """A log y axis of σ / tolerance with the target line at 1."""
    ax.axhline(1.0, color="k", ls="--", lw=0.8)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _ratio(a: Any, b: Any) -> float:
    """a / b, NaN where either is missing (null: an unbounded σ) or b is 0."""
    try:
        return float(a) / float(b)
    except (TypeError, ZeroDivisionError):
        return float("nan")


def _al_html(data: dict) -> str:
    its = data["iterations"]
    calls = [it["oracle_calls"] for it in its]
    panels = [
        (key, label)
        for key, label in (
            ("energy_rmse", "energy RMSE (meV/atom)"),
            ("force_rmse", "force RMSE (eV/Å)"),
            ("predicted_sigma", "predicted σ"),
        )
        if any(it.get(key) is not None for it in its)  # a quantity the stage did not record
    ]
    if not panels:
        return _note("active learning: no learning-curve values recorded.")
    fig = _figure(3.4 * len(panels), 3.0)
    for i, (key, label) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        y = [np.nan if it.get(key) is None else it[key] for it in its]
        ax.plot(calls, y, "o-", ms=3, color=f"C{i}")
        ax.set_xlabel("oracle calls", fontsize=8)
        ax.set_title(label, fontsize=9)
        ax.tick_params(labelsize=7)
    return _img(fig, "active-learning learning curves")


def _entropy(folder: Path) -> str:
    return _section(folder, "stages/generate/entropy.json", "generate", _entropy_html)


def _entropy_html(data: dict) -> str:
    fig = _figure(6.5, 3.4)
    ax = fig.add_subplot()
    for name, c in data["curves"].items():
        ax.plot(c["sizes"], c["entropy"], "o-", ms=3, label=name)
    ax.set_xlabel(f"data-set size ({data.get('unit', 'structures')})")
    ax.set_ylabel("entropy (nats)")
    ax.legend(fontsize=8)
    return _img(fig, "dataset entropy curves")


def _timeline(folder: Path) -> str:
    return _section(folder, "timeline.json", "timeline", _timeline_html)


def _time(s: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(s) if isinstance(s, str) else None
    except ValueError:
        return None


def _stage_label(entry: dict) -> str:
    """``select``, or ``select (round 2)`` in a further refinement round."""
    stage, index = str(entry.get("stage", "?")), entry.get("round") or 0
    return f"{stage} (round {index})" if index else stage


def _timeline_html(stages: list) -> str:
    starts = [_time(s.get("started")) for s in stages]
    ends = [_time(s.get("finished")) for s in stages]
    known = [t for t in starts + ends if t is not None]
    rows = []
    for s, t0, t1 in zip(stages, starts, ends, strict=True):
        dur = (t1 - t0).total_seconds() if t0 and t1 else None
        status = str(s.get("status", ""))
        cls = {"done": "pass", "failed": "fail"}.get(status, "na")
        rows.append(
            [_stage_label(s), (escape(status), cls), s.get("started"), s.get("finished"), dur]
            + [s.get("oracle_calls"), s.get("message", "")]
        )
    head = ["stage", "status", "started", "finished", "duration (s)", "oracle calls", "message"]
    table = _table(head, rows)
    if not known:
        return table
    origin, last = min(known), max(known)
    fig = _figure(8.0, 0.4 * len(stages) + 1.0)
    ax = fig.add_subplot()
    for i, (s, t0, t1) in enumerate(zip(stages, starts, ends, strict=True)):
        if t0 is None:
            ax.text(0, i, f"  {s.get('status', '')}", va="center", fontsize=8, color="#777")
            continue
        a, b = (t0 - origin).total_seconds(), ((t1 or last) - origin).total_seconds()
        colour = STATUS_COLOURS.get(str(s.get("status")), "#607d8b")
        ax.barh(i, max(b - a, 0.0), left=a, color=colour)
    ax.set_yticks(range(len(stages)), [_stage_label(s) for s in stages], fontsize=8)
    ax.set_ylim(len(stages) - 0.5, -0.5)
    ax.set_xlabel("seconds since the campaign started")
    used = dict.fromkeys(str(s.get("status")) for s in stages)
    handles = [Patch(color=STATUS_COLOURS[k], label=k) for k in used if k in STATUS_COLOURS]
    ax.legend(handles=handles, fontsize=8, loc="upper right")
    return table + _img(fig, "stage timeline")


def _provenance(folder: Path) -> str:
    return _section(folder, "provenance.json", "provenance", _provenance_html)


def _provenance_html(prov: dict) -> str:
    def show(v: Any) -> Any:
        if isinstance(v, list):
            return " ".join(str(x) for x in v)
        return json.dumps(v, sort_keys=True) if isinstance(v, dict) else v

    return _table(["key", "value"], [[k, show(v)] for k, v in prov.items()])


def _campaign(folder: Path) -> str:
    path = folder / "campaign.resolved.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return _note("campaign: not run (campaign.resolved.toml not found).")
    return f"<details><summary>campaign.resolved.toml</summary><pre>{escape(text)}</pre></details>"


_SECTIONS: list[tuple[str, Callable[[Path], str]]] = [
    ("Targets", _targets),
    ("Properties", _property_bars),
    ("Parity", _parity),
    ("Errors per group", _errors),
    ("FIM spectra", _fim),
    ("Learning curves", _learning),
    ("Dataset entropy", _entropy),
    ("Stage timeline", _timeline),
    ("Provenance", _provenance),
    ("Campaign file", _campaign),
]
