"""Pictures people would rather look at than read: parity plots (matplotlib, Agg)."""

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
        ref_f = np.concatenate([labels(a)["forces"].ravel() for a in structs])
        pred_f = np.concatenate([np.asarray(p["forces"]).ravel() for p in preds])
        ax_f.scatter(ref_f, pred_f, s=3, alpha=0.35, label=name)
    for ax, title, unit in ((ax_e, "energy", "eV/atom"), (ax_f, "force components", "eV/Å")):
        lo, hi = ax.get_xlim()
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel(f"reference ({unit})")
        ax.set_ylabel(f"model ({unit})")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
