"""Helpers shared by CLI verbs: all-or-nothing output folders, JSON writing, and options
that apply to one method only."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from potforge.errors import DataError, ModelError


@contextlib.contextmanager
def staged_output(out: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; it replaces ``out`` only if the block succeeds.

    So an error or interrupt never leaves a half-written output folder behind.
    """
    out = Path(out)
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    except OSError as exc:
        raise DataError(f"{out}: cannot create the output folder ({exc.strerror})") from exc
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


def write_json(path: str | Path, doc: dict) -> None:
    Path(path).write_text(json.dumps(doc, indent=2, default=float) + "\n")


def method_options(args, applies: dict[str, tuple[str, ...]], method: str, flag: str) -> dict:
    """The options of ``applies`` (argparse ``dest`` → the methods it is for) that were given
    (not None), by ``dest``; one given for another method than ``method`` is a
    :class:`ModelError` (``flag`` names the option that picks the method)."""
    out = {}
    for dest, methods in applies.items():
        value = getattr(args, dest)
        if value is None:
            continue
        if method not in methods:
            raise ModelError(
                f"--{dest.replace('_', '-')} applies to {flag} {'/'.join(methods)} only, not "
                f"{flag} {method}"
            )
        out[dest] = value
    return out
