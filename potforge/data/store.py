"""The campaign store: an ``ase.db`` database with one row per labelled structure.

A row is keyed by ``label_key`` = SHA-256 of the canonical structure hash and the oracle key
(spec + settings), so the same structure labelled by the same oracle is never stored (nor, through
:meth:`Store.done_keys`, computed) twice.  A unique partial index on that key makes the database
itself refuse duplicates, so concurrent writers cannot create them; SQLite's own locking (or
PostgreSQL's transactions) keeps the file consistent.

Row layout (``key_value_pairs``): ``label_key``, ``structure_hash``, ``oracle`` (spec),
``oracle_key``, ``oracle_name``, ``oracle_version``, ``status`` ("ok" or "failed"), ``failure``
(class, failed rows only), ``attempts``, ``wall_time`` (s), ``host``, ``worker``,
``potforge_version``, ``campaign``, ``group``, ``source``, ``source_index`` (position in the
source file).  ``data`` holds ``oracle_settings`` and, for failed rows, the failure
``message``.  Labels are ASE's own columns: energy (eV), forces (eV/Å), stress (eV/Å³, ASE
Voigt order).

Beside ase.db's tables, the same database holds (created on first use, so a store that never
meets them is untouched):

``potforge_candidates``
    Generated, not yet (or not necessarily) labelled structures, one per structure hash, with
    their provenance (method, loop, iteration, free-form keys such as ``parent`` and ``seed``).
    A candidate's status is not stored but read from the label rows of the same
    ``structure_hash``: ``ok``/``failed`` once labelled (by a given oracle, when
    ``oracle_key`` is named), ``candidate`` until then.  Labelling candidates is the ordinary
    labelling path (``label(store.candidates(...), oracle, store)``); label rows stay the only
    rows ase.db sees, so ``len``, :meth:`Store.summary` and exports mean "labelled".
``potforge_selections``
    Which structures a method chose at an iteration of a loop, in order, with weights.
``potforge_loops``, ``potforge_stages``
    State of named loops (settings, last stage done) and their finished stages' outputs; see
    :mod:`potforge.data.checkpoint`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import ase.db
from ase import Atoms
from ase.db.core import convert_str_to_int_float_bool_or_str

from potforge.data.structures import attach_labels, structure_hash
from potforge.errors import DataError

STATUSES = ("ok", "failed")
"""Row statuses; both count as done for :meth:`Store.done_keys` unless retrying failures."""

UNIQUE_INDEX = (
    "CREATE UNIQUE INDEX IF NOT EXISTS potforge_label_key "
    "ON text_key_values (value) WHERE key = 'label_key'"
)

INFO_KEYS = (
    "group",
    "source",
    "oracle",
    "status",
    "failure",
    "label_key",
    "structure_hash",
    "campaign",
)
"""Row keys copied into ``atoms.info`` on export."""


CANDIDATE_STATUSES = ("candidate", "ok", "failed")
"""Statuses of a candidate: not labelled yet, or the status of its label row."""

TABLES = (
    "CREATE TABLE IF NOT EXISTS potforge_candidates (structure_hash TEXT PRIMARY KEY, "
    "method TEXT NOT NULL, loop_name TEXT NOT NULL, iteration INTEGER, seq INTEGER NOT NULL, "
    "formula TEXT NOT NULL, natoms INTEGER NOT NULL, provenance TEXT NOT NULL, "
    "structure TEXT NOT NULL, created DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS potforge_selections (loop_name TEXT NOT NULL, "
    "method TEXT NOT NULL, iteration INTEGER NOT NULL, ordinal INTEGER NOT NULL, "
    "structure_hash TEXT NOT NULL, weight DOUBLE PRECISION, created DOUBLE PRECISION NOT NULL, "
    "PRIMARY KEY (loop_name, method, iteration, structure_hash))",
    "CREATE TABLE IF NOT EXISTS potforge_loops (loop_name TEXT PRIMARY KEY, "
    "settings TEXT NOT NULL, iteration INTEGER, stage_name TEXT, "
    "created DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS potforge_stages (loop_name TEXT NOT NULL, "
    "stage_name TEXT NOT NULL, iteration INTEGER NOT NULL, output TEXT NOT NULL, "
    "finished DOUBLE PRECISION NOT NULL, PRIMARY KEY (loop_name, stage_name, iteration))",
)
"""The tables potforge keeps beside ase.db's (see the module docstring)."""

