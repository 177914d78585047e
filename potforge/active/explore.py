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

import math
import os
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.neighborlist import neighbor_list

from potforge.data.structures import check_elements
from potforge.engines.lammps import Frame, new_lammps, setup_structure
from potforge.errors import DataError, check_is_fitted
from potforge.progress import Progress

ENGINES = ("lammps", "ase")
"""MD engines: the exported potential in LAMMPS, or ASE MD with the model's calculator."""

ENSEMBLES = ("nvt", "nose-hoover", "npt", "nve")
"""``nvt``: Langevin; ``nose-hoover``: Nosé–Hoover NVT; ``npt``: Nosé–Hoover thermostat and
isotropic barostat; ``nve``: velocity Verlet."""

TDAMP = 100
"""Thermostat damping time in timesteps (0.1 ps at 1 fs)."""

PDAMP = 1000
"""Barostat damping time in timesteps (1 ps at 1 fs)."""

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


# --- checks ---------------------------------------------------------------------------------


def _number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and math.isfinite(float(value))


def _closest(atoms: Atoms, floor: float) -> tuple[int, int, float] | None:
    """The closest pair (i < j, distance in Å) nearer than ``floor``, periodic aware, or None."""
    if floor <= 0 or len(atoms) < 2:
        return None
    i, j, d = neighbor_list("ijd", atoms, floor, self_interaction=False)
    keep = i < j
    if not keep.any():
        return None
    k = int(np.argmin(np.where(keep, d, np.inf)))
    return int(i[k]), int(j[k]), float(d[k])


def _verdict(atoms: Atoms, energy: float, temperature: float, spec: ExplorerSpec) -> str | None:
    """Why a frame is outside physical space (one phrase), or None when it passes."""
    if not np.isfinite(atoms.positions).all():
        return "non-finite (NaN or inf) positions"
    if not math.isfinite(energy):
        return f"non-finite model energy ({energy})"
    if not math.isfinite(temperature):
        return f"non-finite temperature ({temperature})"
    if temperature > spec.ceiling:
        return f"temperature {temperature:.0f} K > {spec.ceiling:.0f} K"
    close = _closest(atoms, spec.min_distance)
    if close is not None:
        i, j, d = close
        return f"atoms {i} and {j} at {d:.2f} Å < {spec.min_distance:g} Å"
    return None


def _keep(traj: Trajectory, spec: ExplorerSpec, atoms: Atoms, step: int, e: float, t: float):
    """Check a frame; keep it (True) or record why the explorer stops (False)."""
    why = _verdict(atoms, e, t, spec)
    if why is not None:
        traj.stopped, traj.stop_step = f"{why} at step {step}", step
        return False
    atoms.calc = None
    atoms.info.update(
        explorer=spec.name,
        step=int(step),
        time_ps=float(step * spec.timestep),
        temperature_K=float(t),
        energy=float(e),
    )
    traj.frames.append(atoms)
    return True


# --- LAMMPS ---------------------------------------------------------------------------------


class _LammpsFailure(Exception):
    """A LAMMPS command failed (its own message)."""


def _lammps(lmp, *commands: str) -> None:
    try:
        lmp.commands_list(list(commands))
    except Exception as exc:  # LAMMPS raises a bare Exception carrying its message
        raise _LammpsFailure(_lammps_message(exc)) from exc


def _lammps_message(exc: Exception) -> str:
    """LAMMPS' ``ERROR: text (src/file.cpp:N)\\nLast input line: ...`` as one sentence."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    text = re.sub(r"^ERROR(?: on proc \d+)?:\s*", "", lines[0])
    text = re.sub(r"\s*\([^()]*\.(?:cpp|h):\d+\)$", "", text)
    last = [ln.split(":", 1)[1].strip() for ln in lines[1:] if ln.startswith("Last input line")]
    return f"{text}; last input line: {last[0]}" if last else text


def _lammps_system(lmp, model, atoms: Atoms, coef, folder: str) -> Frame:
    """Box, atoms and the model's exported potential (files written into ``folder``)."""
    frame = setup_structure(lmp, atoms, model.elements_)
    lines = model.lammps_commands(folder, "explore", coef)
    cwd = os.getcwd()
    try:  # the pair files are named relative to ``folder`` and read by pair_coeff
        os.chdir(folder)
        _lammps(lmp, *lines)
    finally:
        os.chdir(cwd)
    _lammps(lmp, "neighbor 1.0 bin", "neigh_modify every 1 delay 0 check yes")
    return frame


def _dynamics(spec: ExplorerSpec) -> list[str]:
    """Velocity and integrator commands of ``spec`` (metal units)."""
    seed = spec.seed % 2_000_000_000 + 1  # LAMMPS wants a positive seed
    t0, t1 = spec.temperature, spec.target(spec.steps)
    tdamp, pdamp = TDAMP * spec.timestep, PDAMP * spec.timestep
    cmds = [
        f"timestep {spec.timestep!r}",
        f"velocity all create {t0!r} {seed} mom yes rot no dist gaussian",
    ]
    if spec.ensemble == "nvt":
        cmds += [
            f"fix pf_bath all langevin {t0!r} {t1!r} {tdamp!r} {seed} zero yes",
            "fix pf_int all nve",
        ]
    elif spec.ensemble == "nose-hoover":
        cmds.append(f"fix pf_int all nvt temp {t0!r} {t1!r} {tdamp!r}")
    elif spec.ensemble == "npt":
        bar = spec.pressure * 1e4
        cmds.append(
            f"fix pf_int all npt temp {t0!r} {t1!r} {tdamp!r} iso {bar!r} {bar!r} {pdamp!r}"
        )
    else:
        cmds.append("fix pf_int all nve")
    return cmds


