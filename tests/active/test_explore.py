"""Explorers: MD of a fitted W model in real LAMMPS (exported potential) and in ASE; frames in
the ASE frame; blown-up explorers stopped with their cause while the others finish; bad specs;
explorers as tasks on a real Dask LocalCluster."""

from __future__ import annotations

import json
import re
import tempfile

import numpy as np
import pytest
from ase.build import bulk

from potforge.active import ExplorerSpec, Trajectory, explore, explore_many
from potforge.active._md import _lammps_system, _verdict
from potforge.data.builders import A_W, w_structures
from potforge.engines.lammps import new_lammps, read_forces, to_ase_vectors
from potforge.errors import DataError
from potforge.model import LinearPotential
from potforge.oracles import make_oracle
from potforge.oracles.labelling import dask_client, label_in_process

INFO = {"explorer", "step", "time_ps", "temperature_K", "energy"}


@pytest.fixture(scope="module")
def w_data():
    s = w_structures()  # 6 strained 2-atom cells and the 10 rattled 54-atom cells
    return label_in_process(s[:6] + s[16:26], make_oracle("lammps:W_2940_2017_2.snap").build())


@pytest.fixture(scope="module")
def model(w_data):
    return LinearPotential("snap(twojmax=2)+zbl(inner=1.0,outer=1.6)+const").fit(w_data)


@pytest.fixture(scope="module")
def bare(w_data):
    """No ZBL: nothing keeps two close atoms apart."""
    return LinearPotential("snap(twojmax=2)+const").fit(w_data)


def cell54():
    """54-atom bcc W, rotated so that its cell is not LAMMPS' lower-triangular one."""
    a = bulk("W", "bcc", a=A_W, cubic=True).repeat(3)
    a.rotate(30, "z", rotate_cell=True)
    a.rotate(20, "x", rotate_cell=True)
    return a


def close_pair(sep=0.6):
    """The 54-atom cell with atom 1 moved to ``sep`` Å from atom 0 (a collapsing pair)."""
    a = bulk("W", "bcc", a=A_W, cubic=True).repeat(3)
    a.positions[1] = a.positions[0] + sep / np.sqrt(3)
    return a


