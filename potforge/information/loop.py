"""The information-matching loop: label the fewest structures that meet the targets.

One iteration (every stage checkpointed in the store, :class:`potforge.data.checkpoint.Checkpoint`):

1. ``label``   — the structures chosen last (the initial set at iteration 0) go through the
   labelling engine into the store; already-labelled ones are not recomputed;
2. ``fit``     — the model is fitted to every labelled structure (its terms prepared once on
   the whole pool, so the candidates' design rows do not change);
3. ``targets`` — values and exact dQ/dθ of the target QoIs at the new θ (the data FIM of a
   linear model does not depend on θ; the QoI Jacobians do, through the relaxations);
4. ``select``  — the matching program over the unlabelled pool with the labelled information
   as a fixed part; empty when the labelled data already meets every target.

It stops when the targets are met (nothing left to select), when the budget of oracle calls is
spent, or after ``max_iterations``.  A process killed at any moment resumes where it stopped:
finished stages are read back, and labelling only computes what the store lacks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms
from sklearn.base import clone

from potforge.data.checkpoint import Checkpoint, digest
from potforge.data.store import Store
from potforge.data.structures import structure_hash
from potforge.errors import DataError
from potforge.information.fisher import (
    candidate_owners,
    coverage,
    predicted_sigma,
    structure_fisher,
    whitened_span_fraction,
)
from potforge.information.matching import (
    InfeasibleError,
    labelling_cost,
    solve_matching,
)
from potforge.information.targets import (
    TargetInformation,
    Targets,
    explain_shortfall,
    target_information,
)
from potforge.options import INIT_RULES
from potforge.oracles import Oracle, make_oracle
from potforge.oracles.labelling import label_candidates
from potforge.progress import Progress
from potforge.properties.base import InstabilityError, RelaxationError

LOOP = "information-matching"


def candidate_fisher(
    model,
    pool: Sequence[Atoms],
    precision,
    progress: bool | None = None,
    chunk: int = 100,
    per_atom_forces: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Fisher information of each candidate of a pool at a label precision.

    ``model`` must be set up (``model.setup(pool)``); designs are computed and reduced a chunk
    at a time, so memory stays at one chunk's rows.

    Returns
    -------
    fims : ndarray, shape (C, P, P)
        One block per candidate: per structure, or with ``per_atom_forces`` one per atom's
        force rows plus one for the structure's energy and stress rows.
    structure : ndarray of int, shape (C,)
        The pool index of each candidate's structure.
    """
    out, where = [], []
    bar = Progress(len(pool), "Fisher information", "structures", progress, leave=False)
    done = False
    try:
        for i in range(0, len(pool), chunk):
            part = list(pool[i : i + chunk])
            dm = model.design_rows(part)
            owner, of = candidate_owners(dm.row_type, dm.structure, per_atom_forces)
            w = precision.row_weights(dm.row_type)
            out.append(structure_fisher(dm.A, w, owner, len(of)))
            where.append(i + of)
            bar.update(len(part))
        done = True
    finally:
        bar.close(done)
    if not out:
        return np.zeros((0, model.n_params, model.n_params)), np.zeros(0, dtype=int)
    return np.concatenate(out), np.concatenate(where)


def pool_fisher(
    model, pool: Sequence[Atoms], precision, progress: bool | None = None, chunk: int = 100
) -> np.ndarray:
    """Per-structure Fisher information of a pool at a label precision, shape (M, P, P)
    (:func:`candidate_fisher` with one candidate per structure)."""
    return candidate_fisher(model, pool, precision, progress, chunk)[0]


def initial_set(
    n_atoms: np.ndarray,
    n: int,
    rule: str = "random",
    seed: int = 0,
    groups: Sequence[str | None] | None = None,
) -> list[int]:
    """Indices of the initial structures by a stated rule (:data:`INIT_RULES`).

    Parameters
    ----------
    n_atoms : (M,) ndarray of int
        Atoms per pool structure.
    n : int
        How many to choose, 1..M.
    rule : str, default="random"
        One of :data:`INIT_RULES`.
    seed : int, default=0
        Seed of the random rules.
    groups : sequence of str or None, optional
        Each structure's kind (``"stratified"``: kinds in order of first appearance, one draw
        from each in turn; None: one kind).

    Returns
    -------
    list of int
        Sorted indices.
    """
    m = len(n_atoms)
    if not 0 < n <= m:
        raise DataError(f"--init must lie in 1..{m} (the pool size), got {n}")
    if rule == "random":
        return sorted(np.random.default_rng(seed).choice(m, n, replace=False).tolist())
    if rule == "stratified":
        rng = np.random.default_rng(seed)
        kinds = list(groups) if groups is not None else [None] * m
        members: dict[str | None, list[int]] = {}
        for i, g in enumerate(kinds):
            members.setdefault(g, []).append(i)
        queues = [list(rng.permutation(ix)) for ix in members.values()]
        out: list[int] = []
        while len(out) < n:  # a round over the kinds, each one draw while it has any
            for q in queues:
                if q and len(out) < n:
                    out.append(int(q.pop(0)))
        return sorted(out)
    if rule == "smallest":
        return np.argsort(n_atoms, kind="stable")[:n].tolist()
    if rule == "first":
        return list(range(n))
    raise DataError(f"unknown initial-set rule {rule!r}; allowed: {', '.join(INIT_RULES)}")


