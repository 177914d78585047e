"""The campaign configuration: ``campaign.toml`` as frozen dataclasses, validated on load.

A campaign goes from "element + reference calculator + property targets" to a validated
potential through six stages, each a table of its own with ``enabled = true`` and the settings
of the CLI verb it runs (the same names and defaults)::

    elements = ["W"]
    oracle = "lammps:W_2940_2017_2.snap"   # any spec --oracle takes
    [targets]                              # QoI = tolerance (QoI units, or "%" of the value)
    a0 = 0.005
    C44 = "5%"
    Evac = { tolerance = 0.1, indirect = true }   # reported, not targeted
    [budget]
    oracle_calls = 60
    minutes = 5.0
    [generate]  ...  potforge generate   (entropy-maximising pool)
    [select]    ...  potforge select     (information matching)
    [fit]       ...  potforge fit / design
    [uq]        ...  potforge uq         (POPS + calibrated inflation)
    [active]    ...  potforge explore    (MD active learning)
    [properties] ... potforge properties (the final table, with bounds)

:func:`load_campaign` reads one: an unknown key anywhere names the table and the closest valid
key, a bad value names the file, the key, the value and what is allowed (one
:class:`~potforge.errors.DataError` sentence).  :func:`resolved_toml` writes every setting
out (``load_campaign`` of it gives an equal :class:`Campaign`); :func:`fingerprint` and
:func:`check_same_campaign` say whether two configurations are the same campaign (elements,
oracle, targets) — stage settings may differ between runs of one campaign.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ase.data import chemical_symbols

from potforge.active.acquisition import ACQUISITIONS
from potforge.active.starts import KINDS
from potforge.errors import DataError, PotforgeError
from potforge.generate.generator import NEAR_KINDS
from potforge.information.matching import COST_MODELS
from potforge.information.targets import CRITERIA, Target, Targets, parse_tolerance
from potforge.options import DEFAULT_SPEC, INIT_RULES, MODEL_PARAMETERS, POSTERIOR_METHODS
from potforge.params import Boolean, Constraint, Integer, Options, Real, unknown_name
from potforge.properties.registry import REGISTRY, check_request, get_qoi
from potforge.properties.settings import SETTINGS, validate_settings
from potforge.qoi.propagation import METHODS as PROPAGATION_METHODS
from potforge.uq.calibration import CALIBRATION_METHODS

Check = Callable[[Any, str], Any]
"""``check(value, name) -> value``: the accepted value (converted), else an error naming it."""


# --------------------------------------------------------------------------- value checks
def _is(constraint: Constraint) -> Check:
    """A check by a :mod:`potforge.params` constraint."""
    return lambda value, name: constraint.check(name, value)


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{name} must be a non-empty string, got {value!r}")
    return value.strip()


def _range(item: Constraint, example: str) -> Check:
    """A ``[LOW, HIGH]`` pair of ``item`` values with LOW ≤ HIGH, as a tuple."""

    def check(value: Any, name: str) -> tuple:
        if not isinstance(value, list) or len(value) != 2:
            raise DataError(f"{name} must be a list [LOW, HIGH], e.g. {example}, got {value!r}")
        lo, hi = (item.check(name, v) for v in value)
        if lo > hi:
            raise DataError(f"{name} must have LOW ≤ HIGH, got {value!r}")
        return (lo, hi)

    return check


def _list_of(item: Constraint, example: str) -> Check:
    """A non-empty list of distinct ``item`` values, as a tuple."""

    def check(value: Any, name: str) -> tuple:
        if not isinstance(value, list) or not value:
            raise DataError(f"{name} must be a non-empty list, e.g. {example}, got {value!r}")
        out = tuple(item.check(name, v) for v in value)
        if len(set(out)) != len(out):
            raise DataError(f"{name} lists a value twice: {value!r}")
        return out

    return check


def _qoi_names(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(f'{name} must be a list of QoI names, e.g. ["B"], got {value!r}')
    return tuple(_qoi(v, name) for v in value)


def _model_spec(value: Any, name: str) -> str:
    from potforge.terms import parse_spec

    spec = _text(value, name)
    try:
        parse_spec(spec)
    except PotforgeError as exc:  # one sentence naming the spec and the bad term
        raise DataError(f"{name}: {exc}") from None
    return spec


def _qoi(name: str, where: str) -> str:
    """``name`` when it is a registry QoI, else a DataError naming the closest one."""
    if name in REGISTRY:
        return name
    close = [n for n in REGISTRY if n.lower() == name.lower()]  # evac → Evac
    close = close or difflib.get_close_matches(name, REGISTRY, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise DataError(
        f"{where}: unknown quantity of interest {name!r}{hint}; valid: {', '.join(REGISTRY)}"
    )


def _setting(default: Any, check: Check, doc: str) -> Any:
    """A dataclass field with its check and its meaning (written as a comment)."""
    return field(default=default, metadata={"check": check, "doc": doc})


def _subtable(cls: type, doc: str) -> Any:
    """A dataclass field holding a nested table (a section dataclass)."""
    return field(default_factory=cls, metadata={"table": cls, "doc": doc})


POSITIVE = Real(low=0, low_open=True)
ENABLED = "run this stage"


# --------------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class Budget:
    """What the whole campaign may spend.

    Attributes
    ----------
    oracle_calls : int, default=200
        Most oracle (reference-calculator) labels over all stages.
    minutes : float, default=60.0
        Wall-time budget, minutes.
    """

    oracle_calls: int = _setting(200, _is(Integer(low=1)), "most oracle calls, all stages")
    minutes: float = _setting(60.0, _is(POSITIVE), "wall-time budget, minutes")


@dataclass(frozen=True)
class GenerateStage:
    """``potforge generate``: an entropy-maximising pool of candidate configurations.

    Attributes
    ----------
    enabled : bool, default=True
    n : int, default=50
        Configurations to generate.
    atoms : (int, int), default=(8, 64)
        Atom-count range.
    volume : (float, float), default=(0.8, 1.2)
        Volume per atom relative to the ground state (relaxed with the oracle).
    iterations : int, default=30
        L-BFGS-B iterations per configuration.
    near_equilibrium : int, default=20
        Structures of the targets' own kinds added to the pool beside the generated ones:
        strained unit cells, rattled and thermally expanded supercells, vacancy cells, (110)
        slabs and slipped stacking-fault slabs of the ground state (entropy maximisation alone
        packs atoms near the repulsion floor, far from the structures elastic constants and
        defects are made of).
    near_kinds : tuple of str, default=("strained", "rattled", "vacancy", "surface_110", "fault")
        Which of those kinds (e.g. only ``["strained"]`` 2-atom cells for costly DFT).
    """

    enabled: bool = _setting(True, _is(Boolean()), ENABLED)
    n: int = _setting(50, _is(Integer(low=0)), "entropy-maximising configurations (0: none)")
    atoms: tuple[int, int] = _setting((8, 64), _range(Integer(low=1), "[8, 64]"), "atom counts")
    volume: tuple[float, float] = _setting(
        (0.8, 1.2), _range(POSITIVE, "[0.8, 1.2]"), "volume per atom / the ground state's"
    )
    iterations: int = _setting(30, _is(Integer(low=0)), "L-BFGS-B iterations per configuration")
    near_equilibrium: int = _setting(
        20, _is(Integer(low=0)), "strained, rattled, vacancy, slab, fault cells added to the pool"
    )
    near_kinds: tuple[str, ...] = _setting(
        NEAR_KINDS, _list_of(Options(NEAR_KINDS), '["strained"]'), "near-equilibrium kinds"
    )


@dataclass(frozen=True)
class Precision:
    """The oracle's label precision (``targets.toml``'s ``[precision]``).

    Attributes
    ----------
    energy : float, default=1e-3
        σ_E, eV/atom.
    force : float, default=0.05
        σ_F, eV/Å.
    stress : float, default=0.1
        σ_S, GPa.
    """

    energy: float = _setting(1e-3, _is(POSITIVE), "σ_E, eV/atom")
    force: float = _setting(0.05, _is(POSITIVE), "σ_F, eV/Å")
    stress: float = _setting(0.1, _is(POSITIVE), "σ_S, GPa")


@dataclass(frozen=True)
class SelectStage:
    """``potforge select``: information matching — the fewest labels that meet the targets.

    Attributes
    ----------
    enabled : bool, default=True
    pool : str or None, default=None
        Candidate structures (a file, or a campaign database); None: the generated pool.
    init : int, default=5
        Size of the initial labelled set.
    init_rule : {"random", "stratified", "smallest", "first"}, default="stratified"
        How the initial set is drawn (:data:`potforge.options.INIT_RULES`); the
        default labels each structure kind of the pool (strained, rattled, vacancy, slab,
        fault, entropy-maximising) once before any twice.
    max_iterations : int, default=20
    cost : {"unit", "n2", "n3", "measured"}, default="unit"
        Labelling-cost model.
    criterion : {"joint", "each"}, default="joint"
        What "met" means (:data:`potforge.information.targets.CRITERIA`).
    precision : Precision
    """

    enabled: bool = _setting(True, _is(Boolean()), ENABLED)
    pool: str | None = _setting(
        None, _text, "candidates, a structure file or a database; default the generated pool"
    )
    init: int = _setting(5, _is(Integer(low=1)), "initial labelled set")
    init_rule: str = _setting("stratified", _is(Options(INIT_RULES)), ", ".join(INIT_RULES))
    max_iterations: int = _setting(20, _is(Integer(low=1)), "most iterations")
    cost: str = _setting("unit", _is(Options(COST_MODELS)), "cost model: " + ", ".join(COST_MODELS))
    criterion: str = _setting("joint", _is(Options(CRITERIA)), "joint or each QoI alone")
    precision: Precision = _subtable(Precision, "the oracle's label precision")


@dataclass(frozen=True)
class FitStage:
    """``potforge fit`` (or ``potforge design`` with ``design = true``).

    Attributes
    ----------
    enabled : bool, default=True
    model : str, default=:data:`potforge.options.DEFAULT_SPEC`
        Model spec (fitted as it is with ``design = false``).
    design : bool, default=False
        Choose the terms and hyperparameters (``potforge design``) instead of fitting ``model``.
    sigma_energy, sigma_force, sigma_stress : float, default=1e-4, 0.2, 0.005
        Expected errors (row weights 1/σ²): eV/atom, eV/Å, eV/Å³.
    alpha : float, default=1e-10
        Ridge strength.
    max_params, trials, folds : int, default=500, 20, 5
        ``design = true`` only: largest model, Optuna trials, CV folds.
    """

    enabled: bool = _setting(True, _is(Boolean()), ENABLED)
    model: str = _setting(DEFAULT_SPEC, _model_spec, "model spec (with design = false)")
    design: bool = _setting(False, _is(Boolean()), "search terms and hyperparameters instead")
    sigma_energy: float = _setting(1e-4, _is(MODEL_PARAMETERS["sigma_energy"]), "eV/atom")
    sigma_force: float = _setting(0.2, _is(MODEL_PARAMETERS["sigma_force"]), "eV/Å")
    sigma_stress: float = _setting(0.005, _is(MODEL_PARAMETERS["sigma_stress"]), "eV/Å³")
    alpha: float = _setting(1e-10, _is(MODEL_PARAMETERS["alpha"]), "ridge strength")
    max_params: int = _setting(500, _is(Integer(low=2)), "design only: largest model")
    trials: int = _setting(20, _is(Integer(low=0)), "design only: Optuna trials")
    folds: int = _setting(5, _is(Integer(low=2)), "design only: CV folds")


CALIBRATIONS = (*CALIBRATION_METHODS, "none")


@dataclass(frozen=True)
class UQStage:
    """``potforge uq``: the posterior, and its inflation calibrated on out-of-fold errors.

    Attributes
    ----------
    enabled : bool, default=True
    method : {"pops", "bayes", "bootstrap"}, default="pops"
    posterior : {"ensemble", "hypercube"}, default="ensemble"
        Form of the POPS posterior (pops only).
    calibration : {"conformal", "temperature", "none"}, default="conformal"
        Inflation of the raw uncertainty (:mod:`potforge.model.calibration`).
    coverage : float, default=0.9
        Target coverage of held-out errors, in (0, 1).
    folds : int, default=5
        Cross-fitting folds of the calibration.
    """

    enabled: bool = _setting(True, _is(Boolean()), ENABLED)
    method: str = _setting("pops", _is(Options(POSTERIOR_METHODS)), ", ".join(POSTERIOR_METHODS))
    posterior: str = _setting(
        "ensemble", _is(Options(("ensemble", "hypercube"))), "pops only: ensemble or hypercube"
    )
    calibration: str = _setting(
        "conformal", _is(Options(CALIBRATIONS)), "inflation: " + ", ".join(CALIBRATIONS)
    )
    coverage: float = _setting(
        0.9, _is(Real(low=0, high=1, low_open=True, high_open=True)), "target coverage"
    )
    folds: int = _setting(5, _is(Integer(low=2)), "cross-fitting folds of the calibration")


@dataclass(frozen=True)
class ActiveStage:
    """``potforge explore``: MD active learning on the current model.

    Attributes
    ----------
    enabled : bool, default=True
    iterations : int, default=20
        Most exploration rounds.
    starts : tuple of str, default=("bulk", "vacancy", "sia_111", "surface_110")
        Explorer start structures (:data:`potforge.active.starts.KINDS`).
    temperatures : tuple of float, default=(300.0, 1500.0, 3000.0)
        Explorer temperatures, K (one explorer per start and temperature).
    steps : int, default=2000
        MD steps per explorer and iteration.
    interval : int, default=20
        Steps between frames.
    acquisition : {"pu_pe", "trust", "dopt", "topk"}, default="pu_pe"
    trust_quantiles : (float, float) or None, default=None
        ``acquisition = "trust"`` only: the window is these quantiles of the held-out set's U
        (e.g. ``[0.5, 0.99]``; a linear model's spreads are not on an NN ensemble's scale);
        None: DP-GEN's 0.05–0.15 eV/Å.
    frames_per_iteration : int, default=10
        Frames labelled per iteration (``--quota``).
    patience : int, default=3
        Unchanged iterations in a row that stop the loop.
    rtol : float, default=0.05
        Relative change below which an iteration counts as unchanged.
    """

    enabled: bool = _setting(True, _is(Boolean()), ENABLED)
    iterations: int = _setting(20, _is(Integer(low=1)), "most exploration rounds")
    starts: tuple[str, ...] = _setting(
        ("bulk", "vacancy", "sia_111", "surface_110"),
        _list_of(Options(KINDS), '["bulk", "vacancy"]'),
        "explorer starts: " + ", ".join(KINDS),
    )
    temperatures: tuple[float, ...] = _setting(
        (300.0, 1500.0, 3000.0), _list_of(POSITIVE, "[300, 1500]"), "explorer temperatures, K"
    )
    steps: int = _setting(2000, _is(Integer(low=1)), "MD steps per explorer and iteration")
    interval: int = _setting(20, _is(Integer(low=1)), "MD steps between frames")
    acquisition: str = _setting(
        "pu_pe", _is(Options(tuple(ACQUISITIONS))), "which frames: " + ", ".join(ACQUISITIONS)
    )
    trust_quantiles: tuple[float, float] | None = _setting(
        None,
        _range(Real(low=0, high=1), "[0.5, 0.99]"),
        "trust only: window = these quantiles of the held-out U (default 0.05–0.15 eV/Å)",
    )
    frames_per_iteration: int = _setting(10, _is(Integer(low=1)), "frames labelled per iteration")
    patience: int = _setting(3, _is(Integer(low=1)), "unchanged iterations that stop the loop")
    rtol: float = _setting(0.05, _is(Real(low=0)), "relative change counted as unchanged")


PROPERTY_UQ = (*PROPAGATION_METHODS, "none")


@dataclass(frozen=True)
class PropertiesStage:
    """``potforge properties``: the final table of the targets (and ``extra``) with bounds.

    Attributes
    ----------
    enabled : bool, default=True
    uq : {"auto", "linear", "implicit", "resample", "none"}, default="auto"
        Bounds from the posterior (``"none"``: values only).
    reference : bool, default=True
        Also compute each QoI with the oracle, for comparison.
    extra : tuple of str, default=()
        QoIs reported besides the targets.
    """

    enabled: bool = _setting(True, _is(Boolean()), ENABLED)
    uq: str = _setting("auto", _is(Options(PROPERTY_UQ)), "bounds: " + ", ".join(PROPERTY_UQ))
    reference: bool = _setting(True, _is(Boolean()), "also compute the QoIs with the oracle")
    extra: tuple[str, ...] = _setting((), _qoi_names, "QoIs reported besides the targets")


STAGES = ("generate", "select", "fit", "uq", "active", "properties")
"""The stages, in the order they run."""


@dataclass(frozen=True)
class Refine:
    """Further rounds (select → fit → uq → active → properties) while a target's calibrated σ
    exceeds its tolerance and the budgets allow.

    Each round asks information matching for the data that would bring every unmet target's
    σ to its tolerance (its selection tolerance times tolerance / σ, from every label so far;
    a target whose σ could not be computed is left out of the aim); when a round's new data
    shrank no unmet σ by ``stall`` or more, the data is not what limits it: the next round
    makes the fit's linear SNAP quadratic (``escalate``), or the refinement stops and says so.

    Attributes
    ----------
    rounds : int, default=2
        Most further rounds (0: none).
    stall : float, default=0.1
        Fraction by which a round must shrink some unmet target's σ to count as progress.
    escalate : bool, default=True
        When data stops helping, refit with the fit's ``snap`` made quadratic (``qsnap``).
    """

    rounds: int = _setting(2, _is(Integer(low=0)), "most further rounds (0: none)")
    stall: float = _setting(
        0.1, _is(Real(low=0, high=1, high_open=True)), "σ shrink that counts as progress"
    )
    escalate: bool = _setting(True, _is(Boolean()), "make snap quadratic when data stops helping")


# ---------------------------------------------------------------------------------- targets
@dataclass(frozen=True)
class TargetSpec:
    """One target QoI and its tolerance (one standard deviation).

    Attributes
    ----------
    name : str
        A registry QoI (``potforge properties --list``).
    tolerance : float
        In the QoI's unit, or in percent of its value when ``relative``.
    relative : bool
    indirect : bool
        Reported (with its predicted σ), not targeted by the selection.
    """

    name: str
    tolerance: float
    relative: bool = False
    indirect: bool = False

    def describe(self) -> str:
        """``"5%"`` or ``"0.005 Å"``."""
        if self.relative:
            return f"{self.tolerance:g}%"
        return f"{self.tolerance:g} {get_qoi(self.name).unit}".strip()

    def target(self) -> Target:
        """As :class:`potforge.information.targets.Target` (relative: a fraction)."""
        fraction = self.tolerance / 100.0 if self.relative else self.tolerance
        return Target(self.name, fraction, self.relative)


def _read_target(name: str, value: Any, where: str) -> TargetSpec:
    indirect = False
    if isinstance(value, Mapping):
        for key in value:
            if key not in ("tolerance", "indirect"):
                raise DataError(
                    unknown_name(str(key), ("tolerance", "indirect"), f"{where}: unknown key")
                )
        if "tolerance" not in value:
            raise DataError(f'{where} needs a tolerance, e.g. {{ tolerance = "5%" }}')
        if not isinstance(value.get("indirect", False), bool):
            raise DataError(f"{where} indirect must be true or false, got {value['indirect']!r}")
        indirect = value.get("indirect", False)
        value = value["tolerance"]
    tolerance, relative = parse_tolerance(value, where)
    if relative:  # keep the percentage as written, so it is written back exactly
        tolerance = float(str(value).strip().rstrip("%"))
    return TargetSpec(_qoi(name, where), float(tolerance), relative, indirect)


# --------------------------------------------------------------------------------- campaign
@dataclass(frozen=True)
class Campaign:
    """A campaign: what to fit (elements, oracle, targets), what it may spend, and the stages.

    Attributes
    ----------
    elements : tuple of str
    oracle : str
        Reference calculator spec, as ``--oracle`` takes it (:func:`potforge.oracles.make_oracle`).
    targets : tuple of TargetSpec
    oracle_settings : dict
        Oracle settings (``--set``), e.g. GPAW's ``ecut``.
    property_settings : dict
        Property settings (``potforge properties --list``), every one with its value
        (``structure`` only when given).
    budget : Budget
    workers : int, default=1
        Dask workers (of a LocalCluster unless ``scheduler``).
    scheduler : str or None
        Address of a running Dask scheduler (``tcp://host:8786``).
    store : str or None
        Campaign database, SQLite file or PostgreSQL URL; None: a SQLite file in the output
        folder.
    seed : int, default=0
    generate, select, fit, uq, active, properties
        The stages' settings.
    refine : Refine
        Further rounds while a target's σ exceeds its tolerance.

    The dictionaries are read-only by convention (the dataclass is frozen, its dicts are not).
    """

    elements: tuple[str, ...]
    oracle: str
    targets: tuple[TargetSpec, ...]
    oracle_settings: dict[str, Any] = field(default_factory=dict)
    property_settings: dict[str, Any] = field(default_factory=dict)
    budget: Budget = field(default_factory=Budget)
    workers: int = 1
    scheduler: str | None = None
    store: str | None = None
    seed: int = 0
    generate: GenerateStage = field(default_factory=GenerateStage)
    select: SelectStage = field(default_factory=SelectStage)
    fit: FitStage = field(default_factory=FitStage)
    uq: UQStage = field(default_factory=UQStage)
    active: ActiveStage = field(default_factory=ActiveStage)
    properties: PropertiesStage = field(default_factory=PropertiesStage)
    refine: Refine = field(default_factory=Refine)

    @property
    def formula(self) -> str:
        """The property suite's name of the material: the element, or the compound's formula
        (``["Cu", "I"]`` → ``"CuI"``)."""
        return "".join(self.elements)

    @property
    def target_names(self) -> list[str]:
        """Every target QoI (indirect ones included), in file order."""
        return [t.name for t in self.targets]

    def enabled_stages(self) -> list[str]:
        """The names of the enabled stages, in the order they run."""
        return [s for s in STAGES if getattr(self, s).enabled]

    def make_oracle(self):
        """The :class:`potforge.oracles.Oracle` of :attr:`oracle` and :attr:`oracle_settings`."""
        from potforge.oracles import make_oracle

        return make_oracle(self.oracle, **self.oracle_settings)

    def selection_targets(self) -> Targets:
        """What ``potforge select`` reads from a ``targets.toml``, as
        :class:`potforge.information.targets.Targets`."""
        from potforge.information.fisher import LabelPrecision

        p = self.select.precision
        return Targets(
            tuple(t.target() for t in self.targets if not t.indirect),
            LabelPrecision(p.energy, p.force, p.stress),
            None,
            tuple(t.target() for t in self.targets if t.indirect),
            dict(self.property_settings),
            self.select.cost,
            self.select.criterion,
        )


TOP = {
    "elements": 'elements, e.g. ["W"]',
    "oracle": "reference calculator spec, as --oracle takes it",
    "oracle_settings": "oracle settings (--set), e.g. ecut = 400 for gpaw",
    "targets": 'QoI = tolerance: QoI units, "5%" of the value, or { tolerance, indirect }',
    "property_settings": "property settings (potforge properties --list)",
    "budget": "what the whole campaign may spend",
    "workers": "Dask workers (a LocalCluster unless scheduler)",
    "scheduler": "address of a running Dask scheduler, e.g. tcp://host:8786",
    "store": "campaign database (SQLite file or postgresql:// URL)",
    "seed": "seed of every random choice",
    **{s: f"stage: {s}" for s in STAGES},
    "refine": "further rounds while a target's σ exceeds its tolerance",
}
"""Top-level keys and their meaning."""
REQUIRED = ("elements", "oracle", "targets")


def _section(cls: type, doc: Any, where: str, source: str) -> Any:
    """An instance of the section dataclass ``cls`` from the table ``doc`` at ``[where]``."""
    if not isinstance(doc, Mapping):
        raise DataError(f"{source}: [{where}] must be a table of key = value lines, got {doc!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in doc.items():
        if key not in fields:
            raise DataError(f"{source}: " + unknown_name(str(key), fields, f"[{where}] has no key"))
        meta = fields[key].metadata
        if "table" in meta:
            values[key] = _section(meta["table"], value, f"{where}.{key}", source)
            continue
        try:
            values[key] = meta["check"](value, f"[{where}] {key}")
        except (PotforgeError, ValueError) as exc:
            raise DataError(f"{source}: {exc}") from None
    return cls(**values)


def _elements(value: Any, source: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(e, str) for e in value):
        raise DataError(f'{source}: elements must be a non-empty list such as ["W"], got {value!r}')
    valid = chemical_symbols[1:]
    for el in value:
        if el not in valid:
            close = [s for s in valid if s.lower() == el.strip().lower()]
            close = close or difflib.get_close_matches(el, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DataError(f"{source}: elements: {el!r} is not a chemical element{hint}")
    if len(set(value)) != len(value):
        raise DataError(f"{source}: elements lists an element twice: {value!r}")
    return tuple(value)


def _check_oracle(spec: Any, settings: dict[str, Any], elements: tuple[str, ...], source: str):
    """Build the oracle as ``--oracle`` would (one sentence on failure) and check that a
    LAMMPS potential describes every element."""
    from potforge.oracles import make_oracle

    if not isinstance(spec, str) or not spec.strip():
        raise DataError(
            f"{source}: oracle must be a spec string such as 'lammps:<file>' or "
            f"'gpaw', got {spec!r}"
        )
    try:
        oracle = make_oracle(spec, **settings)
    except PotforgeError as exc:
        raise DataError(f"{source}: oracle = {spec!r}: {exc}") from None
    known: list[str] = list(oracle.runtime.get("elements") or []) if oracle.name == "lammps" else []
    missing = [e for e in elements if known and e not in known]
    if missing:
        raise DataError(
            f"{source}: oracle {oracle.spec} describes {', '.join(known)} only, not "
            f"{', '.join(missing)}"
        )
    return oracle


def campaign_from_dict(doc: Mapping[str, Any], source: str = "campaign") -> Campaign:
    """A validated :class:`Campaign` from a parsed document.

    Parameters
    ----------
    doc : mapping
        The TOML document (tables as dicts).
    source : str
        What the document is, for messages (the file's path).

    Raises
    ------
    DataError
        One sentence naming ``source``, the key, the value and what is allowed (an unknown key:
        the closest valid one).
    """
    for key in doc:
        if key not in TOP:
            raise DataError(f"{source}: " + unknown_name(str(key), TOP, "unknown top-level key"))
    for key in REQUIRED:
        if key not in doc:
            raise DataError(f"{source}: {key} is missing ({TOP[key]})")
    values: dict[str, Any] = {"elements": _elements(doc["elements"], source)}
    for key in ("oracle_settings", "property_settings", "targets"):
        if not isinstance(doc.get(key, {}), Mapping):
            raise DataError(f"{source}: [{key}] must be a table of key = value lines")
    values["oracle_settings"] = dict(doc.get("oracle_settings", {}))
    _check_oracle(doc["oracle"], values["oracle_settings"], values["elements"], source)
    values["oracle"] = doc["oracle"].strip()
    try:
        settings = validate_settings(doc.get("property_settings", {}))
    except PotforgeError as exc:
        raise DataError(f"{source}: [property_settings] {exc}") from None
    values["property_settings"] = {k: v for k, v in settings.items() if v is not None}
    if not doc["targets"]:
        raise DataError(f'{source}: [targets] is empty: name at least one QoI, e.g. a0 = "0.5%"')
    values["targets"] = tuple(
        _read_target(str(k), v, f"{source}: [targets] {k}") for k, v in doc["targets"].items()
    )
    if all(t.indirect for t in values["targets"]):
        raise DataError(f"{source}: [targets] are all indirect: target at least one QoI")
    scalars = {
        "workers": _is(Integer(low=1)),
        "seed": _is(Integer(low=0)),
        "scheduler": _text,
        "store": _text,
    }
    for key, check in scalars.items():
        if key in doc:
            try:
                values[key] = check(doc[key], key)
            except (PotforgeError, ValueError) as exc:
                raise DataError(f"{source}: {exc}") from None
    sections = {
        "budget": Budget,
        "generate": GenerateStage,
        "select": SelectStage,
        "fit": FitStage,
        "uq": UQStage,
        "active": ActiveStage,
        "properties": PropertiesStage,
        "refine": Refine,
    }
    for key, cls in sections.items():
        values[key] = _section(cls, doc.get(key, {}), key, source)
    campaign = Campaign(**values)
    twice = sorted(set(campaign.target_names) & set(campaign.properties.extra))
    if twice:
        raise DataError(f"{source}: [properties] extra lists {twice[0]}, a target already")
    for where, qois in (  # every QoI defined for the material's lattice (element or AB)
        ("[targets]", campaign.target_names),
        ("[properties] extra", campaign.properties.extra),
    ):
        try:
            check_request(campaign.formula, qois, settings)
        except PotforgeError as exc:
            raise DataError(f"{source}: {where}: {exc}") from None
    return campaign


def load_campaign(path: str | Path) -> Campaign:
    """Read and validate a ``campaign.toml``.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Campaign

    Raises
    ------
    DataError
        The file cannot be read, is not TOML, or states something invalid (one sentence
        naming the file).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataError(f"cannot read campaign file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise DataError(f"campaign file {path} is not a text file (expected TOML)") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"campaign file {path} is not valid TOML: {exc}") from None
    return campaign_from_dict(doc, str(path))


DEFAULT_CAMPAIGN = """\
# potforge campaign: a bespoke tungsten potential at DFT accuracy, learnt from the
# DFT-trained W SNAP+ZBL that ships with LAMMPS (W_2940_2017_2.snap) as the reference.
# Small budgets: the whole campaign runs in about 5 minutes on 2 cores.
elements = ["W"]
oracle = "lammps:W_2940_2017_2.snap"
workers = 2
seed = 0

[budget]
oracle_calls = 60     # labels over all stages
minutes = 5.0

# one standard deviation each, about the scatter between DFT codes and settings
[targets]
a0 = 0.005            # Å (0.16 % of 3.18 Å)
C11 = "5%"            # GPa: 5 % of the value
C12 = "5%"
C44 = "5%"
Evac = 0.1            # eV
gamma_surf_110 = 0.05 # J/m², the (110) surface energy
usf_110 = 0.05        # J/m², the unstable stacking fault {110}<111>

# small cells, so the whole campaign fits in minutes: the model is judged against the oracle on
# the same cells (not against converged defect energies)
[property_settings]
vacancy_size = 2      # 15-atom vacancy cell
slab_thickness = 8.0  # Å
vacuum = 10.0         # Å
gsf_thickness = 12.0  # Å
gsf_points = 7

[generate]
n = 10                # entropy-maximising configurations
atoms = [4, 8]
volume = [0.8, 1.2]
iterations = 15
near_equilibrium = 130 # strained, rattled, vacancy, (110) slab and fault cells: unlabelled
                       # candidates cost nothing, so the pool is several times what is labelled

[select]
init = 10             # enough for the uq stage's 90 % conformal quantile (≥ 9 structures)
max_iterations = 3

# the precision the selection assumes of each label: the model's own error level (the fit's
# σ_F) rather than the oracle's noise, so that information matching asks for data enough for a
# misspecified model, not for a perfect one
[select.precision]
energy = 0.005        # eV/atom
force = 0.2           # eV/Å
stress = 0.5          # GPa

[fit]
model = "snap(twojmax=6,rcutfac=4.6)+zbl(inner=1.0,outer=1.6)+const"

[active]
iterations = 2
starts = ["bulk", "vacancy", "surface_110"]
temperatures = [300.0, 2000.0]
steps = 300
frames_per_iteration = 8
acquisition = "trust"            # DP-GEN's window, its bounds the held-out U's quantiles
trust_quantiles = [0.5, 0.99]
"""
"""The default campaign (:func:`default_campaign`): W, the shipped W SNAP as oracle, seven
targets, budgets small enough for a few minutes on two cores."""


def default_campaign() -> Campaign:
    """:data:`DEFAULT_CAMPAIGN`, loaded."""
    return campaign_from_dict(tomllib.loads(DEFAULT_CAMPAIGN), "the default campaign")


# ----------------------------------------------------------------------------- TOML writing
_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _key(key: str) -> str:
    return key if _BARE.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def toml_value(value: Any) -> str:
    """``value`` as a TOML value: str, int, float (``repr``: exact), bool, list/tuple, dict
    (an inline table)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return ("-" if value < 0 else "") + ("inf" if math.isinf(value) else "nan")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON escapes are TOML basic-string ones
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as TOML")


def _line(key: str, value: Any, doc: str = "") -> str:
    if value is None:
        return f"# {key}: not set" + (f" — {doc}" if doc else "")
    text = f"{_key(key)} = {toml_value(value)}"
    return f"{text:<36} # {doc}" if doc else text


def _table(name: str, obj: Any, doc: str) -> list[str]:
    lines = ["", f"[{name}]" + (f"  # {doc}" if doc else "")]
    nested = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if "table" in f.metadata:
            nested += _table(f"{name}.{f.name}", value, f.metadata["doc"])
        else:
            lines.append(_line(f.name, value, f.metadata["doc"]))
    return lines + nested


def _percent(value: float) -> str:
    """``5.0`` → ``"5%"``, ``2.5`` → ``"2.5%"`` (exact: read back as the same float)."""
    return f"{int(value)}%" if value.is_integer() and abs(value) < 1e15 else f"{value!r}%"


def _target_value(t: TargetSpec) -> Any:
    tolerance: Any = _percent(t.tolerance) if t.relative else t.tolerance
    return {"tolerance": tolerance, "indirect": True} if t.indirect else tolerance


def resolved_toml(c: Campaign) -> str:
    """The campaign with every setting written out, as TOML (keys in a fixed order, with
    comments); :func:`load_campaign` of it gives an equal :class:`Campaign`."""
    lines = ["# potforge campaign, every setting written out (potforge run reads it back)"]
    lines.append(_line("elements", list(c.elements), TOP["elements"]))
    lines.append(_line("oracle", c.oracle, TOP["oracle"]))
    for key in ("workers", "scheduler", "store", "seed"):
        doc = TOP[key]
        if key == "scheduler" and c.scheduler is None:
            doc = "a LocalCluster of `workers` processes; or an address, tcp://host:8786"
        if key == "store" and c.store is None:
            doc = "a SQLite file in the output folder; or a file, or a postgresql:// URL"
        lines.append(_line(key, getattr(c, key), doc))
    lines += ["", "[oracle_settings]  # " + TOP["oracle_settings"]]
    lines += [_line(k, v) for k, v in c.oracle_settings.items()]
    lines += _table("budget", c.budget, TOP["budget"])
    lines += ["", "[targets]  # " + TOP["targets"]]
    for t in c.targets:
        doc = "of the value" if t.relative else get_qoi(t.name).unit
        doc += ", reported, not targeted" if t.indirect else ""
        lines.append(_line(t.name, _target_value(t), doc))
    lines += ["", "[property_settings]  # " + TOP["property_settings"]]
    lines += [_line(k, v, SETTINGS[k].doc) for k, v in c.property_settings.items()]
    for stage in (*STAGES, "refine"):
        lines += _table(stage, getattr(c, stage), TOP[stage])
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------- identity
def fingerprint(c: Campaign) -> dict[str, Any]:
    """What identifies a campaign: its elements, its oracle (normalised spec and the key of
    spec, settings and potential file) and its targets (JSON-able).

    Stage settings, budgets and workers are not part of it: a campaign may resume with others.
    """
    oracle = c.make_oracle()
    return {
        "elements": list(c.elements),
        "oracle": {"spec": oracle.spec, "key": oracle.key},
        "targets": {t.name: _exact(t) for t in c.targets},
    }


def _exact(t: TargetSpec) -> str:
    """``"5.0%"``, ``"0.005 Å"`` or ``"0.1 eV (indirect)"``: the tolerance exactly."""
    text = _percent(t.tolerance) if t.relative else f"{t.tolerance!r} {get_qoi(t.name).unit}"
    return text.strip() + (" (indirect)" if t.indirect else "")


def check_same_campaign(old: Campaign, new: Campaign) -> None:
    """Raise a :class:`DataError` (one sentence) when ``new`` is another campaign than ``old``:
    other elements, another oracle or other targets.  Stage settings may differ."""
    a, b = fingerprint(old), fingerprint(new)
    parts = []
    if a["elements"] != b["elements"]:
        parts.append(f"other elements ({', '.join(b['elements'])}, not {', '.join(a['elements'])})")
    if a["oracle"] != b["oracle"]:
        if a["oracle"]["spec"] != b["oracle"]["spec"]:
            parts.append(f"another oracle ({b['oracle']['spec']}, not {a['oracle']['spec']})")
        else:
            parts.append(
                f"another oracle ({b['oracle']['spec']} with other settings or another "
                "potential file)"
            )
    if a["targets"] != b["targets"]:
        ta, tb = a["targets"], b["targets"]
        diff = [f"{n} {ta[n]} → {tb[n]}" for n in ta if n in tb and ta[n] != tb[n]]
        diff += [f"added {n}" for n in tb if n not in ta]
        diff += [f"dropped {n}" for n in ta if n not in tb]
        parts.append(f"other targets ({', '.join(diff)})")
    if parts:
        raise DataError(
            "this is another campaign than the one this output folder holds: "
            + "; ".join(parts)
            + " (stage settings may change between runs, these may not: use another --out)"
        )
