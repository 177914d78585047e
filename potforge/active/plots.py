"""Learning curves of the active-learning loop: held-out force error and uncertainty against
oracle calls."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def learning_plot(path: str | Path, steps: Sequence[Any]) -> Path:
    """Held-out force RMSE and mean held-out U (± its spread) against oracle calls (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(6, 4))
    calls = [s.oracle_calls for s in steps]
    ax.plot(calls, [s.heldout_rmse for s in steps], "o-", label="held-out force RMSE")
    mean = [s.u_mean for s in steps]
    ax.errorbar(
        calls,
        mean,
        yerr=[s.u_std for s in steps],
        fmt="s--",
        capsize=3,
        label="held-out U (mean ± spread)",
    )
    ax.set_xlabel("oracle calls")
    ax.set_ylabel("eV/Å")
    ax.set_title("active learning")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
