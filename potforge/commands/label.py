"""``potforge label``: label structures with a reference calculator into the campaign store.

Examples::

    potforge label rattled.extxyz --oracle lammps:W_2940_2017_2.snap --db campaign.db --workers 2
    potforge label cells.extxyz --oracle gpaw --set ecut=400 --set kpt_density=3 --db dft.db \\
        --scheduler tcp://head-node:8786 --timeout 14400

Each single point may run --timeout seconds once started (default 3600, one hour; --timeout
none: no limit); then it is recorded as a timeout and its worker is restarted.  Failed
structures are stored with the reason and summarised at the end, one example message per
reason; ``potforge db summary DB --failures`` lists them all.

Exit status:
  0    every structure given is labelled (now or by an earlier run)
  1    labelling ran, but some structures failed (now, or stored as failed by an earlier
       run and not retried: --retry-failed labels those again)
  2    bad input to the command itself (an option value, the oracle or a --set keyword, a
       structures file, the database), refused before any work is done
  130  interrupted (Ctrl-C); what was labelled until then stays in the store
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from potforge.errors import DataError

EXAMPLE_CHARS = 300
"""Longest example failure message shown in the closing summary (the store keeps it whole)."""


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


def parse_timeout(text: str | None) -> float | None:
    """``--timeout`` as seconds (None for ``none``); the default when not given.

    Raises
    ------
    DataError
        Not a positive number of seconds nor ``none``.
    """
    from potforge.oracles.labelling import DEFAULT_TIMEOUT, check_options

    if text is None:
        return DEFAULT_TIMEOUT
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None:
        raise DataError(
            f"--timeout must be a positive number of seconds (none for no limit), got '{text}'"
        )
    check_options(timeout=value, prefix="--")
    return value


def register(subparsers) -> None:
    """Add the ``label`` verb to ``subparsers``."""
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
    p.add_argument(
        "--timeout",
        metavar="S",
        help="seconds one single point may run once started, then it is recorded as a timeout "
        "and its worker restarted (default 3600; none: no limit)",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=1,
        metavar="N",
        help="extra attempts after a crash or timeout (default 1)",
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
    p.add_argument(
        "-q",
        "--quiet",
        "--no-progress",
        dest="quiet",
        action="store_true",
        help="no progress output (by default a bar on a terminal, one line per stage otherwise)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``potforge label``: label structures into the store; exit 0 all labelled, 1 some failed."""
    from potforge.commands.db import pipe_safe
    from potforge.data.readers import read_structures
    from potforge.data.store import Store
    from potforge.oracles import make_oracle
    from potforge.oracles.labelling import check_options, label

    # everything the command is given is checked before any work (or any file) is made
    timeout = parse_timeout(args.timeout)
    check_options(args.workers, timeout, args.retries, args.max_force, prefix="--")
    for path in args.structures:
        if not Path(path).is_file():
            what = "is a folder, not a file" if Path(path).is_dir() else "does not exist"
            raise DataError(f"structures file {path} {what}")
    oracle = make_oracle(args.oracle, **parse_settings(args.settings))
    structures = []
    for path in args.structures:
        structures.extend(read_structures(path, require=(), validate=False, stress_order="drop"))
    store = Store(args.db)
    report = label(
        structures,
        oracle,
        store,
        workers=args.workers,
        scheduler=args.scheduler,
        timeout=timeout,
        retries=args.retries,
        campaign=args.campaign,
        max_force=args.max_force,
        retry_failed=args.retry_failed,
        progress=not args.quiet,
    )
    with pipe_safe() as safe:
        print(f"{oracle.spec}: {report}", file=sys.stdout, flush=True)
    if not safe.ok:
        return safe.code
    if report.complete:
        return 0
    err = sys.stderr
    if report.failed:
        print(f"potforge label: {report.failed} structure(s) failed, by reason:", file=err)
        for line in report.failure_lines():
            cut = line if len(line) <= EXAMPLE_CHARS else line[: EXAMPLE_CHARS - 3] + "..."
            print(f"  {cut}", file=err)
    if report.failed_before:
        print(
            f"potforge label: {report.failed_before} structure(s) stored as failed by an earlier "
            f"run were not retried (--retry-failed labels them again)",
            file=err,
        )
    print(
        f"potforge label: every failed row: potforge db summary {store.name} --failures", file=err
    )
    return 1
