"""The design search (seed 002): grow, shrink and resize a composite model term by term, then
tune its continuous hyperparameters, judging every candidate on training data only.

1. **Greedy reconfiguration** over a term library (:data:`LIBRARY`: each term kind with a
   ladder of sizes — SNAP, quadratic SNAP, pair and embedding splines, ML-POD 2/3-body):
   from a start model, every move — add a term at its smallest size, remove a term, one rung
   up or down a term's ladder, swap linear SNAP for quadratic SNAP of the same 2J and cutoff —
   is evaluated, and so are the σ weights of energies and forces one step up or down
   (:data:`SIGMA_STEPS`, within :data:`SIGMA_RANGES`: cheap, no new descriptor pass)
   (grouped CV errors, the Fisher information of the training design, property
   errors when references are given: :func:`~potforge.modeldesign.evaluate.evaluate`); the
   move with the lowest score is taken if it lowers the score by more than ``min_gain``
   (relative) and keeps the model within ``max_params`` — a quadratic SNAP that would exceed
   it is offered sparsified instead, its quadratic columns cut to the ones the full model's
   training FIM says carry the most information beyond the rest (:func:`sparsify`); among
   moves within ``min_gain`` of the best, the one with fewer sloppy directions wins (the FIM
   breaks ties towards identifiable models).  A move that leaves a sparsified qsnap term
   below ``max_params`` (a term removed or shrunk) is refilled to the cap with the next most
   informative columns.  Every step is logged with what changed, what the FIM and the scores
   said, and how long the step took.
   Folds: contiguous blocks within each group (:func:`potforge.model.cv.block_folds`), so
   correlated frames of a trajectory never sit on both sides.
   Then the FIM prunes the chosen model's quadratic SNAP columns that carry only sloppy
   directions (:func:`prune_sloppy`), kept if the score does not rise by more than ``min_gain``.
2. **Hyperparameter search** (Optuna TPE, seeded): cutoffs of the chosen terms and the σ
   weights of energies and forces, by the same score; every trial is kept.
3. The **Pareto front** of all evaluated candidates over (parameters, CV force MAE, CV energy
   MAE) is reported for information; the **chosen** model is the lowest score within
   ``max_params`` — chosen before any test data is read.

The fixed terms (ZBL, when the start has it) and the per-element constant stay in every model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms

from potforge.errors import DataError
from potforge.model import LinearPotential
from potforge.model.cv import block_folds
from potforge.modeldesign.evaluate import (
    SLOPPY_RTOL,
    DesignCache,
    Evaluation,
    ScoreWeights,
    evaluate,
    informative_columns,
    prune_order,
)

LIBRARY: dict[str, tuple[str, list[Any]]] = {
    "snap": ("twojmax", [2, 4, 6, 8]),
    "qsnap": ("twojmax", [2, 4, 6, 8]),
    "pair": ("n_basis", [6, 10, 16]),
    "embed": ("n_basis", [4, 8]),
    "pod": ("angular3", [2, 4, 6]),
}
"""Term kind → (its size setting, the ladder of sizes the search moves along)."""

BISPECTRUM = {"snap", "qsnap"}

SIGMA_STEPS = {"sigma_energy": 10**0.5, "sigma_force": 2.0}
"""Factor of one greedy step of each σ weight (up or down)."""

SIGMA_RANGES = {"sigma_energy": (1e-5, 1e-1), "sigma_force": (0.01, 1.0)}
"""Bounds of the σ weights the search moves within: eV/atom, eV/Å."""

CUTOFF_SETTING = {
    "snap": "rcutfac",
    "qsnap": "rcutfac",
    "pair": "rcut",
    "embed": "rcut",
    "pod": "rcut",
}
"""The cutoff setting of each library term (Å)."""


@dataclass(frozen=True)
class Config:
    """One composite model: term kind → rung on its ladder, cutoffs, σ weights.

    Attributes
    ----------
    rungs : tuple of (kind, int)
        Terms in order, each with its index into :data:`LIBRARY`'s ladder.
    cutoff : float
        Cutoff of every library term, Å (SNAP's rcutfac, the pair/embed rcut).
    fixed : str
        The terms kept in every model, e.g. ``"zbl(inner=1.0,outer=1.6)+const"``.
    sigma_energy, sigma_force : float
        eV/atom, eV/Å.
    columns : tuple of int, optional
        The quadratic columns kept of the ``qsnap`` term (its ``quadratic_columns``: indices
        into :func:`potforge.terms.snap.quadratic_names`); None keeps all of them.
    """

    rungs: tuple[tuple[str, int], ...]
    cutoff: float
    fixed: str = "const"
    sigma_energy: float = 1e-3
    sigma_force: float = 0.1
    columns: tuple[int, ...] | None = None

    def _term(self, kind: str, rung: int, full: bool) -> str:
        setting, ladder = LIBRARY[kind]
        extra = ""
        if kind == "qsnap" and self.columns is not None:
            extra = (f",quadratic_columns={list(self.columns)}" if full
                     else f", {len(self.columns)} quadratic columns")  # fmt: skip
        return f"{kind}({setting}={ladder[rung]},{CUTOFF_SETTING[kind]}={self.cutoff:.4g}{extra})"

    def spec(self, full: bool = True) -> str:
        """The model spec of this configuration (``full=False``: the column list summarised)."""
        parts = [self._term(kind, rung, full) for kind, rung in self.rungs]
        return "+".join([*parts, self.fixed]) if parts else self.fixed

    def model(self) -> LinearPotential:
        """The unfitted model."""
        return LinearPotential(
            self.spec(), sigma_energy=self.sigma_energy, sigma_force=self.sigma_force
        )

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes``; a change of the rungs drops a column subset it no longer
        fits (one chosen for another qsnap size)."""
        from dataclasses import replace

        if "rungs" in changes and "columns" not in changes:
            old = dict(self.rungs).get("qsnap")
            if dict(changes["rungs"]).get("qsnap") != old:
                changes["columns"] = None
        return replace(self, **changes)

    def describe(self) -> str:
        """Short form for the log."""
        return f"{self.spec(full=False)} [σ_E {self.sigma_energy:.3g}, σ_F {self.sigma_force:.3g}]"


@dataclass
class Trial:
    """One evaluated configuration."""

    config: Config
    evaluation: Evaluation
    stage: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "stage": self.stage,
            "spec": self.config.spec(),
            "summary": self.config.spec(full=False),
            "sigma_energy": self.config.sigma_energy,
            "sigma_force": self.config.sigma_force,
            **{k: v for k, v in self.evaluation.to_dict().items() if k != "eigenvalues"},
        }


