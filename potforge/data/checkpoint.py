"""Resumable loops: one checkpoint API over the campaign store.

Information matching, active learning, generation and the campaign runner are loops of stages
(generate, select, label, fit...) over iterations.  A :class:`Checkpoint` names one loop in a
:class:`~potforge.data.store.Store` and runs each stage at most once: :meth:`Checkpoint.run`
returns the stored output of a finished stage without calling it, and otherwise calls it and
commits, in one transaction, its output, the candidates and selections it recorded through its
:class:`Stage` handle, and the loop's state.  A process killed at any moment therefore leaves
either the whole stage or nothing of it; rerunning the same loop code skips what is done.

Stages that write to the store themselves (labelling streams each result as it arrives) must be
idempotent, which the store's keys make them: a rerun labels only what is missing.

Example (``explore`` and ``pick`` stand for the loop's own methods; ``label`` is
:func:`potforge.oracles.labelling.label`)::

    ck = Checkpoint("campaign.db", "active-learning", settings={"select": 12, "iterations": 4})
    for it in range(ck.settings["iterations"]):
        gen = ck.run("generate", it, lambda st: st.add_candidates(explore(it), "md"))
        sel = ck.run("select", it, lambda st: st.record_selection(*pick(gen, 12)))
        ck.run("label", it, lambda st: label(st.store.candidates(hashes=sel), oracle,
                                             st.store).complete)
    ck.state()  # LoopState(loop='active-learning', ..., stage='label', iteration=3, done=...)
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ase import Atoms

from potforge.data.store import Store, check_iteration, check_name, to_json
from potforge.errors import DataError

_MISSING = object()  # no default given
_ABSENT = object()  # returned for a stage that is not done


@dataclass(frozen=True)
class LoopState:
    """Where a named loop stands.

    Attributes
    ----------
    loop : str
    settings : dict
        As stored (JSON round trip of what the loop was started with).
    stage : str or None
        The stage finished last (None: none yet).
    iteration : int or None
        Its iteration.
    done : tuple of (str, int)
        Every finished (stage, iteration), in the order they finished.
    """

    loop: str
    settings: dict
    stage: str | None
    iteration: int | None
    done: tuple[tuple[str, int], ...]


class Stage:
    """What one running stage records; committed with the stage, or dropped with it.

    Attributes
    ----------
    store : Store
        For reads and for idempotent writes of its own (labelling).
    loop, name : str
    iteration : int
    """

    def __init__(self, store: Store, loop: str, name: str, iteration: int):
        self.store, self.loop, self.name, self.iteration = store, loop, name, iteration
        self._pending: list[Callable[[Callable[..., Any]], Any]] = []
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise DataError(f"stage '{self.name}' {self.iteration} of '{self.loop}' is finished")

    def add_candidates(
        self,
        structures: Iterable[Atoms],
        method: str | None = None,
        provenance: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
    ) -> list[str]:
        """Record generated structures (see :meth:`Store.add_candidates`).

        ``method`` defaults to the loop's name; loop, iteration and ``stage`` are filled in.
        Returns their structure hashes (known at once, stored when the stage finishes).
        """
        self._check_open()
        frames = list(structures)  # encoded at once: later changes to them do not count
        if isinstance(provenance, Sequence):
            extras = [{"stage": self.name, **(e or {})} for e in provenance]
        else:
            extras = [{"stage": self.name, **(provenance or {})}] * len(frames)
        rows = self.store._candidate_rows(
            frames, method or self.loop, self.loop, self.iteration, extras
        )
        self._pending.append(lambda execute: self.store._insert_candidates(execute, rows))
        return [r[0] for r in rows]

    def record_selection(
        self,
        hashes: Sequence[str],
        weights: Sequence[float | None] | None = None,
        method: str | None = None,
    ) -> list[str]:
        """Record the structures chosen at this iteration (see :meth:`Store.add_selection`).

        ``method`` defaults to the loop's name.  Returns ``hashes`` as a list.
        """
        self._check_open()
        rows = self.store._selection_rows(
            hashes, method or self.loop, self.iteration, weights, self.loop
        )
        self._pending.append(lambda execute: self.store._insert_selection(execute, rows))
        return list(hashes)


class Checkpoint:
    """One named loop in a store: its settings, finished stages and their outputs.

    Parameters
    ----------
    store : Store, str or path
        The campaign store (SQLite file or PostgreSQL URL).
    loop : str
        The loop's name (``"active-learning"``, ``"information-matching"``...).
    settings : dict, optional
        JSON-able settings that define the loop's results.  Stored when the loop is new;
        compared when it resumes (None: take the stored ones).
    allow_new_settings : bool
        Resume with settings other than the stored ones (which are then replaced).

    Raises
    ------
    DataError
        The loop exists with other settings (and ``allow_new_settings`` is False), or the
        settings are not JSON-able.
    """

    def __init__(
        self,
        store: Store | str | Path,
        loop: str,
        settings: dict[str, Any] | None = None,
        allow_new_settings: bool = False,
    ):
        self.store = store if isinstance(store, Store) else Store(store)
        self.loop = check_name(loop, "loop")
        if settings is not None and not isinstance(settings, dict):
            raise DataError(f"settings of loop '{loop}' must be a dict, got {settings!r}")
        text = to_json(settings or {}, f"settings of loop '{loop}'")
        now = time.time()
        with self.store.transaction() as execute:
            execute(
                "INSERT INTO potforge_loops (loop_name, settings, iteration, stage_name, created, "
                "updated) VALUES (?, ?, NULL, NULL, ?, ?) ON CONFLICT DO NOTHING",
                (loop, text, now, now),
            )
            sql = "SELECT settings FROM potforge_loops WHERE loop_name = ?"
            stored = json.loads(execute(sql, (loop,)).fetchall()[0][0])
            if settings is not None and stored != json.loads(text):
                if not allow_new_settings:
                    raise DataError(
                        f"loop '{loop}' in {self.store.name} was started with other settings "
                        f"({_differences(stored, json.loads(text))}); resume it with the "
                        f"stored ones or pass allow_new_settings=True"
                    )
                sql = "UPDATE potforge_loops SET settings = ?, updated = ? WHERE loop_name = ?"
                execute(sql, (text, now, loop))
                stored = json.loads(text)
        self.settings: dict[str, Any] = stored

    def state(self) -> LoopState:
        """Where the loop stands (read from the store)."""
        rows = self.store._execute(
            "SELECT stage_name, iteration FROM potforge_stages WHERE loop_name = ? "
            "ORDER BY finished, iteration, stage_name",
            (self.loop,),
        )
        sql = "SELECT stage_name, iteration FROM potforge_loops WHERE loop_name = ?"
        stage, iteration = self.store._execute(sql, (self.loop,))[0]
        done = tuple((str(s), int(i)) for s, i in rows)
        return LoopState(self.loop, self.settings, stage, iteration, done)

    def output(self, stage: str, iteration: int, default: Any = _MISSING) -> Any:
        """The stored output of a finished stage (``default``, else a DataError, if not done)."""
        check_name(stage, "stage")
        check_iteration(iteration)
        rows = self.store._execute(
            "SELECT output FROM potforge_stages WHERE loop_name = ? AND stage_name = ? "
            "AND iteration = ?",
            (self.loop, stage, iteration),
        )
        if rows:
            return json.loads(rows[0][0])
        if default is _MISSING:
            raise DataError(f"stage '{stage}' {iteration} of loop '{self.loop}' is not done")
        return default

    def is_done(self, stage: str, iteration: int) -> bool:
        """Whether that stage of that iteration has finished."""
        return self.output(stage, iteration, _ABSENT) is not _ABSENT

    def run(self, stage: str, iteration: int, fn: Callable[[Stage], Any]) -> Any:
        """Run one stage once: its stored output if finished, else ``fn(Stage)`` committed.

        Parameters
        ----------
        stage : str
        iteration : int
        fn : callable
            Takes the :class:`Stage` handle; returns JSON-able output (None is fine).

        Returns
        -------
        object
            The output as stored (a JSON round trip: tuples come back as lists), the same on
            a first run and on a resume.  If another process finished the same stage first,
            its output (and only its records) are kept.

        Notes
        -----
        ``fn`` runs outside any transaction (it may take hours and label through Dask); only
        the commit after it holds the database's write lock, for milliseconds.
        """
        found = self.output(stage, iteration, _ABSENT)
        if found is not _ABSENT:
            return found
        handle = Stage(self.store, self.loop, stage, iteration)
        text = to_json(fn(handle), f"the output of stage '{stage}'")
        handle._closed = True
        now = time.time()
        try:
            with self.store.transaction() as execute:
                cur = execute(
                    "INSERT INTO potforge_stages (loop_name, stage_name, iteration, output, "
                    "finished) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (self.loop, stage, iteration, text, now),
                )
                if cur.rowcount == 0:  # another process finished it first: roll back
                    raise _Finished
                for apply in handle._pending:
                    apply(execute)
                sql = "UPDATE potforge_loops SET iteration = ?, stage_name = ?, updated = ? "
                execute(sql + "WHERE loop_name = ?", (iteration, stage, now, self.loop))
        except _Finished:
            return self.output(stage, iteration)
        return json.loads(text)


def digest(hashes: Sequence[str]) -> str:
    """16 hex characters of SHA-256 over structure hashes in order: a loop setting that names
    its candidate set (a different pool or start is a different loop)."""
    return hashlib.sha256("".join(hashes).encode()).hexdigest()[:16]


class _Finished(Exception):
    pass


def _differences(old: dict, new: dict, limit: int = 3) -> str:
    """``key: old then, new now`` for the first settings that differ."""
    keys = sorted(k for k in set(old) | set(new) if old.get(k, _MISSING) != new.get(k, _MISSING))
    parts = [
        f"{k}: {json.dumps(old.get(k)) if k in old else 'unset'} then, "
        f"{json.dumps(new.get(k)) if k in new else 'unset'} now"
        for k in keys[:limit]
    ]
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return "; ".join(parts) + more
