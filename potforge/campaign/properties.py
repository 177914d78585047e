"""The campaign's last stage: the property table of the final model, with calibrated bounds,
the oracle's own values and three verdicts per QoI.

Per QoI (the targets, then ``[properties] extra``):

* ``value`` — the final model's;
* ``lower``/``upper`` — the POPS bounds propagated to the QoI
  (:func:`potforge.qoi.property_uncertainty`), inflated about ``value`` by the ``uq`` stage's
  calibrated scale (the largest per-row-type conformal scale, fitted on out-of-fold energy /
  force / stress errors of the training data; nothing about the QoIs enters); ``raw_lower``,
  ``raw_upper`` keep the raw POPS bounds;
* ``sigma`` — the calibrated half-width over z, the standard-normal quantile of the ``uq``
  stage's coverage (1.645 at 90 %): the one-σ the targets' tolerances are compared with;
* ``reference`` — the oracle's value (``[properties] reference = true``), computed by the same
  property suite with the oracle as calculator (these evaluations are validation, reported in
  ``validation_calls``; the labelling budget counts labels);
* ``tolerance`` — absolute, in the QoI's unit (a relative one times ``|reference|``, or
  ``|value|`` without a reference);
* verdicts ``precision_met`` (σ ≤ tolerance), ``reference_inside`` (lower ≤ reference ≤ upper),
  ``accurate`` (|value − reference| ≤ tolerance), each None where it cannot be judged, with
  ``reasons`` naming every failed or unjudged one.
"""

from __future__ import annotations

import math
from typing import Any

from scipy.stats import norm

from potforge.campaign.stages import Context, write_json
from potforge.errors import DataError, PotforgeError


def _values(calc_or_model, element: str, names: list[str], settings: dict, bounds: bool):
    """Per QoI the suite's entry, or ``{"error": sentence}``: all at once (one shared suite),
    else one by one when one of them fails."""
    from potforge.properties import run_suite
    from potforge.qoi.propagation import property_uncertainty

    def run(qois: list[str]) -> dict:
        if bounds:
            return property_uncertainty(calc_or_model, element, qois, progress=False, **settings)
        return run_suite(calc_or_model, element, qois, progress=False, **settings)

    try:
        return run(names)
    except PotforgeError:
        out: dict[str, dict] = {}
        for n in names:
            try:
                out |= run([n])
            except PotforgeError as exc:
                out[n] = {"error": str(exc)}
        return out


def properties(ctx: Context) -> dict:
    """Write ``OUT/properties.json`` and the final model ``OUT/model/`` (ASE and LAMMPS)."""
    from potforge.model import LinearPotential

    c, p = ctx.campaign, ctx.campaign.properties
    last = next((s for s in ("active", "fit") if ctx.records.get(s)), None)
    if last is None:
        raise DataError("properties: needs a fitted model: enable [fit]")
    train = ctx.labelled(ctx.records[last]["training"])
    with_bounds = p.uq != "none" and c.uq.enabled
    if with_bounds and last == "fit" and ctx.records.get("uq"):  # the uq stage's posterior
        model = LinearPotential.load(ctx.folder("uq") / "model")
    else:
        model = LinearPotential.load(ctx.folder(last) / "model", posterior=False)
        if with_bounds:
            from potforge.campaign.learning import posterior_options

            model.fit_posterior(train, c.uq.method, **posterior_options(ctx))
    final = ctx.out / "model"
    model.save(final)
    model.to_lammps(final / "lammps", location=final.resolve() / "lammps")
    element = c.formula
    names = list(dict.fromkeys([*c.target_names, *p.extra]))
    settings = dict(c.property_settings)
    if with_bounds and p.uq != "auto":
        settings["method"] = p.uq
    ctx.say(f"properties: {', '.join(names)} of the final model ({model.n_params} parameters)")
    got = _values(
        model if with_bounds else model.as_calculator(), element, names, settings, with_bounds
    )
    reference: dict[str, dict] = {}
    calls = 0
    if p.reference:
        reference, calls = _reference(
            ctx, names, {k: v for k, v in settings.items() if k != "method"}
        )
    calibrated = bool(ctx.records.get("uq", {}).get("per_row_type"))
    scale = float(ctx.records["uq"]["scale"]) if calibrated else 1.0
    z = float(norm.ppf(0.5 + c.uq.coverage / 2))
    specs = {t.name: t for t in c.targets}
    qois = {
        n: _judge(n, got[n], reference.get(n), specs.get(n), scale if with_bounds else None, z)
        for n in names
    }
    doc = {
        "element": element,
        "model": "model/",
        "n_params": int(model.n_params),
        "training_structures": len(train),
        "calibration_scale": scale if with_bounds and calibrated else None,
        "bounds": None
        if not with_bounds
        else "calibrated POPS"
        if calibrated
        else "raw POPS (no calibration: the uq stage did not run or did not calibrate)",
        "coverage": c.uq.coverage,
        "validation_calls": calls,
        "qois": qois,
    }
    write_json(ctx.out / "properties.json", doc)
    return {"oracle_calls": 0, "validation_calls": calls, "qois": qois}