@dataclass
class DesignResult:
    """The chosen configuration, every trial, the Pareto front and the reasoned log."""

    chosen: Trial
    trials: list[Trial]
    pareto: list[Trial]
    log: list[str] = field(default_factory=list)
    timings: list[tuple[str, int, float]] = field(default_factory=list)
    """(move taken, moves evaluated, wall seconds) of each greedy step, then of the prune and
    Optuna stages (kept out of ``log``, which a seed reproduces)."""


def neighbour_shells(structures: Sequence[Atoms], r_max: float = 7.0, tol: float = 0.15):
    """Distances (Å) of the neighbour shells in ``structures``: the peaks of their pair-distance
    histogram, merged within ``tol`` Å, in increasing order."""
    from ase.neighborlist import neighbor_list

    d = np.concatenate(
        [neighbor_list("d", a, r_max) for a in structures if len(a) and a.cell.rank == 3]
        or [np.zeros(0)]
    )
    if d.size == 0:
        raise DataError("no pair of atoms within 7 Å in the training structures")
    hist, edges = np.histogram(d, bins=np.arange(0.0, r_max + 0.05, 0.05))
    centres = 0.5 * (edges[1:] + edges[:-1])
    peaks = [
        centres[i]
        for i in range(1, len(hist) - 1)
        if hist[i] >= hist[i - 1] and hist[i] > hist[i + 1] and hist[i] >= 0.02 * hist.max()
    ]
    shells: list[float] = []
    for p in peaks:
        if shells and p - shells[-1] < tol:
            continue
        shells.append(float(p))
    return shells


