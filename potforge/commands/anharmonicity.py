"""``potforge anharmonicity``: the anharmonicity score σ^A of a material, from MD with a calculator.

σ^A measures how far the forces in MD at each temperature are from the harmonic forces −Φ·u of
the relaxed structure (RMS form of Knoop et al. 2020; 0 = harmonic, ≳ 0.2 strongly anharmonic).

The structure is a periodic bulk cell (a file, or a builder name such as bcc:W, which relaxes
the lattice constant with the calculator and builds a cubic cell of ≥ 50 atoms); its positions
are relaxed at fixed cell unless already force-free; force constants come from phonopy finite
displacements on that cell; Langevin MD in ASE at each temperature gives the frames.
"""

from __future__ import annotations

import argparse

from potforge.commands._common import add_output_options, write_json


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``anharmonicity`` verb to ``sub``."""
    from potforge.params import Integer, Real

    p = sub.add_parser(
        "anharmonicity",
        help="anharmonicity score σ^A of a material from MD with a calculator",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    p.add_argument(
        "--calc",
        required=True,
        metavar="SPEC",
        help="lammps:<file>, emt, gpaw, chgnet or module:Class",
    )
    p.add_argument(
        "--structure",
        required=True,
        metavar="FILE|LATTICE:EL",
        help="a periodic bulk cell (extxyz, POSCAR, ...; the first structure of the file) or "
        "bcc:W / fcc:Cu (a relaxed cubic cell of ≥ 50 atoms)",
    )
    p.add_argument("--temps", default="300", help="temperatures in K, e.g. 300,900 (default 300)")
    p.add_argument(
        "--steps",
        type=Integer(low=1).argtype(),
        default=1000,
        help="scored MD steps (default 1000)",
    )
    p.add_argument(
        "--interval",
        type=Integer(low=1).argtype(),
        default=10,
        metavar="N",
        help="steps between scored frames (default 10)",
    )
    p.add_argument(
        "--equilibrate",
        type=Integer(low=0).argtype(),
        default=500,
        metavar="N",
        help="unscored MD steps first (default 500)",
    )
    p.add_argument(
        "--timestep",
        type=Real(low=0, low_open=True).argtype(),
        default=1e-3,
        help="MD timestep, ps (default 0.001)",
    )
    p.add_argument(
        "--supercell",
        type=Integer(low=1).argtype(),
        default=1,
        metavar="N",
        help="repeat a file's cell N×N×N first (default 1: as given)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the MD (default 0)")
    add_output_options(p)
    p.set_defaults(func=run)


def _temperatures(text: str) -> list[float]:
    from potforge.errors import DataError

    try:
        temps = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise DataError(f"--temps {text!r} must be temperatures in K, e.g. 300,900") from None
    if not temps or min(temps) <= 0 or not all(t < float("inf") for t in temps):
        raise DataError(f"--temps {text!r}: every temperature must be a finite number > 0 K")
    return temps


def _structure(text: str, calc, say):
    """The structure of ``--structure``: a file's first structure, or a built cubic cell."""
    from pathlib import Path

    from potforge.errors import DataError

    lattice, sep, element = text.partition(":")
    if sep and not Path(text).exists() and lattice.lower() in ("bcc", "fcc"):
        from ase.build import bulk
        from ase.data import atomic_numbers

        from potforge.active.anharmonicity import calculator_forces
        from potforge.properties.bulk import relax_bulk
        from potforge.properties.structures import cubic_supercell

        if element not in atomic_numbers:
            raise DataError(f"--structure {text!r}: unknown element {element!r}")
        calculator_forces(calc, bulk(element, lattice.lower(), a=3.0, cubic=True))
        state = relax_bulk(calc, element, lattice.lower())
        size = 3  # 54 atoms (bcc) or 108 (fcc)
        say(f"{element} {lattice.lower()}: a = {state.a:.4f} Å with the calculator, {size}³ cell")
        return cubic_supercell(element, lattice.lower(), state.a, size)
    from potforge.data.readers import read_structures

    return read_structures(text, require=())[0]


def plot(path, results: list[dict]) -> None:
    """σ^A against T (one point per temperature, with the spread over frames)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    t = [r["temperature"] for r in results]
    s = [r["score"] for r in results]
    spread = [float(np.std(r["per_frame"])) for r in results]
    fig, ax = plt.subplots(figsize=(4.5, 3.2), constrained_layout=True)
    ax.errorbar(t, s, yerr=spread, marker="o", capsize=3)
    ax.set_xlabel("T (K)")
    ax.set_ylabel("σ$^A$")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_title("anharmonicity score (bars: spread over frames)", fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    """``potforge anharmonicity``: print σ^A per temperature; write anharmonicity.json and
    anharmonicity.png into --out when given."""
    from pathlib import Path

    from potforge.active.anharmonicity import anharmonicity_score, harmonic_reference
    from potforge.commands._output import OutputFolder
    from potforge.oracles import make_oracle

    temps = _temperatures(args.temps)
    oracle = make_oracle(args.calc)
    calc = oracle.build()
    is_file = Path(args.structure).exists() or ":" not in args.structure
    folder = None
    if args.out:
        folder = OutputFolder(
            args.out,
            force=args.force,
            inputs=[args.structure] if is_file else [],
            argv=args.argv,
            seeds={"seed": args.seed},
            quiet=args.quiet,
        )
    say = print if folder is not None or not args.quiet else (lambda *a, **k: None)
    structure = _structure(args.structure, calc, say)
    reference = harmonic_reference(calc, structure, supercell=args.supercell)
    how = "relaxed at fixed cell" if reference.relaxed else "used as given (already relaxed)"
    say(
        f"{reference.atoms.get_chemical_formula()}: {len(reference.atoms)} atoms, positions "
        f"{how} (largest force {reference.max_force:.2g} eV/Å), force constants by phonopy"
    )
    results = []
    for t in temps:
        r = anharmonicity_score(
            calc,
            structure,
            t,
            steps=args.steps,
            interval=args.interval,
            equilibrate=args.equilibrate,
            timestep=args.timestep,
            seed=args.seed,
            reference=reference,
        )
        results.append(r)
        say(f"{t:g} K: σ^A = {r['score']:.3f} ({r['n_frames']} frames)")
    if folder is not None:
        with folder.staged() as out:
            write_json(
                out / "anharmonicity.json",
                {"calc": oracle.spec, "structure": args.structure, "results": results},
            )
            plot(out / "anharmonicity.png", results)
            say(
                f"wrote {args.out}/: anharmonicity.json, anharmonicity.png, provenance.json, "
                "log.txt"
            )
    return 0
