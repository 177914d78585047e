"""Relaxations with ASE optimisers that fail loudly when they do not converge.

Positions are relaxed at fixed cell with :class:`ase.optimize.BFGS` (or FIRE); cells with
:class:`ase.filters.FrechetCellFilter`.  A relaxation that stops at ``steps`` without reaching
``fmax`` raises :class:`~potforge.properties.base.RelaxationError` naming the structure and the
residual force, never returning a half-relaxed structure as if it were converged.  One whose
atoms fall into each other (shortest distance below :data:`COLLAPSE` × the starting one) raises
:class:`~potforge.properties.base.InstabilityError`: the structure has no minimum near its start.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from ase import Atoms
from ase.constraints import FixedLine
from ase.filters import FrechetCellFilter
from ase.neighborlist import neighbor_list
from ase.optimize import BFGS, FIRE

from potforge.errors import EngineError
from potforge.properties.base import InstabilityError, RelaxationError

FMAX = 1e-4
"""Default force tolerance of property relaxations, eV/Å."""

STEPS = 500
"""Default maximum optimiser steps."""

COLLAPSE = 0.75
"""A relaxation whose shortest interatomic distance falls below this fraction of the starting
structure's has collapsed (atoms fell into each other through a hole of the potential): it
raises :class:`~potforge.properties.base.InstabilityError` instead of returning a property of a
structure that no longer exists.  Physical relaxations of surfaces, vacancies, interstitials and
stacking faults change the shortest distance by a few per cent."""

_OPTIMIZERS = {"BFGS": BFGS, "FIRE": FIRE}


def _optimizer(name: str):
    try:
        return _OPTIMIZERS[name.upper()]
    except KeyError:
        raise RelaxationError(
            f"unknown optimizer '{name}'; use one of {', '.join(_OPTIMIZERS)}"
        ) from None


RelaxationHook = Callable[..., tuple[Atoms, float]]
"""``hook(kind, atoms, calc, run, **options) -> (atoms, energy)``: stands in for a relaxation.