RESERVED = ("structure_hash", "status", "method", "loop", "iteration")
"""``atoms.info`` keys a returned candidate gets from the store (not allowed in provenance)."""


@dataclass(frozen=True)
class Selection:
    """Structures one method chose at one iteration of a loop.

    Attributes
    ----------
    loop, method : str
    iteration : int
    hashes : tuple of str
        Structure hashes, in the order they were chosen.
    weights : tuple of float or None
        One per structure (None where the method gave none).
    """

    loop: str
    method: str
    iteration: int
    hashes: tuple[str, ...]
    weights: tuple[float | None, ...]


def to_json(value: Any, what: str) -> str:
    """Canonical JSON text of ``value`` (sorted keys, no NaN), or a DataError naming ``what``."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"{what} must be plain JSON data (numbers, text, lists, dicts): {exc}"
        ) from exc


def check_name(value: Any, what: str) -> str:
    """A non-empty string, or a DataError naming ``what``."""
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{what} must be a non-empty string, got {value!r}")
    return value


def check_iteration(value: Any, optional: bool = False) -> int | None:
    """A whole number, 0 or more (or None when ``optional``), else a DataError."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DataError(f"iteration must be a whole number, 0 or more, got {value!r}")
    return int(value)


def label_key(structure_hash: str, oracle_key: str) -> str:
    """Store key of one structure labelled by one oracle (64 hex characters)."""
    return hashlib.sha256(f"{structure_hash}|{oracle_key}".encode()).hexdigest()


def _quote(value: Any) -> Any:
    """ase.db refuses strings that read as numbers or bools ("1", "nan"): store them quoted."""
    if isinstance(value, str) and not isinstance(convert_str_to_int_float_bool_or_str(value), str):
        return f'"{value}"'
    return value


def _unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) > 1 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def is_postgres(url: str | os.PathLike) -> bool:
    """Whether ``url`` names a PostgreSQL database rather than an SQLite file."""
    return str(url).startswith(("postgresql://", "postgres://"))


