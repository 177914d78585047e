"""``potforge compress``: a smaller data set that keeps the diversity of a large pool.

Picks structures from POOL (files or databases) one at a time, each the one that raises the
entropy of the picked atomic environments most (greedy dH; exact), until --n structures or
--atoms atoms; farthest-point sampling (on per-structure mean descriptors) and random picks are
the baselines (--method).  The picked structures, labels kept, go to --out (extxyz; an existing
file is never overwritten).  Use it to seed active learning or as the candidate pool of
information matching.
"""

from __future__ import annotations

import argparse

from potforge.commands._common import add_descriptor_options, add_quiet, bandwidth_value, read_sets


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``compress`` verb to ``sub``."""
    from potforge.params import Integer, Options

    p = sub.add_parser(
        "compress",
        help="the maximal-entropy subset of a pool of structures",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    p.add_argument("pool", nargs="+", metavar="POOL", help="data files or databases")
    p.add_argument("--n", type=Integer(low=1).argtype(), help="structures to keep")
    p.add_argument("--atoms", type=Integer(low=1).argtype(), help="atoms to keep at most")
    p.add_argument(
        "--method",
        type=Options(("greedy", "fps", "random")).argtype(),
        default="greedy",
        help="greedy entropy (default), farthest-point sampling or random",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="the subset, extxyz (new file)")
    add_descriptor_options(p)
    p.add_argument("--seed", type=int, default=0, help="seed of random picks")
    add_quiet(p, log=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``potforge compress``."""
    from pathlib import Path

    import numpy as np

    from potforge.data.readers import write_extxyz
    from potforge.errors import DataError
    from potforge.generate.compress import farthest_point, greedy_entropy, random_subset
    from potforge.generate.entropy import entropy
    from potforge.generate.sets import describe_sets

    say = (lambda *a, **k: None) if args.quiet else print
    if args.n is None and args.atoms is None:
        raise DataError("give --n (structures) or --atoms (atoms) to keep")
    out = Path(args.out)
    if out.exists():
        raise DataError(f"--out {out} exists; potforge never overwrites a file: choose a new name")
    if not out.parent.is_dir():
        raise DataError(f"--out {out}: folder {out.parent} does not exist")
    bandwidth = bandwidth_value(args.bandwidth)
    pool = [a for s in read_sets(args.pool, "POOL") for a in s]
    if args.n is not None and args.n > len(pool):
        raise DataError(f"--n {args.n} is more than the pool's {len(pool)} structures")
    described = describe_sets(
        [pool],
        descriptor=args.descriptor,
        twojmax=args.twojmax,
        bandwidth=bandwidth,
        seed=args.seed,
    )
    envs, h = described.envs[0], described.h
    if args.method == "greedy":
        sel = greedy_entropy(envs, args.n, h, size=args.atoms)
        picked = sel.indices
    elif args.method == "fps":
        picked = farthest_point(envs, args.n, h, size=args.atoms).indices
    else:
        picked = random_subset(envs, args.n, args.seed, h, size=args.atoms).indices
    picked = np.asarray(picked, dtype=int)
    if picked.size == 0:
        raise DataError(f"no structure of the pool fits --atoms {args.atoms}")
    chosen = [pool[i] for i in picked]
    h_pool = entropy(np.vstack(envs), h)
    h_sub = entropy(np.vstack([envs[i] for i in picked]), h)
    atoms = sum(len(a) for a in chosen)
    write_extxyz(out, chosen)
    say(described.rule)
    say(
        f"kept {len(chosen)} of {len(pool)} structures ({atoms} of "
        f"{sum(len(a) for a in pool)} atoms) by {args.method}: entropy {h_sub:.3f} nats "
        f"(pool {h_pool:.3f}); wrote {out}"
    )
    return 0
