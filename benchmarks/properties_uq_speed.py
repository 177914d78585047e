"""Benchmark: what POPS bounds cost in ``potforge properties`` — the same command on the default
model with and without its posterior, side by side, in fresh processes.

Run ``python benchmarks/properties_uq_speed.py`` (options: ``--repeats R``, ``--qoi A,B``,
``--baseline-source DIR``, ``--out FILE``).  It builds, in a temporary folder, the default model
(:data:`potforge.model.DEFAULT_SPEC`: quadratic SNAP 2J=6 + ZBL + constant, 496 parameters)
fitted to the 33 W structures of ``potforge demo`` labelled by ``lammps:W_2940_2017_2.snap``,
saved twice: without a posterior ("bare") and with its POPS ensemble posterior
(``fit_posterior(data, "pops")``, 2 448 members).  Then, interleaved, ``R`` times each::

    potforge properties --model DIR --element W --qoi a0,C44,Evac,gamma_surf_110 --quiet

(the posterior run is the default ``--uq auto``), timing the wall clock and the child's CPU time
(user + system).  ``--baseline-source DIR`` (a folder holding an older ``potforge`` package, e.g.
``git archive <commit> potforge | tar -x -C DIR``) runs both commands with that code too
(``PYTHONPATH=DIR``), so the before and after come from the same run, and compares its bounds
with the current ones.

Prints a table and writes ``benchmarks/results/properties_uq_speed.json``: ``ratio_wall`` and
``ratio_cpu`` (median posterior / median bare; target ≤ ``target_ratio`` = 1.5), with a
baseline also ``baseline_ratio_wall``, ``baseline_ratio_cpu``, ``speedup_wall`` (median
baseline posterior / median posterior) and ``max_bound_rel_diff`` (largest relative change of a
lower or upper bound against the baseline).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "properties_uq_speed.json"
QOIS = "a0,C44,Evac,gamma_surf_110"
TARGET = 1.5


def build_models(folder: Path) -> dict:
    """The default model fitted to the demo's W structures, saved bare and with POPS."""
    from potforge.data.builders import w_structures
    from potforge.model import DEFAULT_SPEC, LinearPotential
    from potforge.oracles import make_oracle
    from potforge.oracles.labelling import label_in_process

    data = label_in_process(w_structures(), make_oracle("lammps:W_2940_2017_2.snap").build())
    model = LinearPotential(DEFAULT_SPEC).fit(data)
    model.save(folder / "bare")
    model.fit_posterior(data, "pops", progress=False)
    model.save(folder / "pops")
    return {
        "spec": DEFAULT_SPEC,
        "n_params": model.n_params,
        "n_structures": len(data),
        "posterior": model.posterior_.meta()["kind"],
        "n_members": int(model.posterior_.arrays["members"].shape[0]),
    }


