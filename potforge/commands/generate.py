"""``potforge generate``: new configurations whose atomic environments maximise the entropy of
the data set — diverse by construction (seed 001, ../shared/METHODS.md §2).

Each configuration starts at random (atom count, volume per atom, a strained and sheared cube,
atoms at least --r-min apart) and L-BFGS-B moves its atoms and cell shape to add the most
entropy (SNAP descriptors, whitened) to the existing set: --extend data and every configuration
generated before it.  Stored in --db as candidates (method "entropy") with their seed, settings
and novelty; resumable (rerun the same command after a kill: finished configurations are kept;
a larger --n extends the set).  With --label the oracle labels them afterwards.
"""

from __future__ import annotations

import argparse

from potforge.commands._common import add_output_options, progress, write_json


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``generate`` verb to ``sub``."""
    from potforge.params import Integer, Options, Real

    p = sub.add_parser(
        "generate",
        help="entropy-maximising generation of diverse training configurations",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    p.add_argument("--element", required=True, help="element(s), e.g. W or W,Mo")
    p.add_argument("--composition", help="fraction of each element, e.g. 0.5,0.5 (default equal)")
    p.add_argument("--n", type=Integer(low=1).argtype(), required=True, help="configurations")
    p.add_argument("--atoms", default="8-64", help="atom-count range LOW-HIGH (default 8-64)")
    p.add_argument(
        "--volume",
        help="volume per atom relative to the ground state, LOW-HIGH (default 0.8-1.2); the "
        "ground state is relaxed with --oracle, else ASE's reference volume",
    )
    p.add_argument("--volume-A3", dest="volume_a3", help="volume per atom in Å³/atom, LOW-HIGH")
    p.add_argument(
        "--db", required=True, metavar="FILE", help="database the configurations go to (resumes)"
    )
    p.add_argument(
        "--extend", action="append", metavar="DB|FILE", help="existing data to complement"
    )
    p.add_argument("--oracle", metavar="SPEC", help="reference calculator (volumes, --label)")
    p.add_argument("--label", action="store_true", help="label the configurations with --oracle")
    p.add_argument(
        "--r-min",
        type=Real(low=0, low_open=True).argtype(),
        metavar="Å",
        help="repulsion floor (default 0.8 × the ground state's nearest-neighbour distance)",
    )
    p.add_argument("--twojmax", type=Integer(low=2).argtype(), default=6, help="SNAP 2J")
    p.add_argument(
        "--bandwidth",
        default="nearest",
        help="kernel bandwidth in the whitened space: nearest (default), silverman or a number",
    )
    p.add_argument(
        "--iterations", type=Integer(low=0).argtype(), default=30, help="L-BFGS-B iterations"
    )
    p.add_argument(
        "--cell",
        type=Options(("shape", "fixed")).argtype(),
        default="shape",
        help="optimise the cell shape (volume kept) or keep the random start's cell",
    )
    p.add_argument("--batch", type=Integer(low=1).argtype(), help="configurations per round")
    p.add_argument("--workers", type=Integer(low=1).argtype(), help="Dask workers")
    p.add_argument("--seed", type=int, default=0)
    add_output_options(p)
    p.set_defaults(func=run)


def parse_range(text: str | None, flag: str, kind: type = float) -> tuple:
    """``"8-64"`` → (8, 64): a LOW-HIGH range, one clear sentence when it is not one."""
    from potforge.errors import DataError

    parts = (text or "").replace("–", "-").split("-")
    try:
        if len(parts) == 1:
            lo = hi = kind(parts[0])
        elif len(parts) == 2:
            lo, hi = kind(parts[0]), kind(parts[1])
        else:
            raise ValueError
    except ValueError:
        raise DataError(f"{flag} {text!r} must be a range LOW-HIGH, e.g. {flag} 8-64") from None
    if not 0 < lo <= hi:
        raise DataError(f"{flag} {text!r}: need 0 < LOW ≤ HIGH")
    return lo, hi


def run(args: argparse.Namespace) -> int:
    """``potforge generate``."""
    from pathlib import Path

    from potforge.commands._output import OutputFolder
    from potforge.data.readers import read_many
    from potforge.data.store import Store
    from potforge.errors import DataError
    from potforge.generate.descriptors import SnapDescriptor
    from potforge.generate.generator import GeneratorSettings, ground_state
    from potforge.generate.loop import run_generation
    from potforge.oracles import make_oracle

    say = (lambda *a, **k: None) if args.quiet else print
    elements = tuple(e.strip() for e in args.element.split(",") if e.strip())
    composition = None
    if args.composition:
        try:
            composition = tuple(float(c) for c in args.composition.split(","))
        except ValueError:
            raise DataError(
                f"--composition {args.composition!r} must be numbers, e.g. 0.5,0.5"
            ) from None
    if args.volume and args.volume_a3:
        raise DataError("give --volume (relative) or --volume-A3 (Å³/atom), not both")
    if args.label and not args.oracle:
        raise DataError("--label needs --oracle SPEC, the calculator that labels them")
    bandwidth: float | str = args.bandwidth
    if bandwidth not in ("nearest", "silverman"):
        try:
            bandwidth = float(bandwidth)
        except ValueError:
            raise DataError(
                f"--bandwidth {args.bandwidth!r} must be nearest, silverman or a number > 0"
            ) from None
        if not bandwidth > 0:
            raise DataError(f"--bandwidth must be > 0, got {args.bandwidth!r}")
    n_atoms = parse_range(args.atoms, "--atoms", int)
    SnapDescriptor(elements, twojmax=args.twojmax)  # unknown elements, bad 2J: before any work
    existing = []
    for path in args.extend or []:
        found = read_many([path], require=(), validate=False)
        if not found:
            raise DataError(f"--extend {path}: holds no structures to extend")
        existing += found
    oracle = make_oracle(args.oracle) if args.oracle else None
    folder = None
    if args.out:
        folder = OutputFolder(
            args.out,
            force=args.force,
            inputs=[*(args.extend or []), args.db],
            argv=args.argv,
            seeds={"seed": args.seed},
            quiet=args.quiet,
        )
    v0, nn = ground_state(
        elements, oracle if not args.volume_a3 else None, say, hint="give --volume-A3"
    )
    if args.volume_a3:
        volume = parse_range(args.volume_a3, "--volume-A3")
    else:
        lo, hi = parse_range(args.volume or "0.8-1.2", "--volume")
        volume = (lo * v0, hi * v0)
    r_min = args.r_min if args.r_min is not None else 0.8 * nn
    settings = GeneratorSettings(
        elements,
        volume,
        r_min,
        composition=composition,
        n_atoms=n_atoms,
        max_iter=args.iterations,
        cell_strain=0.1 if args.cell == "shape" else 0.0,
    )
    say(
        f"generating {args.n} configurations of {'-'.join(map(str, n_atoms))} atoms at "
        f"{volume[0]:.2f}–{volume[1]:.2f} Å³/atom, r_min {r_min:.2f} Å"
        + (f", complementing {len(existing)} structures" if existing else "")
    )
    store = Store(args.db)
    result = run_generation(
        args.n,
        settings,
        store,
        descriptor=SnapDescriptor(elements, twojmax=args.twojmax),
        existing=existing,
        bandwidth=bandwidth,
        batch=args.batch,
        workers=args.workers,
        seed=args.seed,
        progress=progress(args),
    )
    for k, why in sorted(result.failed.items()):
        say(f"configuration {k} failed: {why}")
    last = result.structures[-1].info if result.structures else {}
    h = result.space.bandwidth if result.space is not None else float("nan")
    say(
        f"{len(result.structures)} of {args.n} configurations in {args.db} (method 'entropy'); "
        f"entropy of the set {last.get('entropy', float('nan')):.3f} nats (bandwidth {h:.3g})"
    )
    if args.label and oracle is not None:
        from potforge.oracles.labelling import label_candidates

        states = label_candidates(store, result.hashes, oracle, progress=progress(args))
        ok = sum(s == "ok" for s in states.values())
        say(f"labelled with {oracle.spec}: {ok} ok, {len(states) - ok} failed")
    if folder is not None:
        from potforge.data.readers import write_extxyz

        with folder.staged() as out:
            write_extxyz(out / "generated.extxyz", result.structures)
            write_json(
                out / "generation.json",
                {
                    "settings": settings.to_dict(),
                    "bandwidth": result.space.bandwidth if result.space else None,
                    "failed": {str(k): v for k, v in result.failed.items()},
                    "configurations": [
                        {
                            k: a.info.get(k)
                            for k in (
                                "generate_index",
                                "generate_seed",
                                "entropy",
                                "novelty",
                                "min_distance",
                            )
                        }
                        | {"atoms": len(a), "hash": h}
                        for a, h in zip(result.structures, result.hashes, strict=True)
                    ],  # fmt: skip
                },
            )
        say(f"wrote {Path(args.out)}/: generated.extxyz, generation.json")
    if result.failed:
        return 0 if result.structures else 2
    return 0