def cutoff_from_data(structures: Sequence[Atoms]) -> float:
    """Cutoff from the data's neighbour shells: midway between the third and fourth shells
    (bcc W: 4.47 and 5.24 Å → 4.86), else 1.9 × the first shell."""
    shells = neighbour_shells(structures)
    if len(shells) >= 4:
        return round(0.5 * (shells[2] + shells[3]), 2)
    return round(1.9 * shells[0], 2)


def pareto_front(trials: Sequence[Trial]) -> list[Trial]:
    """Trials not dominated in (parameters, CV force MAE, CV energy MAE), fewest parameters
    first."""

    def key(t: Trial) -> tuple[float, float, float]:
        e = t.evaluation
        return (e.n_params, e.cv_force_mae, e.cv_energy_mae)

    out: list[Trial] = []
    for t in trials:
        k = key(t)
        dominated = any(
            all(a <= b for a, b in zip(key(o), k, strict=True)) and key(o) != k for o in trials
        )
        if not dominated and all(key(o) != k for o in out):
            out.append(t)
    return sorted(out, key=key)


def _to_quadratic(c: Config, i: int) -> list[tuple[str, Config]]:
    """The move that swaps ``c``'s snap term ``i`` for a qsnap term of the same 2J and cutoff
    (quadratic SNAP holds the linear columns, so "add qsnap" is never offered beside snap);
    empty when qsnap's ladder has no such 2J."""
    twojmax = LIBRARY["snap"][1][c.rungs[i][1]]
    ladder = LIBRARY["qsnap"][1]
    if twojmax not in ladder:
        return []
    r = c.rungs[:i] + (("qsnap", ladder.index(twojmax)),) + c.rungs[i + 1 :]
    return [(f"swap snap for qsnap at twojmax={twojmax}", c.replace(rungs=r))]


def _sigma_moves(c: Config) -> list[tuple[str, Config]]:
    """``c`` with one σ weight one step (:data:`SIGMA_STEPS`) up or down, within
    :data:`SIGMA_RANGES` (same terms and columns)."""
    out: list[tuple[str, Config]] = []
    for name, factor in SIGMA_STEPS.items():
        lo, hi = SIGMA_RANGES[name]
        now = getattr(c, name)
        for f in (factor, 1.0 / factor):
            value = float(f"{now * f:.4g}")
            if lo * (1 - 1e-9) <= value <= hi * (1 + 1e-9):
                word = "σ_E" if name == "sigma_energy" else "σ_F"
                out.append((f"{word} {now:.3g} → {value:.3g}", c.replace(**{name: value})))
    return out


def _moves(c: Config, sigma: bool = True) -> list[tuple[str, Config]]:
    """Every neighbour of ``c``: add a missing term, remove one, one rung up or down, a snap
    term swapped for qsnap of the same 2J, and (``sigma``) a σ weight one step up or down."""
    out: list[tuple[str, Config]] = []
    present = {k for k, _ in c.rungs}
    for kind in LIBRARY:
        if kind in present or (kind in BISPECTRUM and present & BISPECTRUM):
            continue  # one bispectrum term at most: qsnap holds snap's columns
        out.append((f"add {kind}", c.replace(rungs=(*c.rungs, (kind, 0)))))
    for i, (kind, rung) in enumerate(c.rungs):
        ladder = LIBRARY[kind][1]
        if len(c.rungs) > 1:
            out.append((f"remove {kind}", c.replace(rungs=c.rungs[:i] + c.rungs[i + 1 :])))
        for step, word in ((1, "grow"), (-1, "shrink")):
            if 0 <= rung + step < len(ladder):
                r = c.rungs[:i] + ((kind, rung + step),) + c.rungs[i + 1 :]
                out.append(
                    (
                        f"{word} {kind} to {LIBRARY[kind][0]}={ladder[rung + step]}",
                        c.replace(rungs=r),
                    )
                )
        if kind == "snap":
            out.extend(_to_quadratic(c, i))
    if sigma:
        out.extend(_sigma_moves(c))
    return out


