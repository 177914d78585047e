"""MD-driven active learning on W (issue 17 "Done when"): learning curves of four selectors at a
fixed budget of oracle calls.

Oracle: the shipped DFT-trained W SNAP (``lammps:W_2940_2017_2.snap``).  Model: SNAP 2J=6 +
ZBL + const (``MODEL``; the model of the failure-mode tests, 31 parameters).  Loop:
:func:`potforge.active.loop.run_active`, one run per (selector, seed):

* initial set: 10 configurations, ``rattled(start_structures("W", ["bulk", "vacancy"]), 10,
  amplitude=0.08)`` (54/53 atoms, ±2 % volume), seeded by the run's seed;
* held-out set of the loop (U statistics; never an evaluation set): ``N_HELDOUT`` rattled
  copies of initial configurations; its labels count toward the budget;
* explorers: LAMMPS Langevin MD of the current model from bulk, vacancy, ⟨111⟩ dumbbell and
  (110) slab starts (54/53/55/48 atoms), each a temperature ramp 600 → 2500 K over
  ``MD_STEPS`` steps, a frame every ``MD_INTERVAL``; each iteration restarts every explorer from
  its kept frame with the largest true error;
* ``QUOTA`` frames per iteration (``QUOTA / 4`` per explorer), ``N_ENSEMBLE`` POPS samples for U;
  the convergence stop disabled (``rtol=0``): every run spends its whole budget unless the
  selector keeps too few frames within ``MAX_ITERATIONS``.

Selectors: ``pu_pe`` (seed 004's P_U·P_E, ALmoMD defaults), ``trust`` (DP-GEN's window with the
bounds set each iteration from the held-out U's quantiles 0.5 and 0.99, because a linear
model's POPS spreads do not live on an NN ensemble's 0.05–0.15 eV/Å scale), ``dopt``
(extrapolation grade: save 2 < γ ≤ 10) and ``uniform``: frames drawn uniformly at random,
without replacement, from each explorer's frames of the same MD.  ``uniform`` is registered
here as an acquisition (:class:`Uniform`): ``trust`` with a window that accepts everything is
*not* uniform, since :func:`potforge.active.acquisition.pick` walks the trajectory in order and
keeps the first frames whose draw passes — with P = 1 that is the first ``QUOTA / 4`` frames.

Evaluation sets, labelled by the oracle, never seen by the loop: 20 frames of the oracle's own
ASE Langevin MD at 2500 K on a 54-atom bcc cell ("hot_md"); 10 rattled vacancy cells; 10 rattled
⟨111⟩/⟨110⟩ dumbbell cells ("interstitial"); 10 rattled (110)/(100) slabs ("surface").  The
model after every iteration's fit (its θ read from the loop's checkpoint) is scored by the
force RMSE on each set and the worst of the four, against the oracle calls made by then.

Targets (issue 17): ``pu_pe`` reaches ``uniform``'s worst-set error at the full budget with
≤ 1/3 of the calls (``target_ratios["calls_ratio"]`` ≤ 0.333); and at every budget point
``pu_pe``'s mean worst-set RMSE ≤ the best peer's mean + one spread (the larger of the two
seed standard deviations).

Run: ``python benchmarks/active_learning.py [--budget 200] [--seeds 3] [--jobs 2]``;
``--quick``: budget 60, 1 seed (smoke run).  Writes ``benchmarks/results/active_learning.json``
(``active_learning_quick.json`` with ``--quick``) and ``active_learning.png``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from potforge.active import acquisition as _acq

ORACLE = "lammps:W_2940_2017_2.snap"
MODEL = "snap(twojmax=6)+zbl(inner=1.0,outer=1.6)+const"
SELECTORS = ("pu_pe", "trust", "dopt", "uniform")
SETTINGS = {
    "pu_pe": {},
    "trust": {"quantiles": (0.5, 0.99)},
    "dopt": {"gamma_lo": 2.0, "gamma_hi": 10.0},
}
STARTS = ("bulk", "vacancy", "sia_111", "surface_110")
N_INITIAL, N_HELDOUT, N_ENSEMBLE, QUOTA = 10, 6, 32, 24
MD_STEPS, MD_INTERVAL, T_START, T_END = 500, 20, 600.0, 2500.0
MAX_ITERATIONS = 14
SETS = ("hot_md", "vacancy", "interstitial", "surface")
HERE = Path(__file__).resolve().parent / "results"


@dataclass
class Uniform:
    """Uniform sampling of the same MD: ``k`` frames of each trajectory drawn at random without
    replacement (P = 1 on them, 0 elsewhere; :func:`pick` keeps exactly those)."""

    k: int = 4
    seed: int = 0
    name: str = "uniform"
    _rng: np.random.Generator | None = field(default=None, repr=False)

    def __call__(self, frames, ref) -> np.ndarray:
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        n = len(frames.u)
        p = np.zeros(n)
        p[self._rng.choice(n, min(self.k, n), replace=False)] = 1.0
        return p


_acq.ACQUISITIONS.setdefault("uniform", Uniform)


def evaluation_sets(seed: int = 12345) -> dict[str, list]:
    """The four evaluation sets, labelled by the oracle (see the module notes)."""
    from ase import units
    from ase.build import bulk
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from potforge.active.starts import start_structures
    from potforge.data.builders import A_W
    from potforge.oracles import make_oracle
    from potforge.oracles.labelling import label_in_process

    calc = make_oracle(ORACLE).build()
    rng = np.random.default_rng(seed)
    md = bulk("W", "bcc", a=A_W, cubic=True).repeat(3)
    md.calc = calc
    MaxwellBoltzmannDistribution(md, temperature_K=2500.0, rng=rng)
    dyn = Langevin(md, 1.0 * units.fs, temperature_K=2500.0, friction=0.01, rng=rng)
    dyn.run(300)  # equilibrate
    hot = []
    for _ in range(20):
        dyn.run(25)
        a = md.copy()
        a.info["group"] = "hot_md"
        hot.append(a)
    kinds = start_structures("W", ["vacancy", "sia_111", "sia_110", "surface_110", "surface_100"])

    def rattle(names, n, group):
        out = []
        for k in range(n):
            a = kinds[names[k % len(names)]].copy()
            a.rattle(0.05 + 0.1 * k / max(n - 1, 1), seed=int(rng.integers(1 << 30)))
            if group == "vacancy":
                a.set_cell(a.cell * rng.uniform(0.99, 1.01), scale_atoms=True)
            a.info["group"] = group
            out.append(a)
        return out

    sets = {
        "hot_md": hot,
        "vacancy": rattle(["vacancy"], 10, "vacancy"),
        "interstitial": rattle(["sia_111", "sia_110"], 10, "interstitial"),
        "surface": rattle(["surface_110", "surface_100"], 10, "surface"),
    }
    return {k: label_in_process(v, calc, show=False) for k, v in sets.items()}


def run_one(selector: str, seed: int, budget: int, eval_sets: dict, workdir: str) -> dict:
    """One loop; the force RMSE of every iteration's model on each evaluation set."""
    from sklearn.base import clone

    from potforge.active.loop import explorer_specs, run_active
    from potforge.active.starts import rattled, start_structures
    from potforge.data.checkpoint import Checkpoint
    from potforge.data.structures import labels
    from potforge.model import LinearPotential
    from potforge.oracles.labelling import dask_client

    t0 = time.perf_counter()
    initial = rattled(start_structures("W", ["bulk", "vacancy"]), N_INITIAL, 0.08, seed=seed)
    starts = start_structures("W", list(STARTS), seed=seed)
    specs = explorer_specs(
        starts, [T_START], seed=100 * seed, steps=MD_STEPS, interval=MD_INTERVAL, t_end=T_END
    )
    settings = dict(SETTINGS.get(selector, {}))
    if selector == "uniform":
        settings = {"k": QUOTA // len(specs), "seed": 7 + seed}
    template = LinearPotential(MODEL)
    db = Path(workdir) / f"{selector}-{seed}.db"
    with dask_client(1) as client:
        res = run_active(
            template,
            initial,
            specs,
            ORACLE,
            db,
            acquisition=selector,
            acquisition_settings=settings,
            n_heldout=N_HELDOUT,
            n_ensemble=N_ENSEMBLE,
            quota=QUOTA,
            budget=budget,
            max_iterations=MAX_ITERATIONS,
            patience=3,
            rtol=0.0,
            seed=seed,
            workers=1,
            progress=False,
            label_options={"client": client},
        )
    loop_s = time.perf_counter() - t0
    ck = Checkpoint(db, "active-learning")
    coefs = np.array([ck.output("fit", s.iteration)["coef"] for s in res.steps])
    prepared = clone(template).setup(initial)
    rmse = {}
    for name, structs in eval_sets.items():
        preds = prepared.predict_designs(prepared.structure_designs(structs), coefs)
        sq = [((p["forces"] - labels(a)["forces"][None]) ** 2).reshape(len(coefs), -1)
              for p, a in zip(preds, structs, strict=True)]  # fmt: skip
        rmse[name] = np.sqrt(np.concatenate(sq, axis=1).mean(axis=1)).tolist()
    rmse["worst"] = np.max([rmse[s] for s in SETS], axis=0).tolist()
    return {
        "selector": selector,
        "seed": seed,
        "stop": res.stop,
        "calls": [s.oracle_calls for s in res.steps],
        "kept": [s.kept for s in res.steps],
        "frames_seen": [s.frames_seen for s in res.steps],
        "explorers_failed": [s.explorers_failed for s in res.steps],
        "heldout_rmse": [s.heldout_rmse for s in res.steps],
        "u_mean": [s.u_mean for s in res.steps],
        "rmse": rmse,
        "training": len(res.training),
        "loop_s": loop_s,
        "seconds": time.perf_counter() - t0,
    }


def at_budget(run: dict, key: str, b: int) -> float:
    """The error of the last model fitted with ≤ b oracle calls (NaN before the first)."""
    calls = np.asarray(run["calls"])
    ok = np.flatnonzero(calls <= b)
    return float(run["rmse"][key][ok[-1]]) if ok.size else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=200, help="oracle calls per loop")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2, help="loops run side by side")
    ap.add_argument("--quick", action="store_true", help="budget 60, 1 seed")
    ap.add_argument("--reduced", default="", help="what was reduced (recorded in the JSON)")
    ap.add_argument("--from-runs", default="", help="summarise saved runs (no loops)")
    ap.add_argument(
        "--deadline",
        type=float,
        default=0.0,
        help="minutes after which runs not yet started are dropped (0: none)",
    )
    args = ap.parse_args()
    if args.quick:
        args.budget, args.seeds = 60, 1
    t0 = time.perf_counter()
    dump = Path(tempfile.gettempdir()) / f"active_learning_runs_{args.budget}.json"
    if args.from_runs:
        saved = json.loads(Path(args.from_runs).read_text())
        runs, errors, n_eval = saved["runs"], saved["errors"], saved["n_eval"]
    else:
        runs, errors, n_eval = collect(args, t0)
        dump.write_text(json.dumps({"runs": runs, "errors": errors, "n_eval": n_eval}))
        print(f"runs saved to {dump}")
    summarise(args, runs, errors, n_eval, t0)


