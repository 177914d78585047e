"""``potforge label``: label structures with a reference calculator into the campaign store.

Example::

    potforge label rattled.extxyz --oracle lammps:W_2940_2017_2.snap --db campaign.db --workers 2
    potforge label cells.extxyz --oracle gpaw --set ecut=400 --set kpt_density=3 --db dft.db \\
        --scheduler tcp://head-node:8786 --timeout 3600
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from potforge.errors import DataError


def parse_settings(pairs: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` strings to a dict; values are JSON when they parse (numbers, lists, bools).

    Raises
    ------
    DataError
        A pair without ``=``.
    """
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise DataError(f"--set needs KEY=VALUE, got '{pair}'")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "label",
        help="label structures with an oracle into a campaign database",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    p.add_argument(
        "structures",
        nargs="+",
        metavar="STRUCTURES",
        help="structure files (extxyz, ASE db, mlearn JSON, any ase.io format)",
    )
    p.add_argument(
        "--oracle",
        required=True,
        metavar="SPEC",
        help="lammps:<file>, gpaw, chgnet, emt or module:Class",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        dest="settings",
        help="oracle setting (repeatable), e.g. --set ecut=400",
    )
    p.add_argument(
        "--db",
        required=True,
        metavar="FILE",
        help="campaign database: SQLite file or postgresql:// URL",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes of a local Dask cluster (default: all cores)",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDR",
        help="address of a running Dask scheduler, e.g. tcp://host:8786",
    )
    p.add_argument("--timeout", type=float, metavar="S", help="seconds per single point")
    p.add_argument(
        "--retries", type=int, default=1, help="extra attempts after a crash or timeout (default 1)"
    )
    p.add_argument(
        "--max-force",
        type=float,
        default=100.0,
        metavar="EV_PER_A",
        help="force component above which a result is unphysical (default 100)",
    )
    p.add_argument("--campaign", metavar="ID", help="campaign id recorded on every row")
    p.add_argument(
        "--retry-failed", action="store_true", help="label again structures stored as failed"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from potforge.data.readers import read_structures
    from potforge.data.store import Store
    from potforge.labelling import label
    from potforge.oracles import make_oracle

    oracle = make_oracle(args.oracle, **parse_settings(args.settings))
    store = Store(args.db)
    structures = []
    for path in args.structures:
        structures.extend(read_structures(path, require=(), validate=False))
    report = label(
        structures,
        oracle,
        store,
        workers=args.workers,
        scheduler=args.scheduler,
        timeout=args.timeout,
        retries=args.retries,
        campaign=args.campaign,
        max_force=args.max_force,
        retry_failed=args.retry_failed,
        progress=not args.no_progress,
    )
    print(f"{oracle.spec}: {report}", file=sys.stdout)
    return 0
