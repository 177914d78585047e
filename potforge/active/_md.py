"""The MD engines behind the explorers (:mod:`potforge.active.explore`): the frame checks, LAMMPS
through the model's exported potential, and ASE MD with the model's calculator.

Each runner fills a :class:`~potforge.active.explore.Trajectory` frame by frame and stops at the
first frame that fails a check; errors propagate to :func:`~potforge.active.explore.explore`,
which records them.  Units: Å, eV, ps, K; pressure in GPa (LAMMPS gets bar, ASE eV/Å³).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms, units
from ase.neighborlist import neighbor_list

from potforge.engines.lammps import Frame, new_lammps, setup_structure

if TYPE_CHECKING:
    from potforge.active.explore import ExplorerSpec, Trajectory

TDAMP = 100
"""Thermostat damping time in timesteps (0.1 ps at 1 fs)."""

PDAMP = 1000
"""Barostat damping time in timesteps (1 ps at 1 fs)."""


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
