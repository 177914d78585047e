"""``potforge design``: choose the terms and hyperparameters of a potential from the training data.

A greedy search over a term library (SNAP at 2J = 2…8, quadratic SNAP, pair and embedding
splines; each move adds, removes or resizes a term) judged by grouped cross-validated errors,
the Fisher information of the training design (sloppy directions break ties towards
identifiable models) and, with --ref-properties, errors on material properties; then Optuna
over the cutoff and the σ weights.  The cutoff starts from the data's neighbour shells.  The
model is chosen on training data alone, before --test is read: --test only reports how the
chosen model does.  Writes the chosen model (model/, as `potforge fit` writes it), design.json
(every trial, the Pareto front), fim.png and design.log into --out.
"""

from __future__ import annotations

import argparse

from potforge.commands._common import add_output_options, add_stress_order, write_json


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``design`` verb to ``sub``."""
    from potforge.params import Integer, Real

    p = sub.add_parser(
        "design",
        help="search terms and hyperparameters guided by Fisher information and CV errors",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    p.add_argument("--train", nargs="+", required=True, metavar="FILE", help="training data")
    p.add_argument("--test", nargs="*", default=[], metavar="FILE", help="reported only")
    p.add_argument("--ref-properties", metavar="FILE", help="JSON {qoi: {value, unit, source}}")
    p.add_argument("--element", help="element of --ref-properties (default: the data's only one)")
    p.add_argument("--max-params", type=Integer(low=2).argtype(), default=500)
    p.add_argument(
        "--minutes", type=Real(low=0, low_open=True).argtype(), default=10.0, help="time budget"
    )
    p.add_argument("--trials", type=Integer(low=0).argtype(), default=20, help="Optuna trials")
    p.add_argument("--folds", type=Integer(low=2).argtype(), default=5, help="CV folds")
    p.add_argument(
        "--zbl", action="store_true", help="keep a ZBL core repulsion (inner 1.0, outer 1.6 Å)"
    )
    p.add_argument("--weights", metavar="E,F,P", default="1,1,1",
                   help="score weights of energy, force and property errors")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    add_stress_order(p)
    add_output_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``potforge design``."""
    from potforge.commands._common import read_labelled
    from potforge.commands._output import OutputFolder
    from potforge.errors import DataError
    from potforge.model.metrics import error_metrics
    from potforge.modeldesign.evaluate import ScoreWeights, read_reference_properties
    from potforge.modeldesign.search import design

    if not args.out:
        raise DataError("--out is required: the folder for the chosen model and the log")
    try:
        w = [float(x) for x in args.weights.split(",")]
        if len(w) != 3:
            raise ValueError
    except ValueError:
        raise DataError(f"--weights {args.weights!r} must be three numbers E,F,P") from None
    weights = ScoreWeights(energy=w[0], force=w[1], properties=w[2])
    reference = read_reference_properties(args.ref_properties) if args.ref_properties else None
    train = read_labelled(args.train, args.stress_order, show=not args.quiet)
    elements = sorted({e for a in train for e in a.get_chemical_symbols()})
    element = args.element or (elements[0] if len(elements) == 1 else None)
    if reference and element is None:
        raise DataError("--ref-properties of a multi-element data set needs --element")
    folder = OutputFolder(args.out, force=args.force, inputs=[*args.train, *args.test],
                          argv=args.argv, seeds={"seed": args.seed}, quiet=args.quiet)  # fmt: skip
    say = (lambda *a, **k: None) if args.quiet else print
    result = design(
        train,
        fixed="zbl(inner=1.0,outer=1.6)+const" if args.zbl else "const",
        max_params=args.max_params,
        minutes=args.minutes,
        n_trials=args.trials,
        n_folds=args.folds,
        seed=args.seed,
        weights=weights,
        element=element,
        reference=reference,
        say=say,
    )
    chosen = result.chosen.config.model()
    chosen.fit(train, progress=False)
    say("Pareto front (parameters, CV energy MAE meV/atom, CV force MAE eV/Å):")
    for t in result.pareto:
        e = t.evaluation
        mark = " ← chosen" if t is result.chosen else ""
        say(f"  {e.n_params:5d}  {e.cv_energy_mae:8.3f}  {e.cv_force_mae:8.4f}  {t.config.spec()}"
            f"{mark}")  # fmt: skip
    test_report = None
    if args.test:  # read only now: nothing above saw it
        test = read_labelled(args.test, args.stress_order, show=False)
        test_report = error_metrics(test, chosen.predict(test, progress=False))
        say(f"test: energy MAE {test_report['energy_mae_meV_per_atom']:.3f} meV/atom, force MAE "
            f"{test_report['force_mae_eV_per_A']:.4f} eV/Å ({len(test)} structures)")  # fmt: skip
    with folder.staged() as out:
        chosen.save(out / "model")
        write_json(out / "design.json", {
            "chosen": result.chosen.to_dict(),
            "pareto": [t.to_dict() for t in result.pareto],
            "trials": [t.to_dict() for t in result.trials],
            "test": test_report,
        })  # fmt: skip
        (out / "design.log").write_text("\n".join(result.log) + "\n")
        _spectra(out / "fim.png", result)
    say(f"wrote {args.out}/: model/, design.json, design.log, fim.png")
    return 0


def _spectra(path, result) -> None:
    """The Fisher spectra of the start model and the chosen one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 4))
    for t, label in ((result.trials[0], "start"), (result.chosen, "chosen")):
        lam = np.asarray(t.evaluation.eigenvalues)
        lam = np.clip(lam / max(lam.max(initial=0.0), 1e-300), 1e-20, None)
        ax.semilogy(np.arange(1, len(lam) + 1), lam, "o-", ms=3,
                    label=f"{label}: {t.config.spec()[:60]}")  # fmt: skip
    ax.axhline(1e-10, color="grey", ls=":", label="sloppy threshold")
    ax.set_xlabel("eigenvalue index")
    ax.set_ylabel("λ / λ_max of the training FIM")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
