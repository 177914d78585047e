"""Labelling on a real 2-worker Dask LocalCluster into a real store; SIGKILL and resume."""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import bulk

from potforge.data.store import Store
from potforge.oracles import make_oracle
from potforge.oracles.labelling import dask_client, label

W_SNAP = "lammps:W_2940_2017_2.snap"
CLI = "import sys, potforge.cli as c; c.COMMANDS = ('label', 'db'); sys.exit(c.main())"


def rattled(n: int, reps: int = 2, amp: float = 0.05, seed0: int = 0) -> list:
    base = bulk("W", "bcc", a=3.18, cubic=True).repeat(reps)
    out = []
    for i in range(n):
        a = base.copy()
        a.rattle(amp, seed=seed0 + i)
        a.info["group"] = "rattled"
        out.append(a)
    return out


@pytest.fixture(scope="module")
def client():
    with dask_client(workers=2, allowed_failures=0) as c:
        yield c


def test_labels_match_direct_calls_and_use_both_workers(client, tmp_path):
    structures = rattled(10)
    store = Store(tmp_path / "c.db")
    report = label(
        structures + structures[:2], W_SNAP, store, client=client, campaign="t1", progress=False
    )
    assert (report.total, report.ok, report.failed, report.duplicates) == (12, 10, 0, 2)
    calc = make_oracle(W_SNAP).build()
    rows = {r.key_value_pairs["structure_hash"]: r for r in store.rows()}
    assert len(rows) == 10
    from potforge.data.structures import structure_hash

    for a in structures:
        row = rows[structure_hash(a)]
        ref = a.copy()
        ref.calc = calc
        assert row.energy == pytest.approx(ref.get_potential_energy(), abs=1e-8)
        np.testing.assert_allclose(row.forces, ref.get_forces(), atol=1e-8)
        np.testing.assert_allclose(row.stress, ref.get_stress(), atol=1e-10)
        kvp = row.key_value_pairs
        assert kvp["status"] == "ok" and kvp["campaign"] == "t1" and kvp["group"] == "rattled"
        assert kvp["oracle"] == W_SNAP and kvp["oracle_version"].startswith("lammps ")
        assert kvp["wall_time"] > 0 and kvp["host"] and kvp["potforge_version"]
    assert len({r.key_value_pairs["worker"] for r in rows.values()}) == 2
    # nothing is computed twice: a rerun (here through the scheduler address) labels nothing
    again = label(structures, W_SNAP, store, scheduler=client.scheduler.address, progress=False)
    assert (again.ok, again.skipped) == (0, 10) and len(store) == 10
    # a different oracle is a different key
    eam = label(structures[:3], "lammps:W_zhou.eam.alloy", store, client=client, progress=False)
    assert eam.ok == 3 and len(store) == 13


FLAKY = '''
import os, time
import numpy as np
from ase.calculators.calculator import Calculator, SCFError


class Flaky(Calculator):
    """Behaves as atoms.info["mode"] says: ok, raise, scf, huge, nan, hang, die, once."""

    implemented_properties = ["energy", "forces", "stress"]

    def __init__(self, marker="", **kwargs):
        super().__init__(**kwargs)
        self.marker = marker

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        super().calculate(atoms, properties, system_changes)
        mode = self.atoms.info.get("mode", "ok")
        if mode == "raise":
            raise RuntimeError("segmentation-free explosion")
        if mode == "scf":
            raise SCFError("SCF did not converge after 80 iterations")
        if mode == "hang":
            time.sleep(600)
        if mode == "die":
            os._exit(3)
        if mode == "once" and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            raise RuntimeError("transient failure")
        f = np.zeros((len(self.atoms), 3))
        f[0, 0] = {"huge": 1e3, "nan": np.nan}.get(mode, 0.5)
        self.results = {"energy": -1.0 * len(self.atoms), "forces": f, "stress": np.zeros(6)}
'''


