"""Structure builders: sets of unlabelled structures for demos, tests and benchmarks."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk, surface

A_W = 3.18
"""Lattice constant (Å) the W builders start from."""


def w_structures(seed: int = 0) -> list[Atoms]:
    """Unlabelled W training structures: strained 2-atom cells, rattled 54-atom cells,
    a 53-atom vacancy cell and (100)/(110) slabs, each with a ``group``."""
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