def timed(cmd: list[str], env: dict, cwd: Path) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one child process; it must succeed.  It runs in
    ``cwd`` (not the checkout: ``python -m`` puts the working folder first on ``sys.path``)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each command")
    parser.add_argument("--qoi", default=QOIS, help=f"QoIs (default {QOIS})")
    parser.add_argument(
        "--baseline-source",
        metavar="DIR",
        help="folder with an older potforge package to time beside this one",
    )
    parser.add_argument("--out", default=str(RESULTS), help="JSON output file")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="potforge-uq-speed-"))
    info = build_models(work)
    codes = {"current": None}
    if args.baseline_source:
        codes["baseline"] = str(Path(args.baseline_source).resolve())
    envs = {}
    for code, path in codes.items():
        env = dict(os.environ)
        root = path or str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        where = subprocess.run(
            [sys.executable, "-c", "import potforge; print(potforge.__file__)"],
            env=env,
            cwd=work,
            capture_output=True,
            text=True,
        ).stdout.strip()
        if not where.startswith(root):
            raise SystemExit(f"{code} code: potforge imports from {where}, not {root}")
        envs[code] = env
    runs = {(code, m): [] for code in codes for m in ("bare", "pops")}
    load = [os.getloadavg()[0]]
    for r in range(args.repeats):
        for code, env in envs.items():
            for m in ("bare", "pops"):
                out = work / f"{code}-{m}-{r}.json"
                cmd = [
                    sys.executable,
                    "-m",
                    "potforge.cli",
                    "properties",
                    "--model",
                    str(work / m),
                    "--element",
                    "W",
                    "--qoi",
                    args.qoi,
                    "--quiet",
                    "--json",
                    str(out),
                ]
                runs[code, m].append(timed(cmd, env, work))
        load.append(os.getloadavg()[0])

    def med(code, m, k):
        return statistics.median(t[k] for t in runs[code, m])

    doc = {
        "benchmark": "properties_uq_speed",
        "command": f"potforge properties --model DIR --element W --qoi {args.qoi} --quiet",
        "model": info,
        "repeats": args.repeats,
        "machine": f"{platform.machine()} Linux, {os.cpu_count()} cores (shared)",
        "load_average_1min": load,
        "date": time.strftime("%Y-%m-%d"),
        "seconds": {
            f"{code} {m}": {"wall": [t[0] for t in ts], "cpu": [t[1] for t in ts]}
            for (code, m), ts in runs.items()
        },
        "target_ratio": TARGET,
        "ratio_wall": med("current", "pops", 0) / med("current", "bare", 0),
        "ratio_cpu": med("current", "pops", 1) / med("current", "bare", 1),
    }
    bounds = json.loads((work / f"current-pops-{args.repeats - 1}.json").read_text())
    doc["bounds"] = {
        q: {k: e[k] for k in ("value", "std", "lower", "upper", "method")}
        for q, e in bounds.items()
    }
    if "baseline" in codes:
        old = json.loads((work / f"baseline-pops-{args.repeats - 1}.json").read_text())
        doc["baseline_ratio_wall"] = med("baseline", "pops", 0) / med("baseline", "bare", 0)
        doc["baseline_ratio_cpu"] = med("baseline", "pops", 1) / med("baseline", "bare", 1)
        doc["speedup_wall"] = med("baseline", "pops", 0) / med("current", "pops", 0)
        doc["speedup_cpu"] = med("baseline", "pops", 1) / med("current", "pops", 1)
        doc["max_bound_rel_diff"] = max(
            abs(bounds[q][k] - old[q][k]) / abs(old[q][k]) for q in old for k in ("lower", "upper")
        )
        doc["same_methods"] = all(bounds[q]["method"] == old[q]["method"] for q in old)

    print(
        f"\n{doc['command']}\ndefault model ({info['n_params']} parameters) fitted to "
        f"{info['n_structures']} demo W structures; POPS {info['posterior']} of "
        f"{info['n_members']} members; {args.repeats} interleaved runs each, fresh processes"
    )
    print(f"{'code':<10}{'model':<16}{'wall median':>12}{'wall min':>10}{'cpu median':>12}")
    for (code, m), ts in runs.items():
        label = "bare" if m == "bare" else "POPS (auto)"
        print(
            f"{code:<10}{label:<16}{med(code, m, 0):>11.2f}s"
            f"{min(t[0] for t in ts):>9.2f}s{med(code, m, 1):>11.2f}s"
        )
    print(
        f"posterior / bare (current): wall {doc['ratio_wall']:.2f}×, cpu {doc['ratio_cpu']:.2f}× "
        f"(target ≤ {TARGET}×)"
    )
    if "baseline" in codes:
        print(
            f"posterior / bare (baseline): wall {doc['baseline_ratio_wall']:.2f}×, cpu "
            f"{doc['baseline_ratio_cpu']:.2f}×; posterior run {doc['speedup_wall']:.2f}× "
            f"faster (wall), {doc['speedup_cpu']:.2f}× (cpu)"
        )
        print(
            f"bounds: largest relative change {doc['max_bound_rel_diff']:.1e}, same methods: "
            f"{doc['same_methods']}"
        )
    print(f"load average (1 min) during the runs: {min(load):.1f}–{max(load):.1f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")
    return doc


if __name__ == "__main__":
    main()
