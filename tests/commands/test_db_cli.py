"""``potforge db``: the failed-rows listing, JSON, a closed pipe, and exports that never write
over a database or an existing file (real SQLite stores, the real CLI)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import ase.io
import numpy as np
import pytest
from ase.build import bulk

from potforge.data.store import SQLITE_MAGIC, Store, label_key

CLI = "import sys, potforge.cli as c; c.COMMANDS = ('label', 'db'); sys.exit(c.main())"


def _store(path, ok: int = 3, failed: int = 2, pad: int = 0) -> Store:
    store = Store(path)
    with store.db:  # one transaction
        _fill(store, ok, failed, pad)
    return store


def _fill(store: Store, ok: int, failed: int, pad: int) -> None:
    for i in range(ok + failed):
        a = bulk("W", "bcc", a=3.17, cubic=True)
        a.rattle(0.05, seed=i)
        prov = {"oracle": "lammps:X", "group": "rattled", "source": "in.extxyz", "source_index": i}
        key = label_key(f"h{i}", "o")
        if i < ok:
            store.write(a, key, "ok", prov, -1.0 * i, np.zeros((2, 3)), np.zeros(6))
        else:
            prov.update(structure_hash=f"{i:064x}", failure="timeout", attempts=2)
            data = {"message": f"no result after 5 s on worker w{i}\nsecond line" + "." * pad}
            store.write(a, key, "failed", prov, data=data)


@pytest.fixture()
def cli(monkeypatch):
    from potforge import cli as module

    monkeypatch.setattr(module, "COMMANDS", ("label", "db"))
    return module


def test_summary_failures_lists_each_failed_row(cli, tmp_path, capsys):
    db = tmp_path / "c.db"
    _store(db)
    assert cli.main(["db", "summary", str(db), "--failures"]) == 0
    out = capsys.readouterr().out
    assert "5 row(s)" in out and "failed rows (2):" in out
    rows = [ln for ln in out.splitlines() if ln.startswith("  in.extxyz structure")]
    assert len(rows) == 2
    assert rows[0].startswith("  in.extxyz structure 3 W2  [000000000000]  timeout: no result")
    assert "on worker w3 second line" in rows[0]  # one line per row
    Store(tmp_path / "clean.db")
    assert cli.main(["db", "summary", str(tmp_path / "clean.db"), "--failures"]) == 0
    assert "no failed rows" in capsys.readouterr().out


def test_summary_json_is_machine_readable(cli, tmp_path, capsys):
    db = tmp_path / "c.db"
    _store(db)
    assert cli.main(["db", "summary", str(db), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["rows"] == 5 and doc["by_status"] == {"ok": 3, "failed": 2}
    assert doc["by_failure"] == {"timeout": 2} and "failures" not in doc
    assert cli.main(["db", "summary", str(db), "--json", "--failures"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [f["name"] for f in doc["failures"]] == [
        "in.extxyz structure 3 W2",
        "in.extxyz structure 4 W2",
    ]
    first = doc["failures"][0]
    assert first["failure"] == "timeout" and first["attempts"] == 2
    assert first["message"] == "no result after 5 s on worker w3\nsecond line"  # whole
    assert first["structure_hash"] == f"{3:064x}" and len(first["label_key"]) == 64


@pytest.mark.parametrize("verb", [["summary", "--failures"], ["export", "--status", "all"]])
def test_a_closed_stdout_pipe_ends_quietly(tmp_path, verb):
    db = tmp_path / "c.db"
    _store(db)
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "db", verb[0], str(db), *verb[1:]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()  # the reader is gone before anything is written, as with `| head`
    err = proc.stderr.read()
    proc.wait(60)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert proc.returncode == 141, err


def test_summary_into_head_prints_no_traceback(tmp_path):
    db = tmp_path / "c.db"
    _store(db, ok=1, failed=400, pad=300)  # ~110 kB of --failures: more than a pipe holds
    done = subprocess.run(
        [
            "bash",
            "-c",
            f'"{sys.executable}" -c "$0" db summary "$1" --failures | head -n 2',
            CLI,
            db,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.splitlines() == ["401 row(s)", "by status:"]
    assert done.stderr == "", done.stderr


def _export(cli, db, out, *flags) -> int:
    return cli.main(["db", "export", str(db), "-o", str(out), *flags])


def test_export_never_writes_over_a_database_or_a_file_it_was_not_told_to(cli, tmp_path, capsys):
    db = tmp_path / "c.db"
    _store(db)
    before = db.read_bytes()
    other = tmp_path / "other.db"
    _store(other, ok=1, failed=0)
    sqlite_named_otherwise = tmp_path / "campaign.sqlite"
    sqlite_named_otherwise.write_bytes(other.read_bytes())
    mine = tmp_path / "notes.extxyz"
    mine.write_text("my own notes\n")
    (tmp_path / "folder").mkdir()
    for out, flags, pattern in [
        (db, [], rf"^cannot export {db} into itself: give another output file$"),
        (db, ["--force"], "into itself"),
        (other, ["--force"], rf"^will not write extxyz to {other}: it is named or made like a "),
        (sqlite_named_otherwise, ["--force"], "named or made like a database"),
        (tmp_path / "new.db", [], "named or made like a database"),
        (mine, [], rf"^{mine} already exists; pass --force to replace it$"),
        (
            "/nonexistent/x",
            [],
            r"^cannot write /nonexistent/x: folder /nonexistent does not exist$",
        ),
        (tmp_path / "folder", ["--force"], "it is a folder"),
    ]:
        assert _export(cli, db, out, *flags) == 2, out
        err = capsys.readouterr().err
        assert err.startswith("potforge db: error: ") and err.count("\n") == 1, err
        assert re.search(pattern, err[len("potforge db: error: ") :].strip()), err
    assert db.read_bytes() == before and len(Store(db)) == 5
    assert other.read_bytes()[: len(SQLITE_MAGIC)] == SQLITE_MAGIC
    assert mine.read_text() == "my own notes\n"
    assert not (tmp_path / "new.db").exists()
    # asked for: replaced, whole, with no temporary file left beside it
    assert _export(cli, db, mine, "--force") == 0
    assert len(ase.io.read(mine, ":")) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "c.db",
        "campaign.sqlite",
        "folder",
        "notes.extxyz",
        "other.db",
    ]
    out = tmp_path / "fresh.extxyz"
    assert _export(cli, db, out, "--status", "failed") == 0 and len(ase.io.read(out, ":")) == 2
    assert "exported 2 structure(s)" in capsys.readouterr().err
