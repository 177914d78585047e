"""The campaign store: SQLite and a real throwaway PostgreSQL server, dedupe, concurrency."""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import tempfile
import time

import ase.io
import numpy as np
import pytest
from ase.build import bulk

from potforge.data.checkpoint import Checkpoint
from potforge.data.store import Selection, Store, format_summary, label_key
from potforge.data.structures import structure_hash
from potforge.errors import DataError


def _structure(seed: int):
    atoms = bulk("W", "bcc", a=3.17, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=seed)
    atoms.info.update(group="rattled" if seed % 2 else "strained", source="unit")
    return atoms


def _fill(store: Store, n: int = 6) -> list:
    frames = []
    for i in range(n):
        a = _structure(i)
        f = np.arange(12.0).reshape(4, 3) * (i + 1)
        s = np.linspace(-0.01, 0.01, 6) * (i + 1)
        rid = store.write(
            a,
            label_key(str(i), "oracle"),
            "ok",
            {"oracle": "lammps:X", "group": a.info["group"], "wall_time": 0.1},
            energy=-10.0 * (i + 1),
            forces=f,
            stress=s,
            data={"oracle_settings": {"a": 1}},
        )
        assert rid is not None
        frames.append((a, -10.0 * (i + 1), f, s))
    return frames


def _check_roundtrip(store: Store, frames) -> None:
    assert store.write(_structure(0), label_key("0", "oracle"), "ok", {}, energy=1.0) is None
    assert (
        store.write(
            _structure(99),
            label_key("x", "oracle"),
            "failed",
            {"oracle": "lammps:X", "failure": "timeout"},
            data={"message": "no result after 5 s"},
        )
        is not None
    )
    assert len(store) == len(frames) + 1
    assert len(store.done_keys()) == len(frames) + 1
    assert label_key("x", "oracle") not in store.done_keys(include_failed=False)
    back = store.to_atoms("ok")
    by_energy = {round(a.get_potential_energy(), 6): a for a in back}
    for a, e, f, s in frames:
        b = by_energy[round(e, 6)]
        np.testing.assert_allclose(b.positions, a.positions, atol=1e-12)
        np.testing.assert_allclose(b.get_forces(), f)
        np.testing.assert_allclose(b.get_stress(), s)
        assert b.info["group"] == a.info["group"] and b.info["oracle"] == "lammps:X"
    failed = next(store.rows(status="failed", include_data=True))
    assert failed.data["message"] == "no result after 5 s"
    summary = store.summary()
    assert summary["status"] == {"ok": len(frames), "failed": 1}
    assert summary["failure"] == {"timeout": 1}
    assert summary["group"]["rattled"] == sum(1 for a, *_ in frames if a.info["group"] == "rattled")


def test_sqlite_roundtrip_dedupe_summary(tmp_path):
    store = Store(tmp_path / "c.db")
    frames = _fill(store)
    _check_roundtrip(store, frames)
    assert store.integrity_ok()
    text = format_summary(store.summary(), len(store))
    assert "7 row(s)" in text and "timeout" in text


def test_export_extxyz_keeps_labels(tmp_path):
    store = Store(tmp_path / "c.db")
    frames = _fill(store, 3)
    out = tmp_path / "out.extxyz"
    assert store.export(out) == 3
    back = ase.io.read(out, ":")
    energies = sorted(a.get_potential_energy() for a in back)
    assert energies == pytest.approx(sorted(e for _, e, _, _ in frames))
    buf = io.StringIO()
    assert store.export(buf) == 3 and buf.getvalue().count("Lattice=") == 3
    with pytest.raises(DataError, match="unknown export format"):
        store.export(out, fmt="cif")


def test_export_writes_a_whole_file_and_never_over_data(tmp_path):
    store = Store(tmp_path / "c.db")
    _fill(store, 2)
    out = tmp_path / "out.extxyz"
    out.write_text("precious\n")
    with pytest.raises(DataError, match=r"out.extxyz already exists; pass force=True to replace"):
        store.export(out)
    assert out.read_text() == "precious\n"
    assert store.export(out, force=True) == 2 and len(ase.io.read(out, ":")) == 2
    with pytest.raises(DataError, match="into itself"):
        store.export(tmp_path / "c.db", force=True)
    assert len(Store(tmp_path / "c.db")) == 2
    with pytest.raises(DataError, match="folder .*missing does not exist"):
        store.export(tmp_path / "missing" / "x.extxyz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.db", "out.extxyz"]  # no .part


