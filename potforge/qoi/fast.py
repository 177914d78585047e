"""A fitted linear model's own LAMMPS pair style as a calculator, where it is the same potential.

A :class:`~potforge.model.PotentialCalculator` evaluates a model through its descriptor rows
(``compute snap`` and friends: every parameter's energy, force and virial row), then multiplies
by θ.  For SNAP, ZBL and a constant the model's exported pair style
(:meth:`~potforge.model.LinearPotential.lammps_commands`) is the same function of the positions,
evaluated directly: energies, forces and stresses agree to ~1e-14 relative, at about a third of
the cost per call (0.007 s against 0.021 s for a 53-atom cell of the default 496-parameter model).
Property uncertainty makes many such calls (Hessians by finite differences, Newton steps and
relaxations at posterior parameter vectors), so it uses the twin where it is exact.

The twin is used only for models whose terms all have an exact LAMMPS form
(:data:`EXACT_KINDS`) and whose twin reproduces the model's energy and forces on a probe
structure (a rattled cell with one short, ZBL-range pair) to :data:`TOL`; otherwise the model's
own calculator is returned.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref

import numpy as np
from ase import Atoms
from ase.build import bulk

EXACT_KINDS = frozenset({"snap", "zbl", "const", "pod"})
"""Term kinds whose LAMMPS export is the same function (no tabulation)."""

TOL = 1e-9
"""Largest energy and force difference on the probe, relative to the probe's largest force
(energy: per atom), for which the twin stands in for the model."""

_EXACT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""model → (its term kinds, whether its twin is exact): checked once per model and terms."""


def _probe(elements: list[str]) -> Atoms:
    """A rattled 16-atom bcc cell of the model's elements with one pair at 1.3 Å."""
    atoms = bulk("W", "bcc", a=3.2, cubic=True).repeat(2)
    atoms.set_chemical_symbols([elements[k % len(elements)] for k in range(len(atoms))])
    atoms.rattle(0.05, seed=7)
    atoms.positions[1] = atoms.positions[0] + np.array([1.1, 0.5, 0.4])
    return atoms


def _twin(model, coef: np.ndarray | None):
    from potforge.engines.lammps import LammpsCalculator

    folder = tempfile.mkdtemp(prefix="potforge-twin-")
    try:
        lines = model.lammps_commands(folder, coef=coef)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    twin = LammpsCalculator(lines, model.elements_, folder)
    weakref.finalize(twin, shutil.rmtree, folder, True)
    if getattr(twin, "_lmp", False) is None:  # one LAMMPS instance for every twin (each call
        twin._lmp = _instance()  # clears it first): 3 ms saved per parameter vector
    return twin


_LAMMPS: list = []


def _instance():
    """The LAMMPS instance shared by the twins (created on first use)."""
    if not _LAMMPS:
        from potforge.engines.lammps import new_lammps

        _LAMMPS.append(new_lammps())
    return _LAMMPS[0]


def _exact(model) -> bool:
    kinds = tuple(t.kind for t in model.terms_)
    if model in _EXACT and _EXACT[model][0] == kinds:
        return _EXACT[model][1]
    from potforge.errors import PotforgeError

    ok = set(kinds) <= EXACT_KINDS
    if ok:
        try:
            probe = _probe(list(model.elements_))
            probe.calc = model.as_calculator(model.coef_)
            e0, f0 = probe.get_potential_energy(), probe.get_forces()
            probe.calc = _twin(model, None)
            e1, f1 = probe.get_potential_energy(), probe.get_forces()
            scale = max(1.0, float(np.abs(f0).max()))
            ok = np.abs(f1 - f0).max() <= TOL * scale and abs(e1 - e0) <= TOL * scale * len(probe)
        except (PotforgeError, NotImplementedError, OSError):
            ok = False
    _EXACT[model] = (kinds, ok)
    return ok


def fast_calculator(model, coef: np.ndarray | None = None):
    """The model at ``coef`` (default ``coef_``) as its LAMMPS pair style when that is the same
    potential (module docstring), else ``model.as_calculator(coef)``.

    The twin implements energy, forces and stress only (no posterior properties).
    """
    if not _exact(model):
        return model.as_calculator(coef)
    return _twin(model, None if coef is None else np.asarray(coef, dtype=float))


_TWINS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def twin_of(calc):
    """:func:`fast_calculator` of a :class:`~potforge.model.PotentialCalculator` (one twin per
    calculator, kept while it lives), or ``calc`` itself for any other calculator."""
    from potforge.model import PotentialCalculator

    if not isinstance(calc, PotentialCalculator):
        return calc
    if calc not in _TWINS:
        _TWINS[calc] = fast_calculator(calc.model, calc.coef)
    return _TWINS[calc]
