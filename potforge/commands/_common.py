"""Helpers shared by CLI verbs: all-or-nothing output folders and JSON writing."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from potforge.errors import DataError


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
