"""Pictures of the information-matching loop: predicted σ over target per QoI against oracle
calls (the learning curve of the selection)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def sigma_history_plot(path: str | Path, iterations: Sequence[Any]) -> Path:
    """σ_Q / tolerance_Q of every target against oracle calls, log scale, with the line 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    path = Path(path)
    fig, ax = plt.subplots(figsize=(6, 4))
    calls = [s.oracle_calls for s in iterations]
    names = list(iterations[0].sigma) if iterations else []
    for name in names:
        ratio = [s.sigma[name] / s.tolerance[name] for s in iterations]
        ax.semilogy(calls, ratio, "o-", ms=4, label=name)
    ax.axhline(1.0, color="k", lw=1, ls="--")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("oracle calls (structures labelled)")
    ax.set_ylabel("predicted σ / tolerance")
    ax.set_title("information matching: targets met below the dashed line")
    if names:
        ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