def collect(args, t0: float) -> tuple[list, list, dict]:
    """Every (selector, seed) loop, ``args.jobs`` at a time."""
    eval_sets = evaluation_sets()
    n_eval = {k: (len(v), sum(len(a) for a in v)) for k, v in eval_sets.items()}
    print("evaluation sets (structures, atoms):", n_eval, f"({time.perf_counter() - t0:.0f} s)")
    jobs = [(s, seed) for seed in range(args.seeds) for s in SELECTORS]
    runs, errors = [], []
    with (
        tempfile.TemporaryDirectory() as tmp,
        ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool,
    ):
        futs = [pool.submit(run_one, s, seed, args.budget, eval_sets, tmp) for s, seed in jobs]
        for (sel, seed), f in zip(jobs, futs, strict=True):
            if f.cancelled():
                continue
            try:
                r = f.result()
            except Exception as exc:  # recorded, the other runs go on
                errors.append(f"{sel} seed {seed}: {type(exc).__name__}: {exc}")
                print("FAILED", errors[-1], flush=True)
                continue
            runs.append(r)
            if args.deadline and time.perf_counter() - t0 > 60 * args.deadline:
                dropped = [j for j, g in zip(jobs, futs, strict=True) if g.cancel()]
                if dropped:
                    print(
                        f"past the {args.deadline} min deadline: {len(dropped)} runs not started",
                        flush=True,
                    )
            print(
                f"{r['selector']:8s} seed {r['seed']}: stop {r['stop']}, calls {r['calls']}, "
                f"worst RMSE {r['rmse']['worst'][0]:.3f} → {r['rmse']['worst'][-1]:.3f} eV/Å, "
                f"kept {r['kept']}, explorers failed {sum(r['explorers_failed'])}, "
                f"{r['seconds']:.0f} s",
                flush=True,
            )
    return runs, errors, n_eval