def test_failures_are_classified_recorded_and_retried(client, tmp_path):
    module = tmp_path / "flaky.py"
    module.write_text(FLAKY)
    oracle = make_oracle(f"{module}:Flaky", marker=str(tmp_path / "marker"))
    modes = ["ok", "raise", "scf", "huge", "nan", "hang", "once", "die"]
    structures = rattled(len(modes), reps=1, amp=0.1)
    for a, m in zip(structures, modes, strict=True):
        a.info["mode"] = m
    overlap = structures[0].copy()
    overlap.positions[1] = overlap.positions[0] + [0.2, 0.0, 0.0]
    store = Store(tmp_path / "f.db")
    # a dying worker takes the unfetched results of earlier tasks with it (Dask recomputes
    # them), which would blur the "once" case: the killer runs in a call of its own
    report = label(
        structures[:-1] + [overlap], oracle, store, client=client, timeout=2.0, progress=False
    )
    died = label(structures[-1:], oracle, store, client=client, progress=False)
    got = {r.key_value_pairs["structure_hash"]: r for r in store.rows(include_data=True)}
    assert len(got) == len(modes) + 1  # nothing silently dropped
    from potforge.data.structures import structure_hash

    def row(a):
        return got[structure_hash(a)]

    expect = {
        "raise": "calculator_crash",
        "scf": "scf_not_converged",
        "huge": "unphysical",
        "nan": "unphysical",
        "hang": "timeout",
        "die": "calculator_crash",
    }
    for a, m in zip(structures, modes, strict=True):
        kvp = row(a).key_value_pairs
        if m in expect:
            assert (kvp["status"], kvp["failure"]) == ("failed", expect[m]), (m, row(a).data)
            assert row(a).data["message"]
        else:
            assert kvp["status"] == "ok", (m, row(a).data.get("message"))
    pairs = zip(structures, modes, strict=True)
    attempts = {m: row(a).key_value_pairs["attempts"] for a, m in pairs}
    assert attempts == {
        "ok": 1,
        "raise": 2,
        "scf": 1,
        "huge": 1,
        "nan": 1,
        "hang": 2,
        "once": 2,
        "die": 2,
    }
    assert "segmentation-free explosion" in row(structures[1]).data["message"]
    assert "exceeds 100 eV/Å" in row(structures[modes.index("huge")]).data["message"]
    assert "no result after 2 s" in row(structures[modes.index("hang")]).data["message"]
    assert "died" in row(structures[-1]).data["message"]
    bad = row(overlap)
    assert bad.key_value_pairs["failure"] == "invalid_structure"
    assert "only 0.200 Å apart" in bad.data["message"]
    assert (report.ok, report.failed, died.failed) == (2, 6, 1)
    # the cluster survived the hung and the dying workers: it still labels
    assert label(rattled(2, seed0=50), W_SNAP, store, client=client, progress=False).ok == 2


def _rows(db: Path) -> int:
    try:
        con = sqlite3.connect(db, timeout=30)
        try:
            return con.execute("SELECT COUNT(*) FROM systems").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:  # not created yet
        return 0


