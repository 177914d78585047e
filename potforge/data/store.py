"""The campaign store: an ``ase.db`` database with one row per labelled structure.

A row is keyed by ``label_key`` = SHA-256 of the canonical structure hash and the oracle key
(spec + settings), so the same structure labelled by the same oracle is never stored (nor, through
:meth:`Store.done_keys`, computed) twice.  A unique partial index on that key makes the database
itself refuse duplicates, so concurrent writers cannot create them; SQLite's own locking (or
PostgreSQL's transactions) keeps the file consistent.

Row layout (``key_value_pairs``): ``label_key``, ``structure_hash``, ``oracle`` (spec),
``oracle_key``, ``oracle_name``, ``oracle_version``, ``status`` ("ok" or "failed"), ``failure``
(class, failed rows only), ``attempts``, ``wall_time`` (s), ``host``, ``worker``,
``potforge_version``, ``campaign``, ``group``, ``source``.  ``data`` holds ``oracle_settings`` and,
for failed rows, the failure ``message``.  Labels are ASE's own columns: energy (eV), forces
(eV/Å), stress (eV/Å³, ASE Voigt order).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import ase.db
from ase import Atoms
from ase.db.core import convert_str_to_int_float_bool_or_str

from potforge.data.structures import attach_labels
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
    def done_keys(self, include_failed: bool = True) -> set[str]:
        """``label_key`` of every row (only ``ok`` rows when ``include_failed`` is False)."""
        rows = self._execute(
            "SELECT t.value, s.value FROM text_key_values t JOIN "
            "text_key_values s ON s.id = t.id AND s.key = 'status' "
            "WHERE t.key = 'label_key'"
        )
        return {k for k, status in rows if include_failed or status == "ok"}

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
        out = {k: Counter() for k in ("status", "group", "oracle", "failure")}
        for row in self.db.select(include_data=False):
            kvp = row.key_value_pairs
            for k, counter in out.items():
                if k in kvp:
                    counter[str(_unquote(kvp[k]))] += 1
        return out

    def export(
        self,
        out: str | os.PathLike | IO[str] | None = None,
        fmt: str = "extxyz",
        status: str | None = "ok",
    ) -> int:
        """Write rows (default: the ``ok`` ones) as extxyz; returns how many were written."""
        import ase.io

        if fmt != "extxyz":
            raise DataError(f"unknown export format '{fmt}' (supported: extxyz)")
        frames = self.to_atoms(status)
        target = sys.stdout if out is None or str(out) == "-" else out
        if frames:
            ase.io.write(
                target if not isinstance(target, os.PathLike) else str(target),
                frames,
                format="extxyz",
            )
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

    def integrity_ok(self) -> bool:
        """SQLite's ``PRAGMA integrity_check`` (always True for PostgreSQL)."""
        if self.postgres:
            return True
        return self._execute("PRAGMA integrity_check")[0][0] == "ok"


def format_summary(summary: dict[str, Counter], total: int) -> str:
    """Human-readable table of :meth:`Store.summary`."""
    lines = [f"{total} row(s)"]
    for name, counter in summary.items():
        if counter:
            lines.append(f"by {name}:")
            lines.extend(f"  {k:<40s} {n:>8d}" for k, n in counter.most_common())
    return "\n".join(lines)
