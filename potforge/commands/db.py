"""``potforge db``: read a campaign database.

Examples::

    potforge db summary campaign.db
    potforge db summary campaign.db --failures          # every failed row and why
    potforge db summary campaign.db --json | jq .by_status
    potforge db export campaign.db --format extxyz -o labelled.extxyz

``db export`` never writes over its own database, any database (a ``.db`` file or SQLite
contents), or, without --force, any other existing file; a file is written whole or not at all.

Exit status: 0 done; 2 bad input (a missing database, an output file refused), before any
work; 141 the reader of standard output went away early (``| head``), nothing more printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from potforge.errors import DataError

PIPE_CLOSED = 141
"""Exit status when standard output's reader closed the pipe (128 + SIGPIPE, as a shell shows)."""

MESSAGE_CHARS = 240
"""Longest failure message in the ``--failures`` table (``--json`` gives them whole)."""


@dataclass
class _Pipe:
    ok: bool = True
    code: int = 0


@contextmanager
def pipe_safe() -> Iterator[_Pipe]:
    """Print to stdout inside this block; if its reader has gone (``| head``), stop quietly.

    Standard output is pointed at ``os.devnull`` so the flush at exit raises nothing more (as
    the Python documentation recommends for SIGPIPE); the yielded object's ``ok`` turns False
    and ``code`` says what to exit with (:data:`PIPE_CLOSED`).
    """
    state = _Pipe()
    try:
        yield state
        sys.stdout.flush()
    except BrokenPipeError:
        state.ok, state.code = False, PIPE_CLOSED
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is no real file (a test's capture)
            pass


def register(subparsers) -> None:
    """Add the ``db`` verb (``summary``, ``export``) to ``subparsers``."""
    p = subparsers.add_parser(
        "db",
        help="summarise or export a campaign database",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    sub = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    s = sub.add_parser("summary", help="row counts by status, group, oracle and failure")
    s.add_argument("file", metavar="FILE", help="SQLite file or postgresql:// URL")
    s.add_argument(
        "--failures",
        action="store_true",
        help="also list every failed row: structure, hash, reason and message",
    )
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(func=run_summary)
    e = sub.add_parser("export", help="write labelled structures to a file")
    e.add_argument("file", metavar="FILE", help="SQLite file or postgresql:// URL")
    e.add_argument("--format", default="extxyz", choices=["extxyz"], help="output format")
    e.add_argument(
        "-o", "--output", default="-", metavar="PATH", help="output file (default: standard output)"
    )
    e.add_argument(
        "--status", default="ok", choices=["ok", "failed", "all"], help="which rows (default: ok)"
    )
    e.add_argument(
        "--force",
        action="store_true",
        help="replace an existing output file (never a database)",
    )
    e.set_defaults(func=run_export)


def _open(url: str):
    from pathlib import Path

    from potforge.data.store import Store, is_postgres

    if not is_postgres(url) and not Path(url).is_file():
        raise DataError(f"{url}: no such database file")
    return Store(url)


def _failure_table(failures: list[dict]) -> list[str]:
    lines = [f"failed rows ({len(failures)}):"]
    for f in failures:
        message = " ".join(str(f["message"]).split())
        if len(message) > MESSAGE_CHARS:
            message = message[: MESSAGE_CHARS - 3] + "..."
        lines.append(
            f"  {f['name']}  [{str(f['structure_hash'] or '')[:12]}]  {f['failure']}: {message}"
        )
    return lines


def run_summary(args: argparse.Namespace) -> int:
    """``potforge db summary``: row counts (and with ``--failures`` every failed row)."""
    from potforge.data.store import format_summary

    store = _open(args.file)
    summary, total = store.summary(), len(store)
    failures = store.failures() if args.failures else None
    if args.json:
        doc = {"file": store.name, "rows": total}
        doc.update({f"by_{k}": dict(v.most_common()) for k, v in summary.items()})
        if failures is not None:
            doc["failures"] = failures
        text = json.dumps(doc, indent=2, default=str)
    else:
        lines = [format_summary(summary, total)]
        if failures is not None:
            lines += _failure_table(failures) if failures else ["no failed rows"]
        text = "\n".join(lines)
    with pipe_safe() as out:
        print(text)
    return out.code


def run_export(args: argparse.Namespace) -> int:
    """``potforge db export``: write the chosen rows to a file, never over a database."""
    store = _open(args.file)
    to_stdout = args.output == "-"
    if not to_stdout:  # before reading anything
        store.check_export_target(args.output, args.force, flag="--force")
    status = None if args.status == "all" else args.status
    with pipe_safe() as out:
        n = store.export(None if to_stdout else args.output, args.format, status, args.force)
    if not out.ok:
        return out.code
    print(f"exported {n} structure(s)", file=sys.stderr)
    return 0
