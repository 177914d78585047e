"""Reporting QoIs: model-vs-reference table, JSON document, relative-deviation bar chart."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from potforge.errors import DataError

OUTPUT_KEYS = (
    "value",
    "unit",
    "reference",
    "std",
    "lower",
    "upper",
    "method",
    "std_meaning",
    "bounds_meaning",
    "check",
)
"""Keys of one QoI entry in the JSON document, in order (all but value and unit optional).
``std_meaning`` and ``bounds_meaning`` say in words what ``std`` and ``lower``/``upper`` are
(:func:`~potforge.qoi.propagation.property_uncertainty`): both describe the same posterior, but
``std`` is a typical deviation and the bounds are its extremes."""


def load_reference(path: str | Path) -> dict[str, float]:
    """Reference values from a JSON file: ``{qoi: {"value": v, ...}}`` or ``{qoi: v}``.

    Raises
    ------
    DataError
        Unreadable file or an entry without a number.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read reference values ({exc})") from exc
    if not isinstance(doc, dict):
        raise DataError(f"{path}: reference JSON must be an object {{qoi: value}}")
    out = {}
    for name, entry in doc.items():
        value = entry.get("value") if isinstance(entry, dict) else entry
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise DataError(f"{path}: reference '{name}' has no numeric value ({entry!r})")
        out[name] = float(value)
    return out


def merge(
    results: dict[str, dict[str, Any]], reference: dict[str, float] | None = None
) -> dict[str, dict[str, Any]]:
    """JSON document ``{qoi: {"value", "unit", "reference"?, "lower"?, "upper"?}}``.

    Parameters
    ----------
    results : dict
        Output of :func:`~potforge.properties.registry.run_suite` (``std``/``lower``/``upper``/
        ``method``/``check`` kept when present, e.g. from
        :func:`~potforge.qoi.propagation.property_uncertainty`).
    reference : dict, optional
        QoI name → reference value in the same unit.
    """
    out = {}
    for name, entry in results.items():
        row = {"value": entry["value"], "unit": entry["unit"]}
        if reference is not None and name in reference:
            row["reference"] = reference[name]
        for key in OUTPUT_KEYS[3:]:  # uncertainty keys, when present
            if key in entry:
                row[key] = entry[key]
        out[name] = row
    return out


def relative_deviation(value: float, reference: float) -> float:
    """``(value − reference) / |reference|``; NaN when the reference is zero."""
    return (value - reference) / abs(reference) if reference else math.nan


def format_table(doc: dict[str, dict[str, Any]]) -> str:
    """Plain-text table of a merged document (reference and deviation columns when present).

    With bounds, footnotes say what ``std`` and each method's ``lower``/``upper`` are, and how
    many std the bounds lie from the value (POPS bounds are the extremes of a heavy-tailed
    ensemble, not ``± k std``).
    """
    has_ref = any("reference" in r for r in doc.values())
    has_bounds = any("lower" in r for r in doc.values())
    header = f"{'QoI':<16}{'value':>14}  {'unit':<8}"
    if has_bounds:
        header += f"{'std¹':>11}{'lower²':>12}{'upper²':>12}  {'method':<9}"
    if has_ref:
        header += f"{'reference':>14}{'rel. dev.':>12}"
        if has_bounds:
            header += f"{'inside':>8}"
    lines = [header, "-" * len(header)]
    for name, r in doc.items():
        line = f"{name:<16}{r['value']:>14.5g}  {r['unit']:<8}"
        if has_bounds:
            line += f"{r.get('std', math.nan):>11.3g}"
            line += f"{r.get('lower', math.nan):>12.5g}{r.get('upper', math.nan):>12.5g}"
            line += f"  {r.get('method', ''):<9}"
        if has_ref:
            if "reference" in r:
                dev = relative_deviation(r["value"], r["reference"])
                line += f"{r['reference']:>14.5g}{dev:>+11.2%} "
                if has_bounds and "lower" in r:
                    inside = r["lower"] <= r["reference"] <= r["upper"]
                    line += f"{'yes' if inside else 'NO':>8}"
            else:
                line += f"{'—':>14}{'—':>12}"
        lines.append(line)
    if has_bounds:
        lines += _footnotes(doc)
    return "\n".join(lines)


def _footnotes(doc: dict[str, dict[str, Any]]) -> list[str]:
    """What std and the bounds of each method are (``std_meaning``/``bounds_meaning``), and
    the bounds' distance from the value in std."""
    stds = sorted({r["std_meaning"] for r in doc.values() if r.get("std_meaning")})
    bounds: dict[str, str] = {}
    for r in doc.values():
        if r.get("bounds_meaning"):
            bounds.setdefault(r["bounds_meaning"], r.get("method", ""))
    out = [""]
    out += [f"¹ std: {text}" for text in stds] or ["¹ std: spread of the QoI over the posterior"]
    for text, method in bounds.items():
        out.append(f"² lower/upper{f' ({method})' if len(bounds) > 1 else ''}: {text}")
    far = [
        max(r["upper"] - r["value"], r["value"] - r["lower"]) / r["std"]
        for r in doc.values()
        if "lower" in r and r.get("std", 0) > 0
    ]
    if far:
        span = f"{min(far):.1f}" if len(far) == 1 else f"{min(far):.1f}–{max(far):.1f}"
        out.append(
            f"  the farther bound lies {span} std from the value: the bounds are the "
            "posterior's extremes, not ± k std"
        )
    return out


def write_json(path: str | Path, doc: dict[str, dict[str, Any]]) -> Path:
    """Write the merged document (keys in :data:`OUTPUT_KEYS` order)."""
    path = Path(path)
    ordered = {n: {k: r[k] for k in OUTPUT_KEYS if k in r} for n, r in doc.items()}
    path.write_text(json.dumps(ordered, indent=2, ensure_ascii=False) + "\n")
    return path


def deviation_plot(
    path: str | Path, doc: dict[str, dict[str, Any]], *, title: str = "model vs reference"
) -> Path:
    """Bar chart of relative deviations (model − reference)/|reference| per QoI (PNG, Agg).

    QoIs without a reference are shown as missing bars; ``lower``/``upper`` become error bars.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(doc)
    devs: list[float] = []
    errs: list[list[float]] = [[], []]
    for n in names:
        r = doc[n]
        ref = r.get("reference")
        d = relative_deviation(r["value"], ref) if ref is not None else math.nan
        devs.append(100 * d)
        lo = relative_deviation(r["lower"], ref) if ref and "lower" in r else d
        hi = relative_deviation(r["upper"], ref) if ref and "upper" in r else d
        errs[0].append(100 * max(d - lo, 0.0) if not math.isnan(d) else 0.0)
        errs[1].append(100 * max(hi - d, 0.0) if not math.isnan(d) else 0.0)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(names) + 2), 4.2))
    colors = ["tab:red" if abs(v) > 10 else "tab:blue" for v in devs]
    ax.bar(
        range(len(names)),
        [0 if math.isnan(v) else v for v in devs],
        color=colors,
        yerr=errs if any(errs[0]) or any(errs[1]) else None,
        capsize=3,
    )
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_ylabel("relative deviation from reference (%)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
