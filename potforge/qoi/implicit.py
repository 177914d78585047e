"""Relaxations predicted by implicit differentiation: one Newton step per posterior sample from the
fitted model's minima, with the fitted model's Hessian — no relaxation per sample.

A relaxed structure ``X*`` of the fitted model has ``F(X*; θ̄) = 0``; the implicit function
theorem gives ``dX*/dθ = H⁻¹ ∂F/∂θ`` with ``H = −∂F/∂X`` at ``X*``.  For a potential linear in
θ, ``F(X*; θ) = (∂F/∂θ)(θ − θ̄)``, so the sample's relaxed structure is, to first order,

    X(θ) ≈ X* + H⁻¹ F(X*; θ)          (one Newton step; error O(|θ − θ̄|²)).

``H`` is computed once per structure (central differences of the fitted model's forces,
:func:`potforge.linalg.fd_hessian`) and its pseudo-inverse reused by every sample; a sample then
costs one force and one energy/stress call per structure.  The position Hessian of a periodic
structure is assembled by phonopy from its symmetry-irreducible displacements only (14
displaced cells instead of 318 for the 53-atom bcc vacancy; the same central differences, to
~1e-8 relative), and the force calls go to the model's own LAMMPS pair style where it is the
same potential (:mod:`potforge.qoi.fast`: SNAP, ZBL, constant; to ~1e-14, about 3× faster than
the descriptor rows).  Properties are evaluated **nonlinearly** in θ at the predicted
structures, so relaxed energies are right to second order (the relaxation energy ``−½ FᵀH⁻¹F``
is included).

Structures built on the ground-state lattice follow the sample's own predicted lattice: the
recorded relaxation displacement (fractional coordinates) is added to the sample's starting
structure before the Newton step.  Cell relaxations (ground state, competing phases) step in the
generalized coordinates of :class:`ase.filters.FrechetCellFilter`.

Both are relaxation hooks (:data:`~potforge.properties.relax.RelaxationHook`), passed explicitly
to the runs they stand in for.  Usage (what :func:`potforge.qoi.propagation.property_uncertainty`
does for ``"implicit"``)::

    record = RelaxationRecord()
    run_suite(calc0, "W", qois, hook=record)                          # real relaxations, recorded
    run_suite(calc_k, "W", qois, hook=NewtonRelaxer(record, calc0))   # one Newton step each
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from ase.filters import FrechetCellFilter

from potforge.errors import ModelError
from potforge.linalg import fd_hessian
from potforge.qoi.fast import twin_of

HESSIAN_STEP = 1e-4
"""Central-difference step of the Hessian in generalized coordinates (Å for positions)."""

RCOND = 1e-8
"""Relative cut-off of the Hessian pseudo-inverse (drops translations and symmetry-fixed DOFs)."""

SYMPREC = 1e-5
"""Symmetry tolerance (Å) of the symmetry-reduced position Hessian (relaxed structures keep the
symmetry of their start to far better than this)."""


def _bare(atoms: Atoms) -> Atoms:
    out = atoms.copy()
    out.calc = None
    out.set_constraint()
    return out


@dataclass
class RecordedRelaxation:
    """One relaxation of the reference run: its kind and options, start and result."""

    kind: str
    options: dict
    start: Atoms
    relaxed: Atoms
    step_matrix: np.ndarray | None = None
    """Pseudo-inverse of the Hessian at ``relaxed`` (computed on first use)."""
    returned: Atoms | None = None
    """The relaxed structure as the relaxation returned it (constraints kept, no calculator)."""
    energy: float | None = None
    """Its energy, eV."""

    def matches(self, kind: str, atoms: Atoms, options: dict) -> bool:
        """The same relaxation: kind, options, atoms, cell and positions (to 1e-10 Å)."""
        return (
            self.kind == kind
            and self.options == options
            and len(self.start) == len(atoms)
            and np.array_equal(self.start.numbers, atoms.numbers)
            and np.array_equal(self.start.pbc, atoms.pbc)
            and np.allclose(self.start.cell.array, atoms.cell.array, rtol=0.0, atol=1e-10)
            and np.allclose(self.start.positions, atoms.positions, rtol=0.0, atol=1e-10)
        )


class _Coordinates:
    """Generalized coordinates ``q`` of a relaxation on ``atoms`` and their forces ``−∂E/∂q``:
    positions (z only for ``z_only``), or the cell filter's positions-and-strain."""

    def __init__(self, kind: str, atoms: Atoms, options: dict):
        self.atoms = atoms
        self.filter = None
        if kind == "cell":
            self.filter = FrechetCellFilter(
                atoms, mask=options.get("mask"), hydrostatic_strain=options.get("hydrostatic")
            )
        else:
            n = 3 * len(atoms)
            self.dofs = np.arange(2, n, 3) if options.get("z_only") else np.arange(n)

    def get(self) -> np.ndarray:
        if self.filter is not None:
            return self.filter.get_positions().ravel()
        return self.atoms.positions.ravel()[self.dofs]

    def set(self, q: np.ndarray) -> None:
        if self.filter is not None:
            self.filter.set_positions(q.reshape(-1, 3))
            return
        pos = self.atoms.positions.ravel().copy()
        pos[self.dofs] = q
        self.atoms.positions = pos.reshape(-1, 3)

    def forces(self) -> np.ndarray:
        if self.filter is not None:
            return self.filter.get_forces().ravel()
        return self.atoms.get_forces().ravel()[self.dofs]


