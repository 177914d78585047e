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
