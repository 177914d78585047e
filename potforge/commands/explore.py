"""``potforge explore``: MD-driven active learning — explore with MD on the current model, label
the frames an acquisition picks (uncertain but energetically reachable), refit, repeat.

Resumable: every stage is checkpointed in --db; rerun the same command after a kill.  An
explorer that blows up (NaN, atoms too close, temperature runaway) is stopped and recorded; the
others go on; a failed oracle call is recorded and skipped.  Stops when the held-out force
error and the held-out uncertainty stop changing (--patience iterations within --rtol), or when
--budget oracle calls are spent.
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
    p.add_argument("--budget", type=Integer(low=1).argtype(), default=200, help="most oracle calls")
    p.add_argument(
        "--quota", type=Integer(low=1).argtype(), default=10, help="frames labelled per iteration"
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
    p.add_argument("--max-iterations", type=Integer(low=1).argtype(), default=20)
    p.add_argument("--patience", type=Integer(low=1).argtype(), default=3)
    p.add_argument("--rtol", type=Real(low=0).argtype(), default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=Integer(low=1).argtype(), help="Dask workers")
    add_output_options(p)
    p.set_defaults(func=run)


def line(step) -> str:
    """One progress line per iteration."""
    tail = f", {step.explorers_failed} explorer(s) stopped" if step.explorers_failed else ""
    return (
        f"iteration {step.iteration}: {step.frames_seen} frames seen, {step.kept} kept, "
        f"{step.oracle_calls} oracle calls, held-out force RMSE {step.heldout_rmse:.4f} eV/Å, "
        f"U mean {step.u_mean:.4f} ± {step.u_std:.4f} eV/Å{tail}"
        + (" — converged" if step.converged else "")
    )


def run(args: argparse.Namespace) -> int:
    """``potforge explore``: run (or resume) the active-learning loop."""
    from potforge.active.loop import explorer_specs, run_active
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
    settings: dict[str, float | str] = {}
    for key, value in parse_pairs(args.settings, "--set").items():
        try:
            settings[key] = float(value)
        except ValueError:
            settings[key] = value
    template = model_template(args.model)
    template._validate_params()
    oracle = make_oracle(args.oracle)
    starts = start_structures(args.element, [s.strip() for s in args.starts.split(",")])
    folder = OutputFolder(
        args.out,
        force=args.force,
        inputs=[args.model] if Path(args.model).is_dir() else [],
        argv=args.argv,
        seeds={"seed": args.seed},
        quiet=args.quiet,
    )
    specs = explorer_specs(
        starts,
        temps,
        seed=args.seed,
        steps=args.steps,
        interval=args.interval,
        engine=args.engine,
        ensemble=args.ensemble,
    )

    def observe(step) -> None:
        if not args.quiet:
            print(line(step), flush=True)

    result = run_active(
        template,
        rattled(starts, args.init, seed=args.seed),
        specs,
        oracle,
        args.db,
        acquisition=args.acquisition,
        acquisition_settings=settings,
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
    return 0