def _run_lammps(model, spec: ExplorerSpec, coef, traj: Trajectory, span: list[int]) -> None:
    atoms0 = spec.structure
    n = len(atoms0)
    lmp = new_lammps()
    try:
        with tempfile.TemporaryDirectory(prefix="potforge-explore-") as folder:
            frame = _lammps_system(lmp, model, atoms0, coef, folder)
            _lammps(
                lmp,
                *_dynamics(spec),
                "compute pf_xu all property/atom xu yu zu",
                "thermo_style custom step pe temp",
                "thermo_modify lost ignore norm no",
                f"thermo {spec.interval}",
            )
            start = _Unwrap(atoms0, frame)
            done = 0
            while done < spec.steps:
                chunk = min(spec.interval, spec.steps - done)
                span[:] = done, done + chunk
                pre = "yes" if done == 0 else "no"
                _lammps(lmp, f"run {chunk} start 0 stop {spec.steps} pre {pre} post no")
                done += chunk
                left = int(round(lmp.get_natoms()))
                if left != n:
                    traj.stopped = f"lost atoms: {left} of {n} left at step {done}"
                    traj.stop_step = done
                    return
                atoms = start.frame(lmp, n, spec.ensemble == "npt")
                energy, temp = float(lmp.get_thermo("pe")), float(lmp.get_thermo("temp"))
                if not _keep(traj, spec, atoms, done, energy, temp):
                    return
    finally:
        lmp.close()


class _Unwrap:
    """Brings LAMMPS positions, velocities and box back to the start structure's ASE frame."""

    def __init__(self, atoms: Atoms, frame: Frame):
        self.atoms, self.q = atoms, frame.rotation
        cell = np.array(atoms.cell, dtype=float)
        self.flip = np.linalg.det(cell) < 0  # lammps_frame describes it with c → −c
        wrapped = frame.positions @ self.q.T
        # whole cell vectors by which setup wrapped each atom, to add back at every frame
        self.images = np.rint(np.linalg.solve(cell.T, (atoms.positions - wrapped).T).T)

    def frame(self, lmp, n: int, box_changes: bool) -> Atoms:
        ids = np.array(lmp.numpy.extract_atom("id")[:n], dtype=int) - 1
        xu = np.empty((n, 3))
        v = np.empty((n, 3))
        xu[ids] = np.array(lmp.numpy.extract_compute("pf_xu", 1, 2)[:n], dtype=float)
        v[ids] = np.array(lmp.numpy.extract_atom("v")[:n], dtype=float)
        cell = np.array(self.atoms.cell, dtype=float)
        if box_changes:
            lo, hi, xy, yz, xz, _, _ = lmp.extract_box()
            lower = np.array(
                [[hi[0] - lo[0], 0, 0], [xy, hi[1] - lo[1], 0], [xz, yz, hi[2] - lo[2]]]
            )
            cell = lower @ self.q.T
            if self.flip:
                cell[2] = -cell[2]
            xu = xu - np.asarray(lo)  # the box grows about its centre
        atoms = self.atoms.copy()
        atoms.calc = None
        atoms.set_cell(cell)
        atoms.positions = xu @ self.q.T + self.images @ cell
        # metal-unit velocities (Å/ps) to ASE momenta (amu·Å per ASE time unit)
        atoms.set_momenta(atoms.get_masses()[:, None] * (v @ self.q.T) / (1000 * units.fs))
        return atoms


# --- ASE ------------------------------------------------------------------------------------


def _run_ase(model, spec: ExplorerSpec, coef, traj: Trajectory, span: list[int]) -> None:
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    atoms = spec.structure.copy()
    atoms.calc = model.as_calculator(coef)
    rng = np.random.default_rng(spec.seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=spec.temperature, rng=rng)
    Stationary(atoms)
    done, dyn = 0, None
    while done < spec.steps:
        chunk = min(spec.interval, spec.steps - done)
        span[:] = done, done + chunk
        middle = spec.target(done + chunk // 2)  # a ramp moves the target once per chunk
        if dyn is None:
            dyn = _ase_dynamics(atoms, spec, middle, rng)
        elif spec.t_end is not None and spec.ensemble == "nvt":
            dyn.set_temperature(temperature_K=middle)
        elif spec.t_end is not None:  # Nosé–Hoover chains have no public setter: a new one
            dyn = _ase_dynamics(atoms, spec, middle, rng)
        dyn.run(chunk)
        done += chunk
        energy = float(atoms.get_potential_energy())
        frame = atoms.copy()
        frame.calc = None
        if not _keep(traj, spec, frame, done, energy, float(atoms.get_temperature())):
            return


def _ase_dynamics(atoms: Atoms, spec: ExplorerSpec, temperature: float, rng):
    """The ASE integrator of ``spec`` at target ``temperature`` (K)."""
    dt = spec.timestep * 1000 * units.fs
    if spec.ensemble == "nvt":
        from ase.md.langevin import Langevin

        return Langevin(
            atoms, dt, temperature_K=temperature, friction=1.0 / (TDAMP * dt), fixcm=False, rng=rng
        )
    if spec.ensemble == "nose-hoover":
        from ase.md.nose_hoover_chain import NoseHooverChainNVT

        return NoseHooverChainNVT(atoms, dt, temperature_K=temperature, tdamp=TDAMP * dt)
    if spec.ensemble == "npt":
        from ase.md.nose_hoover_chain import IsotropicMTKNPT

        return IsotropicMTKNPT(
            atoms,
            dt,
            temperature_K=temperature,
            pressure_au=spec.pressure * units.GPa,
            tdamp=TDAMP * dt,
            pdamp=PDAMP * dt,
        )
    from ase.md.verlet import VelocityVerlet

    return VelocityVerlet(atoms, dt)