def _reference(ctx: Context, names: list[str], settings: dict) -> tuple[dict[str, dict], int]:
    """The oracle's own values of ``names`` and the calculator calls they took: computed once
    per oracle, QoIs and settings (``stages/properties/reference.json``), reused by every later
    round and rerun."""
    import json

    from potforge.campaign.stages import write_json

    key = {"oracle": ctx.oracle.key, "qois": names, "settings": settings}
    path = ctx.folder("properties") / "reference.json"
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        kept = None
    if isinstance(kept, dict) and kept.get("key") == json.loads(json.dumps(key, default=str)):
        ctx.say("properties: the oracle's values, computed before")
        return kept["values"], int(kept["calls"])
    ctx.say(f"properties: the same with the oracle {ctx.oracle.spec}, for reference")
    calc, count = _counted(ctx.oracle.build())
    values = _values(calc, ctx.campaign.formula, names, settings, False)
    write_json(path, {"key": key, "values": values, "calls": count[0]})
    return values, count[0]


def _counted(calc) -> tuple[Any, list[int]]:
    """``calc`` with its ``calculate`` calls counted in the returned one-item list."""
    count = [0]
    inner = calc.calculate

    def calculate(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return inner(*args, **kwargs)

    calc.calculate = calculate
    return calc, count


def _judge(name: str, got: dict, ref: dict | None, spec, scale: float | None, z: float) -> dict:
    """One QoI's row of ``properties.json`` (see the module docstring)."""
    from potforge.properties.registry import get_qoi

    row: dict[str, Any] = {
        "value": None,
        "unit": get_qoi(name).unit,
        "sigma": None,
        "lower": None,
        "upper": None,
        "reference": None,
        "tolerance": None,
        "target": spec is not None and not spec.indirect,
        "precision_met": None,
        "reference_inside": None,
        "accurate": None,
    }
    reasons = []
    value = got.get("value")
    if value is None or not math.isfinite(value):
        reasons.append(f"the model cannot compute it: {got.get('error', 'no value')}")
    else:
        row["value"] = float(value)
    if ref is not None:
        if ref.get("value") is not None and math.isfinite(ref["value"]):
            row["reference"] = float(ref["value"])
        else:
            reasons.append(f"the oracle cannot compute it: {ref.get('error', 'no value')}")
    if spec is not None and row["value"] is not None:
        base = row["reference"] if row["reference"] is not None else row["value"]
        row["tolerance"] = spec.tolerance / 100 * abs(base) if spec.relative else spec.tolerance
    if scale is not None and row["value"] is not None and got.get("lower") is not None:
        raw_half = (float(got["upper"]) - float(got["lower"])) / 2
        half = scale * raw_half
        row |= {
            "raw_lower": float(got["lower"]),
            "raw_upper": float(got["upper"]),
            "lower": row["value"] - half,
            "upper": row["value"] + half,
            "sigma": half / z,
            "method": got.get("method"),
        }
    _verdicts(row, reasons)
    row["reasons"] = reasons
    return row


def _verdicts(row: dict, reasons: list[str]) -> None:
    v, ref, tol, s = row["value"], row["reference"], row["tolerance"], row["sigma"]
    unit = f" {row['unit']}" if row["unit"] else ""
    if s is not None and tol is not None:
        row["precision_met"] = bool(s <= tol)
        if not row["precision_met"]:
            reasons.append(f"σ {s:.3g}{unit} > tolerance {tol:.3g}{unit}")
    if ref is not None and row["lower"] is not None:
        row["reference_inside"] = bool(row["lower"] <= ref <= row["upper"])
        if not row["reference_inside"]:
            reasons.append(
                f"the reference {ref:.4g} lies outside [{row['lower']:.4g}, {row['upper']:.4g}]"
            )
    if ref is not None and v is not None and tol is not None:
        row["accurate"] = bool(abs(v - ref) <= tol)
        if not row["accurate"]:
            reasons.append(f"|value − reference| {abs(v - ref):.3g}{unit} > tolerance {tol:.3g}")
