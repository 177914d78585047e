"""``potforge select``: information matching — label the fewest structures of a pool whose
information guarantees the precision asked for on material properties, and fit.

The loop (resumable: every stage is checkpointed in --db; rerun the same command after a kill):
label the chosen structures → fit → dQ/dθ of the targets at the new θ → convex program for the
cheapest new labels → repeat until every target is met or --budget oracle calls are spent.

targets.toml::

    [precision]          # the oracle's label precision
    energy = 0.001       # eV/atom
    force = 0.05         # eV/Å
    stress = 0.1         # GPa
    [targets]            # QoI = tolerance (absolute, or "%" of the value)
    a0 = "0.5%"
    C44 = "5%"
    Evac = 0.05
    [indirect]           # reported, not targeted
    tau_ideal_110 = "10%"
    [settings]           # property settings; cost = unit | n2 | n3
    cost = "n2"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from potforge.commands._common import (
    add_loop_inputs,
    add_output_options,
    model_template,
    write_json,
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``select`` verb to ``sub``."""
    from potforge.options import INIT_RULES
    from potforge.params import Integer, Options

    p = sub.add_parser(
        "select",
        help="information matching: the fewest labels that meet property targets",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    add_loop_inputs(p)
    p.add_argument(
        "--pool",
        required=True,
        metavar="FILE|DB",
        help="candidate structures (labels ignored): a structure file, or a campaign database "
        "whose candidates to use",
    )
    p.add_argument("--targets", required=True, metavar="FILE", help="targets.toml (see below)")
    p.add_argument(
        "--init",
        type=Integer(low=1).argtype(),
        default=5,
        metavar="N",
        help="size of the initial labelled set (default 5)",
    )
    p.add_argument(
        "--init-rule",
        type=Options(INIT_RULES).argtype(),
        default="random",
        help="how the initial set is chosen: random (seeded), stratified (each info['group'] "
        "kind in turn, seeded), smallest cells, first N (default random)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random initial set")
    p.add_argument(
        "--budget",
        type=Integer(low=1).argtype(),
        metavar="N",
        help="most oracle calls, initial set included (default: no limit)",
    )
    p.add_argument(
        "--max-iterations",
        type=Integer(low=1).argtype(),
        default=20,
        metavar="N",
        help="most iterations (default 20)",
    )
    p.add_argument(
        "--solver",
        type=Options(("auto", "SDPA", "CLARABEL", "SCS")).argtype(),
        default="auto",
        help="convex solver (default auto: CLARABEL; SDPA can end the process on some "
        "programs; SCS for very large working sets)",
    )
    p.add_argument(
        "--per-atom-forces",
        action="store_true",
        help="finer candidates: each atom's forces a candidate of its own (a selected candidate "
        "labels its whole structure)",
    )
    p.add_argument("--element", help="element of the property suite (default: the model's)")
    p.add_argument(
        "--workers", type=Integer(low=1).argtype(), metavar="N", help="labelling workers"
    )
    add_output_options(p)
    p.set_defaults(func=run)


def read_pool(path: str) -> list:
    """The candidates of a campaign database, or the structures of any structure file."""
    import sqlite3

    from potforge.data.readers import read_structures
    from potforge.data.store import Store

    if path.endswith(".db"):
        try:  # read-only look: a user's ASE database is not a store to add tables to
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
                sql = "SELECT name FROM sqlite_master WHERE name = 'potforge_candidates'"
                is_store = bool(con.execute(sql).fetchall())
        except sqlite3.Error:
            is_store = False
        if is_store:
            return Store(path).candidates()
    pool = read_structures(path, require=(), validate=True, stress_order="drop")
    for a in pool:
        a.calc = None
    return pool


def line(step) -> str:
    """One progress line per iteration."""
    if step.unstable:
        return (
            f"iteration {step.iteration}: {step.n_labelled} labelled; the targets cannot be "
            f"computed at this θ ({step.unstable}); labelling {len(step.selected)} more by the "
            "initial rule"
        )
    parts = []
    for name, s in step.sigma.items():
        t = step.tolerance[name]
        mark = "ok" if s <= t * (1 + 1e-6) else "  "
        parts.append(f"{name} {s:.3g}/{t:.3g} {mark}")
    solve = step.solve or {}
    seconds = solve.get("solve_time")
    tail = f", solver {seconds:.2f} s" if seconds is not None else ""
    for name, d in step.indirect.items():
        parts.append(
            f"[indirect] {name} {d['sigma']:.3g}/{d['tolerance']:.3g} "
            f"(span {d['span_fraction']:.2f})"
        )
    return (
        f"iteration {step.iteration}: {step.n_labelled} labelled, {step.oracle_calls} oracle "
        f"calls, cost {step.cost:.4g}, next {len(step.selected)}{tail} | σ/target: "
        + ", ".join(parts)
    )


def run(args: argparse.Namespace) -> int:
    """``potforge select``: run (or resume) the information-matching loop."""
    from potforge.commands._output import OutputFolder
    from potforge.errors import DataError
    from potforge.information.fisher import spectrum_plot
    from potforge.information.loop import run_selection
    from potforge.information.plots import sigma_history_plot
    from potforge.information.targets import load_targets
    from potforge.oracles import make_oracle

    if not args.out:
        raise DataError("--out is required: the folder for the model and the selection")
    targets = load_targets(args.targets)
    template = model_template(args.model)
    template._validate_params()
    oracle = make_oracle(args.oracle)
    if not Path(args.pool).is_file():
        raise DataError(f"--pool {args.pool} does not exist")
    inputs = [args.pool, args.targets] + ([args.model] if Path(args.model).is_dir() else [])
    folder = OutputFolder(
        args.out,
        force=args.force,
        inputs=inputs,
        argv=args.argv,
        seeds={"seed": args.seed},
        quiet=args.quiet,
    )
    pool = read_pool(args.pool)
    show = None if not args.quiet else False

    def observe(step) -> None:
        if not args.quiet:
            print(line(step), flush=True)

    label_options = {"workers": args.workers} if args.workers else {}
    result = run_selection(
        template,
        pool,
        targets,
        oracle,
        args.db,
        element=args.element,
        init=args.init,
        init_rule=args.init_rule,
        seed=args.seed,
        budget=args.budget,
        max_iterations=args.max_iterations,
        solver=args.solver,
        per_atom_forces=args.per_atom_forces,
        label_options=label_options,
        observer=observe,
        progress=show,
    )
    if result.n_duplicates:
        print(f"{args.pool}: {result.n_duplicates} repeated structure(s) counted once")
    pool = result.pool
    with folder.staged() as out:
        result.model.save(out / "model")
        write_json(
            out / "iterations.json",
            {
                "stop": result.stop,
                "labelled": result.labelled,
                "failed": result.failed,
                "targets": targets.to_dict(),
                "iterations": [s.to_dict() for s in result.iterations],
            },
        )
        index = {h: i for i, h in enumerate(result.pool_hashes)}
        with open(out / "selection.csv", "w") as fh:
            fh.write("structure_hash,pool_index,n_atoms,iteration,weight,status\n")
            weights = {}
            for s in result.iterations:
                weights.update(dict(zip(s.selected, s.weights, strict=True)))
            when: dict[str, int] = {}
            for s in result.iterations:
                for h in s.selected:
                    when.setdefault(h, s.iteration + 1)
            for h in result.labelled:
                i = index[h]
                status = "failed" if h in result.failed else "ok"
                w = weights.get(h)
                text = "" if w is None else repr(w)
                fh.write(f"{h},{i},{len(pool[i])},{when.get(h, 0)},{text},{status}\n")
        spectrum_plot(out / "spectrum.png", result.data_fisher, result.info.fisher)
        sigma_history_plot(out / "sigma.png", result.iterations)
        last = result.iterations[-1]
        verdict = {
            "met": "every target is met",
            "budget": "the budget is spent before every target is met",
            "exhausted": "the pool is used up before every target is met",
            "iterations": "--max-iterations reached before every target is met",
        }[result.stop]
        print(
            f"{verdict}: {last.n_labelled} structures labelled ({last.oracle_calls} oracle calls, "
            f"cost {last.cost:.4g} in '{targets.cost}' units)"
        )
        print(
            f"wrote {args.out}/: model/, iterations.json, selection.csv, spectrum.png, sigma.png, "
            "provenance.json, log.txt"
        )
    if result.stop != "met":
        print(f"potforge select: {verdict}", file=sys.stderr)
        return 1
    return 0