@pytest.mark.timeout(120)
def test_sigkill_mid_run_then_resume_loses_and_duplicates_nothing(tmp_path):
    n = 60
    inp = tmp_path / "in.extxyz"
    ase.io.write(inp, rattled(n, reps=3, amp=0.06, seed0=100))  # 54-atom cells
    db = tmp_path / "kill.db"
    cmd = [
        sys.executable,
        "-c",
        CLI,
        "label",
        str(inp),
        "--oracle",
        W_SNAP,
        "--db",
        str(db),
        "--workers",
        "2",
        "--no-progress",
    ]
    kill_at = random.SystemRandom().randint(2, n // 2)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while _rows(db) < kill_at and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        try:  # the orphaned worker processes of the killed run
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == -signal.SIGKILL
    after_kill = _rows(db)
    assert kill_at <= after_kill < n, f"kill point {kill_at}: {after_kill} rows"
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the resumed run hung; its stderr ends: {str(exc.stderr)[-3000:]}")
    assert done.returncode == 0, done.stderr
    m = re.search(r"(\d+) labelled, (\d+) failed.*, (\d+) already in the store", done.stdout)
    assert m, done.stdout
    labelled, failed, skipped = map(int, m.groups())
    assert (labelled, failed, skipped) == (n - after_kill, 0, after_kill), done.stdout
    store = Store(db)
    assert store.integrity_ok()
    keys = [r.key_value_pairs["label_key"] for r in store.rows()]
    assert len(keys) == n and len(set(keys)) == n  # 0 lost, 0 duplicated
    assert store.summary()["status"] == {"ok": n}
    # the stored labels are the oracle's
    calc = make_oracle(W_SNAP).build()
    for a in store.to_atoms()[:: n // 4]:
        ref = a.copy()
        ref.calc = calc
        assert a.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-8)


def test_cli_label_summary_export_and_errors(tmp_path, capsys, monkeypatch):
    from potforge import cli

    monkeypatch.setattr(cli, "COMMANDS", ("label", "db"))
    inp = tmp_path / "in.extxyz"
    ase.io.write(inp, rattled(3, reps=1))
    db = tmp_path / "c.db"
    assert (
        cli.main(
            [
                "label",
                str(inp),
                "--oracle",
                "lammps:W_zhou.eam.alloy",
                "--db",
                str(db),
                "--workers",
                "1",
                "--no-progress",
                "--campaign",
                "c1",
            ]
        )
        == 0
    )
    assert "3 labelled, 0 failed" in capsys.readouterr().out
    assert cli.main(["db", "summary", str(db)]) == 0
    out = capsys.readouterr().out
    assert "3 row(s)" in out and "lammps:W_zhou.eam.alloy" in out
    assert (
        cli.main(["db", "export", str(db), "--format", "extxyz", "-o", str(tmp_path / "o.xyz")])
        == 0
    )
    assert len(ase.io.read(tmp_path / "o.xyz", ":")) == 3
    capsys.readouterr()
    for argv, pattern in [
        (["label", str(inp), "--oracle", "gpwa", "--db", str(db)], "did you mean gpaw"),
        (
            ["label", str(inp), "--oracle", "lammps:W_zhou.eam", "--db", str(db)],
            "close matches: W_zhou.eam.alloy",
        ),
        (
            ["label", str(inp), "--oracle", "emt", "--db", str(tmp_path / "no" / "c.db")],
            "does not exist",
        ),
        (["label", str(inp), "--oracle", "emt", "--set", "oops", "--db", str(db)], "KEY=VALUE"),
        (["db", "summary", str(tmp_path / "none.db")], "no such database file"),
    ]:
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert re.search(pattern, err) and "\n" not in err, err


def test_a_hung_oracle_is_one_timeout_and_blames_no_other_structure(tmp_path):
    """One worker, no retries: the structure queued behind the hung one used to die with the
    restarted worker and be stored as calculator_crash (the report read "timeout: 1,
    calculator_crash: 1" for one hung oracle)."""
    module = tmp_path / "flaky.py"
    module.write_text(FLAKY)
    structures = rattled(4, reps=1, amp=0.1, seed0=300)
    structures[0].info["mode"] = "hang"  # sleeps 600 s
    store = Store(tmp_path / "h.db")
    t0 = time.monotonic()
    report = label(
        structures, f"{module}:Flaky", store, workers=1, timeout=1.0, retries=0, progress=False
    )
    assert time.monotonic() - t0 < 60
    assert (report.ok, report.failed, dict(report.failures)) == (3, 1, {"timeout": 1}), report
    rows = {r.key_value_pairs["structure_hash"]: r for r in store.rows(include_data=True)}
    from potforge.data.structures import structure_hash

    hung = rows[structure_hash(structures[0])]
    assert (hung.key_value_pairs["failure"], hung.key_value_pairs["attempts"]) == ("timeout", 1)
    assert "no result after 1 s" in hung.data["message"]
    assert report.examples["timeout"].startswith("structure 0 W2")
    for a in structures[1:]:
        assert rows[structure_hash(a)].key_value_pairs["status"] == "ok"
    assert store.summary()["failure"] == {"timeout": 1}


def test_options_are_checked_before_any_work(tmp_path):
    from potforge.errors import DataError
    from potforge.oracles.labelling import DEFAULT_TIMEOUT, check_options

    assert DEFAULT_TIMEOUT == 3600.0
    check_options(workers=None, timeout=None)  # no limit is allowed
    db = tmp_path / "never.db"
    for kwargs, pattern in [
        ({"workers": 0}, r"^workers must be a whole number of at least 1, got 0$"),
        ({"workers": 1.5}, "workers must be a whole number"),
        ({"timeout": 0}, r"^timeout must be a positive number of seconds \(None for no limit\)"),
        ({"timeout": -3.0}, "got -3.0"),
        ({"timeout": float("nan")}, "timeout must be a positive number"),
        ({"retries": -1}, r"^retries must be a whole number, 0 or more, got -1$"),
        ({"max_force": 0.0}, r"^max_force must be a positive force in eV/Å, got 0.0$"),
    ]:
        with pytest.raises(DataError, match=pattern):
            label(rattled(1), W_SNAP, db, progress=False, **kwargs)
    assert not db.exists()
