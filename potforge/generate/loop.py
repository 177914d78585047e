"""Resumable entropy-maximising generation: configurations as Dask tasks, each stored as it
finishes.

Rounds of ``batch`` configurations: every configuration of a round is generated (as its own
Dask task, in parallel) against the same existing set — the user's data (``existing``) and
every configuration of the earlier rounds — so with ``batch=1`` each new configuration sees all
the ones before it (the joint entropy of everything so far), and with ``batch=W`` the W workers
are kept busy at the price of configurations of one round not seeing each other.

Checkpointed in the store (:class:`potforge.data.checkpoint.Checkpoint`, loop ``"generate"``):
the descriptor space (whitening and bandwidth, fitted once on the existing data plus random
starts) and each configuration, committed as soon as its task returns, with its seed, settings
and novelty in ``info``.  Configuration ``k`` has the seed ``SeedSequence([seed, k])``, and the
existing set of its round is fixed, so a killed run resumes with the same results, never
repeating a finished configuration; rerunning with a larger ``n`` extends the set.  A
configuration whose generation fails (the repulsion floor cannot be kept, LAMMPS fails) is
recorded with its cause and the others go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from ase import Atoms

from potforge.data.checkpoint import Checkpoint, digest
from potforge.data.store import Store
from potforge.data.structures import structure_hash
from potforge.errors import DataError, PotforgeError
from potforge.generate.descriptors import DescriptorSpace, SnapDescriptor
from potforge.generate.generator import (
    GeneratorSettings,
    _seed_of,
    generate_configuration,
    generation_space,
)
from potforge.progress import Progress

LOOP = "generate"
METHOD = "entropy"
"""The store's ``method`` of generated candidates."""


@dataclass
class GenerationResult:
    """What :func:`run_generation` produced (every configuration so far, resumed ones too).

    Attributes
    ----------
    structures : list of ase.Atoms
        Generated configurations in index order (unlabelled, ``info`` as generated).
    hashes : list of str
        Their structure hashes in the store.
    failed : dict
        Configuration index → why its generation failed (one sentence).
    space : DescriptorSpace
    """

    structures: list[Atoms]
    hashes: list[str]
    failed: dict[int, str] = field(default_factory=dict)
    space: DescriptorSpace | None = None


def _task(space: dict, settings: GeneratorSettings, x: np.ndarray, seed: int, threads: int):
    """One configuration (a Dask task): the Atoms, or the failure as a sentence."""
    try:
        return generate_configuration(
            DescriptorSpace.from_dict(space), settings, existing=x, seed=seed, threads=threads
        )
    except PotforgeError as exc:
        return f"{exc}"
    except Exception as exc:  # a crash of one configuration never ends the others
        return f"crashed: {type(exc).__name__}: {' '.join(str(exc).split())}"