def test_statuses_and_failures(tmp_path):
    store = Store(tmp_path / "c.db")
    _fill(store, 2)
    bad = _structure(7)
    prov = {"failure": "unphysical", "source": "x.extxyz", "source_index": 7, "attempts": 1}
    store.write(bad, label_key("bad", "o"), "failed", prov, data={"message": "too much force"})
    assert store.statuses() == {
        label_key("0", "oracle"): "ok",
        label_key("1", "oracle"): "ok",
        label_key("bad", "o"): "failed",
    }
    [row] = store.failures()
    assert row["name"] == "x.extxyz structure 7 W4" and row["failure"] == "unphysical"
    assert row["message"] == "too much force" and row["label_key"] == label_key("bad", "o")


def test_replace_turns_a_failed_row_into_ok(tmp_path):
    store = Store(tmp_path / "c.db")
    key = label_key("a", "o")
    store.write(_structure(1), key, "failed", {"failure": "timeout"})
    assert store.write(_structure(1), key, "ok", {}, energy=-3.0) is None
    assert store.write(_structure(1), key, "ok", {}, energy=-3.0, replace=True) is not None
    assert len(store) == 1 and store.summary()["status"] == {"ok": 1}


@pytest.mark.parametrize(
    "where, pattern",
    [
        ("missing/dir/c.db", "folder .* does not exist"),
        (".", "is a folder"),
        ("afile/c.db", "folder .* does not exist"),
    ],
)
def test_unwritable_database_paths(tmp_path, where, pattern):
    (tmp_path / "afile").write_text("not a folder")
    with pytest.raises(DataError, match=pattern):
        Store(tmp_path / where)


def test_garbage_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "junk.db"
    bad.write_bytes(b"this is not an sqlite database" * 100)
    with pytest.raises(DataError, match="cannot open or write database"):
        Store(bad)


def test_unreachable_postgres_is_one_sentence():
    port = _free_port()
    with pytest.raises(DataError, match=f"cannot connect to PostgreSQL at .*:{port}") as err:
        Store(f"postgresql://someone:secret@127.0.0.1:{port}/campaign")
    assert "secret" not in str(err.value) and "\n" not in str(err.value)


def _writer(path: str, start: int, stop: int) -> None:
    store = Store(path)
    for i in range(start, stop):
        store.write(
            _structure(i),
            label_key(str(i), "o"),
            "ok",
            {"writer": os.getpid()},
            energy=float(-i),
            forces=np.zeros((4, 3)),
            stress=np.zeros(6),
        )


