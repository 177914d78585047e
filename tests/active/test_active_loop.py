"""The active-learning loop end to end through `potforge explore`: real LAMMPS explorers and
oracle, real Dask, a real store; a finished loop resumes without an oracle call, and a SIGKILL
at a random moment loses and repeats nothing."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from potforge.data.store import Store

ARGS = [
    "--model", "snap(twojmax=2)+zbl(inner=1.0,outer=1.6)+const",
    "--element", "W", "--starts", "bulk,vacancy", "--temps", "300,1500",
    "--steps", "200", "--interval", "20", "--budget", "40", "--quota", "4",
    "--heldout", "3", "--members", "8", "--max-iterations", "3", "--workers", "1",
    "--init", "10",
]  # fmt: skip
COUNTING = """
import os
from ase.calculators.calculator import Calculator, all_changes
from potforge.data.structures import structure_hash
from potforge.oracles import make_oracle


class Counting(Calculator):
    implemented_properties = ["energy", "forces", "stress"]

    def __init__(self, **kw):
        super().__init__(**kw)
        self.inner = make_oracle("lammps:W_2940_2017_2.snap").build()

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        a = self.atoms.copy()
        a.calc = self.inner
        self.results = {"energy": a.get_potential_energy(), "forces": a.get_forces(),
                        "stress": a.get_stress()}
        with open(os.environ["POTFORGE_TEST_LOG"], "a") as fh:
            fh.write(structure_hash(self.atoms) + "\\n")
