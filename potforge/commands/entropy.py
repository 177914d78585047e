"""``potforge entropy``: how diverse data sets are — the entropy of their atomic environments.

Every data set is described in one descriptor space (SNAP 2J=6 whitened on the union of the
sets, bandwidth by the median nearest-neighbour rule; or ``--descriptor quests``: the QUESTS
descriptor raw, bandwidth 0.015, the ``quests`` package's values).  Per set: structures,
environments, the entropy H (nats; at most ln N), the diversity, and against the first set
the mean novelty dH of its environments and the fraction of them the first set already covers
(dH < --eps).  ``--out DIR`` writes entropy.json and entropy.png (entropy vs number of
environments, one line per data set).
"""

from __future__ import annotations

import argparse

from potforge.commands._common import (
    add_descriptor_options,
    add_output_options,
    bandwidth_value,
    read_sets,
    write_json,
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``entropy`` verb to ``sub``."""
    from potforge.params import Real

    p = sub.add_parser(
        "entropy",
        help="entropy, diversity and overlap of data sets' atomic environments",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    p.add_argument("data", nargs="+", metavar="DATA", help="data files or databases")
    add_descriptor_options(p)
    p.add_argument(
        "--eps",
        type=Real().argtype(),
        default=1e-3,
        help="an environment counts as covered by the first set when its dH < eps (quests's)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the subsets of the curve")
    add_output_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``potforge entropy``."""
    import numpy as np

    from potforge.commands._output import OutputFolder
    from potforge.generate.entropy import delta_entropy, diversity, entropy, entropy_curve
    from potforge.generate.sets import describe_sets

    say = (lambda *a, **k: None) if args.quiet else print
    bandwidth = bandwidth_value(args.bandwidth)
    sets = read_sets(args.data, "DATA")
    folder = None
    if args.out:
        folder = OutputFolder(args.out, force=args.force, inputs=args.data, argv=args.argv,
                              seeds={"seed": args.seed}, quiet=args.quiet)  # fmt: skip
    described = describe_sets(
        sets, descriptor=args.descriptor, twojmax=args.twojmax, bandwidth=bandwidth, seed=args.seed
    )
    h = described.h
    say(described.rule)
    first = described.stacked(0)
    rows: list[dict] = []
    for k, path in enumerate(args.data):
        X = described.stacked(k)
        row = {
            "data": str(path),
            "structures": len(sets[k]),
            "environments": int(X.shape[0]),
            "entropy": entropy(X, h),
            "ln_n": float(np.log(X.shape[0])),
            "diversity": diversity(X, h),
        }
        if k > 0:
            dh = delta_entropy(X, first, h)
            row["novelty_vs_first"] = float(np.mean(dh))
            row["covered_by_first"] = float(np.mean(dh < args.eps))
        rows.append(row)
    name_w = max(len(r["data"]) for r in rows)
    say(f"{'data':{name_w}s}  structures  environments  H (nats)  ln N    diversity  "
        "dH vs first  covered")  # fmt: skip
    for r in rows:
        extra = (
            f"  {r['novelty_vs_first']:11.3f}  {100 * r['covered_by_first']:6.1f} %"
            if "novelty_vs_first" in r
            else ""
        )
        say(f"{r['data']:{name_w}s}  {r['structures']:10d}  {r['environments']:12d}  "
            f"{r['entropy']:8.3f}  {r['ln_n']:6.3f}  {r['diversity']:9.3g}{extra}")  # fmt: skip
    if folder is not None:
        curves = []
        for k in range(len(sets)):
            X = described.stacked(k)
            sizes = np.unique(np.geomspace(1, X.shape[0], 12).astype(int))
            curves.append((sizes, entropy_curve(X, h, sizes, seed=args.seed)))
        with folder.staged() as out:
            doc_curves = [
                {"data": r["data"], "sizes": np.asarray(c[0]).tolist(),
                 "entropy": np.asarray(c[1]).tolist()}
                for r, c in zip(rows, curves, strict=True)
            ]  # fmt: skip
            doc = {"space": described.rule, "bandwidth": h, "sets": rows, "curves": doc_curves}
            write_json(out / "entropy.json", doc)
            _plot(out / "entropy.png", rows, curves, described.rule)
        say(f"wrote {args.out}/: entropy.json, entropy.png")
    return 0


def _plot(path, rows, curves, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r, (sizes, values) in zip(rows, curves, strict=True):
        ax.plot(sizes, values, marker="o", ms=3, label=r["data"])
    ax.set_xscale("log")
    ax.set_xlabel("environments")
    ax.set_ylabel("entropy H (nats)")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
