"""Ideal (theoretical) shear strength of a bcc crystal along ⟨111⟩{110}, relaxed.

The one-atom bcc primitive cell is built in the slip frame — x ∥ s = [111]/√3, z ∥ n = [1-10]/√2
(the slip-plane normal, n·s = 0), y = n × s — and deformed by

    F(v) = I + γ e_x ⊗ e_z + E(ε⊥),      cell = reference · Fᵀ  (cell rows),

``v = (ε_xx, ε_yy, ε_zz, γ_yz, γ, γ_xy)`` in ASE Voigt slots: the engineering simple shear γ sits
in the xz slot (displacement along s proportional to the height along n) and E is the symmetric
strain of the other five components (engineering shears halved off the diagonal, as
:func:`~potforge.properties.elastic.voigt_strain_matrix`).  At each γ the five other components
are relaxed until the five other Cauchy stress components (lab frame = slip frame) vanish, as in
the "relaxed" ideal-strength calculations of Roundy et al. (PRL 82, 2713, 1999), Krenn et al.
and Ogata et al.; with one atom per cell there are no internal coordinates.  The resolved shear
stress is ``τ(γ) = s·σ·n = σ_xz``, and the ideal shear strength ``τ* = max_γ τ(γ)``.

The relaxation is a Newton solve in the five strains (a chord iteration on the stiffness
``∂σ⊥/∂ε⊥``, refreshed when it stops contracting), not an optimiser run: it reaches the stress
tolerance to round-off in a few stress calls and is a smooth function of the calculator's
parameters, so it is not routed through a :data:`~potforge.properties.relax.RelaxationHook`.
The path is followed by continuation from ``γ = 0`` in steps ``Δγ`` (predictor: the tangent
``dε⊥/dγ = −(∂σ⊥/∂ε⊥)⁻¹ ∂σ⊥/∂γ``) until the relaxed tangent modulus ``dτ/dγ`` changes sign;
the maximum is then the root of ``dτ/dγ`` in that bracket (Brent's method), so ``τ*`` does not
depend on the scan step.

A uniform scaling ``(1 + e)`` of the reference cell maps the path onto itself with ``γ → (1 +
e) γ`` (the five relaxed strains absorb the rest), so ``τ*`` is independent of the reference
lattice constant; only ``γ*`` scales with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from scipy.optimize import brentq

from potforge.linalg import fd_jacobian
from potforge.properties.base import EV_A3_TO_GPA, PropertyError, RelaxationError, SettingError
from potforge.properties.bulk import BulkState
from potforge.properties.elastic import voigt_strain_matrix
from potforge.properties.relax import FMAX, STEPS, keep_structure
from potforge.properties.structures import bulk_phase

SLIP_SYSTEMS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "110": ((1, 1, 1), (1, -1, 0)),
}
"""Plane → (slip direction s, plane normal n) in cubic crystal axes (n·s = 0)."""

SHEAR = 4
"""Voigt slot of the engineering shear γ (xz: along x ∥ s, on the plane z ∥ n)."""

OTHER = (0, 1, 2, 3, 5)
"""Voigt slots of the five strains relaxed to zero stress at each γ."""

STRAIN_STEP = 1e-5
"""Strain step of the central-difference stiffness ``∂σ/∂v`` at fixed parameters."""

GAMMA_TOL = 1e-9
"""Tolerance (absolute, in γ) of the root of ``dτ/dγ`` that locates the maximum."""


def slip_frame(plane: str = "110") -> np.ndarray:
    """Rows ``(s, n × s, n)``: unit slip direction, in-plane transverse, plane normal.

    Parameters
    ----------
    plane : {"110"}

    Returns
    -------
    ndarray, shape (3, 3)
        A proper rotation from cubic crystal axes to the slip frame (``frame @ v`` gives the
        slip-frame components of the crystal vector ``v``).
    """
    if plane not in SLIP_SYSTEMS:
        raise PropertyError(
            f"unknown ideal-shear plane '{plane}'; use one of {', '.join(SLIP_SYSTEMS)}"
        )
    s, n = (np.asarray(v, dtype=float) for v in SLIP_SYSTEMS[plane])
    s, n = s / np.linalg.norm(s), n / np.linalg.norm(n)
    return np.array([s, np.cross(n, s), n])


def shear_reference(element: str, a: float, plane: str = "110") -> Atoms:
    """The one-atom bcc primitive cell of lattice constant ``a`` (Å), rotated into the slip
    frame of ``plane`` (:func:`slip_frame`)."""
    atoms = bulk_phase(element, "bcc", a)
    atoms.set_cell(atoms.cell.array @ slip_frame(plane).T, scale_atoms=True)
    return atoms


def deformation(strain: np.ndarray) -> np.ndarray:
    """Deformation gradient ``F = I + γ e_x⊗e_z + E(ε⊥)``.

    Parameters
    ----------
    strain : ndarray, shape (6,)
        ``(ε_xx, ε_yy, ε_zz, γ_yz, γ, γ_xy)``: the simple shear γ in the xz slot
        (:data:`SHEAR`), the others symmetric strains with engineering shears.

    Returns
    -------
    ndarray, shape (3, 3)
    """
    v = np.array(strain, dtype=float)
    gamma, v[SHEAR] = v[SHEAR], 0.0
    f = np.eye(3) + voigt_strain_matrix(v)
    f[0, 2] += gamma
    return f


def strained(reference: Atoms, strain: np.ndarray, calc=None) -> Atoms:
    """``reference`` with cell rows ``reference.cell · F(strain)ᵀ`` (atoms follow), ``calc``
    attached."""
    out = reference.copy()
    out.set_constraint()
    out.set_cell(reference.cell.array @ deformation(strain).T, scale_atoms=True)
    out.calc = calc
    return out


def strain_stiffness(
    calc, reference: Atoms, strain: np.ndarray, step: float = STRAIN_STEP
) -> np.ndarray:
    """``∂σ_i/∂v_j`` at ``strain`` (central differences, fixed calculator), shape (6, 6), eV/Å³.

    Rows: the Cauchy stress of the strained cell (ASE Voigt, slip frame); columns: the strain
    slots of :func:`deformation`.
    """
    return fd_jacobian(
        lambda v: strained(reference, v, calc).get_stress(), np.asarray(strain, float), step
    )


def path_tangent(jac: np.ndarray) -> tuple[np.ndarray, float]:
    """Tangent of the relaxed path from the stiffness ``jac`` (6, 6) at a relaxed point.

    Returns
    -------
    dv : ndarray, shape (6,)
        ``dv/dγ``: 1 in the shear slot, ``−(∂σ⊥/∂ε⊥)⁻¹ ∂σ⊥/∂γ`` in the others.
    modulus : float
        The relaxed tangent shear modulus ``dτ/dγ``, eV/Å³.
    """
    o = list(OTHER)
    dv = np.zeros(6)
    dv[SHEAR] = 1.0
    dv[o] = -np.linalg.solve(jac[np.ix_(o, o)], jac[o, SHEAR])
    return dv, float(jac[SHEAR] @ dv)


@dataclass
class ShearPoint:
    """One relaxed point of the path: strain (6,), Cauchy stress (6,) eV/Å³ and the stiffness
    ``∂σ/∂v`` (6, 6) eV/Å³ there."""

    strain: np.ndarray
    stress: np.ndarray
    jac: np.ndarray

    @property
    def gamma(self) -> float:
        return float(self.strain[SHEAR])

    @property
    def tau(self) -> float:
        """Resolved shear stress σ_xz, eV/Å³."""
        return float(self.stress[SHEAR])

    @property
    def modulus(self) -> float:
        """Relaxed tangent modulus dτ/dγ, eV/Å³."""
        return path_tangent(self.jac)[1]


def relax_transverse(
    calc,
    reference: Atoms,
    gamma: float,
    start: ShearPoint,
    *,
    tol: float,
    steps: int = STEPS,
    label: str = "crystal",
) -> ShearPoint:
    """Relax the five strains other than γ to zero stress at fixed ``gamma``.

    Parameters
    ----------
    calc : ase.calculators.calculator.Calculator
    reference : ase.Atoms
        The unstrained cell in the slip frame (:func:`shear_reference`).
    gamma : float
        Engineering shear.
    start : ShearPoint
        A relaxed point nearby: the start is its tangent prediction at ``gamma`` and its
        stiffness the first chord.
    tol : float
        Largest residual stress of the five relaxed components, eV/Å³.
    steps : int
        Maximum stress evaluations of the iteration.

    Returns
    -------
    ShearPoint
        With the stiffness recomputed at the relaxed strain.

    Raises
    ------
    RelaxationError
        ``steps`` stress calls without reaching ``tol``.
    """
    o = list(OTHER)
    v = start.strain + path_tangent(start.jac)[0] * (gamma - start.gamma)
    v[SHEAR] = gamma
    jac = start.jac
    previous = np.inf
    for _ in range(steps):
        sigma = strained(reference, v, calc).get_stress()
        residual = float(np.abs(sigma[o]).max())
        if residual <= tol:
            return ShearPoint(v, sigma, strain_stiffness(calc, reference, v))
        if residual > 0.25 * previous:  # the chord stopped contracting: a fresh stiffness
            jac = strain_stiffness(calc, reference, v)
        v[o] -= np.linalg.solve(jac[np.ix_(o, o)], sigma[o])
        previous = residual
    raise RelaxationError(
        f"ideal-shear relaxation of {label} at γ = {gamma:.4f} did not converge: residual "
        f"stress {residual:.3g} eV/Å³ after {steps} stress calls (tolerance {tol:.3g} eV/Å³)"
    )


@dataclass
class IdealShear:
    """The relaxed ideal-shear path and its maximum.

    Attributes
    ----------
    plane : str
    reference : ase.Atoms
        Unstrained one-atom cell in the slip frame (x ∥ s, z ∥ n).
    gammas : ndarray, shape (M,)
        Engineering shears of the scan, ascending from 0 (the maximum's bracket last).
    taus : ndarray, shape (M,)
        Resolved shear stress τ(γ) on the relaxed path, eV/Å³.
    shear_modulus : float
        Relaxed tangent modulus dτ/dγ at γ = 0, eV/Å³ (for a cubic crystal
        ``3 C44 (C11 − C12) / (4 C44 + C11 − C12)``).
    gamma_star : float
        Shear of the maximum.
    tau_star : float
        Ideal shear strength max τ, eV/Å³.
    point : ShearPoint
        The relaxed maximum (strain, stress, stiffness).
    """

    plane: str
    reference: Atoms
    gammas: np.ndarray
    taus: np.ndarray
    shear_modulus: float
    gamma_star: float
    tau_star: float
    point: ShearPoint = field(repr=False)

    def atoms(self, calc=None) -> Atoms:
        """The relaxed cell at the maximum, ``calc`` attached."""
        return strained(self.reference, self.point.strain, calc)


def ideal_shear_strength(
    calc,
    ground: BulkState,
    plane: str = "110",
    *,
    step: float = 0.02,
    gamma_max: float = 0.3,
    fmax: float = FMAX,
    steps: int = STEPS,
    keep: list | None = None,
    progress: Callable[[float], None] | None = None,
) -> IdealShear:
    """Relaxed ideal shear strength of a bcc ground state along ⟨111⟩{``plane``}.

    Parameters
    ----------
    calc : ase.calculators.calculator.Calculator
    ground : BulkState
        Relaxed bcc ground state (its lattice constant builds the reference cell).
    plane : {"110"}
    step : float
        Shear step Δγ of the scan.
    gamma_max : float
        Largest shear scanned; no maximum below it is a :class:`PropertyError`.
    fmax : float
        Force tolerance of the suite, eV/Å: the relaxed stresses are converged to
        ``fmax / V`` eV/Å³ (V the volume per atom), the cell tolerance of
        :func:`~potforge.properties.relax.relax_cell`.
    steps : int
        Maximum stress calls of each relaxation.
    keep : list, optional
        Receives the relaxed cell at the maximum.
    progress : callable, optional
        Called with each γ relaxed.

    Returns
    -------
    IdealShear
    """
    if ground.phase != "bcc":
        raise PropertyError(
            f"the ⟨111⟩{{{plane}}} ideal shear strength is a bcc quantity; "
            f"{ground.element} is {ground.phase}"
        )
    if gamma_max < 2 * step:
        raise SettingError(
            f"the ideal-shear scan needs shear_max ≥ 2 × shear_step, got shear_max = "
            f"{gamma_max:g} and shear_step = {step:g}"
        )
    label = f"{ground.element} bcc ⟨111⟩{{{plane}}}"
    reference = shear_reference(ground.element, ground.a, plane)
    tol = fmax / ground.volume_per_atom
    zero = np.zeros(6)
    jac0 = strain_stiffness(calc, reference, zero)
    origin = ShearPoint(zero, strained(reference, zero, calc).get_stress(), jac0)
    # the reference is stress-free up to the ground state's tolerance: relax it at γ = 0 too
    points = [relax_transverse(calc, reference, 0.0, origin, tol=tol, steps=steps, label=label)]
    n_steps = int(np.floor(gamma_max / step + 1e-9))
    bracket = None
    for k in range(1, n_steps + 1):
        p = relax_transverse(
            calc, reference, k * step, points[-1], tol=tol, steps=steps, label=label
        )
        points.append(p)
        if progress is not None:
            progress(p.gamma)
        if p.modulus <= 0.0:
            bracket = (points[-2], p)
            break
    if bracket is None:
        raise PropertyError(
            f"the resolved shear stress of {label} still rises at γ = {points[-1].gamma:.3f} "
            f"(τ = {points[-1].tau * EV_A3_TO_GPA:.1f} GPa): no maximum up to shear_max = "
            f"{gamma_max:g}; raise shear_max"
        )
    lo, hi = bracket
    memo: dict[float, ShearPoint] = {lo.gamma: lo, hi.gamma: hi}

    def modulus(gamma: float) -> float:
        if gamma not in memo:
            near = min(memo.values(), key=lambda q: abs(q.gamma - gamma))
            memo[gamma] = relax_transverse(
                calc, reference, gamma, near, tol=tol, steps=steps, label=label
            )
        return memo[gamma].modulus

    if lo.modulus <= 0.0:  # the modulus vanished at the first point already (γ = 0 unstable)
        raise PropertyError(f"{label} has no positive shear modulus at γ = 0: no ideal strength")
    gamma_star = float(brentq(modulus, lo.gamma, hi.gamma, xtol=GAMMA_TOL, rtol=1e-15))
    modulus(gamma_star)
    star = memo[gamma_star]
    keep_structure(keep, strained(reference, star.strain, calc))
    return IdealShear(
        plane,
        reference,
        np.array([p.gamma for p in points]),
        np.array([p.tau for p in points]),
        points[0].modulus,
        gamma_star,
        star.tau,
        star,
    )
