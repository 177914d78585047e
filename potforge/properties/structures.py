"""Builders of the structures the property suite relaxes: bulk phases, oriented cells, defects.

Orientations follow LAMMPS' ``lattice ... orient x .. orient y .. orient z ..`` convention so that
a potforge cell and a native LAMMPS cell built from the same triplet hold the same atoms.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers, covalent_radii, reference_states
from ase.lattice.cubic import BodyCenteredCubic, FaceCenteredCubic
from ase.spacegroup import crystal

from potforge.properties.base import COMPOUND_LATTICES, NotApplicableError, is_compound, species

PHASES = ("bcc", "fcc", "hcp", "A15")
"""Competing bulk phases of an element (``dE_*``)."""

BUILT = (*PHASES, "diamond", *COMPOUND_LATTICES)
"""Every bulk lattice :func:`bulk_phase` builds (diamond: an elemental reference of compound
formation energies; zincblende, rocksalt: binary compounds)."""

ATOMS_PER_CUBE = {"bcc": 2, "fcc": 4, "A15": 8, "diamond": 8, "zincblende": 8, "rocksalt": 8}
"""Atoms in the conventional cubic cell of each cubic phase."""

BOND_STRETCH = {"zincblende": 1.0, "rocksalt": 1.1}
"""Starting nearest-neighbour distance of a compound lattice in units of the sum of the two
covalent radii (six-fold bonds are longer than four-fold ones)."""

IDEAL_C_OVER_A = float(np.sqrt(8.0 / 3.0))

SURFACE_ORIENTATIONS = {
    "100": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "110": ((0, 0, 1), (1, -1, 0), (1, 1, 0)),
    "111": ((1, -1, 0), (1, 1, -2), (1, 1, 1)),
    "211": ((0, 1, -1), (-1, 1, 1), (2, 1, 1)),
}
"""Right-handed (x, y, z) Miller directions with z normal to the surface plane."""

GSF_SYSTEMS = {
    ("bcc", "110"): ((-1, 1, 1), (1, -1, 2), (1, 1, 0)),
    ("bcc", "112"): ((1, 1, 1), (1, -1, 0), (1, 1, -2)),
    ("fcc", "111"): ((1, 1, -2), (-1, 1, 0), (1, 1, 1)),
}
"""Slip systems (x = slip direction, z = plane normal) of the generalized stacking-fault curves."""

GSF_PERIOD = {
    ("bcc", "110"): 0.5 * np.sqrt(3),
    ("bcc", "112"): 0.5 * np.sqrt(3),
    ("fcc", "111"): 1.0 / np.sqrt(6),
}
"""Shift range of each GSF curve in units of a: the Burgers vector a/2<111> (bcc) or the
Shockley partial a/6<112> (fcc, which ends at the intrinsic stacking fault)."""

SIA_SITES = {
    # name: (centre offset from a lattice site in units of a, dumbbell half-vector or None)
    "bcc": {
        "110": ((0, 0, 0), (0.25, 0.25, 0.0)),
        "111": ((0, 0, 0), (0.2, 0.2, 0.2)),
        "100": ((0, 0, 0), (0.0, 0.0, 0.3)),
        "oct": ((0.5, 0.5, 0.0), None),
        "tet": ((0.5, 0.25, 0.0), None),
    },
    "fcc": {
        "100": ((0, 0, 0), (0.0, 0.0, 0.3)),
        "110": ((0, 0, 0), (0.2, 0.2, 0.0)),
        "111": ((0, 0, 0), (0.17, 0.17, 0.17)),
        "oct": ((0.5, 0.0, 0.0), None),
        "tet": ((0.25, 0.25, 0.25), None),
    },
}
"""Self-interstitial geometries in the conventional cubic cell (units of the lattice constant)."""


def guess_lattice(
    element: str, phase: str, volume_per_atom: float | None = None
) -> tuple[float, float | None]:
    """Starting lattice constant (and c/a for hcp) of ``element`` in ``phase``.

    Parameters
    ----------
    element : str
        Chemical symbol, or the formula of a binary compound AB (phase zincblende or rocksalt:
        nearest neighbours at the sum of the covalent radii × :data:`BOND_STRETCH`).
    phase : str
        One of :data:`BUILT`.
    volume_per_atom : float, optional
        Å³; when given, the phase is scaled to it (used for competing phases).

    Returns
    -------
    a : float
        Å (cubic edge for bcc, fcc, A15, diamond, zincblende, rocksalt; basal edge for hcp).
    c_over_a : float or None
    """
    if is_compound(element):
        if phase not in COMPOUND_LATTICES:
            raise NotApplicableError(
                f"{element} is a compound: its lattice is one of {', '.join(COMPOUND_LATTICES)}, "
                f"not {phase}"
            )
        if volume_per_atom is not None:
            return float((ATOMS_PER_CUBE[phase] * volume_per_atom) ** (1.0 / 3.0)), None
        radii = [covalent_radii[atomic_numbers[s]] for s in species(element)]
        bond = BOND_STRETCH[phase] * float(sum(radii))
        # nearest neighbours: a√3/4 (zincblende), a/2 (rocksalt)
        return float(4.0 * bond / np.sqrt(3.0) if phase == "zincblende" else 2.0 * bond), None
    ref: dict[str, Any] = reference_states[atomic_numbers[element]] or {}
    sym = ref.get("symmetry")
    coa = float(ref.get("c/a", IDEAL_C_OVER_A)) if sym == "hcp" else IDEAL_C_OVER_A
    if volume_per_atom is None:
        if sym == phase and "a" in ref:
            return float(ref["a"]), (coa if phase == "hcp" else None)
        volume_per_atom = _reference_volume(ref, element)
    if phase == "hcp":
        a = (2.0 * volume_per_atom / (np.sqrt(3.0) / 2.0 * coa * 2.0)) ** (1.0 / 3.0)
        return float(a), coa
    return float((ATOMS_PER_CUBE[phase] * volume_per_atom) ** (1.0 / 3.0)), None


def _reference_volume(ref: dict[str, Any], element: str) -> float:
    """Volume per atom (Å³) of ASE's reference state; for a symmetry whose atoms per cell are
    not known here (orthorhombic, molecular, ...), that of close-packed spheres of the covalent
    radius."""
    sym, a = str(ref.get("symmetry")), ref.get("a")
    if sym == "hcp" and a is not None:
        return float(np.sqrt(3.0) / 4.0 * a**3 * ref.get("c/a", IDEAL_C_OVER_A))
    if sym in ATOMS_PER_CUBE and a is not None:
        return float(a**3 / ATOMS_PER_CUBE[sym])
    radius = float(covalent_radii[atomic_numbers[element]])
    return float((2.0 * radius) ** 3 / np.sqrt(2.0)) if radius > 0 else 16.0


def bulk_phase(
    element: str, phase: str, a: float, c_over_a: float | None = None, cubic: bool = False
) -> Atoms:
    """Ideal bulk crystal.

    Parameters
    ----------
    element : str
        Chemical symbol; the formula AB of a binary compound for zincblende and rocksalt (A at
        the origin).
    phase : {"bcc", "fcc", "hcp", "A15", "diamond", "zincblende", "rocksalt"}
    a : float
        Lattice constant, Å.
    c_over_a : float, optional
        hcp only; ideal √(8/3) when omitted.
    cubic : bool
        Conventional cubic cell instead of the primitive one (bcc, fcc, diamond, zincblende,
        rocksalt; A15 is always cubic).

    Returns
    -------
    ase.Atoms
        Periodic cell: 1 (bcc, fcc primitive), 2 (bcc cubic, hcp; diamond, zincblende, rocksalt
        primitive), 4 (fcc cubic) or 8 (A15; diamond, zincblende, rocksalt cubic) atoms.
    """
    if phase in COMPOUND_LATTICES:
        if not is_compound(element):
            raise NotApplicableError(
                f"{phase} is a lattice of binary compounds AB (e.g. CuI), not of {element}"
            )
        return bulk(element, phase, a=a, cubic=cubic)
    if is_compound(element):
        raise NotApplicableError(
            f"{element} is a compound: its lattice is one of {', '.join(COMPOUND_LATTICES)}, "
            f"not {phase}"
        )
    if phase in ("bcc", "fcc", "diamond"):
        return bulk(element, phase, a=a, cubic=cubic)
    if phase == "hcp":
        return bulk(element, "hcp", a=a, c=a * (c_over_a or IDEAL_C_OVER_A))
    if phase == "A15":
        return crystal(
            [element, element],
            basis=[(0, 0, 0), (0.25, 0, 0.5)],
            spacegroup=223,
            cellpar=[a, a, a, 90, 90, 90],
        )
    raise NotApplicableError(f"unknown phase '{phase}'; use one of {', '.join(BUILT)}")


def oriented_cell(element: str, lattice: str, a: float, directions, size) -> Atoms:
    """Orthogonal cubic-lattice cell with cell vectors along Miller ``directions``.

    Parameters
    ----------
    lattice : {"bcc", "fcc"}
    a : float
        Cubic lattice constant, Å.
    directions : 3 triplets of int
        Right-handed x, y, z directions; cell vector i is ``directions[i] * a * size[i]``.
    size : 3 int

    Returns
    -------
    ase.Atoms
        Periodic, as LAMMPS ``lattice <lattice> a orient ...`` + a box of the same lengths.
    """
    builder = {"bcc": BodyCenteredCubic, "fcc": FaceCenteredCubic}.get(lattice)
    if builder is None:
        raise NotApplicableError(f"oriented cells need a cubic lattice (bcc, fcc), not {lattice}")
    atoms = builder(
        directions=[list(d) for d in directions],
        size=tuple(size),
        symbol=element,
        latticeconstant=a,
        pbc=True,
    )
    return Atoms(atoms)


def cubic_supercell(
    element: str, lattice: str, a: float, size: int, c_over_a: float | None = None
) -> Atoms:
    """``size³`` repetition of the conventional cell (cubic, or the 2-atom hcp cell)."""
    cell = bulk_phase(element, lattice, a, c_over_a, cubic=lattice != "hcp")
    return cell.repeat((size, size, size))


def interstitial_supercell(element: str, lattice: str, a: float, size: int, kind: str) -> Atoms:
    """Cubic supercell with one self-interstitial near its centre.

    Parameters
    ----------
    lattice : {"bcc", "fcc"}
    kind : str
        A key of ``SIA_SITES[lattice]``: ``"110"``, ``"111"``, ``"100"`` (dumbbells along that
        direction), ``"oct"`` or ``"tet"``.

    Returns
    -------
    ase.Atoms
        ``N + 1`` atoms, ``N = size³ · atoms per cube``.
    """
    sites = SIA_SITES.get(lattice)
    if sites is None:
        raise NotApplicableError(
            f"self-interstitials are defined here for bcc and fcc, not {lattice}"
        )
    if kind not in sites:
        raise NotApplicableError(
            f"no {kind} self-interstitial in {lattice}; use one of {', '.join(sites)}"
        )
    atoms = cubic_supercell(element, lattice, a, size)
    centre = np.full(3, size // 2, dtype=float) * a
    site = int(np.argmin(np.linalg.norm(atoms.positions - centre, axis=1)))
    r0 = atoms.positions[site].copy()
    offset, half = sites[kind]
    if half is None:
        atoms.append(element)
        atoms.positions[-1] = r0 + np.asarray(offset) * a
        return atoms
    del atoms[site]
    for sign in (1.0, -1.0):
        atoms.append(element)
        atoms.positions[-1] = r0 + sign * np.asarray(half) * a
    return atoms
