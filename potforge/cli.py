"""``potforge <verb>``: the command line mirrors the Python API one to one.

Each verb lives in ``potforge/commands/<verb>.py`` with ``register(subparsers)`` adding its
parser (whose ``func`` default runs it); modules import the heavy packages inside ``run()``, so
``--help`` loads no numpy.  A :class:`~potforge.errors.PotforgeError` becomes one line on stderr
and exit status 2; nothing half-written is left behind by the verbs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import warnings

COMMANDS = (
    "fit",
    "eval",
    "uq",
    "demo",
    "label",
    "db",
    "properties",
    "select",
    "fisher",
    "explore",
    "anharmonicity",
    "watch",
    "generate",
    "entropy",
    "compress",
    "design",
    "run",
)
"""Modules of ``potforge.commands`` that register a verb, in help order."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (``potforge fit: error: argument --alpha: ...
    (see potforge fit --help)``) with exit status 2, not the usage block."""

    def error(self, message: str):
        """Print ``message`` as one line and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``potforge`` parser with every verb's subparser (imports no numerical package)."""
    from potforge import __version__

    parser = OneLineParser(prog="potforge", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"potforge {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser
    )
    for name in COMMANDS:
        importlib.import_module(f"potforge.commands.{name}").register(sub)
    return parser


class _Terminated(BaseException):
    """SIGTERM, raised where the program is so staged output is removed on the way out."""


def _terminated(signum, frame) -> None:
    raise _Terminated


def _one_line(command: str):
    """``warnings.showwarning`` under the CLI: ``potforge VERB: warning: ...``, one line, no
    source line."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = " ".join(str(message).split())
        print(f"potforge {command}: warning: {text}", file=sys.stderr if file is None else file)

    return show


def main(argv: list[str] | None = None) -> int:
    """Run one verb; returns its exit status (2: bad input, named in one sentence)."""
    from potforge.errors import PotforgeError

    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    streams = sys.stdout, sys.stderr  # a verb may copy them into its log; restored here
    previous = signal.signal(signal.SIGTERM, _terminated)  # a batch system's kill cleans up too
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line(args.command)
            return int(args.func(args) or 0)
    except PotforgeError as exc:
        sys.stdout, sys.stderr = streams
        print(f"potforge {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        sys.stdout, sys.stderr = streams
        print(f"potforge {args.command}: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        sys.stdout, sys.stderr = streams
        print(f"potforge {args.command}: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except BrokenPipeError:  # e.g. `potforge db summary c.db | head`: the reader left
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's own flush at exit must not fail
        return 1
    finally:
        sys.stdout, sys.stderr = streams
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