def _quadratic(names: Sequence[str]) -> np.ndarray:
    """Mask of the quadratic SNAP parameters among ``names`` (``snap[X].Bk*Bm``)."""
    return np.array([n.startswith("snap[") and "*" in n for n in names])


def _column_index(
    names: Sequence[str], picked: Sequence[int], twojmax: int, limit: int | None = None
) -> tuple[int, ...]:
    """Sorted ``quadratic_columns`` indices of the picked parameters (any element block: one
    column serves every block), the first ``limit`` distinct ones in pick order."""
    from potforge.terms.snap import quadratic_names

    index = {n: i for i, n in enumerate(quadratic_names(twojmax))}
    ordered = list(dict.fromkeys(index[names[j].split(".", 1)[1]] for j in picked))
    return tuple(sorted(ordered[:limit]))


def sparsify(c: Config, structures: Sequence[Atoms], cache: DesignCache, max_params: int):
    """``c`` with its qsnap term's quadratic columns cut to fit ``max_params``: the columns the
    training FIM of the full model says carry the most information beyond the linear and other
    terms (:func:`~potforge.modeldesign.evaluate.informative_columns`). None when ``c`` has no
    qsnap term or even its non-quadratic part exceeds ``max_params``."""
    if "qsnap" not in dict(c.rungs):
        return None
    full = c.replace(columns=None).model().setup(structures)
    quad = _quadratic(full.param_names)
    n_blocks = max(
        1, len({n.split(".", 1)[0] for n, q in zip(full.param_names, quad, strict=True) if q})
    )
    room = (max_params - int((~quad).sum())) // n_blocks
    if room < 1:
        return None
    F = cache.fisher(full)
    picked = informative_columns(F, room * n_blocks, protect=np.flatnonzero(~quad).tolist())
    twojmax = LIBRARY["qsnap"][1][dict(c.rungs)["qsnap"]]
    return c.replace(columns=_column_index(full.param_names, picked, twojmax, room))


def prune_sloppy(c: Config, structures: Sequence[Atoms], cache: DesignCache, rtol: float):
    """``c`` without the qsnap quadratic columns that carry only sloppy directions of its
    training FIM (:func:`~potforge.modeldesign.evaluate.prune_order`, the other parameters
    protected), and how many were dropped; None when there is nothing to drop."""
    if "qsnap" not in dict(c.rungs):
        return None
    m = c.model().setup(structures)
    quad = _quadratic(m.param_names)
    F = cache.fisher(m)
    dropped = set(prune_order(F, rtol, protect=np.flatnonzero(~quad).tolist()))
    if not dropped:
        return None
    twojmax = LIBRARY["qsnap"][1][dict(c.rungs)["qsnap"]]
    keep = [j for j in np.flatnonzero(quad).tolist() if j not in dropped]
    return c.replace(columns=_column_index(m.param_names, keep, twojmax)), len(dropped)


