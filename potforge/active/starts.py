"""Starting structures of explorers, by name: the bulk crystal, a vacancy, self-interstitials,
a surface slab and a disordered ("liquid") start, for one element in its ground-state lattice
(bcc or fcc) or a binary compound AB (zincblende or rocksalt; no self-interstitials)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.build import surface

from potforge.errors import DataError
from potforge.properties.structures import (
    bulk_phase,
    cubic_supercell,
    guess_lattice,
    interstitial_supercell,
)

KINDS = ("bulk", "vacancy", "sia_111", "sia_110", "surface_110", "surface_100", "liquid")
"""Start structures :func:`start_structures` builds."""


def start_structures(
    element: str,
    kinds: Sequence[str] = ("bulk", "vacancy", "sia_111", "surface_110"),
    lattice: str | None = None,
    a: float | None = None,
    size: int = 3,
    seed: int = 0,
) -> dict[str, Atoms]:
    """``{kind: Atoms}`` for ``element`` (lattice and lattice constant from ASE's reference
    states unless given), ``size³`` conventional cells.

    Parameters
    ----------
    element : str
        A chemical symbol, or a binary compound's formula AB (``"CuI"``: its vacancy start lacks
        an A atom; self-interstitial starts are elemental only).
    kinds : sequence of str, default=("bulk", "vacancy", "sia_111", "surface_110")
        Among :data:`KINDS`.
    lattice : {"bcc", "fcc", "zincblende", "rocksalt"}, optional
        Default: the element's reference state; zincblende for a compound.
    a : float, optional
        Å (default: :func:`potforge.properties.structures.guess_lattice`).
    size : int, default=3
    seed : int, default=0
        Seed of the liquid start's displacements.
    """
    from ase.data import atomic_numbers, reference_states

    from potforge.properties.base import COMPOUND_LATTICES, is_compound

    compound = element not in atomic_numbers and is_compound(element)
    if compound:
        lattice = lattice or "zincblende"
        if lattice not in COMPOUND_LATTICES:
            raise DataError(
                f"start structures of {element} are built for {' and '.join(COMPOUND_LATTICES)}, "
                f"not {lattice!r}"
            )
        sia = [k for k in kinds if k.startswith("sia_")]
        if sia:
            raise DataError(
                f"{sia[0]} is a self-interstitial start, for an element: {element} takes "
                + ", ".join(k for k in KINDS if not k.startswith("sia_"))
            )
    else:
        if element not in atomic_numbers:
            raise DataError(f"unknown element {element!r}")
        ref = reference_states[atomic_numbers[element]] or {}
        lattice = lattice or str(ref.get("symmetry"))
        if lattice not in ("bcc", "fcc"):
            raise DataError(
                f"start structures are built for bcc and fcc, not {lattice!r}: give them"
            )
    a = a or guess_lattice(element, lattice)[0]
    out = {}
    for kind in kinds:
        if kind not in KINDS:
            from potforge.params import unknown_name

            raise DataError(unknown_name(kind, KINDS, "start structure"))
        if kind == "bulk":
            atoms = cubic_supercell(element, lattice, a, size)
        elif kind == "vacancy":
            atoms = cubic_supercell(element, lattice, a, size)
            del atoms[0]
        elif kind.startswith("sia_"):
            atoms = interstitial_supercell(element, lattice, a, size, kind[4:])
        elif kind.startswith("surface_"):
            miller = tuple(int(c) for c in kind.split("_")[1])
            slab = surface(bulk_phase(element, lattice, a, cubic=True), miller, 2 * size, 6.0)
            atoms = slab.repeat((2, 2, 1))
            atoms.pbc = True
        else:  # liquid: the crystal with large random displacements, to be melted by MD
            atoms = cubic_supercell(element, lattice, a * 1.03, size)
            atoms.rattle(0.25, seed=seed)
        atoms.info["group"] = kind
        out[kind] = atoms
    return out


def rattled(structures: dict[str, Atoms], n: int, amplitude: float = 0.05, seed: int = 0):
    """``n`` rattled copies spread over ``structures`` (the initial training set)."""
    names = list(structures)
    out = []
    for k in range(n):
        a = structures[names[k % len(names)]].copy()
        a.rattle(amplitude, seed=seed + k)
        strain = 1.0 + np.random.default_rng(seed + k).uniform(-0.02, 0.02)
        a.set_cell(a.cell * strain, scale_atoms=True)
        out.append(a)
    return out
