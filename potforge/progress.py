"""Progress on every long loop: a tqdm bar on a terminal, plain lines in a log.

``progress=None`` (the default everywhere) shows a bar when standard error is a terminal and
otherwise prints one line when a stage starts and one when it ends (so a log file reads
``descriptors: 194 structures …`` / ``descriptors: done in 12.3 s``); ``True`` forces the bar,
``False`` is silent.
"""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """A counter with ``update(n)`` and ``close()``, as tqdm's (it is one on a terminal)."""

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "it",
        progress: bool | None = None,
        **tqdm_kw: Any,
    ):
        self.desc, self.total, self.unit = desc, total, unit
        tty = sys.stderr.isatty()
        self._bar = None
        self._lines = progress is None and not tty
        if progress or (progress is None and tty):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, **tqdm_kw)
        self._t0 = time.perf_counter()
        self.n = 0
        if self._lines:
            count = f"{total} {unit}" if total is not None else "started"
            print(f"{desc}: {count} …", file=sys.stderr, flush=True)

    def update(self, n: int = 1) -> None:
        """Count ``n`` more done."""
        self.n += n
        if self._bar is not None:
            self._bar.update(n)

    def set_postfix_str(self, text: str) -> None:
        """Text after the bar (terminal only)."""
        if self._bar is not None:
            self._bar.set_postfix_str(text)

    def close(self, finished: bool = True) -> None:
        """End the bar, or print the stage's done (or stopped) line in a log."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._lines:
            self._lines = False
            print(
                f"{self.desc}: {'done' if finished else 'stopped'}, {self.n} {self.unit} in "
                f"{time.perf_counter() - self._t0:.1f} s",
                file=sys.stderr,
                flush=True,
            )

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(finished=exc_type is None)


def track(
    iterable, desc: str, unit: str = "it", progress: bool | None = None, total: int | None = None
):
    """Iterate ``iterable`` with a :class:`Progress` (``total`` from ``len`` when it has one)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with Progress(total, desc, unit, progress) as p:
        for item in iterable:
            yield item
            p.update()