def design(
    structures: Sequence[Atoms],
    *,
    start: Sequence[tuple[str, int]] = (("snap", 0),),
    fixed: str = "const",
    cutoff: float | None = None,
    max_params: int = 500,
    minutes: float = 10.0,
    n_trials: int = 20,
    n_folds: int = 5,
    seed: int = 0,
    weights: ScoreWeights | None = None,
    element: str | None = None,
    reference: dict[str, dict[str, Any]] | None = None,
    min_gain: float = 0.01,
    sigma_energy: float = 1e-3,
    sigma_force: float = 0.1,
    sigma_moves: bool = True,
    cache: DesignCache | None = None,
    say: Callable[[str], None] | None = None,
) -> DesignResult:
    """Search terms and hyperparameters on training data; return the chosen model's trial.

    Parameters
    ----------
    structures : sequence of ase.Atoms
        Labelled training structures (never the test set).
    start : sequence of (kind, rung)
        The first model's library terms.
    fixed : str, default="const"
        Terms in every model (e.g. ``"zbl(inner=1.0,outer=1.6)+const"``).
    cutoff : float, optional
        Å; default :func:`cutoff_from_data`.
    max_params : int, default=500
    minutes : float, default=10
        Wall-time budget of the whole search (greedy, then Optuna).
    n_trials : int, default=20
        Optuna trials at most (within the time left).
    n_folds, seed, weights, element, reference
        As :func:`~potforge.modeldesign.evaluate.evaluate`.
    min_gain : float, default=0.01
        Relative score decrease a greedy move must bring.
    sigma_energy : float, default=1e-3
        σ of the energy rows of the start model, eV/atom.
    sigma_force : float, default=0.1
        σ of the force rows of the start model, eV/Å.
    sigma_moves : bool, default=True
        Whether the greedy also moves the σ weights (:data:`SIGMA_STEPS`).
    cache : DesignCache, optional
        Design rows of ``structures`` per term, shared with the caller (e.g. to fit the chosen
        model without a new descriptor pass); a fresh one by default.
    say : callable, optional
        Receives each log line as it is written.
    """
    if max_params < 2:
        raise DataError(f"max_params must be ≥ 2, got {max_params}")
    if not minutes > 0:
        raise DataError(f"minutes must be > 0, got {minutes!r}")
    for kind, rung in start:
        if kind not in LIBRARY or not 0 <= rung < len(LIBRARY[kind][1]):
            raise DataError(f"start term {kind!r} rung {rung} is not in the library {LIBRARY}")
    for name, value in (("sigma_energy", sigma_energy), ("sigma_force", sigma_force)):
        if not value > 0:
            raise DataError(f"{name} must be > 0, got {value!r}")
    weights = weights or ScoreWeights()
    t0 = time.monotonic()
    log: list[str] = []
    timings: list[tuple[str, int, float]] = []

    def note(line: str) -> None:
        log.append(line)
        if say is not None:
            say(line)

    cut = cutoff if cutoff is not None else cutoff_from_data(structures)
    note(f"cutoff {cut:g} Å ({'given' if cutoff is not None else 'from the neighbour shells'})")
    trials: list[Trial] = []
    seen: dict[Config, Trial] = {}
    if cache is None:
        cache = DesignCache(structures)
    elif len(cache.structures) != len(structures):
        raise DataError("the design cache holds other structures")
    folds = block_folds(structures, n_folds, seed)  # correlated frames stay together

    def run(c: Config, stage: str) -> Trial | None:
        if c in seen:
            return seen[c]
        m = c.model()
        try:
            ev = evaluate(m, structures, n_folds=n_folds, seed=seed, weights=weights,
                          element=element, reference=reference, cache=cache,
                          folds=folds)  # fmt: skip
        except Exception as exc:  # a candidate that cannot be fitted is logged, not fatal
            note(f"  {c.describe()}: could not be evaluated ({' '.join(str(exc).split())})")
            return None
        t = Trial(c, ev, stage)
        seen[c] = t
        trials.append(t)
        return t

    def line(t: Trial) -> str:
        e = t.evaluation
        fim = f"cond {e.condition:.2g}, {e.n_sloppy} sloppy"
        if e.sloppy_terms:
            fim += " in " + ", ".join(f"{k} {v:.2f}" for k, v in e.sloppy_terms.items())
        return (f"P={e.n_params}, CV E {e.cv_energy_mae:.2f} meV/atom, F {e.cv_force_mae:.4f} "
                f"eV/Å, score {e.score:.4g}; FIM {fim}")  # fmt: skip

    start_config = Config(tuple(start), cut, fixed, sigma_energy, sigma_force)
    if start_config.model().setup(structures[:1]).n_params > max_params:
        start_config = sparsify(start_config, structures, cache, max_params) or start_config
    current = run(start_config, "start")
    if current is None:
        raise DataError("the start model could not be evaluated on the training data")
    note(f"start {current.config.describe()}: {line(current)}")
    greedy_s = 0.7 * 60 * minutes
    while time.monotonic() - t0 < greedy_s:
        t_step = time.monotonic()
        options: list[tuple[str, Trial]] = []
        moves = _moves(current.config, sigma_moves)
        for n_done, (what, c) in enumerate(moves):
            if options and time.monotonic() - t0 >= greedy_s:
                note(f"greedy time limit ({0.7 * minutes:.3g} of {minutes:g} min) reached after "
                     f"{n_done} of {len(moves)} moves of this step")  # fmt: skip
                break
            n = c.model().setup(structures[:1]).n_params
            refill = c.columns is not None and n < max_params and c.rungs != current.config.rungs
            if n > max_params or refill:
                cut_down = sparsify(c, structures, cache, max_params)
                if cut_down is None:
                    continue
                n_kept = len(cut_down.columns or ())
                c, what = cut_down, f"{what}, its {n_kept} most informative quadratic columns"
            t = run(c, "greedy")
            if t is not None:
                options.append((what, t))
        if not options:
            break
        best = min(t.evaluation.score for _, t in options)
        near = [(w, t) for w, t in options if t.evaluation.score <= best * (1 + min_gain)]
        what, pick = min(near, key=lambda wt: (wt[1].evaluation.n_sloppy, wt[1].evaluation.score))
        if pick.evaluation.score >= current.evaluation.score * (1 - min_gain):
            note(f"no move lowers the score by {100 * min_gain:g} % (best: {what}, "
                 f"{pick.evaluation.score:.4g}); greedy stops")  # fmt: skip
            break
        why = "" if pick.evaluation.score == best else " (fewer sloppy directions than the best)"
        note(f"{what}{why}: {line(pick)} [{len(options)} moves]")
        timings.append((what, len(options), time.monotonic() - t_step))
        current = pick
    t_step = time.monotonic()
    pruned = prune_sloppy(current.config, structures, cache, SLOPPY_RTOL)
    if pruned is not None:
        t = run(pruned[0], "prune")
        if t is not None:
            better = t.evaluation.score <= current.evaluation.score * (1 + min_gain)
            note(f"prune {pruned[1]} quadratic columns that carry only sloppy directions: "
                 f"{line(t)}; {'kept' if better else 'not kept (the score rose)'}")  # fmt: skip
            current = t if better else current
    elif "qsnap" in dict(current.config.rungs):
        note("FIM: no quadratic column carries only sloppy directions; nothing pruned")
    timings.append(("prune", 1, time.monotonic() - t_step))
    left = 60 * minutes - (time.monotonic() - t0)
    if left > 0 and n_trials > 0:
        t_step, before = time.monotonic(), len(trials)
        _optuna(current.config, run, n_trials, left, seed, note, line, max_params, structures)
        timings.append(("optuna", len(trials) - before, time.monotonic() - t_step))
    within = [t for t in trials if t.evaluation.n_params <= max_params]
    chosen = min(within, key=lambda t: t.evaluation.score)
    note(f"chosen {chosen.config.describe()}: {line(chosen)}")
    return DesignResult(chosen, trials, pareto_front(trials), log, timings)


