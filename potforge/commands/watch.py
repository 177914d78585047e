"""``potforge watch``: flag the frames of your own MD where a saved model is uncertain or
extrapolates — U (DP-GEN's max_devi_f over K posterior samples) and, with --train, the per-atom
extrapolation grade γ against the training force rows (pacemaker's D-optimality grade).

Input: a LAMMPS text dump (``dump ID all custom N FILE id type x y z``; give the element of each
type with --elements W,Mo or --types 1=W 2=Mo unless the dump has an ``element`` column) or an
extxyz trajectory. Atoms are numbered from 0 in the order of their LAMMPS ids.

Thresholds: U above --threshold (default: mean + 3 std of U on the --train structures
themselves, else 0.1 eV/Å) or γ above --grade-threshold (default 5, pacemaker's level for saving
frames; γ ≤ 1 inside the training data). The exit status is 0 whether or not frames are flagged
(read the summary line or watch.csv); 2 on bad input.

No LAMMPS-side hook: a production run can dump every N steps and be watched afterwards, or
periodically while it runs (an incomplete last frame is skipped with a warning).
"""

from __future__ import annotations

import argparse

from potforge.commands._common import add_output_options, progress

DEFAULT_U = 0.1
"""U threshold without --train, eV/Å."""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``watch`` verb to ``sub``."""
    from potforge.params import Integer, Real

    p = sub.add_parser(
        "watch",
        help="flag uncertain / extrapolating frames of a LAMMPS dump or trajectory",
        description=__doc__.split("\n\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("dump", metavar="DUMP", help="LAMMPS text dump or extxyz trajectory")
    p.add_argument(
        "--model", required=True, metavar="DIR", help="folder written by potforge fit (+ uq)"
    )
    p.add_argument("--elements", metavar="EL,...", help="element of LAMMPS type 1, 2, ...")
    p.add_argument("--types", nargs="+", metavar="TYPE=EL", help="e.g. 1=W 2=Mo")
    p.add_argument("--units", default="metal", help="LAMMPS units of the dump (default metal: Å)")
    p.add_argument(
        "--members",
        type=Integer(low=2).argtype(),
        default=32,
        metavar="K",
        help="posterior samples for U (default 32)",
    )
    p.add_argument(
        "--threshold",
        type=Real(low=0, low_open=True).argtype(),
        default=None,
        metavar="U",
        help="flag frames with U above this, eV/Å (default: mean + 3 std of U on the "
        f"--train structures, else {DEFAULT_U})",
    )
    p.add_argument(
        "--grade-threshold",
        type=Real(low=0, low_open=True).argtype(),
        default=5.0,
        metavar="G",
        help="flag frames with γ above this (default 5; needs --train)",
    )
    p.add_argument(
        "--train",
        nargs="+",
        metavar="FILE",
        help="the model's training structures: γ against their force rows, and the default U "
        "threshold",
    )
    p.add_argument(
        "--max-rows",
        type=Integer(low=1).argtype(),
        default=20000,
        metavar="N",
        help="training force rows for γ: a random N of them when there are more (default 20000)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the samples (default 0)")
    add_output_options(p)
    p.set_defaults(func=run)


def _type_map(args: argparse.Namespace) -> dict[int, str] | None:
    """LAMMPS type → element from --elements or --types (None when neither is given)."""
    from ase.data import atomic_numbers

    from potforge.errors import DataError

    if args.elements and args.types:
        raise DataError("give --elements or --types, not both")
    if args.elements:
        names = [e.strip() for e in args.elements.split(",")]
        pairs = {i + 1: e for i, e in enumerate(names)}
        flag = f"--elements {args.elements}"
    elif args.types:
        pairs = {}
        flag = "--types"
        for item in args.types:
            key, sep, value = item.partition("=")
            try:
                pairs[int(key)] = value.strip()
            except ValueError:
                raise DataError(f"--types {item!r} must be TYPE=ELEMENT, e.g. 1=W") from None
            if not sep:
                raise DataError(f"--types {item!r} must be TYPE=ELEMENT, e.g. 1=W")
    else:
        return None
    for t, e in pairs.items():
        if e not in atomic_numbers:
            raise DataError(f"{flag}: {e!r} (type {t}) is not an element symbol")
    return pairs


def _is_dump(path) -> bool:
    with open(path, errors="replace") as fh:
        return fh.readline().strip().startswith("ITEM: TIMESTEP")


def read_frames(path, types: dict[int, str] | None, elements: list[str], units: str = "metal"):
    """Frames of a dump or trajectory, one at a time, elements mapped and checked; each has
    ``info["step"]`` (the dump's timestep, an extxyz ``step``/``timestep`` or the frame index)."""
    import warnings
    from pathlib import Path

    import ase.io
    import numpy as np

    from potforge.errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    dump = _is_dump(path)
    if dump:
        it = ase.io.iread(str(path), index=":", format="lammps-dump-text", units=units)
    else:
        it = ase.io.iread(str(path), index=":")
    previous = None
    before: int | None = None
    i = 0
    while True:
        try:
            atoms = next(it)
        except StopIteration:
            break
        except Exception as exc:  # ase.io raises many types for a malformed file
            text = " ".join(str(exc).split())[:160]
            if dump and "Incomplete" in text and i > 0:
                warnings.warn(
                    f"{path}: frame {i} is incomplete (is the run still writing it?); "
                    f"watched the {i} frames before it",
                    stacklevel=2,
                )
                break
            raise DataError(f"{path}: frame {i} cannot be read ({text})") from None
        if dump and "type" in atoms.arrays:
            found = sorted({int(t) for t in atoms.arrays["type"]})
            from_types = np.array_equal(atoms.numbers, atoms.arrays["type"])
            if types is not None:
                missing = [t for t in found if t not in types]
                if missing:
                    raise DataError(
                        f"{path} frame {i} has atom type(s) {', '.join(map(str, missing))} that "
                        f"--elements/--types do not map (they map {sorted(types)})"
                    )
                atoms.set_chemical_symbols([types[int(t)] for t in atoms.arrays["type"]])
            elif from_types:
                raise DataError(
                    f"{path} names atom types ({', '.join(map(str, found))}), not elements: give "
                    "the element of each type, e.g. --elements W or --types 1=W"
                )
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(elements))
        if unknown:
            raise DataError(
                f"{path} frame {i} holds {', '.join(unknown)}, which the model does not know "
                f"(it knows {', '.join(elements)})"
            )
        step = atoms.info.get("timestep", atoms.info.get("step"))
        atoms.info["step"] = i if step is None else int(step)
        if previous is not None:
            before = len(previous)
            yield previous
        previous = atoms
        i += 1
    if previous is not None:
        if dump and before is not None and len(previous) < before:  # cut mid-frame
            warnings.warn(
                f"{path}: the last frame has {len(previous)} atoms, the one before {before} "
                f"(is the run still writing it?); watched the {i - 1} frames before it",
                stacklevel=2,
            )
            return
        yield previous