def _position_hessian(atoms: Atoms, calc) -> np.ndarray | None:
    """``−∂F/∂X`` (3N, 3N) of a periodic structure from phonopy's symmetry-irreducible ±
    displacements of :data:`HESSIAN_STEP` (central differences, symmetry-completed), or None
    for a structure that is not periodic in all three directions.

    This variant stays here rather than beside :func:`potforge.linalg.fd_hessian`: which
    displacements are irreducible, and how the force constants of the others follow, is
    phonopy's crystal-symmetry analysis of the structure — not an operation on arrays."""
    if not atoms.pbc.all():
        return None
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    cell = PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=atoms.cell.array,
        scaled_positions=atoms.get_scaled_positions(wrap=False),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # phonopy's notes on its primitive-cell defaults
        ph = Phonopy(
            cell,
            supercell_matrix=np.eye(3, dtype=int),
            primitive_matrix=np.eye(3),
            symprec=SYMPREC,
            log_level=0,
        )
    ph.generate_displacements(distance=HESSIAN_STEP, is_plusminus=True)
    work = _bare(atoms)
    work.calc = calc
    forces = []
    dataset: dict[str, Any] = dict(ph.dataset or {})
    for d in dataset["first_atoms"]:
        pos = atoms.positions.copy()
        pos[d["number"]] += d["displacement"]
        work.positions = pos
        forces.append(work.get_forces())
    ph.forces = np.array(forces)
    ph.produce_force_constants()
    n = len(atoms)
    fc = ph.force_constants
    if fc is None:  # produce_force_constants above always sets them
        raise RuntimeError("phonopy produced no force constants")
    return fc.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)


def _step_matrix(rec: RecordedRelaxation, calc) -> np.ndarray:
    """``H⁺`` at the recorded minimum under ``calc`` (central differences of the forces; for
    positions of a periodic structure over its symmetry-irreducible displacements only)."""
    if rec.step_matrix is None:
        fast = twin_of(calc)
        jac = None
        if rec.kind != "cell":
            jac = _position_hessian(rec.relaxed, fast)
            if jac is not None and rec.options.get("z_only"):
                jac = jac[2::3, 2::3]
        if jac is None:
            work = rec.relaxed.copy()
            work.calc = fast
            coords = _Coordinates(rec.kind, work, rec.options)
            q0 = coords.get()

            def gradient(q: np.ndarray) -> np.ndarray:  # −(generalized forces)
                coords.set(q)
                return -coords.forces()

            # a one-atom cell's position coordinates are translations: no force changes
            jac = fd_hessian(
                gradient, q0, HESSIAN_STEP, columns=range(3 if len(work) == 1 else 0, q0.size)
            )
        rec.step_matrix = np.linalg.pinv(jac, rcond=RCOND)
    return rec.step_matrix