def _optuna(base: Config, run, n_trials, seconds, seed, note, line, max_params, structures):
    """Tune the cutoff and σ weights of ``base``'s terms by Optuna TPE (seeded)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.enqueue_trial({"cutoff": base.cutoff, "log_se": np.log10(base.sigma_energy),
                         "log_sf": np.log10(base.sigma_force)})  # fmt: skip
    best = [float("inf")]

    def objective(trial) -> float:
        c = base.replace(
            cutoff=round(trial.suggest_float("cutoff", 0.85 * base.cutoff, 1.15 * base.cutoff), 3),
            sigma_energy=10
            ** trial.suggest_float("log_se", *np.log10(SIGMA_RANGES["sigma_energy"])),
            sigma_force=10 ** trial.suggest_float("log_sf", *np.log10(SIGMA_RANGES["sigma_force"])),
        )
        t = run(c, "optuna")
        if t is None:
            return float("inf")
        if t.evaluation.score < best[0]:
            best[0] = t.evaluation.score
            note(f"optuna trial {trial.number}: {c.describe()}: {line(t)}")
        return t.evaluation.score

    study.optimize(objective, n_trials=n_trials, timeout=seconds)


__all__ = [
    "CUTOFF_SETTING",
    "Config",
    "DesignResult",
    "LIBRARY",
    "SIGMA_RANGES",
    "SIGMA_STEPS",
    "Trial",
    "cutoff_from_data",
    "design",
    "neighbour_shells",
    "pareto_front",
    "prune_sloppy",
    "sparsify",
]
