"""Error metrics of predictions against labels (overall and per group), in report units."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from ase import Atoms
from ase.units import GPa

from potforge.data.structures import labels

METRIC_KEYS = (
    "energy_mae_meV_per_atom",
    "energy_rmse_meV_per_atom",
    "force_mae_eV_per_A",
    "force_rmse_eV_per_A",
    "stress_rmse_GPa",
)


def residuals(structures: Sequence[Atoms], predictions: Sequence[dict]) -> dict[str, np.ndarray]:
    """Prediction minus label: ``energy`` per atom (eV/atom, (S,)), ``forces`` (3ΣN,),
    ``stress`` (eV/Å³, (6·S_stress,)), and ``group`` of each energy (S,)."""
    e, f, s, g = [], [], [], []
    for a, p in zip(structures, predictions, strict=True):
        lab = labels(a)
        if "energy" in lab:
            e.append((float(p["energy"]) - lab["energy"]) / len(a))
            g.append(str(a.info.get("group", "all")))
        if "forces" in lab:
            f.append((np.asarray(p["forces"]) - lab["forces"]).ravel())
        if "stress" in lab:
            s.append(np.asarray(p["stress"]) - lab["stress"])
    cat = lambda x: np.concatenate(x) if x else np.zeros(0)  # noqa: E731
    return {"energy": np.array(e), "forces": cat(f), "stress": cat(s), "group": np.array(g)}


def _stats(x: np.ndarray, scale: float = 1.0) -> tuple[float | None, float | None]:
    if x.size == 0:
        return None, None
    return float(np.mean(np.abs(x)) * scale), float(np.sqrt(np.mean(x**2)) * scale)


def error_metrics(structures: Sequence[Atoms], predictions: Sequence[dict]) -> dict:
    """The metrics of :data:`METRIC_KEYS` plus counts (None where a label type is absent)."""
    r = residuals(structures, predictions)
    e_mae, e_rmse = _stats(r["energy"], 1000.0)
    f_mae, f_rmse = _stats(r["forces"])
    _, s_rmse = _stats(r["stress"], 1.0 / GPa)
    return {
        "energy_mae_meV_per_atom": e_mae,
        "energy_rmse_meV_per_atom": e_rmse,
        "force_mae_eV_per_A": f_mae,
        "force_rmse_eV_per_A": f_rmse,
        "stress_rmse_GPa": s_rmse,
        "n_structures": len(structures),
        "n_atoms": int(sum(len(a) for a in structures)),
    }


def grouped_metrics(
    structures: Sequence[Atoms], predictions: Sequence[dict], metric: Callable | None = None
) -> dict[str, dict]:
    """``metric`` (default :func:`error_metrics`; e.g. :func:`uncertainty_metrics`) for each
    group label."""
    metric = error_metrics if metric is None else metric
    out = {}
    groups = sorted({str(a.info.get("group", "all")) for a in structures})
    for g in groups:
        idx = [k for k, a in enumerate(structures) if str(a.info.get("group", "all")) == g]
        out[g] = metric([structures[k] for k in idx], [predictions[k] for k in idx])
    return out


def format_table(sets: dict[str, dict], by_group: dict[str, dict[str, dict]] | None = None) -> str:
    """Plain-text table: one line per data set (and per group under it)."""
    head = (
        f"{'set':<22}{'n':>6}{'E MAE':>9}{'E RMSE':>9}{'F MAE':>9}{'F RMSE':>9}"
        f"{'S RMSE':>9}\n{'':<22}{'':>6}{'meV/at':>9}{'meV/at':>9}{'eV/Å':>9}{'eV/Å':>9}"
        f"{'GPa':>9}"
    )
    lines = [head]

    def fmt(v, spec):
        return f"{v:{spec}}" if v is not None else f"{'-':>9}"

    specs = ("9.2f", "9.2f", "9.3f", "9.3f", "9.2f")

    def row(name, m):
        cells = [fmt(m[k], spec) for k, spec in zip(METRIC_KEYS, specs, strict=True)]
        return f"{name:<22}{m['n_structures']:>6}" + "".join(cells)

    for name, m in sets.items():
        lines.append(row(name, m))
        for g, gm in (by_group or {}).get(name, {}).items():
            lines.append(row(f"  {g}", gm))
    return "\n".join(lines)


def uncertainty_metrics(structures: Sequence[Atoms], predictions: Sequence[dict]) -> dict:
    """Coverage of the labels by predicted bounds, and median bound half-widths.

    ``predictions`` must carry ``energy_bounds`` / ``forces_bounds`` / ``stress_bounds``
    (``LinearPotential.predict(..., return_bounds=True)``). Coverage is the fraction of reference
    values inside ``[lower, upper]`` (energies per structure, force and stress components);
    half-widths are ``(upper − lower) / 2``, energies per atom.
    """
    e_in, e_half, f_in, f_half, s_in = [], [], [], [], []
    for a, p in zip(structures, predictions, strict=True):
        lab = labels(a)
        if "energy" in lab:
            lo, hi = p["energy_bounds"]
            e_in.append(lo <= lab["energy"] <= hi)
            e_half.append(0.5 * (hi - lo) / len(a))
        if "forces" in lab:
            lo, hi = p["forces_bounds"]
            f = np.asarray(lab["forces"])
            f_in.append(((f >= lo) & (f <= hi)).ravel())
            f_half.append((0.5 * (hi - lo)).ravel())
        if "stress" in lab:
            lo, hi = p["stress_bounds"]
            s = np.asarray(lab["stress"])
            s_in.append((s >= lo) & (s <= hi))

    def frac(x):
        return float(np.mean(np.concatenate(x))) if x else None

    def med(x, scale=1.0):
        return float(np.median(np.concatenate(x)) * scale) if x else None

    return {
        "energy_coverage": float(np.mean(e_in)) if e_in else None,
        "force_coverage": frac(f_in),
        "stress_coverage": frac(s_in),
        "energy_bound_median_meV_per_atom": float(np.median(e_half) * 1000.0) if e_half else None,
        "force_bound_median_eV_per_A": med(f_half),
    }


RESIDUAL_COLUMNS = (
    "set",
    "index",
    "name",
    "description",
    "group",
    "n_atoms",
    "energy_error_meV_per_atom",
    "force_rmse_eV_per_A",
    "force_max_error_eV_per_A",
)
"""Columns of :func:`structure_residuals` (``residuals.csv``)."""


def structure_residuals(
    structures: Sequence[Atoms], predictions: Sequence[dict], set_name: str = "train"
) -> list[dict]:
    """One row per structure (columns :data:`RESIDUAL_COLUMNS`), so the worst can be found.

    The energy error is prediction minus label per atom (meV/atom); the force columns are the
    RMSE over the structure's components and the largest component error (eV/Å); None where
    the label is absent. ``name`` is ``atoms.info["name"]``, else the file and the index in it
    (``training.json #17``); ``description`` the file's own (mlearn's "Snapshot 1 of 12 …").
    """
    rows = []
    for k, (a, p) in enumerate(zip(structures, predictions, strict=True)):
        lab = labels(a)
        row: dict = {
            "set": set_name,
            "index": k,
            "name": str(
                a.info.get("name")
                or f"{a.info.get('source', 'structure')} #{a.info.get('index', k)}"
            ),
            "description": str(a.info.get("description", "")),
            "group": str(a.info.get("group", "all")),
            "n_atoms": len(a),
            "energy_error_meV_per_atom": None,
            "force_rmse_eV_per_A": None,
            "force_max_error_eV_per_A": None,
        }
        if "energy" in lab:
            row["energy_error_meV_per_atom"] = (
                1000.0 * (float(p["energy"]) - lab["energy"]) / len(a)
            )
        if "forces" in lab:
            df = np.asarray(p["forces"]) - lab["forces"]
            row["force_rmse_eV_per_A"] = float(np.sqrt(np.mean(df**2)))
            row["force_max_error_eV_per_A"] = float(np.max(np.abs(df)))
        rows.append(row)
    return rows


def write_residuals(path, rows: Sequence[dict]) -> None:
    """Write :func:`structure_residuals` rows as CSV (empty cells where None)."""
    import csv

    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=RESIDUAL_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r[k] is None else r[k]) for k in RESIDUAL_COLUMNS})


def evaluate(
    model, sets: dict, progress: bool | None = None, designs: dict | None = None
) -> tuple[dict, dict]:
    """Metrics of ``model`` (a fitted :class:`~potforge.model.LinearPotential`; overall and per
    group) for each named, non-empty set of structures; with a
    posterior also coverage and bound widths (:func:`potforge.model.metrics.uncertainty_metrics`),
    overall and per group.

    Returns the report and, per set, the ``(structures, predictions)`` for plotting.
    """
    report: dict = {}
    evaluated: dict = {}
    for name, structs in sets.items():
        if not structs:
            continue
        if designs and name in designs:  # the set's descriptors are at hand
            preds = model.predict_designs(designs[name], return_bounds=model.has_posterior)
        else:
            preds = model.predict(structs, return_bounds=model.has_posterior, progress=progress)
        report[name] = {**error_metrics(structs, preds), "groups": grouped_metrics(structs, preds)}
        if model.has_posterior:
            report[name].update(uncertainty_metrics(structs, preds))
            by_group = grouped_metrics(structs, preds, uncertainty_metrics)
            for g, m in by_group.items():
                report[name]["groups"][g].update(m)
        evaluated[name] = (structs, preds)
    return report, evaluated