def summarise(args, runs: list, errors: list, n_eval: dict, t0: float) -> None:
    """Learning curves, the targets, the JSON and the plot."""
    complete = [
        k
        for k in range(args.seeds)
        if all(any(r["selector"] == s and r["seed"] == k for r in runs) for s in SELECTORS)
    ]
    if len(complete) < args.seeds:
        note = f"seeds {complete} of {args.seeds} complete for every selector"
        args.reduced = f"{args.reduced}; {note}" if args.reduced else note
        print("reduced:", note)
    runs_all, runs = runs, [r for r in runs if r["seed"] in complete]
    n_seeds = len(complete)
    n0 = N_INITIAL + N_HELDOUT
    grid = sorted({*range(n0, args.budget + 1, QUOTA), args.budget})
    curves: dict = {}
    for s in SELECTORS:
        mine = [r for r in runs if r["selector"] == s]
        curves[s] = {}
        for key in (*SETS, "worst"):
            v = np.array([[at_budget(r, key, b) for b in grid] for r in mine])
            curves[s][key] = {
                "mean": np.nanmean(v, axis=0).tolist(),
                "std": (np.nanstd(v, axis=0, ddof=1) if len(mine) > 1 else 0 * v[0]).tolist(),
            }
    print(f"\nforce RMSE (eV/Å), mean ± std over {n_seeds} seed(s), vs oracle calls")
    for key in (*SETS, "worst"):
        print(f"[{key}]  calls: " + " ".join(f"{b:>11d}" for b in grid))
        for s in SELECTORS:
            c = curves[s][key]
            print(f"  {s:8s}      " + " ".join(
                f"{m:6.3f}±{d:.3f}" for m, d in zip(c["mean"], c["std"], strict=True)))  # fmt: skip
    # target 1: calls pu_pe needs to reach uniform's worst-set error at the full budget
    ref = curves["uniform"]["worst"]["mean"][-1]
    pu = curves["pu_pe"]["worst"]["mean"]
    reach = next((b for b, m in zip(grid, pu, strict=True) if m <= ref), None)
    ratio = reach / args.budget if reach is not None else None
    # target 2: pu_pe within one spread of the best peer at every budget point
    margins, within = [], []
    for j in range(len(grid)):
        peers = {s: curves[s]["worst"]["mean"][j] for s in SELECTORS if s != "pu_pe"}
        best = min(peers, key=peers.get)
        spread = max(curves[best]["worst"]["std"][j], curves["pu_pe"]["worst"]["std"][j])
        diff = pu[j] - peers[best]
        margins.append({"calls": grid[j], "best_peer": best, "diff": diff, "spread": spread})
        within.append(bool(diff <= spread))
    met1 = ratio is not None and ratio <= 1 / 3
    met2 = all(within)
    print(
        f"\nuniform's worst-set RMSE at {args.budget} calls: {ref:.4f} eV/Å; pu_pe reaches it at "
        f"{reach} calls → ratio {ratio if ratio is None else round(ratio, 3)} "
        f"(target ≤ 0.333): {'met' if met1 else 'missed'}"
    )
    for m, w in zip(margins, within, strict=True):
        print(
            f"  {m['calls']:4d} calls: pu_pe − best peer ({m['best_peer']}) = {m['diff']:+.4f} "
            f"eV/Å, spread {m['spread']:.4f}: {'ok' if w else 'outside'}"
        )
    print(
        f"pu_pe within one spread of the best peer at every budget: {'met' if met2 else 'missed'}"
    )
    wall = time.perf_counter() - t0
    print(f"wall {wall:.0f} s")
    out = {
        "benchmark": "active_learning",
        "oracle": ORACLE,
        "model": MODEL,
        "budget": args.budget,
        "seeds": args.seeds,
        "seeds_complete": complete,
        "errors": errors,
        "quick": args.quick,
        "reduced": bool(args.reduced),
        "reduced_what": args.reduced or None,
        "settings": {
            "initial": N_INITIAL,
            "heldout": N_HELDOUT,
            "ensemble": N_ENSEMBLE,
            "quota": QUOTA,
            "starts": list(STARTS),
            "md": {"steps": MD_STEPS, "interval": MD_INTERVAL, "ramp_K": [T_START, T_END]},
            "max_iterations": MAX_ITERATIONS,
            "acquisition_settings": {
                k: {kk: list(vv) if isinstance(vv, tuple) else vv for kk, vv in v.items()}
                for k, v in SETTINGS.items()
            }
            | {"uniform": {"k": QUOTA // len(STARTS)}},
        },  # fmt: skip
        "evaluation_sets": n_eval,
        "grid": grid,
        "curves": curves,
        "runs": runs_all,
        "target_ratios": {
            "calls_ratio": ratio,
            "calls_to_reach_uniform": reach,
            "uniform_worst_at_budget": ref,
            "pu_pe_minus_best_peer": {str(m["calls"]): m["diff"] for m in margins},
        },
        "margins": margins,
        "targets": {
            "pu_pe_reaches_uniform_with_third_of_calls": met1,
            "pu_pe_within_one_spread_of_best_peer": met2,
        },
        "machine": f"2-core shared VM ({platform.machine()})",
        "wall_s": wall,
        "date": "2026-12-02",
    }
    name = "active_learning_quick.json" if args.quick else "active_learning.json"
    (HERE / name).write_text(json.dumps(out, indent=1))
    args.n_seeds = n_seeds
    plot(
        curves,
        grid,
        args,
        HERE / ("active_learning_quick.png" if args.quick else "active_learning.png"),
    )
    print(f"wrote {HERE / name}")


def plot(curves: dict, grid: list[int], args, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5, figsize=(20, 4), sharex=True)
    for ax, key in zip(axes, (*SETS, "worst"), strict=True):
        for s in SELECTORS:
            m, d = np.array(curves[s][key]["mean"]), np.array(curves[s][key]["std"])
            ax.plot(grid, m, marker="o", ms=3, label=s)
            ax.fill_between(grid, m - d, m + d, alpha=0.2)
        ax.set_title(key)
        ax.set_xlabel("oracle calls")
        ax.set_yscale("log")
    axes[0].set_ylabel("force RMSE (eV/Å)")
    axes[-1].legend()
    fig.suptitle(f"W active learning, SNAP 2J=6 + ZBL, {args.n_seeds} seed(s), mean ± std")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
