"""Labelling at scale: oracle single points on Dask, streamed into the campaign store.

:func:`label` runs one :class:`~potforge.oracles.Oracle` over many structures on a Dask cluster
(a :class:`distributed.LocalCluster` with one single-threaded worker process per core by default,
an existing scheduler by address, or any :class:`distributed.Client`, e.g. one of a
dask-jobqueue ``SLURMCluster``).  Each result is written to the :class:`~potforge.data.store.Store`
the moment it arrives, keyed by structure hash + oracle, so a killed run loses at most the tasks
in flight and a rerun labels only what is missing.

Failures are recorded, never dropped, with a class from :data:`FAILURE_CLASSES` and the message.
Timeouts (:data:`DEFAULT_TIMEOUT` per single point unless told otherwise) and crashes are retried
up to ``retries`` times; a hung task's worker is restarted.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import signal
import socket
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from distributed.diagnostics.plugin import WorkerPlugin

from potforge.data.store import Store, label_key
from potforge.data.structures import attach_labels, check_structure, describe, structure_hash
from potforge.errors import DataError, EngineError
from potforge.oracles import Oracle, make_oracle
from potforge.progress import track

FAILURE_CLASSES = tuple(
    "scf_not_converged calculator_crash timeout unphysical invalid_structure".split()
)
"""Why a structure has no label: SCF did not converge, the calculator raised or its worker died,
it ran past the timeout, it returned non-finite values or forces above ``max_force``, or the
structure itself is unphysical (atoms overlapping, ...)."""

DEFAULT_TIMEOUT = 3600.0
"""Seconds one single point may run once started before its worker is restarted (one hour:
far above any LAMMPS, EMT or CHGNet single point, and above most serial DFT ones; give more, or
None, for large DFT cells)."""

RETRYABLE = frozenset({"calculator_crash", "timeout"})
"""Failure classes worth another attempt (the others are deterministic)."""

MAX_FORCE = 100.0
"""Largest plausible force component magnitude, eV/Å; above it a result is ``unphysical``."""

_CALCULATORS: dict[str, Calculator] = {}
_LOCK = threading.Lock()  # calculators (LAMMPS chdir, GPAW) are not thread-safe
_STARTED: dict[str, float] = {}  # Dask key -> time the single point got the lock (worker side)


def check_options(
    workers: int | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    retries: int = 1,
    max_force: float = MAX_FORCE,
    prefix: str = "",
) -> None:
    """Refuse out-of-range :func:`label` options before any work is done.

    Parameters
    ----------
    workers, timeout, retries, max_force
        As for :func:`label`.
    prefix : str
        ``"--"`` to name the options as command-line flags (``--max-force``) in messages.

    Raises
    ------
    DataError
        One sentence naming the option, the value and what is allowed.
    """

    def name(option: str) -> str:
        return f"--{option.replace('_', '-')}" if prefix else option

    def whole(value: Any) -> bool:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)

    def positive(value: Any) -> bool:
        return (
            isinstance(value, numbers.Real)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and float(value) > 0
        )

    if workers is not None and not (whole(workers) and workers >= 1):
        raise DataError(f"{name('workers')} must be a whole number of at least 1, got {workers!r}")
    if timeout is not None and not positive(timeout):
        off = "none" if prefix else "None"
        raise DataError(
            f"{name('timeout')} must be a positive number of seconds ({off} for no limit), "
            f"got {timeout!r}"
        )
    if not (whole(retries) and retries >= 0):
        raise DataError(f"{name('retries')} must be a whole number, 0 or more, got {retries!r}")
    if not positive(max_force):
        raise DataError(f"{name('max_force')} must be a positive force in eV/Å, got {max_force!r}")


def classify(exc: BaseException) -> str:
    """Failure class of an exception raised by a calculator."""
    if isinstance(exc, DataError):  # the calculator refused the structure (unknown element...)
        return "invalid_structure"
    names = " ".join(c.__name__.lower() for c in type(exc).__mro__)
    if "convergence" in names or "scferror" in names:
        return "scf_not_converged"
    if "timeout" in names:
        return "timeout"
    return "calculator_crash"


def _calculator(oracle: Oracle) -> Calculator:
    if not oracle.reusable:
        return oracle.build()
    key = f"{oracle.spec}|{oracle.key}"
    if key not in _CALCULATORS:
        _CALCULATORS[key] = oracle.build()
    return _CALCULATORS[key]


def _worker_name() -> tuple[str, str]:
    """Address of this Dask worker and the key of the task it runs (or pid, "")."""
    try:
        from distributed import get_worker

        worker = get_worker()
        return worker.address, str(worker.get_current_task())
    except (ImportError, ValueError):
        return f"pid {os.getpid()}", ""


def run_oracle(oracle: Oracle, atoms: Atoms, max_force: float = MAX_FORCE) -> dict[str, Any]:
    """One single point (the Dask task); never raises for calculator failures.

    Parameters
    ----------
    oracle : Oracle
    atoms : ase.Atoms
    max_force : float
        eV/Å; a larger force component (or any non-finite value) makes the result unphysical.

    Returns
    -------
    dict
        ``status`` ("ok"/"failed"), ``energy`` (eV), ``forces`` ((N, 3), eV/Å), ``stress`` ((6,),
        eV/Å³ or None when not fully periodic), ``failure``, ``message``, ``wall_time`` (s),
        ``host``, ``worker``.
    """
    worker, key = _worker_name()
    out: dict[str, Any] = {"host": socket.gethostname(), "worker": worker}
    try:
        with _LOCK:
            t0 = time.perf_counter()
            _STARTED[key] = time.time()
            a = atoms.copy()
            a.calc = _calculator(oracle)
            energy = float(a.get_potential_energy())
            forces = np.array(a.get_forces(), dtype=float)
            stress = np.array(a.get_stress(), dtype=float) if all(a.pbc) else None
    except Exception as exc:  # any calculator error is recorded, not raised
        _STARTED.pop(key, None)
        _CALCULATORS.pop(f"{oracle.spec}|{oracle.key}", None)  # it may be broken now
        out.update(
            status="failed",
            failure=classify(exc),
            message=f"{type(exc).__name__}: {exc}".strip()[:2000],
        )
        out["wall_time"] = time.perf_counter() - t0
        return out
    _STARTED.pop(key, None)
    out["wall_time"] = time.perf_counter() - t0
    values: list[float | np.ndarray] = [energy, forces]
    if stress is not None:
        values.append(stress)
    if not all(np.all(np.isfinite(v)) for v in values):
        out.update(
            status="failed",
            failure="unphysical",
            message="the oracle returned non-finite energy, forces or stress",
        )
    elif forces.size and np.abs(forces).max() > max_force:
        out.update(
            status="failed",
            failure="unphysical",
            message=f"largest force component {np.abs(forces).max():.3g} eV/Å exceeds "
            f"{max_force:g} eV/Å",
        )
    else:
        out.update(status="ok", energy=energy, forces=forces, stress=stress)
    return out


@dataclass
class LabelReport:
    """What one :func:`label` call did (counts of structures).

    Attributes
    ----------
    total, ok, failed, skipped, duplicates : int
        Structures given, labelled now, failed now, already in the store, repeated in the input.
    failed_before : int
        Of the ``skipped``, those stored as ``failed`` by an earlier run (not retried unless
        ``retry_failed``).
    failures : Counter
        Failure class -> structures that failed now.
    examples : dict
        Failure class -> the message of its first failure (with the structure's name).
    wall_s : float
        Seconds the call took.
    """

    total: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    duplicates: int = 0
    failed_before: int = 0
    failures: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def complete(self) -> bool:
        """Whether every structure given has an ``ok`` row now (none failed, now or before)."""
        return self.failed == 0 and self.failed_before == 0

    def failure_lines(self) -> list[str]:
        """One line per failure class of this run: count and one example message."""
        out = []
        for reason, n in self.failures.most_common():
            example = self.examples.get(reason)
            out.append(f"{reason} ({n}): {example}" if example else f"{reason} ({n})")
        return out

    def __str__(self) -> str:
        fails = ", ".join(f"{k}: {n}" for k, n in self.failures.most_common())
        fails = f" ({fails})" if fails else ""
        before = f" ({self.failed_before} of them as failed)" if self.failed_before else ""
        return (
            f"{self.total} structure(s): {self.ok} labelled, {self.failed} failed{fails}, "
            f"{self.skipped} already in the store{before}, {self.duplicates} duplicate(s) in the "
            f"input; {self.wall_s:.1f} s"
        )


@dataclass
class _Task:
    key: str
    shash: str
    atoms: Atoms
    name: str = ""
    attempts: int = 0
    started: float = 0.0


@dataclass
class _Job:
    oracle: Oracle
    store: Store
    report: LabelReport
    timeout: float | None
    retries: int
    campaign: str | None
    max_force: float
    retry_failed: bool
    killed: set[str] = field(default_factory=set)  # workers this run ended (hung tasks)


class _IgnoreSigint(WorkerPlugin):
    """Worker plugin: Ctrl-C reaches the whole process group, but only the client should act
    on it (it cancels the work and closes the cluster); workers ignore SIGINT instead of dying
    with tracebacks.  Registered on the scheduler, so restarted workers get it too."""

    name = "potforge-ignore-sigint"
    idempotent = True

    def setup(self, worker) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def quiet_dask() -> None:
    """Silence distributed's (and tornado's, asyncio's) logging in this process: used once an
    interrupt or error has been decided, so closing the cluster prints nothing more."""
    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


@contextmanager
def dask_client(
    workers: int | None = None, scheduler: str | None = None, client=None, allowed_failures: int = 1
) -> Iterator[Any]:
    """A :class:`distributed.Client`: given, connected to ``scheduler``, or on a new LocalCluster.

    Parameters
    ----------
    workers : int, optional
        Worker processes of a new LocalCluster (one thread each); default: the core count.
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``).
    client : distributed.Client, optional
        Used as is and not closed.
    allowed_failures : int
        How often a task may kill its worker before Dask gives up on it (new clusters only).

    Notes
    -----
    A new LocalCluster's workers ignore SIGINT, so Ctrl-C interrupts the caller alone; on
    ``KeyboardInterrupt`` distributed's logging is silenced before the cluster is closed.
    """
    import dask
    from distributed import Client, LocalCluster

    if client is not None:
        yield client
        return
    if scheduler is not None:
        try:
            remote = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise EngineError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
        try:
            yield remote
        except KeyboardInterrupt:
            quiet_dask()
            raise
        finally:
            remote.close()
        return
    n = int(workers or os.cpu_count() or 1)
    if n < 1:
        raise EngineError(f"workers must be at least 1, got {n}")
    config = {  # a worker never holds a task it cannot start yet (timeouts stay honest)
        "distributed.scheduler.allowed-failures": int(allowed_failures),
        "distributed.scheduler.worker-saturation": 1.0,
    }
    cluster: LocalCluster | None = None
    c: Client | None = None
    try:
        with dask.config.set(config):
            cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                silence_logs=logging.ERROR,
                # one thread per worker, OpenMP and BLAS included: a parent's OMP_NUM_THREADS=2
                # made two LAMMPS workers 3x slower each on 2 cores (oversubscribed)
                env={
                    v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
                },
            )
        c = Client(cluster)
        c.register_plugin(_IgnoreSigint(), name=_IgnoreSigint.name)
        yield c
    except KeyboardInterrupt:
        quiet_dask()
        raise
    finally:
        if c is not None:
            c.close()
        if cluster is not None:
            cluster.close()


def _provenance(oracle: Oracle, task: _Task, campaign: str | None) -> dict[str, Any]:
    from potforge import __version__

    info = task.atoms.info
    index = info.get("index")
    return {
        "structure_hash": task.shash,
        "oracle": oracle.spec,
        "oracle_key": oracle.key,
        "oracle_name": oracle.name,
        "oracle_version": oracle.version,
        "potforge_version": __version__,
        "campaign": campaign,
        "group": str(info["group"]) if info.get("group") else None,
        "source": str(info["source"]) if info.get("source") else None,
        "source_index": int(index) if isinstance(index, numbers.Integral) else None,
        "attempts": task.attempts,
    }


class _Progress:
    """A tqdm bar on a terminal; elsewhere (a log file) one plain line per stage and per tenth
    of the work done; nothing when disabled."""

    def __init__(self, enabled: bool, stream=None):
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        try:
            self.tty = bool(self.stream.isatty())
        except (AttributeError, ValueError):
            self.tty = False
        self.bar = None
        self.total = 0
        self.done = 0
        self.mark = 0

    def stage(self, text: str) -> None:
        """One line for the log (nothing on a terminal, where the bar says it)."""
        if self.enabled and not self.tty:
            print(f"label: {text}", file=self.stream, flush=True)

    def start(self, total: int, desc: str) -> None:
        self.total, self.done, self.mark = total, 0, 0
        if self.enabled and self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="structure", desc=desc, file=self.stream)

    def update(self, ok: int, failed: int) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(ok=ok, failed=failed, refresh=False)
            return
        tenth = 10 * self.done // max(1, self.total)
        if tenth > self.mark and self.done < self.total:
            self.mark = tenth
            self.stage(f"{self.done}/{self.total} done ({ok} ok, {failed} failed)")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def label(
    structures: Iterable[Atoms],
    oracle: Oracle | str,
    store: Store | str | os.PathLike,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    client=None,
    timeout: float | None = DEFAULT_TIMEOUT,
    retries: int = 1,
    campaign: str | None = None,
    max_force: float = MAX_FORCE,
    retry_failed: bool = False,
    progress: bool = True,
) -> LabelReport:
    """Label structures with an oracle on Dask, writing every result to the store as it arrives.

    Parameters
    ----------
    structures : iterable of ase.Atoms
    oracle : Oracle or str
        An oracle or a spec for :func:`~potforge.oracles.make_oracle`.
    store : Store, str or path
        Campaign database (SQLite file or PostgreSQL URL).
    workers, scheduler, client
        Where to run; see :func:`dask_client`.
    timeout : float or None
        Seconds one single point may take once started (default :data:`DEFAULT_TIMEOUT`, one
        hour); then it is recorded as ``timeout`` and its worker is restarted.  None: no limit.
    retries : int
        Extra attempts for retryable failures (:data:`RETRYABLE`).
    campaign : str, optional
        Campaign id recorded on every row.
    max_force : float
        eV/Å; larger force components are recorded as ``unphysical``.
    retry_failed : bool
        Label again structures whose stored row is ``failed``.
    progress : bool
        Report progress on stderr: a tqdm bar (rate, ETA) on a terminal, plain lines (one per
        stage and per tenth done) otherwise.

    Returns
    -------
    LabelReport

    Raises
    ------
    DataError
        An option out of range (see :func:`check_options`), before any work.
    """
    t0 = time.perf_counter()
    check_options(workers, timeout, retries, max_force)
    oracle = make_oracle(oracle) if isinstance(oracle, str) else oracle
    store = store if isinstance(store, Store) else Store(store)
    report = LabelReport()
    shown = _Progress(progress)
    job = _Job(oracle, store, report, timeout, retries, campaign, max_force, retry_failed)
    stored = store.statuses()
    known = oracle.runtime.get("elements")
    tasks: list[_Task] = []
    seen: set[str] = set()
    for i, atoms in enumerate(structures):
        report.total += 1
        shash = structure_hash(atoms)
        key = label_key(shash, oracle.key)
        if key in seen:
            report.duplicates += 1
            continue
        status = stored.get(key)
        if status == "ok" or (status is not None and not retry_failed):
            report.skipped += 1
            report.failed_before += status != "ok"
            continue
        seen.add(key)
        task = _Task(key, shash, atoms, describe(atoms, atoms.info.get("index", i)))
        try:
            check_structure(atoms, task.name)
            if known:
                _check_elements(atoms, task.name, oracle.spec, known)
        except DataError as exc:
            bad = {"status": "failed", "failure": "invalid_structure", "message": str(exc)}
            _record(job, task, bad)
            continue
        tasks.append(task)
    shown.stage(
        f"{len(tasks)} structure(s) to label with {oracle.spec} ({report.skipped} already in the "
        f"store, {report.failed} invalid, {report.duplicates} duplicate(s))"
    )
    if tasks:
        if client is not None:
            shown.stage("labelling on the given Dask client")
        elif scheduler is not None:
            shown.stage(f"connecting to the Dask scheduler at {scheduler}")
        else:
            shown.stage(
                f"starting a local Dask cluster of {workers or os.cpu_count() or 1} worker(s)"
            )
        # our own retries count every attempt: Dask must not rerun a task that killed its worker
        with dask_client(workers, scheduler, client, allowed_failures=0) as c:
            _run(c, job, tasks, shown)
    report.wall_s = time.perf_counter() - t0
    shown.stage(f"done: {report.ok} labelled, {report.failed} failed in {report.wall_s:.1f} s")
    return report


def _check_elements(atoms: Atoms, name: str, spec: str, known: list[str]) -> None:
    """Refuse a structure with an element the oracle has no parameters for."""
    unknown = sorted(set(atoms.get_chemical_symbols()) - set(known))
    if unknown:
        raise DataError(
            f"{name} contains element(s) {', '.join(unknown)} that oracle {spec} does not know "
            f"(it knows {', '.join(known)})"
        )


def _record(job: _Job, task: _Task, result: dict[str, Any]) -> None:
    """Write one result (or failure) to the store and count it."""
    oracle, report = job.oracle, job.report
    prov = _provenance(oracle, task, job.campaign)
    prov.update({k: result.get(k) for k in ("failure", "wall_time", "host", "worker")})
    data = {"oracle_settings": oracle.settings}
    if result.get("message"):
        data["message"] = result["message"]
    energy, forces, stress = (result.get(k) for k in ("energy", "forces", "stress"))
    status = result["status"]
    rid = job.store.write(
        task.atoms, task.key, status, prov, energy, forces, stress, data, replace=job.retry_failed
    )
    if rid is None:  # another writer stored this key first
        report.skipped += 1
    elif result["status"] == "ok":
        report.ok += 1
    else:
        reason = result["failure"]
        report.failed += 1
        report.failures[reason] += 1
        if reason not in report.examples:
            text = str(result.get("message") or "")
            name = task.name or task.shash[:12]
            report.examples[reason] = text if text.startswith(name) else f"{name}: {text}"


def _run(client, job: _Job, tasks: list[_Task], shown: _Progress) -> None:
    """Keep one task per worker thread in flight; record results as they complete.

    One per thread, not more: a task queued behind another on a worker would die with it
    when that worker is restarted (a hung task) or crashes, and be blamed for it.
    """
    from distributed import wait

    queue = deque(tasks)
    inflight: dict[Any, _Task] = {}
    report, timeout = job.report, job.timeout
    shown.start(len(tasks), job.oracle.spec)

    def finish(task: _Task, result: dict[str, Any]) -> None:
        if (
            result["status"] == "failed"
            and result["failure"] in RETRYABLE
            and task.attempts <= job.retries
        ):
            queue.appendleft(task)
            return
        _record(job, task, result)
        shown.update(report.ok, report.failed)

    def top_up(slots: int) -> None:
        while queue and len(inflight) < slots:
            task = queue.popleft()
            task.attempts += 1
            task.started = time.monotonic()
            key = f"label-{task.key[:20]}-{task.attempts}"
            args = (job.oracle, task.atoms, job.max_force)
            inflight[client.submit(run_oracle, *args, pure=False, key=key)] = task

    try:
        checked, slots = -10.0, 1
        while queue or inflight:
            if time.monotonic() - checked > 2.0:
                slots, checked = max(1, sum(client.nthreads().values())), time.monotonic()
            top_up(slots)
            poll = 1.0 if timeout is None else min(1.0, max(0.05, timeout / 5))
            try:
                done, _ = wait(list(inflight), timeout=poll, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            finished = _gather([f for f in done if f.status == "finished"], client)
            results = [(inflight.pop(fut), result) for fut, result in finished]
            top_up(slots)  # the freed workers start at once, not after the store writes below
            for task, result in results:
                finish(task, result)
            for fut in done:  # a result lost with its worker is recomputed: keep waiting
                if fut in inflight and fut.status in ("error", "cancelled"):
                    task = inflight.pop(fut)
                    if _killed_by_us(fut, job.killed):  # not its fault: run it again
                        task.attempts -= 1
                        queue.appendleft(task)
                    else:
                        finish(task, _crashed(fut))
            if timeout is not None and _expire(client, job, inflight, timeout, finish):
                checked = -10.0  # a worker was restarted: count the threads again
    finally:
        for fut in inflight:
            fut.cancel()
        shown.close()


def _gather(futures: list, client) -> list[tuple[Any, dict[str, Any]]]:
    """Results of finished futures in one round trip (one by one if that fails)."""
    try:
        return list(zip(futures, client.gather(futures), strict=True))
    except Exception:  # a result lost with its worker: take the others one by one
        out = []
        for fut in futures:
            try:
                out.append((fut, fut.result(timeout=30)))
            except Exception:
                out.append((fut, _crashed(fut)))
        return out


def _killed_by_us(fut, killed: set[str]) -> bool:
    """Whether a future erred only because its worker was one we ended (for another task)."""
    try:
        exc = fut.exception(timeout=5)
    except BaseException:
        return False
    last = getattr(getattr(exc, "last_worker", None), "address", None)
    return type(exc).__name__ == "KilledWorker" and last in killed


def _crashed(fut) -> dict[str, Any]:
    """The failure record of a future that raised (its worker died, or Dask gave up)."""
    try:
        exc = fut.exception(timeout=5)
    except BaseException as err:  # CancelledError and the like
        exc = err
    text = f"the worker running it died or failed ({type(exc).__name__}: {exc})"
    return {"status": "failed", "failure": "calculator_crash", "message": text[:2000]}


def _expire(client, job: _Job, inflight: dict, timeout: float, finish) -> bool:
    """Fail tasks running longer than ``timeout`` s and restart the workers they hang on.

    Returns whether a worker was restarted.
    """
    now = time.monotonic()
    late = [f for f, t in inflight.items() if now - t.started > timeout and not f.done()]
    if not late:
        return False
    running = client.run(_executing)
    where = {k: addr for addr, keys in running.items() for k in keys}
    elapsed = {k: t for keys in running.values() for k, t in keys.items()}
    stuck = []
    for fut in late:
        if fut.key not in where or elapsed[fut.key] <= timeout:  # queued until recently
            inflight[fut].started = now - elapsed.get(fut.key, 0.0)
            continue
        task = inflight.pop(fut)
        fut.cancel()
        stuck.append(where[fut.key])
        finish(
            task,
            {
                "status": "failed",
                "failure": "timeout",
                "worker": where[fut.key],
                "message": f"no result after {timeout:g} s on worker {where[fut.key]}; "
                f"the worker was restarted (give a longer timeout if the oracle needs it)",
            },
        )
    if stuck:
        job.killed.update(stuck)
        _kill_workers(client, sorted(set(stuck)))
    return bool(stuck)


def _executing(dask_worker) -> dict[str, float]:
    """Seconds each single point running on a worker has run (not those waiting for it)."""
    now = time.time()
    running = {ts.key for ts in dask_worker.state.executing}
    return {k: now - t for k, t in list(_STARTED.items()) if k in running}


async def _hard_exit() -> None:  # runs on a worker's event loop, not behind the hung thread
    os._exit(70)


def _kill_workers(client, addresses: list[str]) -> None:
    """End hung worker processes at once; their nannies start fresh ones."""
    info = client.scheduler_info(n_workers=-1).get("workers", {})
    nannied = [a for a in addresses if info.get(a, {}).get("nanny")]
    for addr in set(addresses) - set(nannied):
        logging.getLogger(__name__).warning(
            "worker %s runs a hung task but has no nanny to restart it; leaving it", addr
        )
    if nannied:
        try:
            client.run(_hard_exit, workers=nannied, wait=False)
        except Exception as exc:  # the worker may already be gone
            logging.getLogger(__name__).warning("could not end hung worker(s) %s: %s", nannied, exc)
        deadline = time.monotonic() + 30  # no retry may land on a worker about to vanish
        while time.monotonic() < deadline and set(nannied) & set(client.nthreads()):
            time.sleep(0.05)


def label_in_process(
    structures: list[Atoms], calc, show: bool | None = None, desc: str = "labelling"
) -> list[Atoms]:
    """Attach energy/forces/stress from the ASE calculator ``calc`` to copies of ``structures``,
    one after another in this process (a progress bar on a terminal unless ``show`` is False).

    For a handful of cheap single points; :func:`label` labels many on Dask into a store.
    """
    out = []
    for a in track(structures, desc, "structures", show):
        b = a.copy()
        b.calc = calc
        e, f = b.get_potential_energy(), b.get_forces()
        s = b.get_stress() if b.pbc.all() else None
        attach_labels(b, e, f, s)
        b.info.update(a.info)
        out.append(b)
    return out


def label_candidates(
    store: Store, hashes: Sequence[str], oracle: Oracle | str, **options: Any
) -> dict[str, str]:
    """Label the store's candidates with these structure hashes (what is labelled already is
    not recomputed) and return each one's status for ``oracle``: ``"ok"``, ``"failed"`` (or
    ``"candidate"`` if it could not be labelled at all).  ``options`` go to :func:`label`.

    The labelling stage of the resumable loops (information matching, active learning).
    """
    oracle = make_oracle(oracle) if isinstance(oracle, str) else oracle
    if hashes:
        label(store.candidates(hashes=list(hashes)), oracle, store, **options)
    states = store.candidate_statuses(oracle.key)
    return {h: states.get(h, "candidate") for h in hashes}