def _is_unique_violation(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return "integrityerror" in text or "uniqueviolation" in text or "unique constraint" in text


class Store:
    """One campaign database (SQLite file or PostgreSQL URL), opened and checked.

    Parameters
    ----------
    url : str or path
        SQLite file (created if absent) or ``postgresql://user@host:port/db``.

    Raises
    ------
    DataError
        The file cannot be created or written, or the server cannot be reached.
    """

    def __init__(self, url: str | os.PathLike):
        self.url = str(url)
        self.postgres = is_postgres(self.url)
        if not self.postgres:
            path = Path(self.url)
            if path.is_dir():
                raise DataError(f"database path {path} is a folder, not a file")
            if not path.parent.is_dir():
                raise DataError(
                    f"cannot create database {path}: folder {path.parent} does not exist"
                )
        try:
            # no ase lock file: a writer killed while holding it would block every later run;
            # SQLite's own locks die with their process
            kind = "postgresql" if self.postgres else "db"
            self.db = ase.db.connect(self.url, type=kind, use_lock_file=False)
            self.db.count()  # creates the tables
            self._execute(UNIQUE_INDEX)
        except DataError:
            raise
        except ImportError as exc:
            raise DataError(
                f"PostgreSQL stores need the ase-db-backends package ({exc}); "
                f"pip install ase-db-backends"
            ) from exc
        except Exception as exc:  # sqlite3.OperationalError, psycopg2.OperationalError, OSError
            what = "connect to PostgreSQL at" if self.postgres else "open or write database"
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"cannot {what} {self._safe_url()}: {msg}") from exc

    @property
    def name(self) -> str:
        """The file or URL, with any password hidden (for messages)."""
        return self._safe_url()

    def _safe_url(self) -> str:
        """The URL with any password hidden."""
        if not self.postgres or "@" not in self.url:
            return self.url
        scheme, rest = self.url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        return f"{scheme}://{cred.split(':')[0]}@{host}"

    def _execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run one SQL statement on the underlying database and commit; return its rows."""
        if self.postgres:
            import psycopg2

            con = psycopg2.connect(self.url)
            try:
                with con, con.cursor() as cur:
                    cur.execute(sql.replace("?", "%s"), params)
                    return cur.fetchall() if cur.description else []
            finally:
                con.close()
        con = sqlite3.connect(self.url, timeout=60)
        try:
            with con:
                cur = con.execute(sql, params)
                return cur.fetchall()
        finally:
            con.close()

    # ------------------------------------------------------------------------------ queries
    def statuses(self) -> dict[str, str]:
        """``label_key`` -> ``status`` ("ok" or "failed") of every row."""
        rows = self._execute(
            "SELECT t.value, s.value FROM text_key_values t JOIN "
            "text_key_values s ON s.id = t.id AND s.key = 'status' "
            "WHERE t.key = 'label_key'"
        )
        return dict(rows)

    def done_keys(self, include_failed: bool = True) -> set[str]:
        """``label_key`` of every row (only ``ok`` rows when ``include_failed`` is False)."""
        return {k for k, status in self.statuses().items() if include_failed or status == "ok"}

    def __len__(self) -> int:
        return self.db.count()

    def rows(
        self, status: str | None = None, oracle: str | None = None, include_data: bool = False
    ) -> Iterator[Any]:
        """Rows (``ase.db`` AtomsRow), optionally only one status and/or oracle spec."""
        query = {k: v for k, v in (("status", status), ("oracle", oracle)) if v is not None}
        yield from self.db.select(include_data=include_data, **query)

    def to_atoms(self, status: str | None = "ok", oracle: str | None = None) -> list[Atoms]:
        """Structures with their labels attached and provenance in ``atoms.info``."""
        out = []
        for row in self.rows(status, oracle):
            atoms = row.toatoms()
            kvp = row.key_value_pairs
            if kvp.get("status") == "ok":
                attach_labels(atoms, row.get("energy"), row.get("forces"), row.get("stress"))
            else:
                atoms.calc = None
            atoms.info.update({k: _unquote(kvp[k]) for k in INFO_KEYS if k in kvp})
            out.append(atoms)
        return out

    def summary(self) -> dict[str, Counter]:
        """Counts of rows by status, group, oracle and failure class."""
        out: dict[str, Counter] = {k: Counter() for k in ("status", "group", "oracle", "failure")}
        for row in self.db.select(include_data=False):
            kvp = row.key_value_pairs
            for k, counter in out.items():
                if k in kvp:
                    counter[str(_unquote(kvp[k]))] += 1
        return out

    def failures(self, oracle: str | None = None) -> list[dict[str, Any]]:
        """The ``failed`` rows, oldest first, as plain dicts for listing.

        Returns
        -------
        list of dict
            ``id``, ``name`` (source file, index in it, formula), ``formula``,
            ``structure_hash``, ``label_key``, ``oracle``, ``group``, ``failure``,
            ``attempts``, ``message``.
        """
        out = []
        for row in self.rows("failed", oracle, include_data=True):
            kvp = {k: _unquote(v) for k, v in row.key_value_pairs.items()}
            parts = [str(kvp["source"])] if kvp.get("source") else []
            if kvp.get("source_index") is not None:
                parts.append(f"structure {kvp['source_index']}")
            parts.append(row.formula)
            out.append(
                {
                    "id": row.id,
                    "name": " ".join(parts),
                    "formula": row.formula,
                    "structure_hash": kvp.get("structure_hash"),
                    "label_key": kvp.get("label_key"),
                    "oracle": kvp.get("oracle"),
                    "group": kvp.get("group"),
                    "failure": kvp.get("failure"),
                    "attempts": kvp.get("attempts"),
                    "message": (row.data or {}).get("message", ""),
                }
            )
        return out

    def check_export_target(
        self, out: str | os.PathLike, force: bool = False, flag: str = "force=True"
    ) -> Path:
        """Refuse an export file that would destroy data; return its path.

        Never this store nor any SQLite database (whatever its name) or ``.db`` file; an
        existing other file only with ``force`` (``flag`` says how to ask for it).

        Raises
        ------
        DataError
            One sentence naming the file (and ``flag`` where it would help).
        """
        return check_export_target(out, self, force, flag)

    def export(
        self,
        out: str | os.PathLike | IO[str] | None = None,
        fmt: str = "extxyz",
        status: str | None = "ok",
        force: bool = False,
    ) -> int:
        """Write rows (default: the ``ok`` ones) as extxyz; returns how many were written.

        Parameters
        ----------
        out : path, text stream or None
            File (written whole or not at all, through a temporary file beside it), stream,
            or None / ``"-"`` for standard output.
        fmt : {"extxyz"}
        status : {"ok", "failed"} or None
            Which rows (None: all).
        force : bool
            Replace an existing file (never a database: see :meth:`check_export_target`).
        """
        import ase.io

        if fmt != "extxyz":
            raise DataError(f"unknown export format '{fmt}' (supported: extxyz)")
        to_file = out is not None and str(out) != "-" and not hasattr(out, "write")
        path = self.check_export_target(cast("str | os.PathLike", out), force) if to_file else None
        frames = self.to_atoms(status)
        if not frames:
            return 0
        if path is None:
            stream = sys.stdout if out is None or str(out) == "-" else cast(IO[str], out)
            ase.io.write(stream, frames, "extxyz")
            return len(frames)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        except OSError as exc:
            raise DataError(f"cannot write {path}: {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "w") as fh:
                ase.io.write(fh, frames, format="extxyz")
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; exports get the user's umask
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return len(frames)

    # ------------------------------------------------------------------------------ writing
    def write(
        self,
        atoms: Atoms,
        key: str,
        status: str,
        provenance: dict[str, Any],
        energy: float | None = None,
        forces: Any = None,
        stress: Any = None,
        data: dict[str, Any] | None = None,
        replace: bool = False,
    ) -> int | None:
        """Write one labelled (or failed) structure, committed at once.

        Parameters
        ----------
        atoms : ase.Atoms
            The structure (its own calculator is ignored).
        key : str
            :func:`label_key` of the structure and oracle.
        status : {"ok", "failed"}
        provenance : dict
            Scalar key-value pairs (``None`` values are dropped).
        energy : float, optional
            eV.
        forces : ndarray, shape (N, 3), optional
            eV/Å.
        stress : ndarray, shape (6,), optional
            eV/Å³, ASE Voigt order.
        data : dict, optional
            Non-scalar extras (failure message, oracle settings).
        replace : bool
            Delete an existing row of this key first (used to retry failures).

        Returns
        -------
        int or None
            Row id, or None when a row of this key already exists (nothing written).
        """
        if status not in STATUSES:
            raise DataError(f"row status must be one of {STATUSES}, got {status!r}")
        atoms = atoms.copy()
        atoms.calc = None
        if status == "ok":
            attach_labels(atoms, energy, forces, stress)
        kvp = {k: _quote(v) for k, v in provenance.items() if v is not None}
        kvp.update(label_key=key, status=status)
        if replace:
            ids = [r.id for r in self.db.select(label_key=key, include_data=False)]
            if ids:
                self.db.delete(ids)
        try:
            return self.db.write(atoms, key_value_pairs=kvp, data=data or {})
        except Exception as exc:
            if _is_unique_violation(exc):
                return None
            raise DataError(f"cannot write to {self._safe_url()}: {exc}") from exc

    # ------------------------------------------------------------ candidates and selections
    @contextmanager
    def transaction(self) -> Iterator[Callable[..., Any]]:
        """One atomic write: yields ``execute(sql, params=())`` returning a DB-API cursor.

        Everything executed inside is committed together on exit, or not at all if the block
        raises or the process dies.  On SQLite the write lock is taken at once (``BEGIN
        IMMEDIATE``), so a block may read and then write without another writer in between.
        ``?`` placeholders work on both back ends.
        """
        ready = getattr(self, "_tables_ready", False)
        if self.postgres:
            import psycopg2

            con = psycopg2.connect(self.url)

            def execute(sql: str, params: tuple = ()) -> Any:
                cur = con.cursor()
                cur.execute(sql.replace("?", "%s"), params)
                return cur

            try:
                with con:
                    for sql in () if ready else TABLES:
                        execute(sql)
                    yield execute
            finally:
                con.close()
            self._tables_ready = True
            return
        con = sqlite3.connect(self.url, timeout=60, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                for sql in () if ready else TABLES:
                    con.execute(sql)
                yield lambda sql, params=(): con.execute(sql, params)
            except BaseException:
                con.rollback()
                raise
            con.commit()
        finally:
            con.close()
        self._tables_ready = True

    def _ensure_tables(self) -> None:
        """Create potforge's own tables (once per Store object; a no-op when they exist)."""
        if not getattr(self, "_tables_ready", False):
            with self.transaction():
                pass

    def add_candidates(
        self,
        structures: Iterable[Atoms],
        method: str,
        loop: str = "",
        iteration: int | None = None,
        provenance: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
    ) -> list[str]:
        """Store generated structures once per structure hash, committed together.

        Parameters
        ----------
        structures : iterable of ase.Atoms
            Kept with their arrays (momenta, tags...), constraints and scalar ``atoms.info``
            entries (``group``, ``source``); calculators and labels are dropped.
        method : str
            What made them (``"md"``, ``"rattle"``, ``"entropy"``...).
        loop : str
            The loop they belong to ("" for none).
        iteration : int, optional
        provenance : dict or sequence of dict, optional
            JSON-able extras shared by all (a dict) or one per structure (``parent`` hash,
            ``seed``, ``explorer``, ``temperature``...).

        Returns
        -------
        list of str
            The structure hash of each structure given, in order.  A hash already stored keeps
            its first provenance (nothing is written for it).
        """
        rows = self._candidate_rows(structures, method, loop, iteration, provenance)
        with self.transaction() as execute:
            self._insert_candidates(execute, rows)
        return [r[0] for r in rows]

    def _candidate_rows(self, structures, method, loop, iteration, provenance) -> list[tuple]:
        """Validated, encoded candidate rows (``seq`` filled in at insertion)."""
        from ase.io.jsonio import encode

        check_name(method, "method")
        if not isinstance(loop, str):
            raise DataError(f"loop must be a string, got {loop!r}")
        check_iteration(iteration, optional=True)
        frames = list(structures)
        extras = provenance if isinstance(provenance, Sequence) else [provenance] * len(frames)
        if len(extras) != len(frames):
            raise DataError(f"provenance has {len(extras)} entries for {len(frames)} structure(s)")
        rows, now = [], time.time()
        for atoms, extra in zip(frames, extras, strict=True):
            if not isinstance(atoms, Atoms):
                raise DataError(f"candidates must be ase.Atoms, got {type(atoms).__name__}")
            extra = dict(extra or {})
            clash = sorted(set(extra) & set(RESERVED))
            if clash:
                raise DataError(f"provenance key(s) {', '.join(clash)} are set by the store")
            prov = to_json(
                {"method": method, "loop": loop, "iteration": iteration, **extra},
                "candidate provenance",
            )
            d = atoms.todict()
            d.pop("calculator", None)
            info = {k: v for k, v in atoms.info.items() if isinstance(v, (str, int, float, bool))}
            d["info"] = {k: v for k, v in info.items() if k not in RESERVED}
            formula, shash = atoms.get_chemical_formula(), structure_hash(atoms)
            rows.append((shash, method, loop, iteration, formula, len(atoms), prov, encode(d), now))
        return rows

    @staticmethod
    def _insert_candidates(execute: Callable[..., Any], rows: list[tuple]) -> None:
        start = execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM potforge_candidates").fetchall()
        for i, (shash, method, loop, it, formula, n, prov, struct, now) in enumerate(rows):
            execute(
                "INSERT INTO potforge_candidates (structure_hash, method, loop_name, iteration, "
                "seq, formula, natoms, provenance, structure, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (shash, method, loop, it, int(start[0][0]) + i, formula, n, prov, struct, now),
            )

    def _label_statuses(self, oracle_key: str | None = None) -> dict[str, str]:
        """``structure_hash`` -> best status (ok over failed) of its label rows."""
        rows = self._execute(
            "SELECT h.value, s.value, o.value FROM text_key_values h "
            "JOIN text_key_values s ON s.id = h.id AND s.key = 'status' "
            "LEFT JOIN text_key_values o ON o.id = h.id AND o.key = 'oracle_key' "
            "WHERE h.key = 'structure_hash'"
        )
        out: dict[str, str] = {}
        for shash, status, key in rows:
            if oracle_key is not None and _unquote(key) != oracle_key:
                continue
            shash = _unquote(shash)
            if out.get(shash) != "ok":
                out[shash] = status
        return out

    def candidate_statuses(self, oracle_key: str | None = None) -> dict[str, str]:
        """``structure_hash`` -> status (see :data:`CANDIDATE_STATUSES`) of every candidate.

        Parameters
        ----------
        oracle_key : str, optional
            ``Oracle.key``: count only labels by that oracle (default: any; ``ok`` wins).
        """
        self._ensure_tables()
        labelled = self._label_statuses(oracle_key)
        hashes = self._execute("SELECT structure_hash FROM potforge_candidates ORDER BY seq")
        return {h: labelled.get(h, "candidate") for (h,) in hashes}

    def candidates(
        self,
        status: str | None = None,
        oracle_key: str | None = None,
        method: str | None = None,
        loop: str | None = None,
        iteration: int | None = None,
        hashes: Sequence[str] | None = None,
    ) -> list[Atoms]:
        """Stored candidates (oldest first, or in the order of ``hashes``), filtered.

        Each comes back unlabelled with ``atoms.info`` holding its scalar info as given, its
        provenance, ``structure_hash`` and ``status``.

        Parameters
        ----------
        status : {"candidate", "ok", "failed"}, optional
            As :meth:`candidate_statuses` gives it (for ``oracle_key``).
        oracle_key : str, optional
        method, loop : str, optional
        iteration : int, optional
        hashes : sequence of str, optional
            Only these, in this order.

        Raises
        ------
        DataError
            An unknown status, or a hash in ``hashes`` that is not a stored candidate.
        """
        from ase.io.jsonio import decode

        if status is not None and status not in CANDIDATE_STATUSES:
            raise DataError(f"candidate status must be one of {CANDIDATE_STATUSES}, got {status!r}")
        self._ensure_tables()
        where, params = [], []
        for col, value in (("method", method), ("loop_name", loop), ("iteration", iteration)):
            if value is not None:
                where.append(f"{col} = ?")
                params.append(value)
        sql = "SELECT structure_hash, provenance, structure FROM potforge_candidates"
        if hashes is None:
            clause = f" WHERE {' AND '.join(where)}" if where else ""
            found = self._execute(f"{sql}{clause} ORDER BY seq", tuple(params))
        else:
            wanted, found = list(dict.fromkeys(hashes)), []
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                cond = where + [f"structure_hash IN ({', '.join('?' * len(chunk))})"]
                found += self._execute(f"{sql} WHERE {' AND '.join(cond)}", (*params, *chunk))
            by_hash = {r[0]: r for r in found}
            if len(by_hash) < len(wanted) and not where:
                missing = [h for h in wanted if h not in by_hash]
                raise DataError(
                    f"{len(missing)} of {len(wanted)} structure hash(es) are not candidates in "
                    f"{self.name} (first: {missing[0]})"
                )
            found = [by_hash[h] for h in wanted if h in by_hash]
        labelled = self._label_statuses(oracle_key)
        out = []
        for shash, prov, struct in found:
            state = labelled.get(shash, "candidate")
            if status is not None and state != status:
                continue
            atoms = Atoms.fromdict(decode(struct))
            atoms.info.update(json.loads(prov), structure_hash=shash, status=state)
            out.append(atoms)
        return out

    def add_selection(
        self,
        hashes: Sequence[str],
        method: str,
        iteration: int,
        weights: Sequence[float | None] | None = None,
        loop: str = "",
    ) -> bool:
        """Record which structures ``method`` chose at ``iteration`` (in order, with weights).

        Returns
        -------
        bool
            True when written, False when this very selection was already recorded.

        Raises
        ------
        DataError
            Malformed input, or another selection already recorded for this loop, method and
            iteration.
        """
        rows = self._selection_rows(hashes, method, iteration, weights, loop)
        with self.transaction() as execute:
            return self._insert_selection(execute, rows)

    @staticmethod
    def _selection_rows(hashes, method, iteration, weights, loop) -> list[tuple]:
        check_name(method, "method")
        check_iteration(iteration)
        hashes = list(hashes)
        if not all(isinstance(h, str) and h for h in hashes) or len(set(hashes)) < len(hashes):
            raise DataError("a selection's hashes must be distinct non-empty strings")
        weights = [None] * len(hashes) if weights is None else list(weights)
        if len(weights) != len(hashes):
            raise DataError(f"{len(weights)} weight(s) for {len(hashes)} selected structure(s)")
        try:
            weights = [None if w is None else float(w) for w in weights]
        except (TypeError, ValueError) as exc:
            raise DataError(f"selection weights must be numbers: {exc}") from exc
        if not all(w is None or math.isfinite(w) for w in weights):
            raise DataError("selection weights must be finite")
        now = time.time()
        return [
            (loop, method, iteration, i, h, w, now)
            for i, (h, w) in enumerate(zip(hashes, weights, strict=True))
        ]

    @staticmethod
    def _insert_selection(execute: Callable[..., Any], rows: list[tuple]) -> bool:
        if not rows:
            return False
        loop, method, iteration = rows[0][:3]
        old = execute(
            "SELECT structure_hash, weight FROM potforge_selections WHERE loop_name = ? AND "
            "method = ? AND iteration = ? ORDER BY ordinal",
            (loop, method, iteration),
        ).fetchall()
        if old:
            if [tuple(r) for r in old] == [(r[4], r[5]) for r in rows]:
                return False
            raise DataError(
                f"{method} already recorded another selection at iteration {iteration}"
                + (f" of loop '{loop}'" if loop else "")
            )
        for row in rows:
            execute(
                "INSERT INTO potforge_selections (loop_name, method, iteration, ordinal, "
                "structure_hash, weight, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        return True

    def selections(
        self, loop: str | None = None, method: str | None = None, iteration: int | None = None
    ) -> list[Selection]:
        """Recorded selections, by loop, method and iteration, optionally filtered."""
        self._ensure_tables()
        where, params = [], []
        for col, value in (("loop_name", loop), ("method", method), ("iteration", iteration)):
            if value is not None:
                where.append(f"{col} = ?")
                params.append(value)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._execute(
            "SELECT loop_name, method, iteration, structure_hash, weight FROM "
            f"potforge_selections{clause} ORDER BY loop_name, method, iteration, ordinal",
            tuple(params),
        )
        groups: dict[tuple, list[tuple]] = {}
        for lp, m, it, h, w in rows:
            groups.setdefault((lp, m, int(it)), []).append((h, w))
        return [
            Selection(lp, m, it, tuple(h for h, _ in picks), tuple(w for _, w in picks))
            for (lp, m, it), picks in groups.items()
        ]

    def integrity_ok(self) -> bool:
        """SQLite's ``PRAGMA integrity_check`` (always True for PostgreSQL)."""
        if self.postgres:
            return True
        return self._execute("PRAGMA integrity_check")[0][0] == "ok"


SQLITE_MAGIC = b"SQLite format 3\x00"


def check_export_target(
    out: str | os.PathLike, store: Store | None = None, force: bool = False, flag: str = "--force"
) -> Path:
    """Refuse an export file that would destroy data; return its path.

    Parameters
    ----------
    out : path
        The file to write.
    store : Store, optional
        The store being exported (never written over).
    force : bool
        Whether replacing an existing (non-database) file was asked for.
    flag : str
        How to ask for it, named in the message (``--force`` or ``force=True``).

    Raises
    ------
    DataError
        ``out`` is the store, a database (``.db`` or SQLite contents), a folder, in a missing
        folder, or an existing file without ``force``.
    """
    path = Path(out).expanduser()
    if path.is_dir():
        raise DataError(f"cannot write {path}: it is a folder")
    if not path.parent.is_dir():
        raise DataError(f"cannot write {path}: folder {path.parent} does not exist")
    if store is not None and not store.postgres:
        own = Path(store.url)
        if path.exists() and own.exists() and os.path.samefile(path, own):
            raise DataError(f"cannot export {own} into itself: give another output file")
    side_file = re.search(r"\.db-(journal|wal|shm)$", path.name)  # SQLite deletes these
    if path.suffix.lower() == ".db" or _is_sqlite(path) or side_file:
        raise DataError(
            f"will not write extxyz to {path}: it is named or made like a database "
            f"(give an .extxyz file)"
        )
    if path.exists() and not force:
        raise DataError(f"{path} already exists; pass {flag} to replace it")
    return path


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def format_summary(summary: dict[str, Counter], total: int) -> str:
    """Human-readable table of :meth:`Store.summary`."""
    lines = [f"{total} row(s)"]
    for name, counter in summary.items():
        if counter:
            lines.append(f"by {name}:")
            lines.extend(f"  {k:<40s} {n:>8d}" for k, n in counter.most_common())
    return "\n".join(lines)
