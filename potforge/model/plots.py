"""Pictures people would rather look at than read: parity plots and per-group error bars
(matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from potforge.data.structures import labels


def parity_plot(path: str | Path, sets: dict[str, tuple[Sequence[Atoms], Sequence[dict]]]) -> Path:
    """Energy-per-atom and force-component parity plots, one colour per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_e, ax_f) = plt.subplots(1, 2, figsize=(10, 4.6))
    for name, (structs, preds) in sets.items():
        ref_e = [labels(a)["energy"] / len(a) for a in structs]
        pred_e = [float(p["energy"]) / len(a) for a, p in zip(structs, preds, strict=True)]
        ax_e.scatter(ref_e, pred_e, s=10, alpha=0.7, label=name)
        ref_f = np.concatenate([np.asarray(labels(a)["forces"]).ravel() for a in structs])
        pred_f = np.concatenate([np.asarray(p["forces"]).ravel() for p in preds])
        ax_f.scatter(ref_f, pred_f, s=3, alpha=0.35, label=name)
    for ax, title, unit in ((ax_e, "energy", "eV/atom"), (ax_f, "force components", "eV/Å")):
        lo, hi = ax.get_xlim()
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel(f"reference ({unit})")
        ax.set_ylabel(f"model ({unit})")
        ax.set_title(title)
        ax.legend(fontsize=8)
    return _save(fig, path)


def group_error_plot(path: str | Path, report: dict[str, dict]) -> Path:
    """Bar charts of energy and force MAE per group, one bar per data set in each group.

    ``report`` maps a set name to its metrics with a ``"groups"`` entry (as ``metrics.json``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = {k: v for k, v in report.items() if isinstance(v, dict) and "groups" in v}
    groups = sorted({g for m in sets.values() for g in m["groups"]})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    keys = (
        ("energy_mae_meV_per_atom", "energy MAE (meV/atom)"),
        ("force_mae_eV_per_A", "force MAE (eV/Å)"),
    )
    width = 0.8 / max(len(sets), 1)
    x = np.arange(len(groups))
    for ax, (key, title) in zip(axes, keys, strict=True):
        for j, (name, m) in enumerate(sets.items()):
            vals = [m["groups"].get(g, {}).get(key) for g in groups]
            ax.bar(
                x + (j - (len(sets) - 1) / 2) * width,
                [np.nan if v is None else v for v in vals],
                width,
                label=name,
            )
        ax.set_xticks(x, groups, rotation=30, ha="right", fontsize=8)
        ax.set_title(title)
        ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    """Lay out, write (PNG, 110 dpi) and close ``fig``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
