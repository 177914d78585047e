"""Anharmonicity score σ^A of a material: how far its forces at temperature T are from harmonic.

σ^A is the RMS form of Knoop et al., Phys. Rev. Mater. 4, 083809 (2020)::

    σ^A = sqrt( Σ (F − F_harm)² / Σ F² )      (sums over atoms, Cartesian components, frames)

with ``F_harm = −Φ·u``: Φ the harmonic force constants of the relaxed reference structure and u
the displacements of the MD frame from the reference positions (minimum image).  Forces have zero
mean, so this equals ``std(F − F_harm) / std(F)`` of ../shared/METHODS.md §5.  σ^A → 0 as T → 0
(the potential is harmonic near its minimum: σ^A ∝ √T at low T) and grows with T; seed 004
screened materials with it for whether they need MD-driven active learning (σ^A ≳ 0.2 is
strongly anharmonic).

Two parts: array functions (:func:`harmonic_forces`, :func:`anharmonicity`,
:func:`displacements`) that need no ASE, and :func:`anharmonicity_score`, which runs the
pipeline for any ASE calculator — positions relaxed at fixed cell (or used as given when already
force-free), force constants with phonopy by finite displacements on the structure as given
(:func:`harmonic_reference`; a cubic supercell of ≥ ~50 atoms, larger than twice the cutoff, is
expected), Langevin MD in ASE at T, and the score.

Units: Å, eV, eV/Å, eV/Å², K, ps.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from ase import Atoms, units

from potforge.errors import DataError, EngineError, PotforgeError

MIN_ATOMS = 50
"""Fewer atoms than this in the force-constant cell draw a warning: the harmonic model then
misses interactions beyond half the cell, and the score measures that, not anharmonicity."""

FMAX = 1e-4
"""A structure whose largest force is below this (eV/Å) counts as relaxed and is used as given."""


# ------------------------------------------------------------------------------ array core
def harmonic_forces(force_constants: np.ndarray, displacements: np.ndarray) -> np.ndarray:
    """Harmonic forces ``F_i = −Σ_j Φ_ij u_j`` of displaced frames.

    Parameters
    ----------
    force_constants : ndarray, shape (N, N, 3, 3)
        Φ, eV/Å² (phonopy's full force constants: ``[i, j, a, b] = ∂²E/∂u_ia ∂u_jb``).
    displacements : ndarray, shape (F, N, 3) or (N, 3)
        u, Å, from the reference positions.

    Returns
    -------
    ndarray, the shape of ``displacements``
        eV/Å.
    """
    fc = np.asarray(force_constants, dtype=float)
    u = np.asarray(displacements, dtype=float)
    if fc.ndim != 4 or fc.shape[0] != fc.shape[1] or fc.shape[2:] != (3, 3):
        raise DataError(f"force_constants must have shape (N, N, 3, 3), not {fc.shape}")
    single = u.ndim == 2
    if single:
        u = u[None]
    if u.ndim != 3 or u.shape[1:] != (fc.shape[0], 3):
        raise DataError(
            f"displacements must have shape (F, {fc.shape[0]}, 3) for {fc.shape[0]} atoms, "
            f"not {np.shape(displacements)}"
        )
    if not (np.isfinite(fc).all() and np.isfinite(u).all()):
        raise DataError("force_constants and displacements must be finite")
    out = -np.einsum("ijab,fjb->fia", fc, u)
    return out[0] if single else out


def anharmonicity(forces: np.ndarray, harmonic: np.ndarray) -> float:
    """σ^A = sqrt(Σ (F − F_harm)² / Σ F²) over every atom, component and frame.

    Parameters
    ----------
    forces : ndarray, shape (..., 3)
        F, eV/Å (e.g. (F, N, 3) frames).
    harmonic : ndarray, the shape of ``forces``
        F_harm, eV/Å.

    Returns
    -------
    float
        0 for exactly harmonic forces; 1 when F_harm explains nothing (e.g. F_harm = 0).
    """
    f = np.asarray(forces, dtype=float)
    h = np.asarray(harmonic, dtype=float)
    if f.shape != h.shape or f.ndim < 1 or f.shape[-1] != 3:
        raise DataError(f"forces {f.shape} and harmonic {h.shape} must have one shape, ending in 3")
    if not (np.isfinite(f).all() and np.isfinite(h).all()):
        raise DataError("forces and harmonic forces must be finite")
    total = float(np.sum(f * f))
    if total <= 0.0:
        raise DataError("every force is zero: σ^A is undefined at a force-free structure")
    return math.sqrt(float(np.sum((f - h) ** 2)) / total)


def displacements(reference: np.ndarray, positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Displacements from reference positions in a periodic cell, by minimum image, with their
    mean removed (a rigid translation exerts no force; Langevin noise lets the cell drift).

    Parameters
    ----------
    reference : ndarray, shape (N, 3)
        Å.
    positions : ndarray, shape (F, N, 3) or (N, 3)
        Å, the same atoms in the same order.
    cell : ndarray, shape (3, 3)
        Rows are the cell vectors, Å (periodic in all three directions).

    Returns
    -------
    ndarray, the shape of ``positions``
        Å.
    """
    ref = np.asarray(reference, dtype=float)
    pos = np.asarray(positions, dtype=float)
    cell = np.asarray(cell, dtype=float)
    if cell.shape != (3, 3) or abs(np.linalg.det(cell)) < 1e-12:
        raise DataError(f"cell must be a (3, 3) array of three independent vectors, not {cell}")
    if ref.ndim != 2 or ref.shape[1] != 3 or pos.shape[-2:] != ref.shape:
        raise DataError(f"positions {pos.shape} must end in the reference's shape {ref.shape}")
    frac = (pos - ref) @ np.linalg.inv(cell)
    frac -= np.round(frac)
    u = frac @ cell
    return u - u.mean(axis=-2, keepdims=True)


# ------------------------------------------------------------------------------ pipeline
@dataclass(frozen=True)
class HarmonicReference:
    """The relaxed reference structure and its force constants.

    Attributes
    ----------
    atoms : ase.Atoms
        Reference positions (no calculator attached), Å.
    force_constants : ndarray, shape (N, N, 3, 3)
        Φ, eV/Å², of the periodic cell ``atoms``.
    relaxed : bool
        True when the positions were relaxed here (at fixed cell), False when the structure was
        already force-free (largest force < ``fmax``) and used as given.
    max_force : float
        Largest force of the structure as given, eV/Å.
    displacement : float
        Finite-displacement amplitude, Å.
    """

    atoms: Atoms
    force_constants: np.ndarray
    relaxed: bool
    max_force: float
    displacement: float


def _check_structure(structure: Atoms) -> None:
    if not isinstance(structure, Atoms) or len(structure) == 0:
        raise DataError("structure must be an ase.Atoms with at least one atom")
    if not structure.pbc.all() or structure.cell.rank != 3:
        raise DataError(
            "the anharmonicity score needs a periodic bulk cell (pbc in x, y and z, 3 cell vectors)"
        )
    if len(structure) < MIN_ATOMS:
        warnings.warn(
            f"the force constants come from the {len(structure)}-atom cell as given: use a "
            f"cubic supercell of ≥ {MIN_ATOMS} atoms (larger than twice the cutoff), or σ^A "
            "also measures the interactions the small cell cuts off",
            stacklevel=3,
        )


def calculator_forces(calc, atoms: Atoms) -> np.ndarray:
    """Forces (N, 3), eV/Å, of ``atoms`` (not modified) with ``calc``; a calculator that fails
    (e.g. on an element it has no parameters for) is an :class:`EngineError` in one sentence."""
    work = atoms.copy()
    work.calc = calc
    try:
        forces = work.get_forces()
    except PotforgeError:
        raise
    except Exception as exc:  # calculators raise many types for elements they do not know
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise EngineError(
            f"the calculator failed on the {atoms.get_chemical_formula()} structure ({text})"
        ) from exc
    if not np.isfinite(forces).all():
        raise EngineError(
            f"the calculator gave non-finite forces on the {atoms.get_chemical_formula()} structure"
        )
    return np.asarray(forces, dtype=float)


def harmonic_reference(
    calc,
    structure: Atoms,
    *,
    supercell: int | tuple[int, int, int] = 1,
    displacement: float = 0.01,
    fmax: float = FMAX,
) -> HarmonicReference:
    """Relax positions at fixed cell (unless already relaxed) and compute the force constants
    of the cell by finite displacements with phonopy.

    Parameters
    ----------
    calc : ase.calculators.calculator.Calculator
    structure : ase.Atoms
        Periodic bulk cell near its equilibrium volume; never modified.
    supercell : int or 3 ints, default=1
        Repeat ``structure`` this many times first (1: the structure as given is the cell).
    displacement : float, default=0.01
        Finite-displacement amplitude, Å, > 0.
    fmax : float, default=FMAX
        Relaxation tolerance, eV/Å; a structure already below it is used as given.

    Returns
    -------
    HarmonicReference
    """
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    from potforge.properties.relax import relax_positions

    if not displacement > 0:
        raise DataError(f"displacement must be > 0 Å, not {displacement}")
    reps = (supercell,) * 3 if isinstance(supercell, int) else tuple(supercell)
    if len(reps) != 3 or any(int(r) != r or r < 1 for r in reps):
        raise DataError(f"supercell must be a positive integer or three, not {supercell}")
    atoms = structure.repeat(tuple(int(r) for r in reps))
    _check_structure(atoms)
    first = calculator_forces(calc, atoms)
    atoms.calc = calc
    max_force = float(np.linalg.norm(first, axis=1).max())
    relaxed = max_force >= fmax
    if relaxed:
        label = f"{atoms.get_chemical_formula()} reference of the anharmonicity score"
        atoms, _ = relax_positions(atoms, calc, label=label, fmax=fmax)
    ref = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # phonopy's notes on its default primitive cell
        ph = Phonopy(
            PhonopyAtoms(
                symbols=ref.get_chemical_symbols(),
                cell=ref.cell.array,
                scaled_positions=ref.get_scaled_positions(),
            ),
            supercell_matrix=np.eye(3, dtype=int),
            primitive_matrix="P",
            log_level=0,
        )
    ph.generate_displacements(distance=displacement)

    def forces(sc) -> np.ndarray:
        work = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        work.calc = calc
        return work.get_forces()

    f0 = forces(ph.supercell)  # residual of the relaxed cell, subtracted
    cells = ph.supercells_with_displacements
    if cells is None:  # generate_displacements above always makes them
        raise RuntimeError("phonopy made no displaced supercells")
    ph.forces = [forces(sc) - f0 for sc in cells]
    ph.produce_force_constants()
    fc = np.asarray(ph.force_constants, dtype=float)
    if not np.isfinite(fc).all():
        raise EngineError("the force constants are not finite: the calculator gave NaN forces")
    return HarmonicReference(ref, fc, relaxed, max_force, float(displacement))


def anharmonicity_score(
    calc,
    structure: Atoms,
    temperature: float,
    *,
    steps: int = 1000,
    interval: int = 10,
    equilibrate: int = 500,
    timestep: float = 1e-3,
    friction: float = 10.0,
    supercell: int | tuple[int, int, int] = 1,
    seed: int = 0,
    displacement: float = 0.01,
    reference: HarmonicReference | None = None,
) -> dict:
    """σ^A of ``structure`` with ``calc`` at ``temperature`` from Langevin MD in ASE.

    The MD starts at the reference positions with velocities drawn at 2T (equipartition then
    shares the energy between kinetic and potential), runs ``equilibrate`` steps unscored, then
    ``steps`` steps with a frame every ``interval`` (``steps // interval`` frames).

    Parameters
    ----------
    calc : ase.calculators.calculator.Calculator
    structure : ase.Atoms
        Periodic bulk cell (see :func:`harmonic_reference`); ignored when ``reference`` is given.
    temperature : float
        K, > 0.
    steps : int, default=1000
        Scored MD steps, ≥ ``interval``.
    interval : int, default=10
        Steps between scored frames, ≥ 1.
    equilibrate : int, default=500
        Unscored MD steps first, ≥ 0.
    timestep : float, default=1e-3
        ps.
    friction : float, default=10.0
        Langevin friction, 1/ps.
    supercell : int or 3 ints, default=1
        Repeat of ``structure`` (1: as given).
    seed : int, default=0
        Seed of the velocities and the Langevin noise.
    displacement : float, default=0.01
        Finite-displacement amplitude of the force constants, Å.
    reference : HarmonicReference, optional
        Force constants already computed (e.g. for several temperatures).

    Returns
    -------
    dict
        ``score`` (σ^A over all frames), ``per_frame`` (σ^A of each frame), ``n_frames``,
        ``temperature`` (target, K), ``mean_temperature`` (of the scored frames, K), ``relaxed``
        (whether the positions were relaxed here or used as given), ``n_atoms``, and the MD
        settings.

    Raises
    ------
    DataError
        A bad setting, in one sentence.
    EngineError
        When the MD produces non-finite forces.
    """
    from ase.md import velocitydistribution as vd
    from ase.md.langevin import Langevin

    if not (isinstance(temperature, Real) and math.isfinite(temperature) and temperature > 0):
        raise DataError(f"temperature must be a number of K > 0, not {temperature!r}")
    for name, count, low in (
        ("steps", steps, 1),
        ("interval", interval, 1),
        ("equilibrate", equilibrate, 0),
    ):
        if not isinstance(count, Integral) or count < low:
            raise DataError(f"{name} must be an integer ≥ {low}, not {count!r}")
    if interval > steps:
        raise DataError(f"interval ({interval}) must not exceed steps ({steps})")
    for name, value in (("timestep", timestep), ("friction", friction)):
        if not (isinstance(value, Real) and math.isfinite(value) and value > 0):
            raise DataError(f"{name} must be a number > 0, not {value!r}")
    if reference is None:
        reference = harmonic_reference(
            calc, structure, supercell=supercell, displacement=displacement
        )
    ref = reference.atoms
    atoms = ref.copy()
    atoms.calc = calc
    rng = np.random.default_rng(seed)
    if hasattr(vd, "thermalize_momenta"):  # ASE ≥ 3.29
        vd.thermalize_momenta(atoms, 2.0 * float(temperature), rng=rng)
    else:
        vd.MaxwellBoltzmannDistribution(atoms, temperature_K=2.0 * float(temperature), rng=rng)
    vd.Stationary(atoms)
    dt = timestep * 1000 * units.fs
    dyn = Langevin(
        atoms,
        dt,
        temperature_K=temperature,
        friction=friction / (1000 * units.fs),
        fixcm=False,
        rng=rng,
    )
    if equilibrate:
        dyn.run(equilibrate)
    positions, forces, temps = [], [], []
    for k in range(int(steps) // int(interval)):
        dyn.run(interval)
        f = atoms.get_forces()
        if not np.isfinite(f).all():
            raise EngineError(
                f"the MD at {temperature:g} K gave non-finite forces after "
                f"{equilibrate + (k + 1) * interval} steps"
            )
        positions.append(atoms.get_positions())
        forces.append(np.array(f))
        temps.append(float(atoms.get_temperature()))
    F = np.asarray(forces)
    u = displacements(ref.positions, np.asarray(positions), ref.cell.array)
    H = harmonic_forces(reference.force_constants, u)
    return {
        "score": anharmonicity(F, H),
        "per_frame": [anharmonicity(f, h) for f, h in zip(F, H, strict=True)],
        "n_frames": len(F),
        "temperature": float(temperature),
        "mean_temperature": float(np.mean(temps)),
        "relaxed": reference.relaxed,
        "n_atoms": len(ref),
        "steps": steps,
        "interval": interval,
        "equilibrate": equilibrate,
        "timestep_ps": timestep,
        "friction_per_ps": friction,
        "seed": seed,
        "displacement": reference.displacement,
    }
