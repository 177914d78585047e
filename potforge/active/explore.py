"""Explorers: MD of the current model that collects frames for the acquisition step.

An explorer runs MD from one start structure with the model being trained — in LAMMPS through
its exported potential (the fast path, ``engine="lammps"``) or in ASE with
``model.as_calculator(coef)`` (``engine="ase"``) — and keeps a frame every ``interval`` steps.
Every kept frame is checked first: finite positions and energy, no atoms lost, no pair closer
than ``min_distance``, temperature below ``max_temperature``.  The first frame that fails stops
the explorer and records why (one sentence); the frames before it stay (a false minimum must be
caught there), the failing one and everything after it are never returned.  Any error inside an
explorer (LAMMPS, ASE, the model) is recorded in the same way, never raised, so one bad explorer
never ends the others: :func:`explore_many` runs explorers as Dask tasks, and a task whose worker
dies is recorded too.

Units: Å, eV, ps, K; pressure in GPa (LAMMPS gets bar = GPa·10⁴, ASE eV/Å³).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms

from potforge.active._md import _closest, _LammpsFailure, _number, _run_ase, _run_lammps
from potforge.data.structures import check_elements
from potforge.errors import DataError, check_is_fitted
from potforge.progress import Progress

ENGINES = ("lammps", "ase")
"""MD engines: the exported potential in LAMMPS, or ASE MD with the model's calculator."""

ENSEMBLES = ("nvt", "nose-hoover", "npt", "nve")
"""``nvt``: Langevin; ``nose-hoover``: Nosé–Hoover NVT; ``npt``: Nosé–Hoover thermostat and
isotropic barostat; ``nve``: velocity Verlet."""

RUNAWAY = 5.0
"""Default ``max_temperature``: this many times the highest target temperature."""


@dataclass(frozen=True)
class ExplorerSpec:
    """One explorer: a start structure and the MD to run from it.

    Attributes
    ----------
    name : str
        Unique label (``"bulk-1500K"``); frames carry it as ``info["explorer"]``.
    structure : ase.Atoms
        Start structure (positions in Å; a rank-3 cell for the LAMMPS engine).
    temperature : float
        Target (start) temperature, K, > 0; velocities are drawn at it.
    steps : int, default=2000
        MD steps.
    interval : int, default=20
        A frame (and a check) every ``interval`` steps, 1 ≤ interval ≤ steps.
    timestep : float, default=1e-3
        ps.
    ensemble : {"nvt", "nose-hoover", "npt", "nve"}, default="nvt"
        ``nvt`` is Langevin; ``npt`` keeps ``pressure`` with a Nosé–Hoover barostat (isotropic).
    pressure : float, default=0.0
        GPa, ``npt`` only.
    t_end : float or None, default=None
        End of a linear temperature ramp from ``temperature`` over the run, K (not for ``nve``).
    seed : int, default=0
        Seed of the initial velocities and the Langevin noise, ≥ 0.
    engine : {"lammps", "ase"}, default="lammps"
    min_distance : float, default=0.5
        Å; a pair of atoms closer than this stops the explorer.
    max_temperature : float or None, default=None
        K; a frame hotter than this stops the explorer; default ``5 × max(temperature, t_end)``.
    """

    name: str
    structure: Atoms
    temperature: float
    steps: int = 2000
    interval: int = 20
    timestep: float = 1e-3
    ensemble: str = "nvt"
    pressure: float = 0.0
    t_end: float | None = None
    seed: int = 0
    engine: str = "lammps"
    min_distance: float = 0.5
    max_temperature: float | None = None

    @property
    def ceiling(self) -> float:
        """The runaway temperature in K (``max_temperature`` or its default)."""
        if self.max_temperature is not None:
            return float(self.max_temperature)
        return RUNAWAY * max(self.temperature, self.t_end or 0.0)

    def target(self, step: int) -> float:
        """Target temperature at ``step`` (K): the ramp, or the constant ``temperature``."""
        if self.t_end is None:
            return float(self.temperature)
        return float(self.temperature + (self.t_end - self.temperature) * step / self.steps)


