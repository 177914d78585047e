"""Entropy speed: :func:`potforge.generate.entropy.entropy` against ``quests.entropy.entropy`` on
the same QUESTS descriptors of ~10⁵ W environments (issue 18).

Data: QUESTS descriptors (``quests.descriptor.get_descriptors``, k = 32 neighbours, cutoff 5 Å,
63 components) of 128-atom bcc W cells — strained (±4 % volume-ish isotropic, ≤ 2 % shear),
rattled 0.01–0.25 Å as MD snapshots at different temperatures, some with vacancies, and short
correlated "trajectories" (an Ornstein–Uhlenbeck walk of the displacements) — cut to exactly
``n`` environments.  Bandwidth h = 0.015 (QUESTS's default), both codes on 2 threads
(``NUMBA_NUM_THREADS=2`` for quests, ``threads=2`` and ``OMP/OPENBLAS_NUM_THREADS=2`` for ours),
quests's JIT compilation done before timing (one call on a small array).  Targets: ≥ 5× faster,
relative difference ≤ 1e-3.

Run: ``python benchmarks/entropy_speed.py [n]`` (default 100000); writes
``benchmarks/results/entropy_speed.json`` (``entropy_speed_n{n}.json`` for another ``n``).
Another benchmark can ``from entropy_speed import measure`` and call ``measure(n)``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

THREADS = 2
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, str(THREADS))

import numpy as np  # noqa: E402
from ase.build import bulk  # noqa: E402

from potforge.generate.entropy import DEFAULT_BANDWIDTH, entropy  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "entropy_speed.json"
TARGET_SPEEDUP = 5.0
TARGET_REL_DIFF = 1e-3


def w_frames(n_atoms: int, seed: int = 0) -> list:
    """128-atom bcc W cells (strained, rattled, some vacancies, correlated snapshots) holding at
    least ``n_atoms`` atoms in all."""
    rng = np.random.default_rng(seed)
    base = bulk("W", "bcc", a=3.165, cubic=True).repeat(4)
    frames: list = []
    total = 0
    while total < n_atoms:
        atoms = base.copy()
        strain = np.eye(3) * (1 + rng.uniform(-0.04, 0.04))
        shear = rng.uniform(-0.02, 0.02, (3, 3))
        strain += (shear + shear.T) / 2 * (1 - np.eye(3))
        atoms.set_cell(base.cell @ strain, scale_atoms=True)
        if rng.random() < 0.2:
            del atoms[list(rng.choice(len(atoms), size=int(rng.integers(1, 4)), replace=False))]
        sigma = rng.uniform(0.01, 0.25)
        u = rng.normal(0, sigma, (len(atoms), 3))
        for _ in range(int(rng.integers(1, 6))):  # a short correlated trajectory
            u = 0.8 * u + np.sqrt(1 - 0.8**2) * rng.normal(0, sigma, u.shape)
            frame = atoms.copy()
            frame.positions += u
            frames.append(frame)
            total += len(frame)
            if total >= n_atoms:
                break
    return frames


def descriptors(n: int, seed: int = 0) -> tuple[np.ndarray, float]:
    """QUESTS descriptors (n, 63) of :func:`w_frames`, and the seconds they took."""
    from quests.descriptor import get_descriptors

    frames = w_frames(n, seed)
    t0 = time.perf_counter()
    X = get_descriptors(frames)
    return np.ascontiguousarray(X[:n]), time.perf_counter() - t0


def measure(n: int = 100_000, h: float = DEFAULT_BANDWIDTH, seed: int = 0) -> dict:
    """Time both entropies on the same ``n`` W environments (2 threads each); a dict of seconds,
    entropies, their ratio and relative difference, with the targets beside them."""
    import numba
    import quests.entropy as qe

    numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))
    X, desc_s = descriptors(n, seed)
    qe.entropy(X[:500], h=h)  # JIT warm-up, not timed
    entropy(X[:500], h, threads=THREADS)
    t0 = time.perf_counter()
    ours = entropy(X, h, threads=THREADS)
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    theirs = float(qe.entropy(X, h=h))
    quests_s = time.perf_counter() - t0
    rel = abs(ours - theirs) / abs(theirs)
    return {
        "n": int(X.shape[0]),
        "d": int(X.shape[1]),
        "h": h,
        "threads": THREADS,
        "quests_threads": int(numba.get_num_threads()),
        "descriptor_seconds": desc_s,
        "potforge_seconds": ours_s,
        "quests_seconds": quests_s,
        "potforge_entropy": ours,
        "quests_entropy": theirs,
        "speedup": quests_s / ours_s,
        "target_speedup": TARGET_SPEEDUP,
        "rel_diff": rel,
        "target_rel_diff": TARGET_REL_DIFF,
        "speedup_met": quests_s / ours_s >= TARGET_SPEEDUP,
        "agreement_met": rel <= TARGET_REL_DIFF,
    }


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    out = {"machine": platform.platform(), "date": time.strftime("%Y-%m-%d"), **measure(n)}
    path = RESULTS if n == 100_000 else RESULTS.with_name(f"entropy_speed_n{n}.json")
    path.write_text(json.dumps(out, indent=1))
    print(
        f"entropy of {out['n']} W environments (d={out['d']}, h={out['h']}, {THREADS} threads): "
        f"potforge {out['potforge_seconds']:.2f} s, quests {out['quests_seconds']:.2f} s — "
        f"{out['speedup']:.1f}× (target ≥ {TARGET_SPEEDUP:g}×, "
        f"{'met' if out['speedup_met'] else 'missed'}); H = {out['potforge_entropy']:.10f} vs "
        f"{out['quests_entropy']:.10f}, relative difference {out['rel_diff']:.1e} "
        f"(target ≤ {TARGET_REL_DIFF:g}, {'met' if out['agreement_met'] else 'missed'}); "
        f"descriptors {out['descriptor_seconds']:.1f} s; wrote {path}"
    )


if __name__ == "__main__":
    main()