``kind`` is ``"positions"`` (options ``z_only``) or ``"cell"`` (options ``hydrostatic``,
``mask``); ``run()`` performs the real relaxation.  A hook may call it (and record the result)
or replace it (e.g. :class:`potforge.qoi.implicit.NewtonRelaxer`).  It is passed explicitly,
as ``hook=`` of :func:`relax_positions` and :func:`relax_cell`, of every property function that
relaxes, and of :class:`~potforge.properties.suite.PropertySuite` (which hands it to all of its
relaxations) — the way an observer is attached to one ASE optimiser, never set globally."""


def _hooked(
    hook: RelaxationHook | None, kind: str, atoms: Atoms, calc, run, **options
) -> tuple[Atoms, float]:
    return run() if hook is None else hook(kind, atoms, calc, run, **options)


def keep_structure(keep: list | None, atoms: Atoms) -> None:
    """Append ``atoms`` to ``keep`` when it is a list (a caller's record of the relaxed
    structures behind a property, used by :mod:`potforge.qoi.sensitivity`)."""
    if keep is not None:
        keep.append(atoms)


def max_force(atoms: Atoms) -> float:
    """Largest per-atom force norm (after constraints), eV/Å."""
    f = atoms.get_forces()
    return float(np.sqrt((f**2).sum(axis=1)).max()) if len(f) else 0.0


def nearest_distance(atoms: Atoms, cutoff: float = 6.0) -> float:
    """Shortest interatomic distance (periodic images included), Å; ``inf`` when no pair lies
    within ``cutoff`` Å."""
    d = neighbor_list("d", atoms, cutoff)
    return float(d.min()) if len(d) else float("inf")


COLLAPSE_CHECK_INTERVAL = 25
"""Optimiser steps between collapse checks during a relaxation (a collapsing structure is
stopped early instead of running to the step limit)."""


def _check_collapse(
    start: Atoms, relaxed: Atoms, label: str, cause: str = "", d0: float | None = None
) -> None:
    d0 = nearest_distance(start) if d0 is None else d0
    d1 = nearest_distance(relaxed, min(d0, 6.0))
    if d1 < COLLAPSE * d0:
        raise InstabilityError(
            f"relaxation of {label} ({len(start)} atoms) collapsed: the shortest interatomic "
            f"distance fell from {d0:.3f} Å to {d1:.3f} Å (below {COLLAPSE:g}×); the potential "
            f"has no stable minimum near this structure{cause}"
        )


def _run(
    target,
    work: Atoms,
    start: Atoms,
    label: str,
    fmax: float,
    steps: int,
    optimizer: str,
    residual,
) -> int:
    """Optimise ``target`` (``work`` or a cell filter on it) from ``start``; a collapse
    (:data:`COLLAPSE`, checked every :data:`COLLAPSE_CHECK_INTERVAL` steps and at the end) is an
    :class:`InstabilityError`, also when it makes the calculator fail on the way (e.g. LAMMPS's
    neighbour lists overflow as the cell shrinks)."""
    opt = _optimizer(optimizer)(target, logfile=None)
    d0 = nearest_distance(start)
    opt.attach(
        lambda: _check_collapse(start, work, label, f" (after {opt.nsteps} steps)", d0),
        interval=COLLAPSE_CHECK_INTERVAL,
    )
    try:
        converged = opt.run(fmax=fmax, steps=steps)
    except EngineError as exc:
        _check_collapse(start, work, label, f" (the calculator failed there: {exc})", d0)
        raise
    if not converged:
        _check_collapse(start, work, label, d0=d0)
        res = residual()
        raise RelaxationError(
            f"relaxation of {label} ({len(work)} atoms) did not converge: max force "
            f"{res:.3g} eV/Å after {steps} steps (fmax {fmax:g} eV/Å)"
        )
    _check_collapse(start, work, label, d0=d0)
    return int(opt.nsteps)


def relax_positions(
    atoms: Atoms,
    calc,
    *,
    label: str,
    fmax: float = FMAX,
    steps: int = STEPS,
    optimizer: str = "BFGS",
    z_only: bool = False,
    hook: RelaxationHook | None = None,
) -> tuple[Atoms, float]:
    """Relax atomic positions at fixed cell.

    Parameters
    ----------
    atoms : ase.Atoms
        Starting structure; copied, never modified.
    calc : ase.calculators.calculator.Calculator
    label : str
        Name used in error messages, e.g. ``"W vacancy"``.
    fmax : float
        Force tolerance, eV/Å.
    steps : int
        Maximum optimiser steps.
    optimizer : {"BFGS", "FIRE"}
    z_only : bool
        Constrain every atom to move along z only (:class:`ase.constraints.FixedLine`), as
        for generalized stacking-fault energies.
    hook : RelaxationHook, optional
        Stands in for the relaxation (:data:`RelaxationHook`; None: relax normally).

    Returns
    -------
    atoms : ase.Atoms
        Relaxed copy with ``calc`` attached.
    energy : float
        Its potential energy, eV.

    Raises
    ------
    RelaxationError
        When ``steps`` are used up before ``fmax`` is reached.
    InstabilityError
        When the structure collapsed (:data:`COLLAPSE`).
    """

    def run() -> tuple[Atoms, float]:
        work = atoms.copy()
        if z_only:
            work.set_constraint(FixedLine(list(range(len(work))), [0.0, 0.0, 1.0]))
        work.calc = calc
        _run(work, work, atoms, label, fmax, steps, optimizer, lambda: max_force(work))
        return work, float(work.get_potential_energy())

    return _hooked(hook, "positions", atoms, calc, run, z_only=z_only)


def relax_cell(
    atoms: Atoms,
    calc,
    *,
    label: str,
    fmax: float = FMAX,
    steps: int = STEPS,
    optimizer: str = "BFGS",
    hydrostatic: bool = False,
    mask: Sequence[int] | None = None,
    hook: RelaxationHook | None = None,
) -> tuple[Atoms, float]:
    """Relax positions and cell to zero stress (:class:`ase.filters.FrechetCellFilter`).

    Parameters
    ----------
    atoms : ase.Atoms
        Starting structure; copied.
    calc : ase.calculators.calculator.Calculator
    label : str
        Name used in error messages.
    fmax : float
        Tolerance on the generalized forces, eV/Å (the cell part is ``V·σ / N``, so a
        tolerance of 1e-4 eV/Å is a residual stress of about 1e-3 GPa for a metal).
    steps : int
    optimizer : {"BFGS", "FIRE"}
    hydrostatic : bool
        Allow only a uniform scaling of the cell (keeps cubic symmetry exactly).
    mask : sequence of 6 int, optional
        Voigt components of strain that may relax (ASE order xx, yy, zz, yz, xz, xy).
    hook : RelaxationHook, optional
        Stands in for the relaxation (:data:`RelaxationHook`; None: relax normally).

    Returns
    -------
    atoms : ase.Atoms
        Relaxed copy with ``calc`` attached.
    energy : float
        Potential energy, eV.
    """

    def run() -> tuple[Atoms, float]:
        work = atoms.copy()
        work.calc = calc
        filt = FrechetCellFilter(work, mask=mask, hydrostatic_strain=hydrostatic)

        def residual() -> float:
            g = filt.get_forces()
            return float(np.sqrt((g**2).sum(axis=1)).max())

        _run(filt, work, atoms, label, fmax, steps, optimizer, residual)
        return work, float(work.get_potential_energy())

    return _hooked(hook, "cell", atoms, calc, run, hydrostatic=hydrostatic, mask=mask)
