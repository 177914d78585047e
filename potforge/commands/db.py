"""``potforge db``: read a campaign database.

Examples::

    potforge db summary campaign.db
    potforge db export campaign.db --format extxyz -o labelled.extxyz
"""

from __future__ import annotations

import argparse
import sys

from potforge.errors import DataError


def register(subparsers) -> None:
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
    e.set_defaults(func=run_export)


def _open(url: str):
    from pathlib import Path

    from potforge.data.store import Store, is_postgres

    if not is_postgres(url) and not Path(url).is_file():
        raise DataError(f"{url}: no such database file")
    return Store(url)


def run_summary(args: argparse.Namespace) -> int:
    from potforge.data.store import format_summary

    store = _open(args.file)
    print(format_summary(store.summary(), len(store)))
    return 0


def run_export(args: argparse.Namespace) -> int:
    store = _open(args.file)
    status = None if args.status == "all" else args.status
    n = store.export(None if args.output == "-" else args.output, args.format, status)
    print(f"exported {n} structure(s)", file=sys.stderr)
    return 0