@dataclass
class Iteration:
    """What one iteration of the loop found (also its stored stage outputs)."""

    iteration: int
    n_labelled: int
    oracle_calls: int
    coef: np.ndarray
    values: dict[str, float]
    sigma: dict[str, float]
    tolerance: dict[str, float]
    selected: list[str]
    weights: list[float]
    cost: float
    met: bool
    solve: dict[str, Any] = field(default_factory=dict)
    indirect: dict[str, dict[str, float]] = field(default_factory=dict)
    unstable: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "iteration": self.iteration,
            "n_labelled": self.n_labelled,
            "oracle_calls": self.oracle_calls,
            "coef": [float(c) for c in self.coef],
            "values": self.values,
            "sigma": self.sigma,
            "tolerance": self.tolerance,
            "met": self.met,
            "selected": self.selected,
            "weights": self.weights,
            "cost": self.cost,
            "solve": self.solve,
            "indirect": self.indirect,
            "unstable": self.unstable,
        }


@dataclass
class SelectionResult:
    """The loop's outcome.

    Attributes
    ----------
    model : LinearPotential
        Fitted to every labelled structure.
    iterations : list of Iteration
    labelled : list of str
        Structure hashes labelled, in the order chosen.
    stop : str
        ``"met"``, ``"budget"``, ``"iterations"``.
    pool_hashes : list of str
    fims : ndarray, shape (M, P, P)
    info : TargetInformation
        At the final θ.
    failed : list of str
        Hashes whose labelling failed (never selected again).
    pool : list of ase.Atoms
        The candidates, one per distinct structure (``pool_hashes`` in order).
    n_duplicates : int
        Structures of the given pool dropped as repeats of an earlier one.
    """

    model: Any
    iterations: list[Iteration]
    labelled: list[str]
    stop: str
    pool_hashes: list[str]
    fims: np.ndarray
    info: TargetInformation
    failed: list[str] = field(default_factory=list)
    pool: list[Atoms] = field(default_factory=list)
    n_duplicates: int = 0

    @property
    def data_fisher(self) -> np.ndarray:
        """Information of the labelled structures, (P, P)."""
        idx = [self.pool_hashes.index(h) for h in self.labelled if h not in self.failed]
        return self.fims[idx].sum(axis=0) if idx else np.zeros(self.fims.shape[1:])


