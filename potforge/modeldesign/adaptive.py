"""The default model that adapts to the data (issue 19, part 4): what ``potforge fit`` uses
without ``--model`` on an element that has no hand-tuned default.

The form is the hand-tuned default's (quadratic SNAP 2J = 6 + a ZBL core + a constant,
:data:`potforge.options.DEFAULT_SPEC`, tuned on Zuo's Mo); what adapts:

* the **cutoff**, from the data's neighbour shells (:func:`~potforge.modeldesign.search.
  cutoff_from_data`: midway between the third and fourth shells);
* the **ZBL switching range**, kept below the closest pair in the data (outer = min(1.6 Å,
  0.9 × the closest distance), inner = outer − 0.6 Å), so the core never bends the fitted
  region;
* the **σ weights** of energies and forces, by grouped cross-validation in contiguous blocks
  (:func:`potforge.model.cv.block_folds`; the folds solved from per-fold Gram blocks,
  :func:`~potforge.modeldesign.evaluate.gram_cv`) over a fixed grid, scored as the design
  search scores (:class:`~potforge.modeldesign.evaluate.ScoreWeights`), within a stated time:
  the grid is walked in a fixed order and the walk stops when ``minutes`` are spent (the log
  says so).

Training data only: nothing here sees a test set.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ase import Atoms

from potforge.errors import DataError
from potforge.model import LinearPotential
from potforge.model.cv import block_folds, cv_score
from potforge.modeldesign.evaluate import ScoreWeights, gram_cv
from potforge.modeldesign.search import cutoff_from_data, neighbour_shells
from potforge.options import DEFAULT_SPEC

TUNED: dict[frozenset[str], str] = {frozenset({"Mo"}): DEFAULT_SPEC}
"""Element sets with a hand-tuned default spec (its σ's are the estimator's defaults)."""

SIGMA_ENERGY_GRID = (1e-4, 3e-4, 1e-3, 3e-3)
"""eV/atom."""
SIGMA_FORCE_GRID = (0.05, 0.1, 0.2, 0.4)
"""eV/Å."""


@dataclass
class AdaptiveChoice:
    """What the adaptive default chose and why.

    Attributes
    ----------
    spec : str
        The model spec.
    sigma_energy, sigma_force : float
        eV/atom, eV/Å.
    cutoff : float
        Å.
    shells : list of float
        The neighbour shells found (Å).
    trials : list of dict
        Every σ pair tried: ``{"sigma_energy", "sigma_force", "cv_energy_mae" (meV/atom),
        "cv_force_mae" (eV/Å), "score"}``.
    seconds : float
        Wall time of the choice.
    complete : bool
        False when the time budget cut the grid short.
    log : list of str
    """

    spec: str
    sigma_energy: float
    sigma_force: float
    cutoff: float
    shells: list[float]
    trials: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    complete: bool = True
    log: list[str] = field(default_factory=list)

    def model(self, **kw: Any) -> LinearPotential:
        """The unfitted model with the chosen σ's (``kw``: other LinearPotential settings)."""
        return LinearPotential(
            self.spec, sigma_energy=self.sigma_energy, sigma_force=self.sigma_force, **kw
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def tuned_spec(structures: Sequence[Atoms]) -> str | None:
    """The hand-tuned default spec of the data's elements, or None."""
    elements = frozenset(e for a in structures for e in a.get_chemical_symbols())
    return TUNED.get(elements)


def closest_pair(structures: Sequence[Atoms], r_max: float = 4.0) -> float:
    """The shortest interatomic distance in ``structures`` (Å; ``r_max`` when none is closer)."""
    from ase.neighborlist import neighbor_list

    d = [neighbor_list("d", a, r_max) for a in structures if len(a) > 0]
    found = [x.min() for x in d if x.size]
    return float(min(found)) if found else r_max


def adaptive_spec(structures: Sequence[Atoms]) -> tuple[str, float, list[float]]:
    """The default form with its cutoff and ZBL range from the data: (spec, cutoff Å, shells)."""
    shells = neighbour_shells(structures)
    cut = cutoff_from_data(structures)
    outer = round(min(1.6, 0.9 * closest_pair(structures)), 2)
    inner = round(max(outer - 0.6, 0.1), 2)
    spec = (
        f"snap(twojmax=6,rcutfac={cut:g},quadratic=True)+zbl(inner={inner:g},outer={outer:g})+const"
    )
    return spec, cut, shells


def adaptive_default(
    structures: Sequence[Atoms],
    *,
    minutes: float = 3.0,
    n_folds: int = 5,
    seed: int = 0,
    weights: ScoreWeights | None = None,
    threads: int = 1,
    progress: bool | None = False,
    say: Callable[[str], None] | None = None,
) -> AdaptiveChoice:
    """Choose the cutoff, the ZBL range and the σ weights of the default form from ``structures``.

    Parameters
    ----------
    structures : sequence of ase.Atoms
        Labelled training structures (at least ``n_folds``; never the test set).
    minutes : float, default=3
        Time budget of the σ search (the descriptor pass included); the grid point running when
        it ends is finished, the rest skipped.
    n_folds : int, default=5
    seed : int, default=0
        Seed of the folds.
    weights : ScoreWeights, optional
        Score of a σ pair (default: CV E-MAE / 5 meV/atom + CV F-MAE / 0.2 eV/Å).
    threads : int, default=1
        Threads of the descriptor pass.
    progress : bool or None, default=False
        Progress of the descriptor pass (None: a bar on a terminal, lines in a log).
    say : callable, optional
        Receives each log line.
    """
    if not minutes > 0:
        raise DataError(f"the adaptive default's time budget must be > 0 minutes, got {minutes!r}")
    if len(structures) < n_folds:
        raise DataError(
            f"the adaptive default cross-validates in {n_folds} folds and needs at least "
            f"{n_folds} training structures, got {len(structures)}: give --model"
        )
    weights = weights or ScoreWeights(properties=0.0)
    t0 = time.monotonic()
    log: list[str] = []

    def note(line: str) -> None:
        log.append(line)
        if say is not None:
            say(line)

    spec, cut, shells = adaptive_spec(structures)
    note(f"neighbour shells {', '.join(f'{s:.2f}' for s in shells[:5])} Å → cutoff {cut:g} Å")
    note(f"model {spec}")
    prepared = LinearPotential(spec).setup(structures)
    designs = prepared.structure_designs(structures, progress=progress, threads=threads)
    folds = block_folds(structures, n_folds, seed)
    dm = prepared.design(structures, designs=designs)
    trials: list[dict[str, float]] = []
    complete = True
    for se in SIGMA_ENERGY_GRID:
        for sf in SIGMA_FORCE_GRID:
            if trials and time.monotonic() - t0 > 60 * minutes:
                complete = False
                break
            m = LinearPotential(spec, sigma_energy=se, sigma_force=sf)
            if m.loss == "squared":  # per-fold Gram blocks: the same fits, one pass over rows
                w = dm.weights(m.sigma, m.group_weights)
                cv_e, cv_f = gram_cv(dm, w, folds, m.alpha)
            else:
                cv = cv_score(m, structures, n_folds=n_folds, designs=designs, folds=folds,
                              progress=False)  # fmt: skip
                cv_e, cv_f = float(cv.cv_energy_mae), float(cv.cv_force_mae)
            s = (weights.energy * cv_e / weights.energy_scale
                 + weights.force * cv_f / weights.force_scale)  # fmt: skip
            trials.append({"sigma_energy": se, "sigma_force": sf, "cv_energy_mae": cv_e,
                           "cv_force_mae": cv_f, "score": float(s)})  # fmt: skip
        if not complete:
            break
    best = min(trials, key=lambda t: t["score"])
    if not complete:
        note(f"time budget of {minutes:g} min spent after {len(trials)} of "
             f"{len(SIGMA_ENERGY_GRID) * len(SIGMA_FORCE_GRID)} σ pairs")  # fmt: skip
    note(
        f"σ_E {best['sigma_energy']:g} eV/atom, σ_F {best['sigma_force']:g} eV/Å by {n_folds}-fold "
        f"block CV: E {best['cv_energy_mae']:.2f} meV/atom, F {best['cv_force_mae']:.4f} eV/Å"
    )
    return AdaptiveChoice(
        spec=spec,
        sigma_energy=best["sigma_energy"],
        sigma_force=best["sigma_force"],
        cutoff=cut,
        shells=[float(s) for s in shells],
        trials=trials,
        seconds=float(time.monotonic() - t0),
        complete=complete,
        log=log,
    )


__all__ = [
    "AdaptiveChoice",
    "SIGMA_ENERGY_GRID",
    "SIGMA_FORCE_GRID",
    "TUNED",
    "adaptive_default",
    "adaptive_spec",
    "closest_pair",
    "tuned_spec",
]
