"""Cross-validated choice of a fit's weights: σ_E / σ_F / σ_S, per-group factors, Huber δ.

A :class:`~potforge.model.LinearPotential` weights its energy, force and stress rows by
``g/σ²`` (σ per row type, ``g`` per group label). Those weights are hyper-parameters: this
module chooses them by k-fold cross-validation over the *training* structures only. One
descriptor pass is shared by every fold and every setting (the design rows do not depend on
the weights), so a search costs one descriptor pass plus ``n_folds`` weighted solves per
setting.

>>> from potforge.model import LinearPotential, search_weights
>>> search = search_weights("snap(twojmax=6)+const", train)            # doctest: +SKIP
>>> search.best.objective, search.best_params                           # doctest: +SKIP
>>> model = search.model().fit(train)                                   # doctest: +SKIP

The search (:func:`search_weights`) runs in stages:

1. ``grid``: every σ_S × σ_E × σ_F (× Huber δ) combination, in that nesting order;
2. ``groups``: from the best grid setting of each δ (one start for the squared loss), a
   coordinate search over per-group factors, one group at a time (groups in sorted order),
   each factor tried on top of the factors kept for the groups before it; a factor is kept
   when it lowers the objective;
3. ``delta`` (Huber only, when ``huber_delta_refine`` is given): δ re-tried on a finer grid
   at the best weights found.

The objective of a setting is ``max(E-MAE / energy_scale, F-MAE / force_scale)`` of the
pooled held-out predictions (:func:`objective`); the best setting is the first one (in search
order) with the smallest objective.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms

from potforge.data.structures import check_labels, check_structure, describe
from potforge.errors import DataError, ModelError
from potforge.model.estimator import LinearPotential, structure_list
from potforge.model.fitting import robust_lstsq
from potforge.model.metrics import residuals
from potforge.model.rows import DesignMatrix, StructureDesign, assemble
from potforge.options import MODEL_PARAMETERS
from potforge.params import Boolean, Constraint, Integer, Real, is_real, validate
from potforge.progress import Progress
from potforge.terms import Term

__all__ = [
    "SEARCH_PARAMETERS",
    "CVScore",
    "Grid",
    "WeightSearch",
    "block_folds",
    "cv_folds",
    "cv_score",
    "objective",
    "search_weights",
]


@dataclass(frozen=True)
class Grid(Constraint):
    """A grid of values: a number (a grid of one) or a sequence of numbers, each accepted by
    ``values``, at least ``min_len`` of them; checked to a tuple of floats."""

    values: Constraint = Real()
    min_len: int = 1
    allow_none: bool = False

    def describe(self) -> str:
        """``<value constraint> or a non-empty sequence of them``."""
        what = "a sequence" if self.min_len == 0 else "a non-empty sequence"
        return f"{self.values.describe()} or {what} of them"

    def _accepts(self, value: Any) -> bool:
        if is_real(value):
            return True
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
            return False
        return len(list(value)) >= self.min_len

    def check(self, name: str, value: Any) -> Any:
        """A grid as a tuple, each value checked (a single value is a grid of one)."""
        if not is_real(value) and isinstance(value, Iterable):
            if not isinstance(value, str | bytes | Mapping):
                value = tuple(value)  # an iterator is read once
        value = super().check(name, value)
        if value is None:
            return None
        if is_real(value):
            return (self.values.check(name, value),)
        return tuple(self.values.check(f"{name}[{i}]", v) for i, v in enumerate(value))


SEARCH_PARAMETERS: dict[str, Constraint] = {
    "n_folds": Integer(low=2),
    "sigma_energy": Grid(MODEL_PARAMETERS["sigma_energy"]),
    "sigma_force": Grid(MODEL_PARAMETERS["sigma_force"]),
    "sigma_stress": Grid(MODEL_PARAMETERS["sigma_stress"]),
    "group_factors": Grid(Real(low=0), min_len=0),
    "huber_delta": Grid(MODEL_PARAMETERS["huber_delta"], allow_none=True),
    "huber_delta_refine": Grid(MODEL_PARAMETERS["huber_delta"], min_len=0),
    "energy_scale": Real(low=0, low_open=True),
    "force_scale": Real(low=0, low_open=True),
    "random_state": Integer(low=0, allow_none=True),
    "progress": Boolean(allow_none=True),
}
"""Constraints of the arguments of :func:`search_weights` and :func:`cv_score` (the σ and δ
grids take the constraints of :data:`potforge.options.MODEL_PARAMETERS` element-wise)."""

SIGMA_ENERGY_GRID = (3e-5, 1e-4, 3e-4, 1e-3)
"""Default σ_E grid of :func:`search_weights`, eV/atom."""
SIGMA_FORCE_GRID = (0.05, 0.1, 0.2, 0.3)
"""Default σ_F grid, eV/Å."""
SIGMA_STRESS_GRID = (0.005, 0.02, 1e3)
"""Default σ_S grid, eV/Å³ (1e3: stresses effectively unused)."""
GROUP_FACTORS = (0.3, 3.0, 10.0)
"""Default per-group weight factors tried by the group stage (dimensionless)."""
ENERGY_SCALE = 5.0
"""Default energy-MAE scale of :func:`objective`, meV/atom."""
FORCE_SCALE = 0.2
"""Default force-MAE scale of :func:`objective`, eV/Å."""

STAGES = ("grid", "groups", "delta")
"""Stages of :func:`search_weights`, in order (:attr:`CVScore.stage`)."""


@dataclass(frozen=True)
class CVScore:
    """One cross-validated weighting of the fit.

    Attributes
    ----------
    sigma_energy : float
        σ_E of the energy rows, eV/atom.
    sigma_force : float
        σ_F of the force rows, eV/Å.
    sigma_stress : float
        σ_S of the stress rows, eV/Å³.
    group_weights : dict of str to float or None
        Per-group weight factors (None: every group 1).
    loss : str
        The fit's loss (``"squared"``, ``"huber"`` or ``"l1"``).
    huber_delta : float or None
        Huber δ in units of each row's σ; None unless ``loss == "huber"``.
    cv_energy_mae : float
        Held-out energy MAE pooled over the folds, meV/atom (one value per structure).
    cv_force_mae : float
        Held-out force MAE pooled over the folds, eV/Å (per component).
    objective : float
        :func:`objective` of the two MAEs (dimensionless; lower is better).
    stage : str
        The search stage that scored it (:data:`STAGES`; ``"grid"`` for :func:`cv_score`).
    """

    sigma_energy: float
    sigma_force: float
    sigma_stress: float
    group_weights: dict[str, float] | None
    loss: str
    huber_delta: float | None
    cv_energy_mae: float
    cv_force_mae: float
    objective: float
    stage: str = "grid"

    @property
    def params(self) -> dict[str, Any]:
        """The weighting as :class:`~potforge.model.LinearPotential` keyword arguments
        (``sigma_energy``, ``sigma_force``, ``sigma_stress``, ``group_weights``, ``loss`` and,
        for the Huber loss, ``huber_delta``)."""
        out: dict[str, Any] = {
            "sigma_energy": self.sigma_energy,
            "sigma_force": self.sigma_force,
            "sigma_stress": self.sigma_stress,
            "group_weights": dict(self.group_weights) if self.group_weights else None,
            "loss": self.loss,
        }
        if self.huber_delta is not None:
            out["huber_delta"] = self.huber_delta
        return out

    def as_dict(self) -> dict[str, Any]:
        """Every attribute by name (for JSON)."""
        gw = dict(self.group_weights) if self.group_weights else None
        return {
            "stage": self.stage,
            "loss": self.loss,
            "huber_delta": self.huber_delta,
            "sigma_energy": self.sigma_energy,
            "sigma_force": self.sigma_force,
            "sigma_stress": self.sigma_stress,
            "group_weights": gw,
            "cv_energy_mae": self.cv_energy_mae,
            "cv_force_mae": self.cv_force_mae,
            "objective": self.objective,
        }


@dataclass(frozen=True)
class WeightSearch:
    """Result of :func:`search_weights`.

    Attributes
    ----------
    rows : tuple of CVScore
        Every scored setting, in search order (stage ``"grid"`` first).
    best_index : int
        Index in ``rows`` of the chosen setting (the first with the smallest objective).
    folds : ndarray of int, shape (S,)
        Fold of each structure (:func:`cv_folds`).
    n_folds : int
    random_state : int or None
        The seed of the folds.
    energy_scale : float
        Energy-MAE scale of the objective, meV/atom.
    force_scale : float
        Force-MAE scale of the objective, eV/Å.
    seconds : float
        Wall time of the search, s (descriptor pass included when it was not given).
    model_params : dict
        The searched model's ``terms``, ``elements``, ``alpha``, ``n_jobs``, ``loss`` and
        ``huber_delta`` (its other ``get_params()``: the σ's and group weights, are searched).
    """

    rows: tuple[CVScore, ...]
    best_index: int
    folds: np.ndarray
    n_folds: int
    random_state: int | None
    energy_scale: float
    force_scale: float
    seconds: float
    model_params: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> CVScore:
        """The chosen setting, ``rows[best_index]``."""
        return self.rows[self.best_index]

    @property
    def best_params(self) -> dict[str, Any]:
        """The chosen weights as :class:`~potforge.model.LinearPotential` keyword arguments
        (:attr:`CVScore.params`)."""
        return self.best.params

    def model(self) -> LinearPotential:
        """An unfitted :class:`~potforge.model.LinearPotential`: the searched model's
        parameters with the chosen weights (call ``.fit(structures)`` on it)."""
        return LinearPotential(**{**self.model_params, **self.best_params})

    @property
    def criterion(self) -> str:
        """How the best setting was chosen, in one sentence."""
        return (
            f"min over settings of max(CV E-MAE/{self.energy_scale:g} meV/atom, "
            f"CV F-MAE/{self.force_scale:g} eV/Å); {self.n_folds}-fold CV, stratified by group"
        )

    def as_dict(self) -> dict[str, Any]:
        """The search as plain data (for JSON): rows, best, folds and settings."""
        return {
            "n_folds": self.n_folds,
            "random_state": self.random_state,
            "energy_scale": self.energy_scale,
            "force_scale": self.force_scale,
            "criterion": self.criterion,
            "rows": [r.as_dict() for r in self.rows],
            "best_index": self.best_index,
            "best": self.best.as_dict(),
            "folds": self.folds.tolist(),
            "seconds": self.seconds,
        }


# --- folds and the objective ---------------------------------------------------------------------
def _group_of(atoms: Atoms) -> str:
    return str(atoms.info.get("group", "all"))


def _fold_setup(
    structures: Sequence[Atoms], n_folds: int, random_state: int | None
) -> tuple[int, np.random.Generator, np.ndarray]:
    """Checked ``n_folds``, the seeded generator and each structure's group label."""
    structures = structure_list(structures)
    n_folds = SEARCH_PARAMETERS["n_folds"].check("n_folds", n_folds)
    random_state = SEARCH_PARAMETERS["random_state"].check("random_state", random_state)
    if n_folds > len(structures):
        raise DataError(
            f"{n_folds}-fold cross-validation needs at least {n_folds} structures, "
            f"got {len(structures)}"
        )
    groups = np.array([_group_of(a) for a in structures])
    return n_folds, np.random.default_rng(random_state), groups


def cv_folds(
    structures: Sequence[Atoms], n_folds: int = 5, random_state: int | None = 0
) -> np.ndarray:
    """Fold index of each structure, stratified by group.

    Within each group label (``atoms.info["group"]``, ``"all"`` without one; groups in sorted
    order) the structures are shuffled and dealt round-robin to the folds, continuing the deal
    where the previous group stopped, so every fold gets a share of every group and the fold
    sizes differ by at most one.

    Parameters
    ----------
    structures : sequence of ase.Atoms
        S structures (only their group labels are read).
    n_folds : int, default=5
        Number of folds k, 2 ≤ k ≤ S.
    random_state : int or None, default=0
        Seed of the shuffle (``numpy.random.default_rng``); None: fresh entropy.

    Returns
    -------
    ndarray of int, shape (S,)
        Fold of each structure, in ``0 … k−1``; every fold is non-empty.
    """
    n_folds, rng, groups = _fold_setup(structures, n_folds, random_state)
    fold = np.empty(len(groups), dtype=int)
    offset = 0
    for g in sorted(set(groups)):
        idx = np.flatnonzero(groups == g)
        rng.shuffle(idx)
        fold[idx] = (np.arange(len(idx)) + offset) % n_folds
        offset += len(idx)
    return fold


def block_folds(
    structures: Sequence[Atoms], n_folds: int = 5, random_state: int | None = 0
) -> np.ndarray:
    """Fold index of each structure, in contiguous blocks within each group.

    Correlated frames (an AIMD trajectory, in file order) must not sit on both sides of a
    fold: within each group (``atoms.info["group"]``) the structures, in their given order,
    are cut into ``n_folds`` contiguous blocks of near-equal size, and block b of a group goes
    to fold ``(b + offset) mod n_folds`` with a seeded random offset per group, so every fold
    gets a block of every group that has at least ``n_folds`` structures.

    Parameters and returns as :func:`cv_folds`; every fold is non-empty.
    """
    n_folds, rng, groups = _fold_setup(structures, n_folds, random_state)
    fold = np.empty(len(groups), dtype=int)
    for g in sorted(set(groups)):
        idx = np.flatnonzero(groups == g)
        block = (np.arange(len(idx)) * n_folds) // len(idx)  # contiguous, near-equal
        fold[idx] = (block + int(rng.integers(n_folds))) % n_folds
    for k in range(n_folds):  # a fold no group filled takes one block's last structure
        if not (fold == k).any():
            counts = np.bincount(fold, minlength=n_folds)
            donor = int(np.argmax(counts))
            fold[np.flatnonzero(fold == donor)[-1]] = k
    return fold


def objective(
    energy_mae: float,
    force_mae: float,
    energy_scale: float = ENERGY_SCALE,
    force_scale: float = FORCE_SCALE,
) -> float:
    """``max(energy_mae / energy_scale, force_mae / force_scale)``: the worse of the two
    errors, each relative to a scale (dimensionless; lower is better).

    Parameters
    ----------
    energy_mae : float
        Energy MAE, meV/atom.
    force_mae : float
        Force MAE, eV/Å.
    energy_scale : float, default=ENERGY_SCALE (5 meV/atom)
        Energy error counted as equal to ``force_scale`` of force error: e.g. a reference
        model's energy MAE, never test data.
    force_scale : float, default=FORCE_SCALE (0.2 eV/Å)
    """
    return max(energy_mae / energy_scale, force_mae / force_scale)


# --- the shared context: one descriptor pass, one design matrix ----------------------------------
def _template(spec_or_model: str | Sequence[Term] | LinearPotential) -> LinearPotential:
    """A fresh (unfitted) LinearPotential with the parameters of ``spec_or_model``."""
    if isinstance(spec_or_model, LinearPotential):
        return LinearPotential(**spec_or_model.get_params())
    if isinstance(spec_or_model, str | Sequence):
        return LinearPotential(spec_or_model)
    raise ModelError(
        "spec_or_model must be a model spec (str), a sequence of terms or a LinearPotential, "
        f"got {type(spec_or_model).__name__}"
    )


@dataclass
class _Context:
    """Everything the folds share: the set-up model, its designs, the design matrix, folds."""

    model: LinearPotential
    structures: list[Atoms]
    designs: Sequence[StructureDesign]
    dm: DesignMatrix
    folds: np.ndarray
    energy_scale: float
    force_scale: float

    @classmethod
    def build(
        cls,
        spec_or_model,
        structures,
        designs,
        n_folds: int,
        random_state: int | None,
        energy_scale: float,
        force_scale: float,
        progress: bool | None,
        folds: np.ndarray | None = None,
    ) -> _Context:
        structures = structure_list(structures)
        if not structures:
            raise DataError("cross-validation needs labelled structures; none were given")
        for k, a in enumerate(structures):
            name = describe(a, k)
            check_structure(a, name)
            check_labels(a, name, ("energy", "forces"))
        if folds is None:
            folds = cv_folds(structures, n_folds, random_state)
        elif np.shape(folds) != (len(structures),):
            raise DataError(f"folds must give one fold per structure ({len(structures)})")
        folds = np.asarray(folds, dtype=int)
        model = _template(spec_or_model).setup(structures)
        if designs is None:
            designs = model.structure_designs(structures, progress)
        elif len(designs) != len(structures):
            raise DataError(f"{len(designs)} designs given for {len(structures)} structures")
        return cls(
            model,
            structures,
            designs,
            assemble(designs, structures),
            folds,
            energy_scale,
            force_scale,
        )

    def score(
        self,
        sigma: tuple[float, float, float],
        group_weights: Mapping[str, float] | None,
        huber_delta: float | None,
        stage: str,
    ) -> CVScore:
        """Fit on all folds but one, predict the held-out one, for every fold; pooled MAEs."""
        model, dm, fold = self.model, self.dm, self.folds
        gw = dict(group_weights) if group_weights else None
        w = dm.weights(sigma, gw)
        delta = model.huber_delta if huber_delta is None else huber_delta
        e_res, f_res = [], []
        for k in range(int(fold.max()) + 1):
            rows = fold[dm.structure] != k
            coef = robust_lstsq(
                dm.A[rows],
                dm.y[rows],
                w[rows],
                model.loss,
                huber_delta=delta,
                alpha=model.alpha,
                names=model.param_names,
            ).coef
            held = np.flatnonzero(fold == k).tolist()
            pred = model.predict_designs([self.designs[i] for i in held], coef)
            r = residuals([self.structures[i] for i in held], pred)
            e_res.append(r["energy"])
            f_res.append(r["forces"])
        e_mae = float(np.mean(np.abs(np.concatenate(e_res))) * 1000.0)
        f_mae = float(np.mean(np.abs(np.concatenate(f_res))))
        return CVScore(
            sigma_energy=sigma[0],
            sigma_force=sigma[1],
            sigma_stress=sigma[2],
            group_weights=gw,
            loss=model.loss,
            huber_delta=huber_delta if model.loss == "huber" else None,
            cv_energy_mae=e_mae,
            cv_force_mae=f_mae,
            objective=objective(e_mae, f_mae, self.energy_scale, self.force_scale),
            stage=stage,
        )


def _checked(owner: str, **params: Any) -> dict[str, Any]:
    return validate(SEARCH_PARAMETERS, params, owner)


# --- public entry points -------------------------------------------------------------------------
def cv_score(
    spec_or_model: str | Sequence[Term] | LinearPotential,
    structures: Sequence[Atoms],
    *,
    n_folds: int = 5,
    random_state: int | None = 0,
    energy_scale: float = ENERGY_SCALE,
    force_scale: float = FORCE_SCALE,
    designs: Sequence[StructureDesign] | None = None,
    progress: bool | None = None,
    folds: np.ndarray | None = None,
) -> CVScore:
    """k-fold cross-validated errors of one model with its own weights.

    The model is fitted on all folds but one and predicts the held-out fold, for every fold
    (folds of :func:`cv_folds`); the held-out residuals of all folds are pooled.

    Parameters
    ----------
    spec_or_model : str, sequence of Term or LinearPotential
        The model: a spec (default weights) or a LinearPotential whose parameters (σ's,
        ``group_weights``, ``loss``, ``huber_delta``, ``alpha``, ...) are scored; it is not
        modified.
    structures : sequence of ase.Atoms
        S ≥ ``n_folds`` labelled training structures (energy and forces required; stresses used
        in the fits where present). Never the test set.
    n_folds : int, default=5
        Number of folds, ≥ 2.
    random_state : int or None, default=0
        Seed of the folds.
    energy_scale : float, default=5.0
        meV/atom; see :func:`objective`.
    force_scale : float, default=0.2
        eV/Å; see :func:`objective`.
    designs : sequence of StructureDesign, optional
        Precomputed designs of ``structures`` (``model.setup(structures)`` then
        ``model.structure_designs(structures)``), to skip the descriptor pass.
    progress : bool or None, default=None
        Progress of the descriptor pass (None: a bar on a terminal, lines in a log).
    folds : ndarray of int, shape (S,), optional
        The fold of each structure (e.g. :func:`block_folds`); default :func:`cv_folds`.

    Returns
    -------
    CVScore
        Pooled held-out energy MAE (meV/atom) and force MAE (eV/Å) and their objective.
    """
    p = _checked(
        "cv_score",
        n_folds=n_folds,
        random_state=random_state,
        energy_scale=energy_scale,
        force_scale=force_scale,
        progress=progress,
    )
    ctx = _Context.build(
        spec_or_model,
        structures,
        designs,
        p["n_folds"],
        p["random_state"],
        p["energy_scale"],
        p["force_scale"],
        p["progress"],
        folds,
    )
    m = ctx.model
    return ctx.score(m.sigma, m.group_weights, m.huber_delta if m.loss == "huber" else None, "grid")


def search_weights(
    spec_or_model: str | Sequence[Term] | LinearPotential,
    structures: Sequence[Atoms],
    *,
    n_folds: int = 5,
    sigma_energy: float | Sequence[float] = SIGMA_ENERGY_GRID,
    sigma_force: float | Sequence[float] = SIGMA_FORCE_GRID,
    sigma_stress: float | Sequence[float] = SIGMA_STRESS_GRID,
    group_factors: Sequence[float] = GROUP_FACTORS,
    huber_delta: float | Sequence[float] | None = None,
    huber_delta_refine: Sequence[float] = (),
    energy_scale: float = ENERGY_SCALE,
    force_scale: float = FORCE_SCALE,
    random_state: int | None = 0,
    designs: Sequence[StructureDesign] | None = None,
    progress: bool | None = None,
) -> WeightSearch:
    """Choose σ_E, σ_F, σ_S, per-group factors (and Huber δ) by k-fold cross-validation.

    Every setting is scored as :func:`cv_score` does (same folds, one shared descriptor pass);
    the stages are those of the module docstring: the σ (× δ) grid, the group-factor
    coordinate search from the best grid setting of each δ, then the δ refinement.

    Parameters
    ----------
    spec_or_model : str, sequence of Term or LinearPotential
        The model whose weights are searched: a spec, or a LinearPotential whose other
        parameters (``terms``, ``elements``, ``alpha``, ``n_jobs``, ``loss``) are kept; its own
        σ's and group weights are ignored, and so is its ``huber_delta`` when a δ grid is given.
        It is not modified.
    structures : sequence of ase.Atoms
        S ≥ ``n_folds`` labelled training structures (energy and forces required). Group labels
        (``atoms.info["group"]``) stratify the folds and name the per-group factors. Never the
        test set.
    n_folds : int, default=5
        Number of folds, ≥ 2.
    sigma_energy : float or sequence of float, default=(3e-5, 1e-4, 3e-4, 1e-3)
        σ_E grid, eV/atom (each > 0).
    sigma_force : float or sequence of float, default=(0.05, 0.1, 0.2, 0.3)
        σ_F grid, eV/Å (each > 0).
    sigma_stress : float or sequence of float, default=(0.005, 0.02, 1e3)
        σ_S grid, eV/Å³ (each > 0; 1e3 leaves stresses effectively unused).
    group_factors : sequence of float, default=(0.3, 3.0, 10.0)
        Per-group weight factors (each ≥ 0) tried one group at a time; empty: no group stage.
    huber_delta : float or sequence of float, optional
        Huber δ grid (units of each row's σ, each > 0) crossed with the σ grid; only with a
        Huber-loss model (default: its own ``huber_delta``).
    huber_delta_refine : sequence of float, default=()
        δ values re-tried at the best weights after the group stage (Huber only).
    energy_scale : float, default=5.0
        Energy-MAE scale of the objective, meV/atom (:func:`objective`).
    force_scale : float, default=0.2
        Force-MAE scale of the objective, eV/Å.
    random_state : int or None, default=0
        Seed of the folds (:func:`cv_folds`); the search is deterministic for a given seed.
    designs : sequence of StructureDesign, optional
        Precomputed designs of ``structures`` (``model.setup(structures)`` then
        ``model.structure_designs(structures)``), to share one descriptor pass with other
        searches or fits.
    progress : bool or None, default=None
        Progress of the descriptor pass and of each stage (None: a bar on a terminal, one line
        per stage in a log; False: silent).

    Returns
    -------
    WeightSearch
        Every scored setting (``rows``), the chosen one (``best``, ``best_params``, ``model()``)
        and the folds.

    Raises
    ------
    ModelError
        A bad argument (one sentence naming it), or a δ grid for a model without Huber loss.
    DataError
        Fewer structures than folds, or structures without energy or force labels.

    Notes
    -----
    Cost: one descriptor pass, then ``n_folds`` weighted solves per setting; the grid has
    ``len(sigma_stress) · len(sigma_energy) · len(sigma_force) · len(huber_delta)`` settings,
    the group stage ``len(δ grid) · n_groups · len(group_factors)`` more.
    """
    t0 = time.perf_counter()
    p = _checked(
        "search_weights",
        n_folds=n_folds,
        sigma_energy=sigma_energy,
        sigma_force=sigma_force,
        sigma_stress=sigma_stress,
        group_factors=group_factors,
        huber_delta=huber_delta,
        huber_delta_refine=huber_delta_refine,
        energy_scale=energy_scale,
        force_scale=force_scale,
        random_state=random_state,
        progress=progress,
    )
    template = _template(spec_or_model)
    huber = template.loss == "huber"
    if not huber and (p["huber_delta"] is not None or p["huber_delta_refine"]):
        raise ModelError(
            f"huber_delta and huber_delta_refine need a Huber-loss model (loss='huber'); this "
            f"one has loss={template.loss!r}"
        )
    deltas: tuple[float | None, ...] = (
        (p["huber_delta"] or (float(template.huber_delta),)) if huber else (None,)
    )
    ctx = _Context.build(
        template,
        structures,
        designs,
        p["n_folds"],
        p["random_state"],
        p["energy_scale"],
        p["force_scale"],
        p["progress"],
    )
    rows: list[CVScore] = []

    def score(sigma, gw, delta, stage) -> CVScore:
        rows.append(ctx.score(sigma, gw, delta, stage))
        bar.update()
        return rows[-1]

    # 1. grid: σ_S × σ_E × σ_F × δ
    grid = list(itertools.product(p["sigma_stress"], p["sigma_energy"], p["sigma_force"], deltas))
    with Progress(len(grid), "CV grid", "settings", p["progress"]) as bar:
        for ss, se, sf, d in grid:
            score((se, sf, ss), None, d, "grid")
    best = min(rows, key=lambda r: r.objective)

    # 2. groups: coordinate search from the best grid setting of each δ
    groups = sorted({_group_of(a) for a in ctx.structures})
    factors = p["group_factors"]
    if factors:
        starts = [
            min((r for r in rows if r.huber_delta == d), key=lambda r: r.objective) for d in deltas
        ]
        n = len(starts) * len(groups) * len(factors)
        with Progress(n, "CV group weights", "settings", p["progress"]) as bar:
            for start in starts:
                sigma = (start.sigma_energy, start.sigma_force, start.sigma_stress)
                local, kept = start, dict[str, float]()
                for g in groups:
                    current = dict(kept)
                    for fac in factors:
                        row = score(sigma, {**current, g: fac}, start.huber_delta, "groups")
                        if row.objective < local.objective:
                            local, kept = row, {**current, g: fac}
                if local.objective < best.objective:
                    best = local

    # 3. delta: δ refined at the best weights found
    refine = [d for d in p["huber_delta_refine"] if d != best.huber_delta] if huber else []
    if refine:
        sigma = (best.sigma_energy, best.sigma_force, best.sigma_stress)
        gw = best.group_weights
        with Progress(len(refine), "CV huber δ", "settings", p["progress"]) as bar:
            for d in refine:
                row = score(sigma, gw, d, "delta")
                if row.objective < best.objective:
                    best = row

    params = {
        k: v
        for k, v in template.get_params().items()
        if k in ("terms", "elements", "alpha", "n_jobs", "loss", "huber_delta")
    }
    return WeightSearch(
        rows=tuple(rows),
        best_index=next(i for i, r in enumerate(rows) if r is best),
        folds=ctx.folds,
        n_folds=p["n_folds"],
        random_state=p["random_state"],
        energy_scale=p["energy_scale"],
        force_scale=p["force_scale"],
        seconds=time.perf_counter() - t0,
        model_params=params,
    )
