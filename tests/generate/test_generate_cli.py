"""``potforge generate`` / ``entropy`` / ``compress`` end to end: real LAMMPS descriptors, a
real store, the shipped W SNAP as oracle; a SIGKILLed generation resumes without regenerating
a finished configuration and ends with the uninterrupted run's set."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import ase.io
import numpy as np
import pytest
from ase.build import bulk

from potforge.cli import main
from potforge.data.store import Store

GEN = ["--element", "W", "--atoms", "8-12", "--volume-A3", "14-18", "--twojmax", "2",
       "--iterations", "4", "--workers", "1"]  # fmt: skip


def generate(db, n, *extra):
    return [sys.executable, "-m", "potforge.cli", "generate", *GEN, "--n", str(n),
            "--db", str(db), *extra]  # fmt: skip


def rows(db) -> dict[str, float]:
    """Candidate hash → the time its row was written."""
    if not os.path.exists(db):
        return {}
    with sqlite3.connect(db) as con:
        try:
            return dict(con.execute("SELECT structure_hash, created FROM potforge_candidates"))
        except sqlite3.OperationalError:
            return {}


def test_killed_generation_resumes_without_repeating(tmp_path):
    whole = subprocess.run(generate(tmp_path / "whole.db", 6), capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr[-2000:]
    proc = subprocess.Popen(generate(tmp_path / "k.db", 6, "--quiet"), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while len(rows(tmp_path / "k.db")) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    before = rows(tmp_path / "k.db")
    assert 0 < len(before) < 6  # killed part-way
    again = subprocess.run(generate(tmp_path / "k.db", 6), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    after = rows(tmp_path / "k.db")
    assert {h: after[h] for h in before} == before  # finished ones kept, not written again
    assert set(after) == set(rows(tmp_path / "whole.db"))  # the same set as without the kill
    # a larger --n extends; every configuration records its seed, index and novelty
    more = subprocess.run(generate(tmp_path / "k.db", 7), capture_output=True, text=True)
    assert more.returncode == 0, more.stderr[-2000:]
    got = Store(tmp_path / "k.db").candidates(method="entropy")
    assert sorted(a.info["generate_index"] for a in got) == list(range(7))
    assert all("generate_seed" in a.info and np.isfinite(a.info["novelty"]) for a in got[1:])


def _rattled(path, amplitude, n=4):
    frames = []
    for i in range(n):
        a = bulk("W", "bcc", a=3.18, cubic=True).repeat(2)
        a.rattle(amplitude, seed=i)
        frames.append(a)
    ase.io.write(path, frames, format="extxyz")
    return path


def test_entropy_table_matches_quests_and_compress_keeps_diversity(tmp_path, capsys):
    from quests.descriptor import get_descriptors
    from quests.entropy import entropy as q_entropy

    calm = _rattled(tmp_path / "calm.extxyz", 0.02)
    hot = _rattled(tmp_path / "hot.extxyz", 0.3)
    assert main(["entropy", str(calm), str(hot), "--descriptor", "quests", "--out",
                 str(tmp_path / "e")]) == 0  # fmt: skip
    table = capsys.readouterr().out.splitlines()
    h_calm = float(table[2].split()[3])
    ref = q_entropy(get_descriptors(ase.io.read(calm, ":"), k=32, cutoff=5.0), h=0.015)
    assert h_calm == pytest.approx(ref, abs=6e-4)  # printed to 3 decimals
    assert float(table[3].split()[3]) > h_calm  # the hot set is the more diverse
    assert (tmp_path / "e" / "entropy.png").stat().st_size > 0
    out = tmp_path / "sub.extxyz"
    pool = [str(calm), str(hot)]
    assert main(["compress", *pool, "--n", "3", "--out", str(out)]) == 0
    kept = ase.io.read(out, ":")
    assert len(kept) == 3
    hot_pos = [a.positions for a in ase.io.read(hot, ":")]
    n_hot = sum(any(np.allclose(k.positions, p) for p in hot_pos) for k in kept)
    assert n_hot >= 2  # greedy entropy prefers the diverse frames
    assert main(["compress", *pool, "--n", "3", "--out", str(out)]) == 2  # never overwrites
    assert "never overwrites" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, words",
    [
        (["generate", *GEN[:4], "--n", "2", "--atoms", "64-8"], "need 0 < LOW ≤ HIGH"),
        (["generate", "--element", "Xx", "--n", "2"], "not a chemical symbol"),
        (["generate", *GEN, "--n", "2", "--volume-A3", "1-2"], "cannot be kept at 1 Å³/atom"),
        (["generate", *GEN, "--n", "2", "--label"], "--label needs --oracle"),
        (["generate", *GEN, "--n", "2", "--bandwidth", "wide"], "must be nearest, silverman"),
        (["compress", "missing.extxyz", "--n", "2", "--out", "o.extxyz"], "no such file"),
        (["compress", "POOL", "--out", "o.extxyz"], "give --n (structures) or --atoms"),
        (["entropy", "EMPTY"], "the file is empty"),
        (["entropy", "PERFECT"], "every descriptor component has zero variance"),
        (["generate", *GEN, "--n", "2", "--extend", "EMPTY"], "the file is empty"),
    ],
)
def test_bad_input_is_one_sentence_exit_2(tmp_path, capsys, argv, words):
    os.chdir(tmp_path)
    (tmp_path / "EMPTY").write_text("")
    _rattled(tmp_path / "POOL", 0.1, n=2)
    _rattled(tmp_path / "PERFECT", 0.0, n=2)
    if argv[0] == "generate":
        argv += ["--db", str(tmp_path / "g.db")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
