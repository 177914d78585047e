"""``potforge explore``: MD-driven active learning — explore with MD on the current model, label
the frames an acquisition picks (uncertain but energetically reachable), refit, repeat.

Resumable: every stage is checkpointed in --db; rerun the same command after a kill.  An
explorer that blows up (NaN, atoms too close, temperature runaway) is stopped and recorded; the
others go on; a failed oracle call is recorded and skipped.  Stops when the held-out force
error and the held-out uncertainty stop changing (--patience iterations within --rtol; both
changes are printed each iteration), when --budget oracle calls are spent, or when --max-minutes
of wall time are.  Thresholds per system: --system PATTERN:KEY=VALUE overrides --set for the
explorers (named START-TK, or START-TK-PGPa with --pressures) that PATTERN matches.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from potforge.commands._common import (
    add_loop_inputs,
    add_output_options,
    model_template,
    parse_pairs,
    write_json,
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``explore`` verb to ``sub``."""
    from potforge.params import Integer, Options, Real

    p = sub.add_parser(
        "explore",
        help="MD-driven active learning: explore, label what is uncertain, refit",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    add_loop_inputs(p)
    p.add_argument("--element", required=True, help="the element, e.g. W")
    p.add_argument(
        "--starts",
        default="bulk,vacancy,sia_111,surface_110",
        help="explorer start structures (comma list of bulk, vacancy, sia_111, sia_110, "
        "surface_110, surface_100, liquid; default bulk,vacancy,sia_111,surface_110)",
    )
    p.add_argument(
        "--temps",
        default="300,1500,3000",
        help="explorer temperatures in K (default 300,1500,3000)",
    )
    p.add_argument(
        "--init",
        type=Integer(low=1).argtype(),
        default=10,
        metavar="N",
        help="initial configurations: rattled copies of the starts (default 10)",
    )
    p.add_argument(
        "--initial",
        metavar="FILE",
        help="initial configurations from a file instead of --init rattled starts (e.g. the "
        "output of potforge compress or generate; labels not needed)",
    )
    p.add_argument(
        "--acquisition",
        type=Options(("pu_pe", "trust", "dopt", "topk")).argtype(),
        default="pu_pe",
        help="which frames to label (default pu_pe)",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        dest="settings",
        help="acquisition setting (repeatable), e.g. --set lo=0.05 --set hi=0.15 for trust",
    )
    p.add_argument(
        "--system",
        action="append",
        metavar="PATTERN:KEY=VALUE[,KEY=VALUE]",
        dest="systems",
        help="acquisition settings for the explorers whose name (START-TK, e.g. vacancy-1500K) "
        "matches PATTERN (repeatable; later ones win), e.g. --system '*-3000K:hi=0.4'",
    )
    p.add_argument(
        "--uncertainty",
        type=Options(("max_devi_f", "pops_halfwidth")).argtype(),
        default="max_devi_f",
        help="the frame's U: the K samples' force spread (DP-GEN's max_devi_f, default) or the "
        "half-width of the POPS force bounds",
    )
    p.add_argument(
        "--dedup",
        type=Real(low=0).argtype(),
        default=0.0,
        help="drop frames closer than this relative descriptor distance to a kept one (default 0)",
    )
    p.add_argument("--budget", type=Integer(low=1).argtype(), default=200, help="most oracle calls")
    p.add_argument(
        "--quota", type=Integer(low=1).argtype(), default=10, help="frames labelled per iteration"
    )
    p.add_argument(
        "--pressures",
        help="explorer pressures in GPa for --ensemble npt (comma list; one explorer per start, "
        "temperature and pressure)",
    )
    p.add_argument(
        "--t-end",
        type=Real(low=0, low_open=True).argtype(),
        metavar="K",
        help="ramp each explorer linearly from its --temps value to this temperature, K",
    )
    p.add_argument("--steps", type=Integer(low=1).argtype(), default=2000, help="MD steps")
    p.add_argument("--interval", type=Integer(low=1).argtype(), default=20, help="frame interval")
    p.add_argument(
        "--engine", type=Options(("lammps", "ase")).argtype(), default="lammps", help="MD engine"
    )
    p.add_argument(
        "--ensemble",
        type=Options(("nvt", "nose-hoover", "npt", "nve")).argtype(),
        default="nvt",
        help="MD ensemble (default nvt, Langevin)",
    )
    p.add_argument("--heldout", type=Integer(low=2).argtype(), default=6, help="held-out set size")
    p.add_argument("--members", type=Integer(low=2).argtype(), default=32, help="ensemble size K")
    p.add_argument(
        "--max-iterations",
        type=Integer(low=1).argtype(),
        default=20,
        help="most exploration rounds (default 20)",
    )
    p.add_argument(
        "--patience",
        type=Integer(low=1).argtype(),
        default=3,
        help="unchanged iterations in a row that stop the loop (default 3)",
    )
    p.add_argument(
        "--rtol",
        type=Real(low=0).argtype(),
        default=0.05,
        help="relative change of the held-out force RMSE and mean U below which an iteration "
        "counts as unchanged (default 0.05)",
    )
    p.add_argument(
        "--max-minutes",
        type=Real(low=0, low_open=True).argtype(),
        help="wall-time budget of this run, minutes (it stops after the iteration's fit; rerun "
        "to resume)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=Integer(low=1).argtype(), help="Dask workers")
    p.add_argument(
        "--threads",
        type=Integer(low=1).argtype(),
        default=1,
        help="threads of the descriptor pass that screens the frames (default 1)",
    )
    add_output_options(p)
    p.set_defaults(func=run)


def line(step, rtol: float, patience: int) -> str:
    """One progress line per iteration, with the stopping criterion's numbers."""
    tail = f", {step.explorers_failed} explorer(s) stopped" if step.explorers_failed else ""
    crit = ""
    if step.change is not None:
        d_rmse, d_u = (100 * c for c in step.change)
        crit = (
            f"; change RMSE {d_rmse:.1f} %, U {d_u:.1f} % (stop when both ≤ {100 * rtol:g} % "
            f"for {patience} in a row: {step.unchanged})"
        )
    return (
        f"iteration {step.iteration}: {step.frames_seen} frames seen, {step.kept} kept, "
        f"{step.oracle_calls} oracle calls, held-out force RMSE {step.heldout_rmse:.4f} eV/Å, "
        f"U mean {step.u_mean:.4f} ± {step.u_std:.4f} eV/Å{tail}{crit}"
        + (" — converged" if step.converged else "")
    )


def _numbers(pairs: dict[str, str]) -> dict[str, float | str]:
    """Setting values as numbers where they read as one."""
    out: dict[str, float | str] = {}
    for key, value in pairs.items():
        try:
            out[key] = float(value)
        except ValueError:
            out[key] = value
    return out


def run(args: argparse.Namespace) -> int:
    """``potforge explore``: run (or resume) the active-learning loop."""
    from potforge.active.loop import explorer_specs, run_active, system_acquisitions
    from potforge.active.starts import rattled, start_structures
    from potforge.commands._output import OutputFolder
    from potforge.errors import DataError
    from potforge.oracles import make_oracle

    if not args.out:
        raise DataError("--out is required: the folder for the model and the iterations")
    try:
        temps = [float(t) for t in args.temps.split(",") if t.strip()]
    except ValueError:
        raise DataError(
            f"--temps {args.temps!r} must be temperatures in K, e.g. 300,1500"
        ) from None
    if not temps or min(temps) <= 0:
        raise DataError(f"--temps {args.temps!r}: every temperature must be > 0 K")
    pressures = None
    if args.pressures is not None:
        try:
            pressures = [float(p) for p in args.pressures.split(",") if p.strip()]
        except ValueError:
            raise DataError(
                f"--pressures {args.pressures!r} must be pressures in GPa, e.g. 0,10"
            ) from None
        if not pressures:
            raise DataError("--pressures is empty; give pressures in GPa, e.g. 0,10")
    settings = _numbers(parse_pairs(args.settings, "--set"))
    systems: dict[str, dict[str, float | str]] = {}
    for text in args.systems or []:
        pattern, sep, pairs = text.rpartition(":")
        if not sep or not pattern.strip() or "=" in pattern:
            raise DataError(
                f"--system {text!r} must be PATTERN:KEY=VALUE[,KEY=VALUE], e.g. '*-3000K:hi=0.4'"
            )
        systems[pattern.strip()] = _numbers(parse_pairs(pairs.split(","), "--system"))
    template = model_template(args.model)
    template._validate_params()
    oracle = make_oracle(args.oracle)
    starts = start_structures(args.element, [s.strip() for s in args.starts.split(",")])
    if args.initial:
        from potforge.data.readers import read_many

        initial = read_many([args.initial], require=(), validate=True)
        for a in initial:
            a.calc = None  # the loop labels them with --oracle
    else:
        initial = rattled(starts, args.init, seed=args.seed)
    specs = explorer_specs(
        starts,
        temps,
        seed=args.seed,
        steps=args.steps,
        interval=args.interval,
        engine=args.engine,
        ensemble=args.ensemble,
        pressures=pressures,
        t_end=args.t_end,
    )
    system_acquisitions(args.acquisition, settings, systems, [s.name for s in specs])  # check
    folder = OutputFolder(
        args.out,
        force=args.force,
        inputs=[p for p in (args.model, args.initial) if p and Path(p).exists()],
        argv=args.argv,
        seeds={"seed": args.seed},
        quiet=args.quiet,
    )

    def observe(step) -> None:
        if not args.quiet:
            print(line(step, args.rtol, args.patience), flush=True)

    result = run_active(
        template,
        initial,
        specs,
        oracle,
        args.db,
        acquisition=args.acquisition,
        acquisition_settings=settings,
        system_settings=systems,
        uncertainty=args.uncertainty,
        dedup=args.dedup,
        threads=args.threads,
        n_heldout=args.heldout,
        n_ensemble=args.members,
        quota=args.quota,
        budget=args.budget,
        max_iterations=args.max_iterations,
        patience=args.patience,
        rtol=args.rtol,
        seed=args.seed,
        workers=args.workers,
        observer=observe,
        max_seconds=None if args.max_minutes is None else 60 * args.max_minutes,
        progress=None if not args.quiet else False,
    )
    with folder.staged() as out:
        result.model.save(out / "model")
        write_json(
            out / "iterations.json",
            {
                "stop": result.stop,
                "training": result.training,
                "heldout": result.heldout,
                "steps": [s.to_dict() for s in result.steps],
            },
        )
        from potforge.active.plots import learning_plot

        learning_plot(out / "learning.png", result.steps)
        last = result.steps[-1]
        print(
            f"stopped ({result.stop}) after {last.oracle_calls} oracle calls: held-out force "
            f"RMSE {last.heldout_rmse:.4f} eV/Å"
        )
        print(f"wrote {args.out}/: model/, iterations.json, learning.png, provenance.json, log.txt")
    if result.stop == "iterations":
        print("potforge explore: --max-iterations reached before convergence", file=sys.stderr)
    elif result.stop == "time":
        print(
            "potforge explore: --max-minutes spent before convergence; rerun the command "
            "(with --force for the same --out) to go on",
            file=sys.stderr,
        )
    return 0
