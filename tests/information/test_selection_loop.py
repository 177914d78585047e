"""The information-matching loop end to end: real LAMMPS oracle, real store, real solver, the
CLI; targets met, infeasible targets named, and a SIGKILL at any moment loses and repeats
nothing."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import ase.io
import numpy as np
import pytest

from potforge.data.builders import w_structures
from potforge.data.store import Store
from potforge.errors import DataError
from potforge.information.targets import load_targets

MODEL = "snap(twojmax=4)+zbl(inner=1.0,outer=1.6)+const"
W_SNAP = "lammps:W_2940_2017_2.snap"
TARGETS = """
[precision]
energy = 0.001
force = 0.05
stress = 0.1
[targets]
a0 = "0.01%"
C11 = "0.5%"
C44 = "0.5%"
Evac = "{evac}"
[settings]
cost = "n2"
"""
COUNTING = '''
import os
from ase.calculators.calculator import Calculator, all_changes
from potforge.data.structures import structure_hash
from potforge.oracles import make_oracle


class Counting(Calculator):
    """The W SNAP, writing one line per finished single point (the oracle calls)."""

    implemented_properties = ["energy", "forces", "stress"]

    def __init__(self, log="", **kw):
        super().__init__(**kw)
        self.log = log or os.environ["POTFORGE_TEST_LOG"]
        self.inner = make_oracle("lammps:W_2940_2017_2.snap").build()

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        a = self.atoms.copy()
        a.calc = self.inner
        self.results = {"energy": a.get_potential_energy(), "forces": a.get_forces(),
                        "stress": a.get_stress()}
        with open(self.log, "a") as fh:
            fh.write(structure_hash(self.atoms) + "\\n")
            fh.flush()
            os.fsync(fh.fileno())
'''


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "potforge.cli", *args]


@pytest.fixture
def setup(tmp_path):
    pool = tmp_path / "pool.extxyz"
    ase.io.write(pool, w_structures(0) + w_structures(1))
    targets = tmp_path / "targets.toml"
    targets.write_text(TARGETS.format(evac="2%"))
    return tmp_path, pool, targets


def select(tmp, pool, targets, db, out, oracle=W_SNAP, extra=()):
    args = ["select", "--model", MODEL, "--pool", str(pool), "--targets", str(targets)]
    args += ["--oracle", oracle, "--db", str(db), "--init", "3", "--workers", "1"]
    return cli(*args, "--out", str(out), *extra)


def test_select_meets_every_target_and_writes_its_record(setup):
    tmp, pool, targets = setup
    done = subprocess.run(
        select(tmp, pool, targets, tmp / "c.db", tmp / "sel"), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "every target is met" in done.stdout
    assert "iteration 1:" in done.stdout and "σ/target" in done.stdout
    doc = json.loads((tmp / "sel" / "iterations.json").read_text())
    last = doc["iterations"][-1]
    assert doc["stop"] == "met" and last["met"]
    for name, s in last["sigma"].items():
        assert s <= last["tolerance"][name] * (1 + 1e-6), name
    rows = (tmp / "sel" / "selection.csv").read_text().splitlines()[1:]
    assert len(rows) == len(doc["labelled"]) == last["oracle_calls"]
    # every labelled structure is in the store once, with the oracle's labels
    store = Store(tmp / "c.db")
    assert len(list(store.rows())) == len(doc["labelled"])
    for name in ("model/model.json", "spectrum.png", "sigma.png", "provenance.json"):
        assert (tmp / "sel" / name).stat().st_size > 0, name
    # the Fisher analysis of the pool for the selected model
    fish = subprocess.run(
        cli(
            "fisher",
            "--model",
            str(tmp / "sel" / "model"),
            "--data",
            str(pool),
            "--qoi",
            "a0=0.1%",
            "C44=1%",
            "--out",
            str(tmp / "fish"),
        ),
        capture_output=True,
        text=True,
    )
    assert fish.returncode == 0, fish.stderr[-2000:]
    assert "condition number" in fish.stdout and "sloppy 1:" in fish.stdout
    assert "C44: σ" in fish.stdout and "of its target information" in fish.stdout
    report = json.loads((tmp / "fish" / "fisher.json").read_text())
    assert report["eigenvalues"] == sorted(report["eigenvalues"], reverse=True)
    assert set(report["qoi"]) == {"a0", "C44"} and (tmp / "fish" / "spectrum.png").exists()
    # the store's candidates as the pool, per-atom force candidates, a new database
    fine = subprocess.run(
        select(
            tmp, tmp / "c.db", targets, tmp / "c2.db", tmp / "fine", extra=["--per-atom-forces"]
        ),
        capture_output=True,
        text=True,
    )
    assert fine.returncode == 0, fine.stderr[-2000:]
    assert "every target is met" in fine.stdout
    # a second run resumes the finished loop: no oracle call, same answer
    again = subprocess.run(
        select(tmp, pool, targets, tmp / "c.db", tmp / "sel2"), capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr[-2000:]
    doc2 = json.loads((tmp / "sel2" / "iterations.json").read_text())
    assert doc2["labelled"] == doc["labelled"]
    assert len(list(Store(tmp / "c.db").rows())) == len(doc["labelled"])


def test_infeasible_targets_name_the_qoi_and_keep_the_labels(setup):
    tmp, pool, targets = setup
    targets.write_text(TARGETS.format(evac="0.5%"))
    done = subprocess.run(
        select(tmp, pool, targets, tmp / "c.db", tmp / "sel"), capture_output=True, text=True
    )
    assert done.returncode == 2
    err = done.stderr.strip().splitlines()[-1]
    assert "Evac" in err and "vacancy cells" in err and "Traceback" not in done.stderr
    assert not (tmp / "sel").exists()
    assert len(list(Store(tmp / "c.db").rows())) >= 3  # what was labelled stays


def test_bad_targets_file_is_one_sentence(tmp_path):
    bad = tmp_path / "t.toml"
    bad.write_text('[targets]\nC44 = "5%"\n[precison]\nenergy = 0.001\n')
    with pytest.raises(DataError, match="did you mean 'precision'"):
        load_targets(bad)
    bad.write_text('[targets]\nc44 = "5%"\n')
    with pytest.raises(DataError, match="did you mean 'C44'"):
        load_targets(bad)
    bad.write_text('[targets]\nC44 = "five"\n')
    with pytest.raises(DataError, match="percentage"):
        load_targets(bad)
    bad.write_text('[targets]\nC44 = "5%"\n[settings]\ncost = "n5"\n')
    with pytest.raises(DataError, match="cost model"):
        load_targets(bad)
    bad.write_text('[targets]\nC44 = "5%"\n[settings]\ncriterion = "every"\n')
    with pytest.raises(DataError, match="criterion 'every'; valid: each, joint"):
        load_targets(bad)
    bad.write_text(
        '[targets]\nC44 = "5%"\nC11 = 10\n[correlation]\n"C11,C44" = 0.5\n'
        '[settings]\ncriterion = "each"\n'
    )
    with pytest.raises(DataError, match="cannot honour"):
        load_targets(bad)
    bad.write_text('[targets]\nC44 = "5%"\nC11 = 10\n[correlation]\n"C11,C44" = 0.5\n')
    t = load_targets(bad)
    assert t.correlation is not None and t.correlation[0, 1] == 0.5
    assert t.targets[0].relative and not t.targets[1].relative


def _calls(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def _stored(db: Path) -> int:
    try:
        with sqlite3.connect(db) as con:
            return con.execute("SELECT COUNT(*) FROM systems").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_sigkill_at_any_moment_then_resume_loses_and_repeats_nothing(setup):
    tmp, pool, targets = setup
    module = tmp / "counting.py"
    module.write_text(COUNTING)
    log = tmp / "calls.txt"
    oracle = f"{module}:Counting"
    spec_cmd = select(tmp, pool, targets, tmp / "k.db", tmp / "sel", oracle=oracle)
    env = dict(os.environ)
    kill_at = random.SystemRandom().randint(1, 6)  # oracle calls done: anywhere in the loop
    proc = subprocess.Popen(
        spec_cmd + ["--quiet"],
        env={**env, "POTFORGE_TEST_LOG": str(log)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while len(_calls(log)) < kill_at and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(random.SystemRandom().uniform(0.0, 0.3))  # inside a stage, or between two
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()[-2000:] if proc.stderr else ""
    before = _calls(log)
    stored_before = _stored(tmp / "k.db")
    resume = [str(tmp / "sel2") if c == str(tmp / "sel") else c for c in spec_cmd]
    done = subprocess.run(
        resume, env={**env, "POTFORGE_TEST_LOG": str(log)}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    after = _calls(log)[len(before) :]
    store = Store(tmp / "k.db")
    hashes = [r.key_value_pairs["structure_hash"] for r in store.rows()]
    assert len(hashes) == len(set(hashes))  # 0 duplicated results
    labelled = json.loads((tmp / "sel2" / "iterations.json").read_text())["labelled"]
    assert sorted(hashes) == sorted(labelled)  # 0 lost: every chosen structure has its label
    # nothing stored before the kill was computed again
    stored_hashes = set(before[:stored_before]) if stored_before else set()
    assert not (stored_hashes & set(after)), (kill_at, len(before), stored_before)
    assert len(after) <= len(labelled) - stored_before + 1  # at most the one in flight again
    # and the answer is the uninterrupted run's
    ref = subprocess.run(
        select(tmp, pool, targets, tmp / "ref.db", tmp / "ref", oracle=oracle),
        env={**env, "POTFORGE_TEST_LOG": str(tmp / "ref.txt")},
        capture_output=True,
        text=True,
    )
    assert ref.returncode == 0, ref.stderr[-2000:]
    assert json.loads((tmp / "ref" / "iterations.json").read_text())["labelled"] == labelled
    np.testing.assert_equal(len(_calls(tmp / "ref.txt")), len(labelled))


def test_initial_set_rules():
    """The rules of INIT_RULES: "stratified" labels every kind once before any twice (a kind of
    one structure is not missed, as a random draw of 3 in 13 misses it 77 % of the time), is
    seeded, and reads an absent kind as one kind of its own; bad sizes and rules are one
    sentence."""
    from potforge.information.loop import initial_set

    n_atoms = np.array([2] * 8 + [18] + [4] * 4)
    kinds = ["strained"] * 8 + ["fault"] + [None] * 4
    for seed in range(5):
        first = initial_set(n_atoms, 3, "stratified", seed, kinds)
        assert sorted(kinds[i] or "" for i in first) == ["", "fault", "strained"]
        assert first == initial_set(n_atoms, 3, "stratified", seed, kinds)
    assert initial_set(n_atoms, 13, "stratified", 0, kinds) == list(range(13))
    assert len(set(initial_set(n_atoms, 5, "stratified", 1))) == 5  # no kinds: a random draw
    assert initial_set(n_atoms, 2, "smallest") == [0, 1] and initial_set(n_atoms, 2, "first") == [
        0,
        1,
    ]
    with pytest.raises(DataError, match="1..13"):
        initial_set(n_atoms, 14, "random")
    with pytest.raises(DataError, match="allowed: random, stratified, smallest, first"):
        initial_set(n_atoms, 2, "best")
