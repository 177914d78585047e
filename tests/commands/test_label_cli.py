"""``potforge label`` on the command line: exit codes, the failure summary, input checked before
any work, progress output, and Ctrl-C on a real run (real LocalCluster, LAMMPS, SQLite)."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import ase.io
import pytest
from ase.build import bulk

from potforge.data.store import Store

W_SNAP = "lammps:W_2940_2017_2.snap"
CLI = "import sys, potforge.cli as c; c.COMMANDS = ('label', 'db'); sys.exit(c.main())"

CALC = '''
import time
import numpy as np
from ase.calculators.calculator import Calculator


class Toy(Calculator):
    """atoms.info["mode"]: "ok", "raise" or "hang"; every single point takes `pause` s."""

    implemented_properties = ["energy", "forces", "stress"]

    def __init__(self, pause=0.0, **kwargs):
        super().__init__(**kwargs)
        self.pause = pause

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        super().calculate(atoms, properties, system_changes)
        mode = self.atoms.info.get("mode", "ok")
        if mode == "raise":
            raise RuntimeError("the toy calculator gave up")
        time.sleep(600 if mode == "hang" else self.pause)
        n = len(self.atoms)
        self.results = {"energy": -1.0 * n, "forces": np.zeros((n, 3)), "stress": np.zeros(6)}
'''


def cells(n: int, element: str = "W", seed0: int = 0, modes: dict | None = None) -> list:
    lattice = {"W": ("bcc", 3.18), "Cu": ("fcc", 3.61)}[element]
    out = []
    for i in range(n):
        a = bulk(element, lattice[0], a=lattice[1], cubic=True)
        a.rattle(0.05, seed=seed0 + i)
        a.info["mode"] = (modes or {}).get(i, "ok")
        out.append(a)
    return out


@pytest.fixture()
def cli(monkeypatch):
    from potforge import cli as module

    monkeypatch.setattr(module, "COMMANDS", ("label", "db"))
    return module


def test_every_structure_failing_exits_1_with_the_reason_and_an_example(cli, tmp_path, capsys):
    inp = tmp_path / "cu.extxyz"
    ase.io.write(inp, cells(3, "Cu"))
    db = tmp_path / "c.db"
    argv = ["label", str(inp), "--oracle", W_SNAP, "--db", str(db), "--workers", "1"]
    assert cli.main(argv) == 1
    out, err = capsys.readouterr()
    assert "0 labelled, 3 failed (invalid_structure: 3)" in out
    assert "Traceback" not in err
    assert "potforge label: 3 structure(s) failed, by reason:" in err
    example = re.search(r"^  invalid_structure \(3\): (.*)$", err, re.M)
    assert example, err
    assert "structure 0 Cu4" in example.group(1)
    assert f"element(s) Cu that oracle {W_SNAP} does not know (it knows W)" in example.group(1)
    assert f"potforge db summary {db} --failures" in err
    # rerun: nothing is labelled again, but the structures are still not labelled: exit 1
    assert cli.main(argv + ["--quiet"]) == 1
    out, err = capsys.readouterr()
    assert "3 already in the store (3 of them as failed)" in out
    assert "3 structure(s) stored as failed by an earlier run were not retried" in err
    assert "--retry-failed" in err and err.count("\n") == 2, err


def test_partial_failure_exits_1_success_exits_0_and_progress_is_plain_lines(cli, tmp_path, capsys):
    calc = tmp_path / "toy.py"
    calc.write_text(CALC)
    inp = tmp_path / "in.extxyz"
    ase.io.write(inp, cells(4, modes={1: "raise"}))
    db = tmp_path / "c.db"
    argv = ["label", str(inp), "--oracle", f"{calc}:Toy", "--db", str(db), "--workers", "1"]
    assert cli.main(argv + ["--retries", "0"]) == 1
    out, err = capsys.readouterr()
    assert "3 labelled, 1 failed (calculator_crash: 1)" in out
    assert re.search(
        r"^  calculator_crash \(1\): .*structure 1 W2.*RuntimeError: the toy calculator gave up",
        err,
        re.M,
    ), err
    # stderr is no terminal here: one plain line per stage, no bar
    assert "label: 4 structure(s) to label with" in err
    assert "label: starting a local Dask cluster of 1 worker(s)" in err
    assert "label: done: 3 labelled, 1 failed" in err
    assert "\r" not in err and "it/s" not in err and "structure/s" not in err
    assert "Traceback" not in err
    # all succeed (the failed one is left alone; new cells): exit 0, and --no-progress still works
    ase.io.write(inp, cells(2, seed0=10))
    for flag in ("--quiet", "--no-progress"):
        assert cli.main(argv + [flag]) == 0
        out, err = capsys.readouterr()
        assert "failed" not in err and "label:" not in err and err == ""
    assert len(Store(db)) == 6


def test_a_hung_calculator_file_is_one_timeout(cli, tmp_path, capsys):
    calc = tmp_path / "toy.py"
    calc.write_text(CALC)
    inp = tmp_path / "in.extxyz"
    ase.io.write(inp, cells(3, modes={0: "hang"}))
    db = tmp_path / "c.db"
    argv = ["label", str(inp), "--oracle", f"{calc}:Toy", "--db", str(db), "--workers", "1"]
    assert cli.main(argv + ["--timeout", "1", "--retries", "0", "-q"]) == 1
    out, err = capsys.readouterr()
    assert "2 labelled, 1 failed (timeout: 1)" in out, out
    assert "calculator_crash" not in out + err
    assert re.search(r"^  timeout \(1\): .*no result after 1 s on worker", err, re.M), err
    assert Store(db).summary()["failure"] == {"timeout": 1}


def test_help_states_the_default_timeout_and_the_exit_codes(cli, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["label", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "default 3600; none: no limit" in text
    assert "-q, --quiet, --no-progress" in text
    for code, what in [
        ("0", "every structure given is labelled"),
        ("1", "labelling ran, but some structures failed"),
        ("2", "bad input to the command itself"),
        ("130", "interrupted"),
    ]:
        assert f"{code} {what}" in text, what


def test_parse_timeout():
    from potforge.commands.label import parse_timeout

    assert parse_timeout(None) == 3600.0
    assert parse_timeout("none") is None and parse_timeout("None") is None
    assert parse_timeout("2.5") == 2.5


def test_progress_is_a_bar_on_a_terminal_and_lines_in_a_file(tmp_path):
    from potforge.oracles.labelling import _Progress

    master, slave = os.openpty()  # a real terminal
    with os.fdopen(slave, "w") as tty:
        shown = _Progress(True, stream=tty)
        shown.stage("not shown: the bar says it")
        shown.start(3, "lammps:X")
        for i in range(3):
            shown.update(i + 1, 0)
        shown.close()
    chunks = []
    while True:  # all of it: the terminal hands it over in pieces, then EIO once drained
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    text = b"".join(chunks).decode()
    assert "lammps:X: 100%" in text and "3/3" in text and "not shown" not in text
    with open(tmp_path / "log.txt", "w") as log:
        shown = _Progress(True, stream=log)
        shown.stage("starting")
        shown.start(20, "lammps:X")
        for i in range(20):
            shown.update(i + 1, 0)
        shown.close()
    lines = (tmp_path / "log.txt").read_text().splitlines()
    assert lines[0] == "label: starting" and lines[1] == "label: 2/20 done (2 ok, 0 failed)"
    assert len(lines) == 10 and "%" not in "".join(lines)  # each tenth but the last
    with open(tmp_path / "quiet.txt", "w") as log:
        shown = _Progress(False, stream=log)
        shown.stage("x")
        shown.start(1, "y")
        shown.update(1, 0)
    assert (tmp_path / "quiet.txt").read_text() == ""


@pytest.mark.parametrize(
    "extra, pattern",
    [
        (["--workers", "0"], r"--workers must be a whole number of at least 1, got 0$"),
        (["--workers", "-2"], r"--workers must be a whole number of at least 1, got -2$"),
        (["--timeout", "0"], r"--timeout must be a positive number of seconds \(none for no"),
        (["--timeout", "-5"], r"--timeout must be .*got -5.0$"),
        (["--timeout", "soon"], r"--timeout must be .*got 'soon'$"),
        (["--timeout", "nan"], r"--timeout must be a positive number"),
        (["--retries", "-1"], r"--retries must be a whole number, 0 or more, got -1$"),
        (["--max-force", "0"], r"--max-force must be a positive force in eV/Å, got 0.0$"),
        (["--max-force", "-3"], r"--max-force must be a positive force in eV/Å, got -3.0$"),
        (
            ["--oracle", "CALC", "--set", "pasue=1"],
            r"does not take the setting 'pasue' \(it takes pause, plus ASE's .*did you mean pause",
        ),
        (
            ["--oracle", "emt", "--set", "cutoff=1"],
            r"oracle emt does not take the setting 'cutoff'",
        ),
        (["--oracle", "lammps:W_2940_2017_2.snap", "--set", "ecut=4"], r"does not take .*'ecut'"),
        (["--oracle", "gpwa"], r"unknown oracle 'gpwa'.*did you mean gpaw"),
        (["--oracle", "lammps:W_zhou.eam"], r"close matches: W_zhou.eam.alloy"),
        (["STRUCTURES", "missing.extxyz"], r"structures file .*missing.extxyz does not exist$"),
    ],
)
def test_bad_input_exits_2_with_one_sentence_before_any_work(cli, tmp_path, capsys, extra, pattern):
    calc = tmp_path / "toy.py"
    calc.write_text(CALC)
    inp = tmp_path / "in.extxyz"
    ase.io.write(inp, cells(1))
    db = tmp_path / "c.db"
    argv = ["label", str(inp), "--oracle", f"{calc}:Toy", "--db", str(db)]
    if extra[0] == "STRUCTURES":
        argv.insert(2, str(tmp_path / extra[1]))
    elif extra[0] == "--oracle":
        argv[argv.index("--oracle") + 1] = extra[1].replace("CALC", f"{calc}:Toy")
        argv += extra[2:]
    else:
        argv += extra
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert err.startswith("potforge label: error: ") and err.count("\n") == 1, err
    assert re.search(pattern, err.strip()), err
    assert not db.exists()  # refused before the store (or anything else) was made


def _rows(db: Path) -> int:
    try:
        con = sqlite3.connect(db, timeout=30)
        try:
            return con.execute("SELECT COUNT(*) FROM systems").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


@pytest.mark.timeout(120)
def test_ctrl_c_prints_one_line_and_the_store_keeps_what_was_done(tmp_path):
    calc = tmp_path / "toy.py"
    calc.write_text(CALC)
    inp = tmp_path / "in.extxyz"
    n = 40
    ase.io.write(inp, cells(n, seed0=500))
    db = tmp_path / "c.db"
    cmd = [sys.executable, "-c", CLI, "label", str(inp), "--oracle", f"{calc}:Toy"]
    cmd += ["--set", "pause=0.2", "--db", str(db), "--workers", "2"]
    # a session of its own, so SIGINT goes to the whole process group, as a terminal's Ctrl-C
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while _rows(db) < 4 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    lines = [ln for ln in err.splitlines() if not ln.startswith("label: ")]  # progress lines
    assert lines == ["potforge label: interrupted"], err
    done = _rows(db)
    assert 4 <= done < n
    store = Store(db)
    assert store.integrity_ok() and store.summary()["status"] == {"ok": done}