def test_concurrent_writers_neither_corrupt_nor_duplicate(tmp_path):
    path = str(tmp_path / "c.db")
    Store(path)
    ctx = mp.get_context("fork")
    # overlapping key ranges: 0..29, 15..44, 0..44 written by three processes at once
    procs = [
        ctx.Process(target=_writer, args=(path, a, b)) for a, b in ((0, 30), (15, 45), (0, 45))
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = Store(path)
    assert store.integrity_ok()
    assert len(store) == 45 and len(store.done_keys()) == 45
    energies = sorted(a.get_potential_energy() for a in store.to_atoms())
    assert energies == pytest.approx([-float(i) for i in range(44, -1, -1)])


# ---------------------------------------------------------------- candidates and selections
def _label(store: Store, atoms, oracle_key: str, status: str = "ok") -> None:
    """A label row as the labelling path writes it (keyed by structure hash + oracle key)."""
    shash = structure_hash(atoms)
    prov = {"structure_hash": shash, "oracle": "emt", "oracle_key": oracle_key}
    energy = -1.0 if status == "ok" else None
    assert store.write(atoms, label_key(shash, oracle_key), status, prov, energy) is not None


def _check_candidates(store: Store) -> None:
    frames = [_structure(i) for i in range(4)]
    frames[1].set_momenta(np.full((4, 3), 0.01))
    frames[2].info["parent_note"] = {"not": "scalar"}  # non-scalar info is not kept
    prov = [{"parent": None, "seed": i, "explorer": "md"} for i in range(4)]
    hashes = store.add_candidates(frames, "md", loop="al", iteration=3, provenance=prov)
    assert hashes == [structure_hash(a) for a in frames]
    again = store.add_candidates([frames[0], _structure(9)], "entropy", provenance={"seed": 5})
    assert again[0] == hashes[0]
    back = store.candidates()
    assert [a.info["structure_hash"] for a in back] == hashes + [again[1]]  # oldest first
    first = back[0].info  # stored once: the first provenance is kept
    assert (first["method"], first["loop"], first["iteration"], first["seed"]) == ("md", "al", 3, 0)
    assert first["explorer"] == "md" and first["parent"] is None and first["status"] == "candidate"
    assert first["group"] == "strained" and first["source"] == "unit"
    assert back[4].info["method"] == "entropy" and back[4].info["loop"] == ""
    assert "parent_note" not in back[2].info
    for a, b in zip(frames, back, strict=False):
        np.testing.assert_array_equal(b.positions, a.positions)
        np.testing.assert_array_equal(b.cell.array, a.cell.array)
        assert structure_hash(b) == structure_hash(a) and b.calc is None
    np.testing.assert_allclose(back[1].get_momenta(), 0.01)
    # the label rows are a separate thing: ase.db, exports and summaries see none of this
    assert len(store) == 0 and store.statuses() == {} and store.summary()["status"] == {}
    assert [a.info["seed"] for a in store.candidates(method="md", loop="al", iteration=3)] == [
        0,
        1,
        2,
        3,
    ]
    assert store.candidates(iteration=4) == []
    picked = store.candidates(hashes=[hashes[2], hashes[0]])
    assert [a.info["structure_hash"] for a in picked] == [hashes[2], hashes[0]]
    with pytest.raises(DataError, match="1 of 2 structure hash.* are not candidates in"):
        store.candidates(hashes=[hashes[0], "f" * 64])

    # statuses follow the label rows of the same structure hash (per oracle when asked)
    _label(store, frames[0], "oracleA")
    _label(store, frames[1], "oracleA", "failed")
    _label(store, frames[1], "oracleB")
    assert list(store.candidate_statuses().values()) == [
        "ok",
        "ok",
        "candidate",
        "candidate",
        "candidate",
    ]
    by_a = store.candidate_statuses("oracleA")
    assert [by_a[h] for h in hashes] == ["ok", "failed", "candidate", "candidate"]
    by_b = store.candidate_statuses("oracleB")
    assert [by_b[h] for h in hashes] == ["candidate", "ok", "candidate", "candidate"]
    todo = store.candidates("candidate", "oracleA")
    assert [a.info["structure_hash"] for a in todo] == hashes[2:] + [again[1]]
    [failed] = store.candidates("failed", "oracleA", hashes=hashes)
    assert failed.info["structure_hash"] == hashes[1] and failed.info["status"] == "failed"
    assert len(store) == 3 and store.summary()["status"] == {"ok": 2, "failed": 1}


def _check_selections(store: Store) -> None:
    assert store.add_selection(["h3", "h1", "h2"], "information-matching", 3, [0.5, 0.2, 0.3])
    assert not store.add_selection(  # the same again: nothing written
        ["h3", "h1", "h2"], "information-matching", 3, [0.5, 0.2, 0.3]
    )
    assert store.add_selection(["h1"], "information-matching", 4, loop="im")
    assert store.add_selection(["h9", "h8"], "uncertainty", 3, [1, 2], loop="al")
    with pytest.raises(DataError, match="information-matching already recorded another selection"):
        store.add_selection(["h3", "h1"], "information-matching", 3, [0.5, 0.5])
    got = store.selections(method="information-matching", iteration=3)
    assert got == [Selection("", "information-matching", 3, ("h3", "h1", "h2"), (0.5, 0.2, 0.3))]
    assert store.selections(loop="im") == [
        Selection("im", "information-matching", 4, ("h1",), (None,))
    ]
    assert [s.method for s in store.selections(iteration=3)] == [
        "information-matching",
        "uncertainty",
    ]
    assert store.selections(loop="al")[0].weights == (1.0, 2.0)


def test_candidates_stored_once_with_provenance_and_status_from_labels(tmp_path):
    _check_candidates(Store(tmp_path / "c.db"))


def test_selections_keep_order_and_weights_and_refuse_another(tmp_path):
    _check_selections(Store(tmp_path / "c.db"))


@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda s: s.add_candidates([_structure(0)], ""), "method must be a non-empty string"),
        (lambda s: s.add_candidates([_structure(0)], "md", iteration=-2), "0 or more"),
        (lambda s: s.add_candidates(["POSCAR"], "md"), "must be ase.Atoms"),
        (lambda s: s.add_candidates([_structure(0)], "md", provenance=[{}, {}]), "2 entries for 1"),
        (
            lambda s: s.add_candidates([_structure(0)], "md", provenance={"iteration": 2}),
            "provenance key.* iteration are set by the store",
        ),
        (
            lambda s: s.add_candidates([_structure(0)], "md", provenance={"x": object()}),
            "candidate provenance must be plain JSON",
        ),
        (lambda s: s.candidates(status="done"), "candidate status must be one of"),
        (lambda s: s.add_selection(["a", "a"], "m", 0), "distinct non-empty"),
        (lambda s: s.add_selection(["a"], "m", 0, [float("nan")]), "must be finite"),
        (lambda s: s.add_selection(["a"], "m", 0, ["heavy"]), "must be numbers"),
        (lambda s: s.add_selection(["a"], "m", 1.5), "whole number"),
    ],
)
def test_bad_candidates_and_selections_are_one_sentence(tmp_path, call, pattern):
    store = Store(tmp_path / "c.db")
    with pytest.raises(DataError, match=pattern):
        call(store)
    assert store.candidates() == [] and store.selections() == []


