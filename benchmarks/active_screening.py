"""Active-learning throughput: how fast the uncertainty pass screens MD frames, and how fast the
exported model runs MD beside the native LAMMPS W SNAP (issue 17, "Done when").

Screening: :func:`potforge.active.watch.screen` — K parameter vectors (the ensemble whose force
spread is U = ``max_devi_f``), one descriptor pass per frame and one matrix product for all K,
then ``force_deviation`` — in 1 and 2 threads (one LAMMPS instance per thread; its library calls
release the GIL); atoms screened per second, for SNAP 2J=6 + ZBL + const (target ≥ 10⁴ atoms/s
on 2 cores, K = 32 and 64) and, beside it, the default model (quadratic SNAP 2J=6, 496
parameters).  The split into descriptor and ensemble time is a second, separate pass.  Frames:
54-atom bcc W cells rattled 0.1 Å (as MD frames at ~1500 K), the same for every model.

MD: timesteps per second of NVT (Langevin) on a 128-atom bcc W cell for 500 steps, the potforge
model exported to LAMMPS (``potforge.active.explore``) against the native ``W_2940_2017_2.snap``
in the same LAMMPS build, single process.

Run: ``python benchmarks/active_screening.py``; writes ``benchmarks/results/active_screening.json``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import numpy as np  # noqa: E402
from ase.build import bulk  # noqa: E402

from potforge.active.explore import ExplorerSpec, explore  # noqa: E402
from potforge.active.uncertainty import force_deviation  # noqa: E402
from potforge.active.watch import screen  # noqa: E402
from potforge.data.builders import w_structures  # noqa: E402
from potforge.model import LinearPotential  # noqa: E402
from potforge.options import DEFAULT_SPEC  # noqa: E402
from potforge.oracles import make_oracle  # noqa: E402
from potforge.oracles.labelling import label_in_process  # noqa: E402

SNAP6 = "snap(twojmax=6,rcutfac=4.6)+zbl(inner=1.0,outer=1.6)+const"
ORACLE = "lammps:W_2940_2017_2.snap"
RESULTS = Path(__file__).resolve().parent / "results" / "active_screening.json"


def frames(n: int = 40) -> list:
    base = bulk("W", "bcc", a=3.18, cubic=True).repeat(3)
    out = []
    for i in range(n):
        a = base.copy()
        a.rattle(0.1, seed=i)
        out.append(a)
    return out


def fitted(spec: str):
    train = label_in_process(w_structures(0), make_oracle(ORACLE).build(), show=False)
    model = LinearPotential(spec).fit(train, progress=False)
    model.fit_posterior(train, progress=False)
    return model


def screening_rate(model, structures, k: int, threads: int) -> dict:
    """The uncertainty pass (:func:`potforge.active.watch.screen`) over ``structures``."""
    coefs = model.sample_coef(k, seed=0)
    screen(model, structures[:4], coefs, threads=threads)  # warm: one LAMMPS per thread
    t0 = time.perf_counter()
    res = screen(model, structures, coefs, threads=threads)
    seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    designs = model.structure_designs(structures, progress=False, threads=threads)
    descriptors = time.perf_counter() - t0
    t0 = time.perf_counter()
    u = [force_deviation(p["forces"]).max() for p in model.predict_designs(designs, coefs)]
    ensemble = time.perf_counter() - t0
    assert np.allclose(u, res.u)
    atoms = sum(len(a) for a in structures)
    return {
        "K": k,
        "threads": threads,
        "atoms": atoms,
        "seconds": seconds,
        "descriptor_seconds": descriptors,
        "ensemble_seconds": ensemble,
        "atoms_per_s": atoms / seconds,
        "u_median": float(np.median(res.u)),
    }


def md_rate(model) -> dict:
    start = bulk("W", "bcc", a=3.18, cubic=True).repeat(4)  # 128 atoms
    spec = ExplorerSpec("md", start, 300.0, steps=500, interval=100, seed=1)
    t0 = time.perf_counter()
    traj = explore(model, spec)
    ours = time.perf_counter() - t0
    from potforge.engines.lammps import new_lammps, setup_structure

    oracle = make_oracle(ORACLE)  # the native W SNAP's own LAMMPS commands, run in its folder
    here = os.getcwd()
    os.chdir(oracle.runtime["workdir"])
    try:
        lmp = new_lammps()
        setup_structure(lmp, start, ["W"])
        lmp.commands_list(
            list(oracle.runtime["pair_commands"])
            + [
                "velocity all create 600 1 mom yes rot yes",
                "fix 1 all nve",
                "fix 2 all langevin 300 300 0.1 1",
                "timestep 0.001",
                "run 10",
            ]
        )
    finally:
        os.chdir(here)
    t0 = time.perf_counter()
    lmp.command("run 500")
    native = time.perf_counter() - t0
    lmp.close()
    return {
        "atoms": len(start),
        "steps": 500,
        "exported_steps_per_s": 500 / ours,
        "native_snap_steps_per_s": 500 / native,
        "exported_over_native": native / ours,
        "exported_stopped": traj.stopped,
    }


def main() -> None:
    structures = frames()
    out = {"machine": platform.platform(), "date": time.strftime("%Y-%m-%d"), "frames": 40}
    for name, spec in (("snap6", SNAP6), ("default", DEFAULT_SPEC)):
        model = fitted(spec)
        rates = [screening_rate(model, structures, k, t) for t in (1, 2) for k in (32, 64)]
        out[name] = {"spec": spec, "n_params": model.n_params, "screening": rates}
        for r in rates:
            print(
                f"{name:8s} P={model.n_params:4d} K={r['K']:3d} threads={r['threads']}: "
                f"{r['atoms_per_s']:9.0f} atoms/s "
                f"(descriptors {r['descriptor_seconds']:.2f} s, ensemble "
                f"{r['ensemble_seconds']:.2f} s for {r['atoms']} atoms)"
            )
        if name == "snap6":
            out["md"] = md_rate(model)
            m = out["md"]
            print(
                f"MD 128 atoms: exported potforge SNAP 2J=6 {m['exported_steps_per_s']:.0f} "
                f"steps/s, native W SNAP 2J=8 {m['native_snap_steps_per_s']:.0f} steps/s "
                f"(exported/native speed {m['exported_over_native']:.2f}×)"
            )
    best = {(r["K"], r["threads"]): r["atoms_per_s"] for r in out["snap6"]["screening"]}
    out["snap6_atoms_per_s_K64"] = best[(64, 2)]  # the 2 cores
    out["snap6_atoms_per_s_K64_one_thread"] = best[(64, 1)]
    out["thread_speedup_K64"] = best[(64, 2)] / best[(64, 1)]
    out["target_atoms_per_s"] = 1e4
    out["snap6_rate_over_target"] = out["snap6_atoms_per_s_K64"] / 1e4
    RESULTS.write_text(json.dumps(out, indent=1))
    print(
        f"target ≥ 1e4 atoms/s on 2 cores (SNAP 2J=6, K=64, 2 threads): "
        f"{out['snap6_atoms_per_s_K64']:.0f} "
        f"({'met' if out['snap6_rate_over_target'] >= 1 else 'missed'}; 1 thread "
        f"{out['snap6_atoms_per_s_K64_one_thread']:.0f}); wrote {RESULTS}"
    )


if __name__ == "__main__":
    main()