class RelaxationRecord:
    """Relaxation hook that relaxes for real and records every call, in order.

    Parameters
    ----------
    reuse : RelaxationRecord, optional
        A record of the same calculator's parameters: a relaxation already in it (same kind,
        options and starting structure) is not redone — its result, and the same
        :class:`RecordedRelaxation` (with its Hessian, once computed), are taken over.
    """

    def __init__(self, reuse: RelaxationRecord | None = None) -> None:
        self.calls: list[RecordedRelaxation] = []
        self.reuse = reuse

    def find(self, kind: str, atoms: Atoms, options: dict) -> RecordedRelaxation | None:
        """The recorded relaxation of ``atoms`` with this kind and options, if any."""
        return next((c for c in self.calls if c.matches(kind, atoms, options)), None)

    def __call__(self, kind: str, atoms: Atoms, calc, run, **options) -> tuple[Atoms, float]:
        done = None if self.reuse is None else self.reuse.find(kind, atoms, options)
        if done is not None and done.returned is not None and done.energy is not None:
            self.calls.append(done)
            out = done.returned.copy()
            out.calc = calc
            return out, float(done.energy)
        relaxed, energy = run()
        self.calls.append(
            RecordedRelaxation(
                kind,
                dict(options),
                _bare(atoms),
                _bare(relaxed),
                returned=relaxed.copy(),
                energy=float(energy),
            )
        )
        return relaxed, energy


class NewtonRelaxer:
    """Relaxation hook that replaces the ``i``-th relaxation by one Newton step from the ``i``-th
    recorded minimum (module docstring).

    Parameters
    ----------
    record : RelaxationRecord
        The reference run's relaxations (its Hessians are cached on it and shared).
    reference_calc : ase.calculators.calculator.Calculator
        The calculator the record was made with (the fitted parameters).
    steps : int
        Newton steps with the frozen Hessian (chord iterations): 1 is the implicit-function
        prediction (error O(|δθ|²)); each further step costs one force call and gains one order.

    Attributes
    ----------
    max_step : float
        Largest |Newton step| component so far (Å, or filter units for cells): a large value
        means the sample is far outside the linear regime.
    """

    def __init__(self, record: RelaxationRecord, reference_calc, steps: int = 1) -> None:
        if int(steps) < 1:
            raise ModelError(f"Newton steps must be a positive integer, got {steps}")
        self.record = record
        self.reference_calc = reference_calc
        self.steps = int(steps)
        self.index = 0
        self.max_step = 0.0

    def _recorded(self, kind: str, atoms: Atoms, options: dict) -> RecordedRelaxation:
        calls = self.record.calls
        i = self.index
        if i >= len(calls):
            raise ModelError(
                f"implicit propagation: relaxation {i + 1} has no counterpart in the fitted "
                f"model's run ({len(calls)} recorded); compute the same properties in the same "
                "order"
            )
        rec = calls[i]
        if (
            rec.kind != kind
            or rec.options != options
            or rec.start.get_chemical_symbols() != atoms.get_chemical_symbols()
        ):
            raise ModelError(
                f"implicit propagation: relaxation {i + 1} ({kind}, {len(atoms)} atoms) does not "
                f"match the fitted model's ({rec.kind}, {len(rec.start)} atoms)"
            )
        self.index += 1
        return rec

    def __call__(self, kind: str, atoms: Atoms, calc, run, **options) -> tuple[Atoms, float]:
        rec = self._recorded(kind, atoms, options)
        if kind == "cell":
            work = rec.relaxed.copy()
        else:
            work = _bare(atoms)
            shift = rec.relaxed.get_scaled_positions(wrap=False) - rec.start.get_scaled_positions(
                wrap=False
            )
            work.positions = (atoms.get_scaled_positions(wrap=False) + shift) @ work.cell.array
        work.calc = calc
        coords = _Coordinates(kind, work, options)
        step_matrix = _step_matrix(rec, self.reference_calc)
        q0 = coords.get()
        for _ in range(self.steps):
            coords.set(coords.get() + step_matrix @ coords.forces())
        self.max_step = max(self.max_step, float(np.abs(coords.get() - q0).max(initial=0.0)))
        return work, float(work.get_potential_energy())
