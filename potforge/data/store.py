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
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import sys
import tempfile
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
        out = {k: Counter() for k in ("status", "group", "oracle", "failure")}
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
        path = self.check_export_target(out, force) if to_file else None
        frames = self.to_atoms(status)
        if not frames:
            return 0
        if path is None:
            ase.io.write(sys.stdout if out is None or str(out) == "-" else out, frames, "extxyz")
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