def run_selection(
    model,
    pool: Sequence[Atoms],
    targets: Targets,
    oracle: Oracle | str,
    store: Store | str,
    *,
    element: str | None = None,
    init: int = 5,
    init_rule: str = "random",
    seed: int = 0,
    budget: int | None = None,
    max_iterations: int = 20,
    solver: str = "auto",
    reweight: int = 0,
    per_atom_forces: bool = False,
    label_options: dict[str, Any] | None = None,
    observer: Callable[[Iteration], None] | None = None,
    progress: bool | None = None,
    loop: str = LOOP,
) -> SelectionResult:
    """Run (or resume) the information-matching loop.

    Parameters
    ----------
    model : LinearPotential
        Unfitted template (its parameters define the model; a clone is fitted).
    pool : sequence of ase.Atoms
        Candidate structures, unlabelled.
    targets : Targets
    oracle : Oracle or str
    store : Store or str
        The campaign database: candidates, labels, selections and the loop's state.
    element : str, optional
        Element of the property suite (default: the model's only element).
    init : int, default=5
        Size of the initial labelled set.
    init_rule : {"random", "stratified", "smallest", "first"}, default="random"
        :data:`INIT_RULES`; ``"stratified"`` reads each structure's ``info["group"]``.
    seed : int, default=0
        Seed of the random initial set.
    budget : int, optional
        Most oracle calls (labelled structures, initial set included).
    max_iterations : int, default=20
    solver, reweight
        Passed to :func:`~potforge.information.matching.solve_matching`.
    per_atom_forces : bool, default=False
        Finer candidates: each atom's force rows, and each structure's energy and stress rows,
        are candidates of their own (a structure's cost shared among them); a selected
        candidate labels its whole structure.
    label_options : dict, optional
        Keyword arguments of :func:`~potforge.oracles.labelling.label` (workers, timeout...).
    observer : callable, optional
        Called with each finished :class:`Iteration` (progress lines).
    progress : bool or None
        Bars on a terminal (None) or not.
    loop : str
        The loop's name in the store.

    Returns
    -------
    SelectionResult

    Raises
    ------
    InfeasibleError
        The pool cannot meet a target (one sentence naming it); what is labelled stays.
    """
    oracle = make_oracle(oracle) if isinstance(oracle, str) else oracle
    store = store if isinstance(store, Store) else Store(store)
    pool = list(pool)
    if not pool:
        raise DataError("the candidate pool is empty")
    if budget is not None and budget < init:
        raise DataError(f"--budget {budget} is smaller than --init {init}")
    seen: dict[str, int] = {}
    for i, a in enumerate(pool):
        seen.setdefault(structure_hash(a), i)  # the same structure twice is one candidate
    n_duplicates = len(pool) - len(seen)
    pool, hashes = [pool[i] for i in seen.values()], list(seen)
    template = clone(model)
    prepared = clone(model).setup(pool)
    element = element or prepared.elements_[0]
    if len(prepared.elements_) != 1 and element is None:
        raise DataError("give element= for a model of several elements")
    n_atoms = np.array([len(a) for a in pool])
    groups = [a.info.get("group") for a in pool]
    cost = labelling_cost(n_atoms, targets.cost)
    settings = {
        "targets": targets.to_dict(),
        "model": {k: str(v) for k, v in template.get_params().items() if k != "n_jobs"},
        "oracle": oracle.key,
        "pool": digest(hashes),
        "init": init,
        "init_rule": init_rule,
        "seed": seed,
        "budget": budget,
        "solver": solver,
        "reweight": reweight,
        "per_atom_forces": per_atom_forces,
    }
    ck = Checkpoint(store, loop, settings)
    ck.run("pool", 0, lambda st: st.add_candidates(pool, method="pool") and len(pool))
    first = initial_set(n_atoms, init, init_rule, seed, groups)
    ck.run(
        "init", 0, lambda st: st.record_selection([hashes[i] for i in first], [1.0] * init, "init")
    )
    cand, owner = candidate_fisher(
        prepared, pool, targets.precision, progress, per_atom_forces=per_atom_forces
    )
    fims = np.zeros((len(pool), *cand.shape[1:]))
    np.add.at(fims, owner, cand)  # per structure: what labelling it adds
    share = np.bincount(owner, minlength=len(pool))
    cand_cost = cost[owner] / share[owner]  # a structure's cost shared by its candidates
    index = {h: i for i, h in enumerate(hashes)}
    chosen: list[str] = [hashes[i] for i in first]
    failed: list[str] = []
    lab_kw = dict(label_options or {})
    lab_kw.setdefault("progress", bool(progress))
    iterations: list[Iteration] = []
    stop, fitted = "iterations", prepared
    info: TargetInformation | None = None

    for it in range(max_iterations):
        batch = chosen if it == 0 else iterations[-1].selected

        def do_label(st, batch: list[str] = batch) -> dict[str, str]:
            return label_candidates(st.store, batch, oracle, **lab_kw)

        states = ck.run("label", it, do_label)
        failed += [h for h, s in states.items() if s != "ok"]
        if it > 0:
            chosen += batch
        ok = [h for h in chosen if h not in failed]
        by_hash = {a.info.get("structure_hash"): a for a in store.to_atoms("ok", oracle.spec)}
        missing = [h for h in ok if h not in by_hash]
        if missing:
            raise DataError(f"{len(missing)} labelled structure(s) are missing from {store.name}")
        train = [by_hash[h] for h in ok]

        def do_fit(st, train=train):
            m = prepared.with_terms()
            m.fit(train, designs=m.structure_designs(train))
            return [float(c) for c in m.coef_]

        coef = np.asarray(ck.run("fit", it, do_fit))
        fitted = prepared.with_terms(coef)

        def do_targets(st, m=fitted):
            try:
                return target_information(m, element, targets, progress).to_dict()
            except (RelaxationError, InstabilityError) as exc:  # a model fitted to few labels
                return {"unstable": str(exc)}

        stored = ck.run("targets", it, do_targets)
        F_lab = fims[[index[h] for h in ok]].sum(axis=0) if ok else np.zeros(fims.shape[1:])
        spent = len(chosen)
        left = None if budget is None else budget - spent
        unstable = stored.get("unstable")
        free = np.array([i for i, h in enumerate(hashes) if h not in set(chosen)], dtype=int)
        if unstable is None:
            info = TargetInformation.from_dict(stored)
            sigma = predicted_sigma(F_lab, info.jacobian)
            tolerance = info.tolerance
        else:
            sigma = tolerance = np.full(len(targets.names), np.nan)
            if not free.size:
                raise DataError(
                    f"the model fitted to all {len(ok)} labelled structures still cannot compute "
                    f"the targets: {unstable}"
                )

        def do_select(st, F_lab=F_lab, info=info, left=left, free=free, it=it, why=unstable):
            if why is not None:  # label more by the initial rule, then try again
                n = len(first) if left is None else min(len(first), left)
                more = [
                    int(free[i])
                    for i in initial_set(
                        n_atoms[free],
                        min(n, free.size),
                        init_rule,
                        seed + it + 1,
                        [groups[j] for j in free],
                    )
                ]
                sel = [hashes[i] for i in more]
                st.record_selection(sel, None, "init-more")
                return {"selected": sel, "weights": [None] * len(sel), "solve": {}, "met": False}
            target = info.target(targets.criterion)
            stack = target.reshape(-1, *target.shape[-2:])
            met = bool(max(coverage(F_lab, t) for t in stack) <= 1 + 1e-6)
            if met or not free.size or left == 0:
                return {"selected": [], "weights": [], "solve": {}, "met": met}
            free_c = np.flatnonzero(np.isin(owner, free))
            try:
                res = solve_matching(
                    cand[free_c],
                    target,
                    cost=cand_cost[free_c],
                    fixed=F_lab,
                    solver=solver,
                    reweight=reweight,
                )
            except InfeasibleError as exc:
                why = explain_shortfall(exc.available, info)
                raise InfeasibleError(why, exc.available) from None
            weight: dict[int, float] = {}  # structures in the order their candidates came
            for k in res.selected:
                m = int(owner[free_c[k]])
                weight[m] = max(weight.get(m, 0.0), float(res.weights[k]))
            picked = list(weight)[: len(weight) if left is None else left]
            sel = [hashes[m] for m in picked]
            wts = [weight[m] for m in picked]
            st.record_selection(sel, wts)
            solve = res.summary() | {"selected": None}
            return {"selected": sel, "weights": wts, "solve": solve, "met": False}

        def select_stage(st, do_select=do_select, sigma=sigma, tolerance=tolerance):
            # the stored record of the iteration: predicted σ per QoI against its target too
            out = do_select(st)

            def plain(x: float) -> float | None:  # JSON has no NaN or inf
                return float(x) if np.isfinite(x) else None

            out["sigma"] = dict(zip(targets.names, map(plain, sigma), strict=True))
            out["tolerance"] = dict(zip(targets.names, map(plain, tolerance), strict=True))
            return out

        t0 = time.perf_counter()
        out = ck.run("select", it, select_stage)
        out["solve"].setdefault("wall", time.perf_counter() - t0)
        ind = {}
        if unstable is None and info is not None:
            for name, d in info.indirect.items():
                g = np.asarray(d["gradient"])
                ind[name] = {
                    "value": d["value"],
                    "sigma": float(predicted_sigma(F_lab, g[None, :])[0]),
                    "tolerance": d["tolerance"],
                    "span_fraction": whitened_span_fraction(F_lab, g, info.jacobian),
                }
        step = Iteration(
            iteration=it,
            n_labelled=len(ok),
            oracle_calls=spent,
            coef=coef,
            values=dict(zip(targets.names, map(float, stored.get("values", sigma)), strict=True)),
            sigma=dict(zip(targets.names, map(float, sigma), strict=True)),
            tolerance=dict(zip(targets.names, map(float, tolerance), strict=True)),
            selected=list(out["selected"]),
            weights=list(out["weights"]),
            cost=float(cost[[index[h] for h in chosen]].sum()),
            met=bool(out["met"]),
            solve=out["solve"],
            indirect=ind,
            unstable=unstable,
        )
        iterations.append(step)
        if observer is not None:
            observer(step)
        if step.met:
            stop = "met"
            break
        if not step.selected:
            stop = "budget" if left is not None and left <= 0 else "exhausted"
            break
    if info is None:
        raise DataError("no iteration computed the targets (raise --max-iterations)")
    return SelectionResult(
        fitted, iterations, chosen, stop, hashes, fims, info, failed, pool, n_duplicates
    )
