"""Binary compounds AB: elemental reference states and the formation energy.

A compound is named by its formula (``"CuI"``, :func:`~potforge.properties.base.species`) and
takes a cubic lattice of :data:`~potforge.properties.base.COMPOUND_LATTICES` (zincblende B3 or
rocksalt B1; by default the lower in energy under the calculator).  Its formation energy per
atom is

    ΔH_f = E(AB)/N − ½ (e_A + e_B)

with ``e_i`` the energy per atom of element ``i`` in its reference state, relaxed under the same
calculator: a bulk lattice (bcc, fcc, hcp, diamond: cell relaxed to zero stress) or the dimer
``i₂`` alone in a box (bond relaxed), as :data:`REFERENCE_LATTICES` lists.  Each reference is
ASE's reference state of the element when the suite builds it (``diatom`` → the dimer), or the
``references`` setting (``{"I": "dimer"}``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, covalent_radii, reference_states

from potforge.properties.base import REFERENCE_LATTICES, NotApplicableError, is_compound, species
from potforge.properties.bulk import relax_bulk
from potforge.properties.relax import FMAX, STEPS, RelaxationHook, relax_positions
from potforge.properties.settings import CLI_NAMES, option_name

__all__ = [
    "DIMER_BOX",
    "REFERENCE_LATTICES",
    "ElementalReference",
    "check_references",
    "formation_energy",
    "reference_lattice",
    "relax_reference",
]

DIMER_BOX = 20.0
"""Edge of the periodic cubic box of a dimer reference, Å (as the isolated atom's start)."""


@dataclass(frozen=True)
class ElementalReference:
    """The relaxed reference state of one element of a compound.

    Attributes
    ----------
    symbol : str
    lattice : str
        One of :data:`REFERENCE_LATTICES`.
    atoms : ase.Atoms
        Relaxed cell (bulk: primitive cell relaxed to zero stress; dimer: two atoms in a fixed
        box); no calculator attached.
    energy_per_atom : float
        eV/atom.
    """

    symbol: str
    lattice: str
    atoms: Atoms
    energy_per_atom: float


def reference_lattice(symbol: str, references: Mapping[str, str] | None = None) -> str:
    """The reference state of element ``symbol``: ``references[symbol]`` when given, else ASE's
    reference state when it is one of :data:`REFERENCE_LATTICES` (``diatom`` → ``dimer``).

    Raises
    ------
    NotApplicableError
        For an element whose ASE reference state the suite does not build (e.g. orthorhombic
        iodine) and that ``references`` does not name: the message says how to give it.
    """
    if references and symbol in references:
        return references[symbol]
    sym = (reference_states[atomic_numbers[symbol]] or {}).get("symmetry")
    if sym == "diatom":
        return "dimer"
    if sym in REFERENCE_LATTICES:
        return str(sym)
    raise NotApplicableError(
        f"the formation energy needs a reference state of {symbol}, whose reference in ASE's "
        f"data is '{sym}', which the suite does not build: give it as "
        f"{references_example(symbol)} (one of {', '.join(REFERENCE_LATTICES)})"
    )


def references_example(symbol: str, lattice: str = "dimer") -> str:
    """How the ``references`` setting naming ``symbol`` is written in the current vocabulary
    (:func:`~potforge.properties.settings.option_name`): ``references={'I': 'dimer'}`` from
    Python, ``--set references=I:dimer`` under the CLI."""
    if option_name("setting") == CLI_NAMES["setting"]:
        return f"{CLI_NAMES['setting']} references={symbol}:{lattice}"
    return f"references={{{symbol!r}: {lattice!r}}}"


def check_references(
    element: str, references: Mapping[str, str] | None, resolve: bool = False
) -> None:
    """Check the ``references`` setting against ``element`` before any work: only a compound
    has them, and only its own species; with ``resolve``, every species' reference must be
    known (:func:`reference_lattice`).

    Raises
    ------
    NotApplicableError
    """
    if references:
        if not is_compound(element):
            raise NotApplicableError(
                f"{option_name('setting')} references names the elemental references of a "
                f"compound's formation energy; {element} is an element"
            )
        extra = sorted(set(references) - set(species(element)))
        if extra:
            raise NotApplicableError(
                f"{option_name('setting')} references names {', '.join(extra)}, which "
                f"{'is' if len(extra) == 1 else 'are'} not in {element} "
                f"(its elements: {', '.join(species(element))})"
            )
    if resolve and is_compound(element):
        for symbol in species(element):
            reference_lattice(symbol, references)


def relax_reference(
    calc,
    symbol: str,
    lattice: str,
    *,
    fmax: float = FMAX,
    steps: int = STEPS,
    hook: RelaxationHook | None = None,
) -> ElementalReference:
    """Relax element ``symbol`` in its reference state ``lattice`` under ``calc``.

    Parameters
    ----------
    calc : ase.calculators.calculator.Calculator
    symbol : str
    lattice : {"bcc", "fcc", "hcp", "diamond", "dimer"}
        A bulk lattice (:func:`~potforge.properties.bulk.relax_bulk`, started from ASE's
        reference data) or the dimer in a :data:`DIMER_BOX` box (started at ASE's bond length,
        else twice the covalent radius).
    fmax : float
        Force tolerance, eV/Å.
    steps : int
        Maximum optimiser steps.
    hook : RelaxationHook, optional
        Stands in for the relaxation (:data:`~potforge.properties.relax.RelaxationHook`).

    Returns
    -------
    ElementalReference
    """
    if lattice not in REFERENCE_LATTICES:
        raise NotApplicableError(
            f"unknown reference state '{lattice}' of {symbol}; use one of "
            f"{', '.join(REFERENCE_LATTICES)}"
        )
    if lattice != "dimer":
        state = relax_bulk(calc, symbol, lattice, fmax=fmax, steps=steps, hook=hook)
        return ElementalReference(symbol, lattice, state.atoms, state.energy_per_atom)
    ref: dict[str, Any] = reference_states[atomic_numbers[symbol]] or {}
    bond = float(ref.get("d", 2.0 * covalent_radii[atomic_numbers[symbol]]))
    centre = np.full(3, DIMER_BOX / 2)
    start = Atoms(
        symbol * 2,
        positions=[centre - [bond / 2, 0, 0], centre + [bond / 2, 0, 0]],
        cell=[DIMER_BOX] * 3,
        pbc=True,
    )
    atoms, energy = relax_positions(
        start, calc, label=f"{symbol}₂ dimer", fmax=fmax, steps=steps, hook=hook
    )
    clean = atoms.copy()
    clean.calc = None
    return ElementalReference(symbol, lattice, clean, float(energy) / len(atoms))


def formation_energy(energy_per_atom: float, reference_energies: Sequence[float]) -> float:
    """ΔH_f = E/N − mean of the references' energies per atom (a 1:1 compound), eV/atom.

    Parameters
    ----------
    energy_per_atom : float
        The compound's energy per atom, eV/atom.
    reference_energies : sequence of float
        Energy per atom of each element's reference state, eV/atom (one per species).
    """
    return float(energy_per_atom - np.mean(np.asarray(reference_energies, dtype=float)))
