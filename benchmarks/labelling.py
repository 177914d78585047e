"""Labelling throughput: 1 vs 2 Dask workers, and the per-task overhead against a bare call.

Oracle: the W SNAP+ZBL potential shipped with LAMMPS (``lammps:W_2940_2017_2.snap``) on 54-atom
bcc W cells (3×3×3 conventional, rattled 0.06 Å).  For each worker count a fresh SQLite store
and a fresh LocalCluster are used; cluster start-up is timed separately and not counted in the
throughput.  The per-task overhead is (labelling wall time with 1 worker) / N minus the bare
in-process calculator call (same oracle, same structures), i.e. what Dask scheduling,
pickling, the result check and the streamed store write cost per structure.

Run: ``python benchmarks/labelling.py [--n 200]``; prints a table and writes
``benchmarks/results/labelling.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from ase.build import bulk

from potforge.data.store import Store, label_key
from potforge.oracles import make_oracle
from potforge.oracles.labelling import dask_client, label

SPEC = "lammps:W_2940_2017_2.snap"
RESULTS = Path(__file__).resolve().parent / "results" / "labelling.json"


def structures(n: int, seed: int = 0) -> list:
    """``n`` rattled 54-atom bcc W cells (a = 3.18 Å, rattle σ = 0.06 Å)."""
    base = bulk("W", "bcc", a=3.18, cubic=True).repeat(3)
    out = []
    for i in range(n):
        a = base.copy()
        a.rattle(0.06, seed=seed + i)
        out.append(a)
    return out


def bare_calls(frames: list, repeats: int = 3) -> float:
    """Best-of-``repeats`` mean seconds of one in-process calculator call (energy+forces+stress)."""
    calc = make_oracle(SPEC).build()
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for a in frames:
            b = a.copy()
            b.calc = calc
            b.get_potential_energy()
            b.get_forces()
            b.get_stress()
        best = min(best, (time.perf_counter() - t0) / len(frames))
    return float(best)


def store_writes(frames: list, folder: str) -> float:
    """Mean seconds of one committed store write of a labelled 54-atom cell."""
    store = Store(os.path.join(folder, "writes.db"))
    f, s = np.zeros((54, 3)), np.zeros(6)
    t0 = time.perf_counter()
    for i, a in enumerate(frames):
        store.write(a, label_key(str(i), "bench"), "ok", {"oracle": SPEC}, -1.0, f, s)
    return (time.perf_counter() - t0) / len(frames)


def labelled(frames: list, workers: int, folder: str) -> dict:
    """Label ``frames`` on a fresh ``workers``-process LocalCluster into a fresh store."""
    t0 = time.perf_counter()
    with dask_client(workers=workers) as client:
        startup = time.perf_counter() - t0
        label(
            frames[:4],
            SPEC,
            os.path.join(folder, f"warm{workers}.db"),
            client=client,
            progress=False,
        )  # imports LAMMPS on the workers
        store = Store(os.path.join(folder, f"bench{workers}.db"))
        t1 = time.perf_counter()
        report = label(frames, SPEC, store, client=client, progress=False)
        wall = time.perf_counter() - t1
    assert report.ok == len(frames) and len(store) == len(frames), str(report)
    return {
        "workers": workers,
        "cluster_startup_s": startup,
        "wall_s": wall,
        "structures_per_s": len(frames) / wall,
        "s_per_structure": wall / len(frames),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="structures per run (default 200)")
    args = parser.parse_args()
    frames = structures(args.n)
    with tempfile.TemporaryDirectory() as folder:
        bare = bare_calls(frames)
        write = store_writes(frames, folder)
        runs = [labelled(frames, w, folder) for w in (1, 2)]
    one, two = runs
    result = {
        "oracle": SPEC,
        "atoms_per_structure": len(frames[0]),
        "n_structures": args.n,
        "cores": os.cpu_count(),
        "machine": platform.platform(),
        "load_average_1min": os.getloadavg()[0],
        "bare_call_s": bare,
        "store_write_s": write,
        "runs": runs,
        "throughput_ratio_2_over_1": two["structures_per_s"] / one["structures_per_s"],
        "overhead_per_task_s": one["s_per_structure"] - bare,
        "overhead_per_task_vs_bare": (one["s_per_structure"] - bare) / bare,
    }
    print(
        f"oracle {SPEC}, {args.n} structures of {len(frames[0])} atoms, "
        f"{os.cpu_count()} cores (load average {result['load_average_1min']:.1f})"
    )
    print(f"bare calculator call            {bare * 1e3:8.2f} ms")
    print(f"store write (one committed row) {write * 1e3:8.2f} ms")
    print("workers  startup s  wall s  structures/s  ms/structure")
    for r in runs:
        print(
            f"{r['workers']:7d}  {r['cluster_startup_s']:9.2f}  {r['wall_s']:6.2f}  "
            f"{r['structures_per_s']:12.1f}  {r['s_per_structure'] * 1e3:12.2f}"
        )
    print(f"throughput ratio 2/1 workers    {result['throughput_ratio_2_over_1']:8.2f}")
    print(
        f"overhead per task (1 worker)    {result['overhead_per_task_s'] * 1e3:8.2f} ms "
        f"({result['overhead_per_task_vs_bare']:.2f}× the bare call)"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