@dataclass
class Trajectory:
    """What one explorer produced.

    Attributes
    ----------
    name : str
        The spec's name.
    frames : list of ase.Atoms
        Checked frames in step order, ASE frame, no calculator; momenta set; ``info``:
        ``explorer``, ``step``, ``time_ps``, ``temperature_K``, ``energy`` (the model's, eV).
    stopped : str or None
        None when the run reached its end; else the cause, one sentence.
    stop_step : int or None
        Step of the failing check; for an error, the end of the ``interval`` it happened in
        (0: before the first step, or a worker that died).
    seconds : float
        Wall time of the explorer, s.
    """

    name: str
    frames: list[Atoms] = field(default_factory=list)
    stopped: str | None = None
    stop_step: int | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (no frames): name, frame count and steps, stop cause, time."""
        return {
            "name": self.name,
            "n_frames": len(self.frames),
            "last_step": int(self.frames[-1].info["step"]) if self.frames else 0,
            "stopped": self.stopped,
            "stop_step": self.stop_step,
            "seconds": round(float(self.seconds), 3),
        }


def check_spec(spec: ExplorerSpec, model: Any = None) -> None:
    """Raise :class:`DataError` (one sentence) unless ``spec`` can run (with ``model``)."""
    where = f"explorer {spec.name!r}"
    if not isinstance(spec.name, str) or not spec.name:
        raise DataError(f"explorer name must be a non-empty string, got {spec.name!r}")
    if not isinstance(spec.structure, Atoms) or len(spec.structure) == 0:
        raise DataError(f"{where}: structure must be an ase.Atoms with at least one atom")
    if spec.ensemble not in ENSEMBLES:
        raise DataError(
            f"{where}: unknown ensemble {spec.ensemble!r}; choose one of {', '.join(ENSEMBLES)}"
        )
    if spec.engine not in ENGINES:
        raise DataError(
            f"{where}: unknown engine {spec.engine!r}; choose one of {', '.join(ENGINES)}"
        )
    for label, value in (("temperature", spec.temperature), ("timestep", spec.timestep)):
        if not _number(value) or value <= 0:
            raise DataError(f"{where}: {label} must be a positive number, got {value!r}")
    if not isinstance(spec.steps, int | np.integer) or spec.steps < 1:
        raise DataError(f"{where}: steps must be a whole number ≥ 1, got {spec.steps!r}")
    if not isinstance(spec.interval, int | np.integer) or not 1 <= spec.interval <= spec.steps:
        raise DataError(
            f"{where}: interval must be a whole number from 1 to steps ({spec.steps}), "
            f"got {spec.interval!r}"
        )
    if not isinstance(spec.seed, int | np.integer) or spec.seed < 0:
        raise DataError(f"{where}: seed must be a whole number ≥ 0, got {spec.seed!r}")
    if not _number(spec.pressure):
        raise DataError(f"{where}: pressure must be a number (GPa), got {spec.pressure!r}")
    if spec.pressure != 0 and spec.ensemble != "npt":
        raise DataError(
            f"{where}: pressure {spec.pressure} GPa needs ensemble 'npt', not {spec.ensemble!r}"
        )
    if spec.t_end is not None:
        if not _number(spec.t_end) or spec.t_end <= 0:
            raise DataError(f"{where}: t_end must be a positive number (K), got {spec.t_end!r}")
        if spec.ensemble == "nve":
            raise DataError(f"{where}: a temperature ramp (t_end) needs a thermostat, not 'nve'")
    if not _number(spec.min_distance) or spec.min_distance < 0:
        raise DataError(f"{where}: min_distance must be ≥ 0 Å, got {spec.min_distance!r}")
    top = max(spec.temperature, spec.t_end or 0.0)
    if spec.max_temperature is not None and (
        not _number(spec.max_temperature) or spec.max_temperature <= top
    ):
        raise DataError(
            f"{where}: max_temperature must exceed the highest target temperature {top:g} K, "
            f"got {spec.max_temperature!r}"
        )
    atoms = spec.structure
    if spec.ensemble == "npt" and not atoms.pbc.all():
        raise DataError(
            f"{where}: ensemble 'npt' needs a cell periodic along all three axes "
            f"(pbc is {atoms.pbc.tolist()})"
        )
    if (spec.engine == "lammps" or spec.ensemble == "npt") and atoms.cell.rank < 3:
        raise DataError(
            f"{where}: the start structure needs three cell vectors (add vacuum along "
            "non-periodic axes)"
        )
    if not np.isfinite(atoms.positions).all():
        raise DataError(f"{where}: the start structure has non-finite positions")
    close = _closest(atoms, spec.min_distance)
    if close is not None:
        i, j, d = close
        raise DataError(
            f"{where}: atoms {i} and {j} of the start structure are {d:.3g} Å apart, "
            f"below min_distance {spec.min_distance:g} Å"
        )
    if model is not None:
        check_is_fitted(model, "coef_", "call fit() or load() before exploring")
        try:
            check_elements(atoms, model.elements_)
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None


def explore(model: Any, spec: ExplorerSpec, coef: np.ndarray | None = None) -> Trajectory:
    """Run one explorer; every failure after the up-front checks is recorded, never raised.

    Parameters
    ----------
    model : LinearPotential
        Fitted model.
    spec : ExplorerSpec
    coef : ndarray, shape (P,), optional
        Parameters to run with; default ``model.coef_``.

    Returns
    -------
    Trajectory

    Raises
    ------
    DataError
        When ``spec`` is invalid (:func:`check_spec`), before any MD.
    """
    check_spec(spec, model)
    coef = _checked_coef(model, coef)
    t0 = time.perf_counter()
    traj = Trajectory(spec.name)
    span = [0, 0]  # the steps being run: a failure there stops the explorer at span[1]
    try:
        run = _run_lammps if spec.engine == "lammps" else _run_ase
        run(model, spec, coef, traj, span)
    except Exception as exc:  # an explorer never raises: record the cause, keep the frames
        if isinstance(exc, _LammpsFailure):
            cause = f"LAMMPS error: {exc}"
        else:
            cause = f"crashed: {type(exc).__name__}: {' '.join(str(exc).split())}"
        where = f"steps {span[0] + 1}–{span[1]}" if span[1] else "before the first step"
        traj.stopped, traj.stop_step = f"{cause} ({where})", span[1]
    traj.seconds = time.perf_counter() - t0
    return traj


def _checked_coef(model: Any, coef: Any) -> np.ndarray | None:
    """``coef`` as one finite (P,) vector of ``model``'s width (None: ``model.coef_``)."""
    if coef is None:
        return None
    arr = model._check_coef(coef)
    if arr.ndim != 1:
        raise DataError(f"coef for explorers must be one vector (P,), not shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError(f"coef has {int((~np.isfinite(arr)).sum())} non-finite value(s)")
    return arr


def explore_many(
    model: Any,
    specs: Sequence[ExplorerSpec],
    coef: np.ndarray | None = None,
    *,
    workers: int | None = None,
    client: Any = None,
    progress: bool | None = None,
) -> list[Trajectory]:
    """Run explorers as Dask tasks (one per spec); results in spec order.

    Parameters
    ----------
    model : LinearPotential
        Fitted model (sent to the workers once).
    specs : sequence of ExplorerSpec
        Names must be unique.
    coef : ndarray, shape (P,), optional
        Parameters for every explorer; default ``model.coef_``.
    workers : int, optional
        Worker processes of a new LocalCluster (:func:`potforge.oracles.labelling.dask_client`);
        with ``workers=1`` or a single spec (and no ``client``) the explorers run in this
        process.
    client : distributed.Client, optional
        Used as is (not closed).
    progress : bool, optional
        A bar on a terminal, lines in a log (None), always (True) or never (False).

    Returns
    -------
    list of Trajectory
        One per spec; a task whose worker died gives ``stopped="crashed: ..."`` and no frames.
    """
    specs = list(specs)
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"explorer names must be unique; repeated: {', '.join(map(str, dup))}")
    for s in specs:
        check_spec(s, model)
    coef = _checked_coef(model, coef)
    bar = Progress(len(specs), "explorers", "explorers", progress)
    try:
        if client is None and (workers == 1 or len(specs) <= 1):
            out = []
            for s in specs:
                out.append(explore(model, s, coef))
                bar.update()
            return out
        return _on_dask(model, specs, coef, workers, client, bar)
    finally:
        bar.close()


def _on_dask(model, specs, coef, workers, client, bar) -> list[Trajectory]:
    """The explorers as tasks on a Dask client (given, or on a new LocalCluster)."""
    from distributed import as_completed

    from potforge.oracles.labelling import dask_client

    with dask_client(workers=workers, client=client) as c:
        # the model travels inside each task, not scattered: a worker that dies takes no
        # shared data with it, and Dask can rerun any task from its own spec
        futures = [c.submit(explore, model, s, coef, pure=False) for s in specs]
        out: list[Trajectory | None] = [None] * len(specs)
        where = {f.key: k for k, f in enumerate(futures)}
        for fut in as_completed(futures):
            k = where[fut.key]
            try:
                out[k] = fut.result()
            except Exception as exc:  # the worker died (KilledWorker) or the task was lost
                text = " ".join(f"{type(exc).__name__}: {exc}".split())
                first = text.split(". ")[0].rstrip(".")
                out[k] = Trajectory(
                    specs[k].name, [], f"crashed: the worker running it died ({first})", 0
                )
            bar.update()
        return [t for t in out if t is not None]