def test_a_transaction_is_all_or_nothing(tmp_path):
    store = Store(tmp_path / "c.db")
    with pytest.raises(DataError, match="another selection"):
        with store.transaction() as execute:
            store._insert_candidates(
                execute, store._candidate_rows([_structure(1)], "md", "", 0, None)
            )
            store._insert_selection(execute, store._selection_rows(["a"], "m", 0, None, ""))
            store._insert_selection(execute, store._selection_rows(["b"], "m", 0, None, ""))
    assert store.candidates() == [] and store.selections() == []
    assert store.integrity_ok() and len(Store(tmp_path / "c.db")) == 0


def test_candidates_labelled_by_the_labelling_path_become_ok(tmp_path):
    from potforge.oracles import make_oracle
    from potforge.oracles.labelling import dask_client, label

    store = Store(tmp_path / "c.db")
    frames = []
    for i in range(3):
        a = bulk("Cu", "fcc", a=3.6, cubic=True)
        a.rattle(0.05, seed=i)
        frames.append(a)
    hashes = store.add_candidates(frames, "rattle", loop="toy", iteration=0)
    emt = make_oracle("emt")
    with dask_client(workers=1) as client:
        report = label(
            store.candidates(hashes=hashes[:2]), emt, store, client=client, progress=False
        )
        assert report.ok == 2 and report.complete
        states = store.candidate_statuses(emt.key)
        assert [states[h] for h in hashes] == ["ok", "ok", "candidate"]
        todo = store.candidates("candidate", emt.key)
        assert [a.info["structure_hash"] for a in todo] == hashes[2:]
        assert sorted(a.info["structure_hash"] for a in store.to_atoms()) == sorted(hashes[:2])
        again = label(store.candidates(hashes=hashes), emt, store, client=client, progress=False)
        assert (again.ok, again.skipped) == (1, 2)
    assert set(store.candidate_statuses(emt.key).values()) == {"ok"}


# ---------------------------------------------------------------------------- PostgreSQL
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL cluster (initdb + pg_ctl as user postgres) on a free port."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) are not installed "
            "(apt-get install postgresql)"
        )
    user = "postgres"
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser: cannot start PostgreSQL")
        as_user = ["runuser", "-u", user, "--"]
    root = tempfile.mkdtemp(prefix="potforge-pg-")
    if as_user:
        try:
            shutil.chown(root, user)
        except (LookupError, PermissionError) as exc:
            pytest.skip(f"cannot hand a data folder to user {user}: {exc}")
    data, port = os.path.join(root, "data"), _free_port()
    try:
        subprocess.run(
            as_user + [initdb, "-D", data, "--auth=trust", "-U", user],
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            as_user
            + [
                pg_ctl,
                "-D",
                data,
                "-w",
                "-t",
                "60",
                "-l",
                os.path.join(root, "log"),
                "-o",
                f"-c listen_addresses=127.0.0.1 -p {port} -c fsync=off "
                f"-c unix_socket_directories={root}",
                "start",
            ],
            check=True,
            capture_output=True,
            timeout=90,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"could not start a throwaway PostgreSQL server: {exc}")
    try:
        yield f"postgresql://{user}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            as_user + [pg_ctl, "-D", data, "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        time.sleep(0.2)
        shutil.rmtree(root, ignore_errors=True)


def test_postgresql_store_behaves_like_sqlite(postgres_url):
    store = Store(postgres_url)
    frames = _fill(store)
    _check_roundtrip(store, frames)
    again = Store(postgres_url)  # a second client sees the same rows and refuses duplicates
    assert again.done_keys() == store.done_keys()
    assert again.write(_structure(3), label_key("3", "oracle"), "ok", {}, energy=0.0) is None


def test_postgresql_candidates_selections_and_checkpoint(postgres_url):
    import psycopg2

    con = psycopg2.connect(postgres_url)  # a database of its own, apart from the other test's
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute("CREATE DATABASE loops")
    con.close()
    postgres_url = postgres_url.rsplit("/", 1)[0] + "/loops"
    store = Store(postgres_url)
    _check_candidates(store)
    _check_selections(store)
    ck = Checkpoint(store, "al", {"select": 2})
    calls = []

    def select(st):
        calls.append(1)
        return st.record_selection(["p", "q"], [0.25, 0.75], "uncertainty")

    assert ck.run("select", 0, select) == ["p", "q"]
    assert Checkpoint(Store(postgres_url), "al", {"select": 2}).run("select", 0, select) == [
        "p",
        "q",
    ]
    assert calls == [1] and ck.state().done == (("select", 0),)
    assert store.selections(loop="al")[0].weights == (0.25, 0.75)
    with pytest.raises(DataError, match="started with other settings"):
        Checkpoint(store, "al", {"select": 3})