"""


def explore(tmp: Path, db: str, out: str, oracle: str) -> list[str]:
    return [sys.executable, "-m", "potforge.cli", "explore", *ARGS, "--oracle", oracle,
            "--db", str(tmp / db), "--out", str(tmp / out)]  # fmt: skip


def calls(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_explore_runs_resumes_and_survives_sigkill(tmp_path):
    module = tmp_path / "counting.py"
    module.write_text(COUNTING)
    oracle = f"{module}:Counting"
    log = tmp_path / "calls.txt"
    env = {**os.environ, "POTFORGE_TEST_LOG": str(log)}
    # a run killed at a random oracle call...
    kill_at = random.SystemRandom().randint(3, 14)
    proc = subprocess.Popen(
        explore(tmp_path, "k.db", "killed", oracle) + ["--quiet"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while len(calls(log)) < kill_at and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(random.SystemRandom().uniform(0.0, 0.5))
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)
    before = calls(log)
    stored = {r.key_value_pairs["structure_hash"] for r in Store(tmp_path / "k.db").rows()}
    # ...resumes to the end: nothing stored before the kill is computed again
    done = subprocess.run(explore(tmp_path, "k.db", "run", oracle), env=env, capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "iteration 3:" in done.stdout and "held-out force RMSE" in done.stdout
    after = calls(log)[len(before) :]
    assert not (stored & set(after)), (kill_at, len(before), len(stored))
    hashes = [r.key_value_pairs["structure_hash"] for r in Store(tmp_path / "k.db").rows()]
    assert len(hashes) == len(set(hashes))  # 0 duplicated results
    doc = json.loads((tmp_path / "run" / "iterations.json").read_text())
    assert set(doc["training"]) | set(doc["heldout"]) <= set(hashes)  # 0 lost
    steps = doc["steps"]
    assert [s["iteration"] for s in steps] == [0, 1, 2, 3]  # 3 explorations, a final fit
    assert all(s["frames_seen"] == 40 for s in steps[:-1])  # 4 explorers × 10 frames
    assert steps[-1]["frames_seen"] == 0
    # every oracle call's result is in the final model's training set (or the held-out set)
    assert len(doc["training"]) + len(doc["heldout"]) == steps[-1]["oracle_calls"]
    assert steps[-1]["oracle_calls"] <= 40
    for name in ("model/model.json", "learning.png", "provenance.json"):
        assert (tmp_path / "run" / name).stat().st_size > 0
    # a finished loop resumes without a single oracle call and gives the same record
    n = len(calls(log))
    again = subprocess.run(explore(tmp_path, "k.db", "again", oracle), env=env,
                           capture_output=True, text=True)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(calls(log)) == n
    assert json.loads((tmp_path / "again" / "iterations.json").read_text())["steps"] == steps


def test_dopt_runs_on_a_model_with_a_const_term(tmp_path):
    """The extrapolation grade is fitted on the force-spanned columns (a const term has none)."""
    args = list(ARGS)
    args[args.index("--max-iterations") + 1] = "1"  # one exploration
    cmd = [sys.executable, "-m", "potforge.cli", "explore", *args, "--acquisition", "dopt",
           "--set", "gamma_lo=1.0", "--oracle", "lammps:W_2940_2017_2.snap",
           "--db", str(tmp_path / "d.db"), "--out", str(tmp_path / "d")]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "iteration 1:" in done.stdout


def test_pops_halfwidth_and_thresholds_per_system(tmp_path):
    """U as the POPS bound half-width (the held-out statistics too), a per-system trust
    window that closes the vacancy explorers (only bulk frames are picked), and the initial
    set from a file (--initial, e.g. potforge compress's output)."""
    import ase.io
    import numpy as np

    from potforge.active.starts import rattled, start_structures
    from potforge.active.watch import screen
    from potforge.data.checkpoint import Checkpoint
    from potforge.data.structures import structure_hash
    from potforge.model import LinearPotential

    seeds = rattled(start_structures("W", ["bulk", "vacancy"]), 8, 0.07, seed=5)
    ase.io.write(tmp_path / "seed.extxyz", seeds, format="extxyz")
    args = list(ARGS)
    args[args.index("--max-iterations") + 1] = "1"
    args += ["--initial", str(tmp_path / "seed.extxyz")]
    cmd = [sys.executable, "-m", "potforge.cli", "explore", *args, "--acquisition", "trust",
           "--set", "lo=0", "--set", "hi=1e3", "--system", "vacancy-*:hi=1e-12",
           "--uncertainty", "pops_halfwidth", "--threads", "2",
           "--oracle", "lammps:W_2940_2017_2.snap",
           "--db", str(tmp_path / "p.db"), "--out", str(tmp_path / "p")]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    store = Store(tmp_path / "p.db")
    picked = store.candidates(
        hashes=Checkpoint(store, "active-learning").output("select", 0)["selected"]
    )
    assert picked and {a.info["explorer"].split("-")[0] for a in picked} == {"bulk"}
    record = json.loads((tmp_path / "p" / "iterations.json").read_text())
    assert record["training"][:8] == [structure_hash(a) for a in seeds]
    model = LinearPotential.load(tmp_path / "p" / "model")
    held = [a for a in store.to_atoms("ok", "lammps:W_2940_2017_2.snap")
            if a.info["structure_hash"] in set(record["heldout"])]  # fmt: skip
    width = screen(model, held, model.sample_coef(2, seed=0), halfwidth=True).halfwidth
    assert record["steps"][-1]["u_mean"] == pytest.approx(float(np.mean(width)), rel=1e-9)
    bad = subprocess.run(cmd[:-4] + ["--system", "liquid-*:hi=1", "--db", str(tmp_path / "q.db"),
                                     "--out", str(tmp_path / "q")],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "matches no explorer" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_wall_time_budget_stops_and_states_it_and_pressures_need_npt(tmp_path):
    base = [sys.executable, "-m", "potforge.cli", "explore", *ARGS,
            "--oracle", "lammps:W_2940_2017_2.snap", "--db", str(tmp_path / "t.db")]  # fmt: skip
    done = subprocess.run(base + ["--out", str(tmp_path / "t"), "--max-minutes", "1e-6"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--max-minutes spent before convergence" in done.stderr
    record = json.loads((tmp_path / "t" / "iterations.json").read_text())
    assert record["stop"] == "time" and len(record["steps"]) == 1
    bad = subprocess.run(base + ["--out", str(tmp_path / "u"), "--pressures", "0,5"],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "pressures need the npt ensemble" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_explorer_specs_per_structure_temperature_and_pressure():
    from ase.build import bulk

    from potforge.active.loop import explorer_specs

    a = bulk("W", "bcc", a=3.18, cubic=True)
    specs = explorer_specs({"bulk": a}, [300, 1500], pressures=[0, 5.5], ensemble="npt")
    assert [s.name for s in specs] == [
        "bulk-300K-0GPa", "bulk-300K-5.5GPa", "bulk-1500K-0GPa", "bulk-1500K-5.5GPa",
    ]  # fmt: skip
    assert [s.pressure for s in specs] == [0, 5.5, 0, 5.5]
    assert len({s.seed for s in specs}) == 4