def run_generation(
    n: int,
    settings: GeneratorSettings,
    store: Store | str,
    *,
    descriptor: SnapDescriptor | None = None,
    existing: Sequence[Atoms] = (),
    bandwidth: float | str = "nearest",
    batch: int | None = None,
    workers: int | None = None,
    client: Any = None,
    seed: int = 0,
    threads: int = 1,
    progress: bool | None = None,
    loop: str = LOOP,
) -> GenerationResult:
    """Generate (or resume generating) ``n`` configurations into ``store``.

    Parameters
    ----------
    n : int
        Configurations in all (finished ones included), ≥ 1.
    settings : GeneratorSettings
        Atom counts, volumes per atom (Å³/atom), cell strain, repulsion floor, elements.
    store : Store or str
    descriptor : SnapDescriptor, optional
        Default ``SnapDescriptor(settings.elements)`` (2J = 6, rcutfac 4.6).
    existing : sequence of ase.Atoms, default=()
        The data set the new configurations should complement (``--extend``).
    bandwidth : float or {"nearest", "silverman"}, default="nearest"
        Kernel bandwidth in the whitened space, or its rule
        (:meth:`~potforge.generate.descriptors.DescriptorSpace.fit`): "nearest" (median
        nearest-neighbour distance of the reference environments) keeps kernels overlapping in
        the 14–30 dimensions of SNAP 2J = 4–6, where Silverman's rule does not.
    batch : int, optional
        Configurations per round (generated in parallel against the same existing set);
        default: the Dask workers (1 without Dask).
    workers : int, optional
        Worker processes of a new LocalCluster; ``workers=1`` (and no ``client``) runs in
        this process.
    client : distributed.Client, optional
    seed : int, default=0
    threads : int, default=1
        Threads of each configuration's kernel sums.
    progress : bool or None
    loop : str
        The loop's name in the store.

    Returns
    -------
    GenerationResult
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise DataError(f"the number of configurations must be a whole number ≥ 1, got {n!r}")
    store = store if isinstance(store, Store) else Store(store)
    descriptor = descriptor or SnapDescriptor(settings.elements)
    existing = list(existing)
    in_process = client is None and (workers == 1 or (workers is None and batch in (None, 1)))
    batch = int(batch or (1 if in_process else (workers or _cores())))
    if batch < 1:
        raise DataError(f"batch must be ≥ 1, got {batch}")
    ck = Checkpoint(
        store,
        loop,
        {
            "settings": settings.to_dict(),
            "descriptor": descriptor.to_dict(),
            "existing": digest([structure_hash(a) for a in existing]),
            "bandwidth": bandwidth,
            "batch": batch,
            "seed": int(seed),
        },
    )
    space_doc = ck.run(
        "space",
        0,
        lambda st: generation_space(
            descriptor, settings, structures=existing, seed=seed, bandwidth=bandwidth
        ).to_dict(),
    )
    space = DescriptorSpace.from_dict(space_doc)
    base = space.environments(existing) if existing else np.zeros((0, space.dimension))
    done: dict[int, dict] = {k: ck.output("config", k) for k in range(n) if ck.is_done("config", k)}
    bar = Progress(n, "generate", "structures", progress)
    bar.update(len(done))
    try:
        with _Runner(in_process, workers, client) as submit:
            for start in range(0, n, batch):
                todo = [k for k in range(start, min(n, start + batch)) if k not in done]
                if not todo:
                    continue
                x = np.concatenate([base, *_environments(store, space, done, range(start))])
                for k, made in submit(space_doc, settings, x, [_seed_of(seed, k) for k in todo],
                                      threads, todo):  # fmt: skip
                    done[k] = ck.run("config", k, partial(_record, k=k, made=made))
                    bar.update()
                    if "entropy" in done[k]:
                        bar.set_postfix_str(f"H={done[k]['entropy']:.3f}")
    finally:
        bar.close(len(done) == n)
    ok = [k for k in range(n) if "hash" in done[k]]
    hashes = [done[k]["hash"] for k in ok]
    return GenerationResult(
        store.candidates(hashes=hashes) if hashes else [],
        hashes,
        {k: done[k]["failed"] for k in range(n) if "failed" in done[k]},
        space,
    )


def _record(st, *, k: int, made: Atoms | str) -> dict[str, Any]:
    """The stage output of configuration ``k``: its hash (stored now) or why it failed."""
    if isinstance(made, str):
        return {"failed": made}
    made.info["generate_index"] = k
    h = st.add_candidates([made], METHOD)[0]
    return {"hash": h, "entropy": float(made.info.get("entropy", np.nan))}


def _environments(store: Store, space: DescriptorSpace, done: dict, indices) -> list[np.ndarray]:
    """Whitened environments of the finished configurations among ``indices``."""
    hashes = [done[k]["hash"] for k in indices if k in done and "hash" in done[k]]
    if not hashes:
        return []
    return [space.environments(store.candidates(hashes=hashes))]


def _cores() -> int:
    import os

    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


class _Runner:
    """``submit(space, settings, x, seeds, threads, indices)`` → iterator of (index, result)
    as they finish: in this process, or as Dask tasks (x scattered once per round)."""

    def __init__(self, in_process: bool, workers: int | None, client: Any):
        self.in_process, self.workers, self.client = in_process, workers, client
        self._ctx: Any = None

    def __enter__(self):
        if self.in_process:
            return self._local
        from potforge.oracles.labelling import dask_client

        self._ctx = dask_client(workers=self.workers, client=self.client)
        self._dask = self._ctx.__enter__()
        return self._remote

    def __exit__(self, *exc) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(*exc)

    @staticmethod
    def _local(space, settings, x, seeds, threads, indices):
        for k, s in zip(indices, seeds, strict=True):
            yield k, _task(space, settings, x, s, threads)

    def _remote(self, space, settings, x, seeds, threads, indices):
        from distributed import as_completed

        c = self._dask
        shared = c.scatter(x, broadcast=True)
        futures = {
            c.submit(_task, space, settings, shared, s, threads, pure=False): k
            for k, s in zip(indices, seeds, strict=True)
        }
        for fut in as_completed(list(futures)):
            k = futures[fut]
            try:
                yield k, fut.result()
            except Exception as exc:  # the worker died
                yield k, f"crashed: the worker generating it died ({type(exc).__name__})"


__all__ = ["GenerationResult", "METHOD", "run_generation"]