def plot(path, steps, u, u_thr, gamma, g_thr) -> None:
    """U (and γ) against step with the thresholds (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = 2 if gamma is not None else 1
    fig, axes = plt.subplots(rows, 1, figsize=(6, 2.4 * rows + 0.6), sharex=True, squeeze=False)
    ax = axes[0, 0]
    ax.plot(steps, u, ".-", lw=0.8, ms=3)
    ax.axhline(u_thr, color="C3", ls="--", label=f"threshold {u_thr:.3g} eV/Å")
    ax.set_ylabel("U (eV/Å)")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    if gamma is not None:
        ax = axes[1, 0]
        ax.semilogy(steps, gamma, ".-", lw=0.8, ms=3, color="C1")
        ax.axhline(g_thr, color="C3", ls="--", label=f"threshold {g_thr:g}")
        ax.set_ylabel("max γ")
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _line(k, step, u, ua, u_thr, g, ga, g_thr) -> str:
    text = f"frame {k} (step {step}): U {u:.3g} eV/Å" + (f" > {u_thr:.3g}" if u > u_thr else "")
    text += f", atom {ua}"
    if g is not None:
        text += f"; γ {g:.3g}" + (f" > {g_thr:g}" if g > g_thr else "") + f" at atom {ga}"
    return text


def run(args: argparse.Namespace) -> int:
    """``potforge watch``: print one line per flagged frame and a summary; write watch.csv and
    watch.png into --out when given.  Returns 0 whether or not frames are flagged."""
    import itertools
    from pathlib import Path

    import numpy as np

    from potforge.active.uncertainty import max_devi_f
    from potforge.active.watch import default_threshold, screen, training_grade
    from potforge.commands._output import OutputFolder
    from potforge.data.readers import read_many
    from potforge.errors import DataError
    from potforge.model import LinearPotential
    from potforge.progress import Progress

    types = _type_map(args)
    if not Path(args.dump).is_file():
        raise DataError(f"{args.dump}: no such file")
    model = LinearPotential.load(args.model)
    if not model.has_posterior:
        raise DataError(
            f"{args.model} has no posterior (posterior.npz), which U needs: fit one with "
            f"potforge uq --model {args.model} --train FILE"
        )
    folder = None
    if args.out:
        folder = OutputFolder(
            args.out,
            force=args.force,
            inputs=[args.dump, args.model, *(args.train or [])],
            argv=args.argv,
            seeds={"seed": args.seed},
            quiet=args.quiet,
        )
    say = print if folder is not None or not args.quiet else (lambda *a, **k: None)
    steps: list[int] = []

    def frames_kept():
        for atoms in read_frames(args.dump, types, model.elements_, args.units):
            steps.append(atoms.info["step"])
            yield atoms

    frames = frames_kept()
    first = next(frames, None)  # bad input (types, elements) is named before any progress
    if first is None:
        raise DataError(f"{args.dump}: contains no frames")
    coefs = model.sample_coef(args.members, seed=args.seed)
    grade = None
    u_thr = args.threshold
    how = "--threshold"
    if args.train:
        train = read_many(args.train, stress_order="drop", require=())
        designs = model.structure_designs(train, progress=False)
        grade = training_grade(model, designs, args.max_rows, args.seed)
        sub = "" if grade.n_used == grade.n_rows else " (a random subsample)"
        say(
            f"γ against the training force rows: active set of {len(grade.columns)} chosen from "
            f"{grade.n_used} of {grade.n_rows} rows{sub} of {len(train)} structures"
        )
        if u_thr is None:
            preds = model.predict_designs(designs, coefs)
            u_train = np.array([max_devi_f(p["forces"]) for p in preds])
            u_thr = default_threshold(u_train)
            how = (
                f"mean + 3 std of U on the {len(train)} training structures "
                f"({u_train.mean():.3g} ± {u_train.std():.3g})"
            )
    if u_thr is None:
        u_thr = DEFAULT_U
        how = "default without --train"
    g_thr = args.grade_threshold
    say(
        f"U over K = {args.members} posterior samples; flagged: U > {u_thr:.3g} eV/Å ({how})"
        + (f" or γ > {g_thr:g}" if grade is not None else " (no γ without --train)")
    )
    with Progress(None, "watch", "frames", progress(args)) as bar:
        res = screen(
            model,
            itertools.chain([first], frames),
            coefs,
            grade,
            observe=lambda done: bar.update(done - bar.n),
        )
    n = len(res.u)
    flagged = res.u > u_thr
    if res.gamma is not None:
        flagged |= res.gamma > g_thr
    for k in np.flatnonzero(flagged):
        g = None if res.gamma is None else res.gamma[k]
        ga = None if res.gamma_atom is None else res.gamma_atom[k]
        say(_line(k, steps[k], res.u[k], res.u_atom[k], u_thr, g, ga, g_thr))
    count = int(flagged.sum())
    parts = [f"U > {u_thr:.3g}: {int((res.u > u_thr).sum())}"]
    if res.gamma is not None:
        parts.append(f"γ > {g_thr:g}: {int((res.gamma > g_thr).sum())}")
    first = (
        f"; the first at step {steps[int(np.argmax(flagged))]} (frame {int(np.argmax(flagged))})"
        if count
        else ""
    )
    say(f"{count} of {n} frames flagged ({', '.join(parts)}){first}")
    if folder is not None:
        with folder.staged() as out:
            with open(out / "watch.csv", "w") as fh:
                fh.write("frame,step,U_eV_per_A,U_atom,max_gamma,gamma_atom,flagged\n")
                for j in range(n):
                    g = "" if res.gamma is None else f"{res.gamma[j]:.6g}"
                    ga = "" if res.gamma_atom is None else str(res.gamma_atom[j])
                    fh.write(
                        f"{j},{steps[j]},{res.u[j]:.6g},{res.u_atom[j]},{g},{ga},"
                        f"{int(flagged[j])}\n"
                    )
            plot(out / "watch.png", steps, res.u, u_thr, res.gamma, g_thr)
            say(f"wrote {args.out}/: watch.csv, watch.png, provenance.json, log.txt")
    return 0