def assert_model_frames(model, traj, start):
    """Frames: info, no calculator, the start's cell and atoms, energies = the ASE calculator's."""
    calc = model.as_calculator()
    for f in traj.frames:
        assert INFO <= set(f.info) and f.info["explorer"] == traj.name and f.calc is None
        assert np.isfinite(f.info["energy"]) and np.isfinite(f.positions).all()
        assert f.get_chemical_symbols() == start.get_chemical_symbols()
    for f in traj.frames[:: max(1, len(traj.frames) // 3)]:
        g = f.copy()
        g.calc = calc
        assert g.get_potential_energy() == pytest.approx(f.info["energy"], abs=1e-6)


def test_nvt_lammps_runs_to_the_end_in_the_ase_frame(model):
    start = cell54()
    spec = ExplorerSpec("bulk-300K", start, 300.0, steps=1000, interval=20, seed=3)
    traj = explore(model, spec)
    assert traj.stopped is None and traj.stop_step is None, traj.stopped
    assert len(traj.frames) == 50
    assert [f.info["step"] for f in traj.frames] == list(range(20, 1001, 20))
    assert traj.frames[-1].info["time_ps"] == pytest.approx(1.0)
    temps = [f.info["temperature_K"] for f in traj.frames[25:]]  # after the thermostat's 0.1 ps
    assert 230 < np.mean(temps) < 370, temps
    assert_model_frames(model, traj, start)
    for f in traj.frames:
        np.testing.assert_allclose(np.array(f.cell), np.array(start.cell), atol=1e-10)
    # unwrapped, continuous with the start: a thermal displacement, not a cell vector
    disp = traj.frames[0].positions - start.positions
    assert np.abs(disp).max() < 0.5
    summary = json.loads(json.dumps(traj.to_dict()))
    assert summary["n_frames"] == 50 and summary["stopped"] is None


def test_lammps_export_gives_the_ase_calculators_forces(model):
    start = cell54()
    start.rattle(0.05, seed=1)
    lmp = new_lammps()
    try:
        with tempfile.TemporaryDirectory() as folder:
            frame = _lammps_system(lmp, model, start, None, folder)
            lmp.command("run 0")
            f_lmp = to_ase_vectors(frame, read_forces(lmp, len(start)))
            e_lmp = float(lmp.get_thermo("pe"))
    finally:
        lmp.close()
    start.calc = model.as_calculator()
    np.testing.assert_allclose(f_lmp, start.get_forces(), atol=1e-8)
    assert e_lmp == pytest.approx(start.get_potential_energy(), abs=1e-8)


def test_ase_engine_nvt_matches_in_kind(model):
    start = cell54()
    traj = explore(model, ExplorerSpec("ase", start, 300.0, steps=300, interval=30, engine="ase"))
    assert traj.stopped is None and len(traj.frames) == 10
    assert all(100 < f.info["temperature_K"] < 600 for f in traj.frames)
    assert_model_frames(model, traj, start)
    for f in traj.frames:
        np.testing.assert_allclose(np.array(f.cell), np.array(start.cell), atol=1e-12)


@pytest.mark.parametrize("engine", ["lammps", "ase"])
def test_nose_hoover_npt_nve_and_ramp(model, engine):
    start = cell54()
    steps = 400 if engine == "lammps" else 100
    runs = {
        "nose-hoover": ExplorerSpec("nh", start, 300.0, steps, 20, ensemble="nose-hoover"),
        "npt": ExplorerSpec("npt", start, 300.0, steps, 20, ensemble="npt", pressure=1.0),
        "nve": ExplorerSpec("nve", start, 300.0, steps, 20, ensemble="nve"),
        "ramp": ExplorerSpec("ramp", start, 300.0, steps, 20, t_end=900.0),
    }
    for key, spec in runs.items():
        spec = ExplorerSpec(**{**spec.__dict__, "engine": engine})
        traj = explore(model, spec)
        assert traj.stopped is None and len(traj.frames) == steps // 20, (key, traj.stopped)
        assert_model_frames(model, traj, start)
        v = [f.get_volume() for f in traj.frames]
        if key == "npt":  # the box moves, the positions stay inside its lattice
            assert np.ptp(v) > 0 and abs(v[-1] / start.get_volume() - 1) < 0.05
        else:
            assert np.ptp(v) == pytest.approx(0, abs=1e-9)
    if engine == "lammps":  # the ramp reaches well above its start
        temps = [f.info["temperature_K"] for f in traj.frames]
        assert np.mean(temps[-5:]) > np.mean(temps[:5]) + 150, temps


def test_blown_up_explorers_are_stopped_and_the_others_finish(bare):
    holey = bulk("W", "bcc", a=A_W, cubic=True).repeat(3)
    holey.pbc = (True, True, False)
    holey.positions[5, 2] += 20.0  # outside the cell along its open axis: LAMMPS drops it
    specs = [
        ExplorerSpec("bulk", cell54(), 300.0, steps=200, interval=10),
        ExplorerSpec("collapse", close_pair(), 300.0, 400, 10, max_temperature=1e7),
        ExplorerSpec("runaway", close_pair(), 300.0, steps=400, interval=10),
        ExplorerSpec("broken", holey, 300.0, steps=100, interval=10),
        ExplorerSpec("after", cell54(), 600.0, steps=100, interval=10, engine="ase"),
    ]
    out = explore_many(bare, specs, workers=1, progress=False)
    assert [t.name for t in out] == [s.name for s in specs]
    bulk_, collapse, runaway, broken, after = out
    assert bulk_.stopped is None and len(bulk_.frames) == 20
    assert after.stopped is None and len(after.frames) == 10
    assert re.fullmatch(r"atoms 0 and 1 at 0\.\d\d Å < 0\.5 Å at step \d+", collapse.stopped)
    assert re.fullmatch(r"temperature \d+ K > 1500 K at step \d+", runaway.stopped)
    for t in (collapse, runaway):
        assert t.frames, t.stopped  # the frames before the failure are kept ...
        steps = [f.info["step"] for f in t.frames]
        assert steps == list(range(10, t.stop_step, 10))  # ... and none from it on
        assert t.stop_step == int(t.stopped.rsplit(" ", 1)[1])
    assert broken.stopped == (
        "crashed: EngineError: LAMMPS accepted 53 of 54 atoms of W54 (before the first step)"
    )
    assert broken.frames == [] and broken.stop_step == 0
    assert all(json.dumps(t.to_dict()) for t in out)


def test_lost_atoms_lammps_errors_and_model_failures_are_recorded(model):
    # ZBL at 0.6 Å fires the pair apart faster than the neighbour lists follow
    shot = explore(model, ExplorerSpec("shot", close_pair(), 300.0, 100, 10, max_temperature=1e12))
    assert re.fullmatch(r"lost atoms: \d+ of 54 left at step \d+", shot.stopped), shot.stopped
    huge = model.coef_.copy()
    huge[3] = 1e200  # one SNAP coefficient far out of range: the forces overflow
    lmp = explore(model, ExplorerSpec("lmp", cell54(), 300.0, 100, 10), coef=huge)
    assert lmp.stopped.startswith("LAMMPS error: ") and "\n" not in lmp.stopped, lmp.stopped
    assert "last input line: run 10" in lmp.stopped and lmp.frames == []
    ase = explore(model, ExplorerSpec("ase", cell54(), 300.0, 100, 10, engine="ase"), coef=huge)
    assert ase.stopped.startswith("crashed: ModelError: W54: the model predicts a non-finite")
    assert ase.stopped.endswith("(steps 1–10)") and ase.stop_step == 10 and ase.frames == []
    nan = model.coef_.copy()
    nan[0] = np.nan
    with pytest.raises(DataError, match="coef has 1 non-finite value"):
        explore(model, ExplorerSpec("nan", cell54(), 300.0, 100, 10), coef=nan)


def test_frame_checks_name_the_cause():
    spec = ExplorerSpec("x", cell54(), 300.0, min_distance=1.0)
    a = cell54()
    assert _verdict(a, -100.0, 300.0, spec) is None
    b = a.copy()
    b.positions[7, 1] = np.nan
    assert _verdict(b, -100.0, 300.0, spec) == "non-finite (NaN or inf) positions"
    assert _verdict(a, np.inf, 300.0, spec) == "non-finite model energy (inf)"
    assert _verdict(a, -100.0, np.nan, spec) == "non-finite temperature (nan)"
    assert _verdict(a, -100.0, 1600.0, spec) == "temperature 1600 K > 1500 K"
    b = a.copy()
    b.positions[20] = b.positions[3] + [0.5, 0.3, 0.0] - np.array(a.cell[0])  # across the cell
    assert _verdict(b, -100.0, 300.0, spec) == "atoms 3 and 20 at 0.58 Å < 1 Å"


BAD = [
    (dict(temperature=0.0), "temperature must be a positive number"),
    (dict(temperature=-5.0), "temperature must be a positive number"),
    (dict(steps=0), "steps must be a whole number ≥ 1"),
    (dict(interval=0), "interval must be a whole number from 1 to steps"),
    (dict(steps=10, interval=20), "interval must be a whole number from 1 to steps"),
    (dict(ensemble="nph"), "unknown ensemble 'nph'; choose one of nvt, nose-hoover, npt, nve"),
    (dict(engine="gromacs"), "unknown engine 'gromacs'; choose one of lammps, ase"),
    (dict(pressure=2.0), "pressure 2.0 GPa needs ensemble 'npt', not 'nvt'"),
    (dict(ensemble="nve", t_end=900.0), "a temperature ramp .* needs a thermostat"),
    (dict(timestep=0.0), "timestep must be a positive number"),
    (dict(max_temperature=200.0), "max_temperature must exceed"),
    (dict(min_distance=2.8), "atoms .* of the start structure are 2.75 Å apart"),
    (dict(seed=-1), "seed must be a whole number ≥ 0"),
]


@pytest.mark.parametrize(("change", "message"), BAD)
def test_bad_specs_raise_one_sentence(model, change, message):
    spec = ExplorerSpec(**{"name": "bad", "structure": cell54(), "temperature": 300.0, **change})
    with pytest.raises(DataError, match=message) as err:
        explore(model, spec)
    assert "\n" not in str(err.value) and str(err.value).startswith("explorer 'bad': ")


def test_bad_structures_and_names(model):
    slab = cell54()
    slab.pbc = (True, True, False)
    with pytest.raises(DataError, match="'npt' needs a cell periodic along all three axes"):
        explore(model, ExplorerSpec("slab", slab, 300.0, ensemble="npt"))
    mo = bulk("Mo", "bcc", a=3.15, cubic=True)
    with pytest.raises(DataError, match="element.*Mo.*that the model does not know"):
        explore(model, ExplorerSpec("mo", mo, 300.0))
    spec = ExplorerSpec("twice", cell54(), 300.0, steps=20)
    with pytest.raises(DataError, match="explorer names must be unique; repeated: twice"):
        explore_many(model, [spec, spec], workers=1, progress=False)


def test_explore_many_on_a_dask_cluster_keeps_spec_order(model):
    start = cell54()
    specs = [
        ExplorerSpec("long", start, 300.0, steps=600, interval=50, seed=1),
        ExplorerSpec("short", start, 300.0, steps=50, interval=25, seed=2),
        ExplorerSpec("mid", start, 900.0, steps=200, interval=50, seed=3),
    ]
    with dask_client(workers=2) as client:
        out = explore_many(model, specs, client=client, progress=False)
        assert [t.name for t in out] == ["long", "short", "mid"]
        assert [len(t.frames) for t in out] == [12, 2, 4]
        assert all(isinstance(t, Trajectory) and t.stopped is None for t in out)
        # the same explorer in this process gives the same frames (seeded, one engine)
        here = explore(model, specs[1])
        np.testing.assert_allclose(here.frames[-1].positions, out[1].frames[-1].positions)

        # one explorer kills every worker that runs it; the others in the same call finish
        mixed = [
            ExplorerSpec("a", start, 300.0, steps=100, interval=50, seed=4),
            ExplorerSpec("dies", start, 300.0, steps=20, engine="ase"),
            ExplorerSpec("b", start, 300.0, steps=100, interval=50, seed=5),
            ExplorerSpec("c", start, 300.0, steps=100, interval=50, seed=6),
        ]
        out = explore_many(_worker_killer(model), mixed, client=client, progress=False)
    assert [t.name for t in out] == ["a", "dies", "b", "c"]
    a, dead, b, c = out
    assert all(t.stopped is None and len(t.frames) == 2 for t in (a, b, c)), [a, b, c]
    assert re.fullmatch(r"crashed: the worker running it died \(KilledWorker: .*\)", dead.stopped)
    assert dead.frames == [] and dead.stop_step == 0 and "\n" not in dead.stopped


def _worker_killer(model):
    """A copy of ``model`` whose ASE calculator ends the process that builds it."""

    class Killer(LinearPotential):
        def as_calculator(self, coef=None):
            import os

            os._exit(13)

    k = Killer.__new__(Killer)
    k.__dict__.update(model.__dict__)
    return k
