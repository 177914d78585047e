"""Exact parameter sensitivities dQ/dθ of material properties of a linear potential.

For a potential linear in θ, every structure's energy, forces and stress are ``rows · θ`` plus a
fixed reference, so the derivative of a property with respect to θ needs no finite differences
in θ.  Three ingredients, all evaluated at the relaxed structures the property suite already
produced (:attr:`PropertySuite.structures`):

* **Envelope theorem** — a relaxed energy ``E*(θ) = min_X E(X; θ)`` has ``dE*/dθ = ∂E/∂θ``,
  the energy descriptor row of the relaxed structure (positions, and the cell when it is
  relaxed too).  Cohesive, formation, surface, stacking-fault and phase energies follow, and a
  compound's formation energy ``dHf`` (its ground state and its elements' relaxed reference
  states: every one a stationary energy).
* **Implicit differentiation** — where the property is not a stationary energy, the relaxed
  coordinates move with θ: ``dX*/dθ = H⁺ ∂F/∂θ`` (H the Hessian, ``∂F/∂θ`` the force rows).
  The ground-state lattice obeys ``σ(ε*(θ); θ) = 0``, so ``dε*/dθ = −(∂σ/∂ε)⁻¹ ∂σ/∂θ``; every
  structure built from the ground-state lattice (defect cells, slabs, strained cells, phonon
  supercells) inherits that strain, which adds ``V σ : dε*/dθ`` to its energy derivative.
  Relaxed-ion stresses (elastic constants of non-Bravais cells) add ``Λ H⁺ ∂F/∂θ`` with
  ``Λ = ∂σ/∂X``; Bravais lattices have ``∂F/∂θ = 0`` by symmetry and skip it.  The ideal
  shear strength, a maximum over γ of a stress whose five other components are relaxed to
  zero, needs only the last: ``dε⊥/dθ = −(∂σ⊥/∂ε⊥)⁻¹ ∂σ⊥/∂θ`` at the maximum.
* **Linearity at fixed structure** — phonon force constants are linear in θ, so
  ``dν/dθ = e†(∂D/∂θ)e / (2ν)`` (averaged over a degenerate set), and the elastic tensor and
  Birch–Murnaghan fit are differentiated through their (explicit) formulas.

Structure-space derivatives at fixed θ (the stiffness of the lattice, the change of a phonon
frequency with the lattice constant) are central differences of the model itself with small
steps (:func:`potforge.linalg.fd_jacobian`, :func:`potforge.linalg.fd_hessian`); no
derivative is ever taken by perturbing θ.

Examples
--------
>>> sens = Sensitivity(model, "W")                              # doctest: +SKIP
>>> value, grad = sens.gradient("C44")                          # GPa, GPa per unit θ
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from ase import Atoms

from potforge.linalg import fd_hessian, fd_jacobian
from potforge.model.rows import structure_design
from potforge.properties.base import (
    EV_A2_TO_J_M2,
    EV_A3_TO_GPA,
    NotApplicableError,
    progress_bar,
    species,
)
from potforge.properties.bulk import birch_murnaghan, fit_birch_murnaghan
from potforge.properties.elastic import strain_set, voigt_strain_matrix
from potforge.properties.registry import (
    CUBIC_CONSTANTS,
    compute_qoi,
    get_qoi,
    resolve_settings,
    suite_for,
)
from potforge.properties.relax import RelaxationHook
from potforge.properties.shear import OTHER, SHEAR, strain_stiffness
from potforge.properties.stacking import unstable_fault_energy
from potforge.qoi.fast import twin_of

LATTICE_STEP = 1e-5
"""Strain step of the central differences in lattice strain at fixed θ."""

ION_STEP = 1e-4
"""Displacement step (Å) of the finite-difference Hessian, used only where forces depend on θ."""

FORCE_ROW_TOL = 1e-9
"""Force rows smaller than this (eV/Å per unit θ, relative) count as zero by symmetry."""


def _modes(lattice: str) -> np.ndarray:
    """Diagonal strain modes (n_modes, 3) that keep the ground-state symmetry."""
    if lattice == "hcp":
        return np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    return np.array([[1.0, 1.0, 1.0]])


def _mode_stress(stress_voigt: np.ndarray, modes: np.ndarray) -> np.ndarray:
    """``M_m : σ`` for diagonal modes; ``stress_voigt`` (6, ...) → (n_modes, ...)."""
    return np.tensordot(modes, stress_voigt[:3], axes=(1, 0))


def _stress_rows(design) -> np.ndarray:
    """∂σ/∂θ (6, P) of a :class:`~potforge.model.rows.StructureDesign` (stress = −W/V)."""
    return -design.rows.virial / design.volume


def _with_cell(atoms: Atoms, cell: np.ndarray, calc) -> Atoms:
    out = atoms.copy()
    out.set_constraint()
    out.set_cell(cell, scale_atoms=True)
    out.calc = calc
    return out


class Sensitivity:
    """dQ/dθ of registry QoIs for a fitted :class:`~potforge.model.LinearPotential`.

    Parameters
    ----------
    model : LinearPotential
        Fitted model.
    element : str
    coef : ndarray, shape (P,), optional
        Parameters at which to differentiate (default ``model.coef_``).
    hook : RelaxationHook, optional
        Stands in for the relaxations of its suite
        (:data:`~potforge.properties.relax.RelaxationHook`; e.g. a
        :class:`~potforge.qoi.implicit.RelaxationRecord` of the fitted model's relaxations).
    **settings
        Property settings (:data:`~potforge.properties.registry.SETTINGS`); the values are the
        ones :func:`~potforge.properties.registry.run_suite` computes with the same settings.

    Attributes
    ----------
    calc : PotentialCalculator
        The model at ``coef``.
    suite : PropertySuite
        The suite of ``calc`` that the values and gradients come from; pass it as ``suite=``
        to :func:`~potforge.properties.registry.run_suite` to compute the values first
        (``run_suite(sens.calc, element, qois, suite=sens.suite)``) without repeating work.

    Notes
    -----
    Values and gradients come from one shared :class:`PropertySuite`, so asking for the
    gradients after the values costs only descriptor passes at the relaxed structures (plus a
    few stress evaluations for the lattice stiffness, and two phonon runs per phonon QoI).
    Accuracy is set by the relaxation tolerance ``fmax``: use ``fmax ≤ 1e-6`` eV/Å when
    comparing against finite differences in θ.
    """

    def __init__(
        self,
        model,
        element: str,
        coef: np.ndarray | None = None,
        *,
        hook: RelaxationHook | None = None,
        **settings,
    ):
        model._check_fitted()
        self.model = model
        self.coef = model.coef_ if coef is None else np.asarray(coef, dtype=float)
        self.calc = model.as_calculator(self.coef)
        self.element = element
        self.settings = resolve_settings(settings)
        self.suite = suite_for(self.calc, element, hook=hook, **self.settings)
        self._memo: dict[Any, Any] = {}

    @property
    def fd_calc(self):
        """The calculator of the finite differences in structure: the model's LAMMPS twin where
        it is the same potential (:mod:`potforge.qoi.fast`), else :attr:`calc`."""
        return twin_of(self.calc)

    # --- rows at one structure ---------------------------------------------------------------
    def _rows(self, atoms: Atoms):
        return structure_design(self.model.terms_, atoms)

    def stress_rows(self, atoms: Atoms) -> np.ndarray:
        """∂σ/∂θ at fixed structure, shape (6, P), eV/Å³ per unit θ (ASE Voigt)."""
        return _stress_rows(self._rows(atoms))

    # --- the ground-state lattice ------------------------------------------------------------
    @property
    def modes(self) -> np.ndarray:
        """The lattice's independent strain modes (rows of Voigt strain directions)."""
        return _modes(self.suite.lattice)

    def lattice_strain_gradient(self) -> np.ndarray:
        """dε*/dθ of the ground-state lattice, shape (n_modes, P) (cubic: one isotropic mode).

        From ``M : σ(ε*(θ); θ) = 0``: ``dε*/dθ = −J⁻¹ M : ∂σ/∂θ`` with ``J = ∂(M : σ)/∂ε``
        by central differences of the model's stress at fixed θ.
        """
        if "deps" not in self._memo:
            atoms = self.suite.ground().atoms
            jac = _mode_stress(self._lattice_stress_derivative(atoms, np.eye(3)), self.modes)
            rhs = _mode_stress(self.stress_rows(atoms), self.modes)
            self._memo["deps"] = -np.linalg.solve(jac, rhs)
        return self._memo["deps"]

    def _strained_cell(self, reference: np.ndarray, deform: np.ndarray, mode_strain) -> np.ndarray:
        """Cell rows ``reference (I + Σ ε_m M_m) deform``: a lattice change below ``deform``."""
        lat = np.eye(3) + np.diag(np.tensordot(mode_strain, self.modes, axes=(0, 0)))
        return reference @ lat @ deform

    def _lattice_fd(self, atoms: Atoms, deform: np.ndarray, quantity: Callable) -> np.ndarray:
        """d quantity/dε_m at fixed θ and fractional coordinates, shape (len(q), n_modes), for
        ``atoms`` whose cell is ``ground cell @ deform``."""
        ground = self.suite.ground().atoms.cell.array
        return fd_jacobian(
            lambda strain: quantity(
                _with_cell(atoms, self._strained_cell(ground, deform, strain), self.fd_calc)
            ),
            np.zeros(len(self.modes)),
            LATTICE_STEP,
        )

    def _lattice_stress_derivative(self, atoms: Atoms, deform: np.ndarray) -> np.ndarray:
        """∂σ/∂ε_m (affine, fixed θ), shape (6, n_modes)."""
        return self._lattice_fd(atoms, deform, lambda a: a.get_stress())

    def energy_gradient(self, atoms: Atoms, cell_relaxed: bool = False) -> np.ndarray:
        """dE*/dθ (eV per unit θ, shape (P,)) of a relaxed structure built on the ground lattice.

        ``∂E/∂θ`` (the energy row) plus, unless the cell was relaxed too, the work
        ``V (M_m : σ) dε*_m/dθ`` of the lattice change; relaxed coordinates contribute nothing
        (envelope theorem).

        Parameters
        ----------
        atoms : ase.Atoms
            Relaxed structure (positions stationary, or constrained DOFs fixed).
        cell_relaxed : bool
            The cell was relaxed to zero stress too (ground state, competing phases).
        """
        d = self._rows(atoms)
        if cell_relaxed:
            return d.rows.energy
        work = -_mode_stress(d.rows.virial @ self.coef + d.fixed.virial, self.modes)  # V M:σ
        return d.rows.energy + work @ self.lattice_strain_gradient()

    # --- relaxed-ion response (non-Bravais cells only) ---------------------------------------
    def _ion_corrected(self, atoms: Atoms, dstress: np.ndarray, dforce: np.ndarray) -> np.ndarray:
        """``dstress + Λ H⁺ dforce``: stress derivatives (6, K) with the ions following the
        force derivatives ``dforce`` (3N, K); H (symmetrised) and Λ = ∂σ/∂X by central
        differences (:func:`~potforge.linalg.fd_hessian`, the stress beside the gradient −F,
        from the same displaced cells)."""
        n = len(atoms)
        work = atoms.copy()
        work.set_constraint()
        work.calc = self.fd_calc

        def gradient_and_stress(x: np.ndarray) -> np.ndarray:  # (3N + 6,): −F, then σ
            work.positions = x.reshape(n, 3)
            return np.concatenate([-work.get_forces().ravel(), work.get_stress()])

        both = fd_hessian(gradient_and_stress, atoms.positions.ravel(), ION_STEP, symmetrize=True)
        hess, lam = both[: 3 * n], both[3 * n :]
        return dstress + lam @ (np.linalg.pinv(hess, rcond=1e-8) @ dforce)

    def relaxed_stress_gradient(self, atoms: Atoms, deform: np.ndarray) -> np.ndarray:
        """dσ*/dθ (6, P) of a relaxed-ion cell ``ground cell @ deform``, lattice change included.

        The ions follow θ and the lattice through ``Λ H⁺ ∂F``; in Bravais lattices every atom is
        an inversion centre, the force rows vanish and no Hessian is computed.
        """
        d = self._rows(atoms)
        s_theta = _stress_rows(d)
        f_theta = d.rows.forces.reshape(-1, d.rows.forces.shape[-1])
        s_lat = self._lattice_stress_derivative(atoms, deform)
        if np.abs(f_theta).max() > FORCE_ROW_TOL * max(1.0, float(np.abs(s_theta).max())):
            f_lat = self._lattice_fd(atoms, deform, lambda a: a.get_forces().ravel())
            both = self._ion_corrected(
                atoms, np.hstack([s_theta, s_lat]), np.hstack([f_theta, f_lat])
            )
            s_theta, s_lat = both[:, : s_theta.shape[1]], both[:, s_theta.shape[1] :]
        return s_theta + s_lat @ self.lattice_strain_gradient()

    # --- per-QoI gradients -------------------------------------------------------------------
    def gradient(self, name: str) -> tuple[float, np.ndarray]:
        """Value (QoI unit) and dQ/dθ (QoI unit per unit θ, shape (P,)) of QoI ``name``."""
        qoi = get_qoi(name)
        if self.suite.lattice not in qoi.lattices:
            raise NotApplicableError(
                f"{name} is not defined for {self.element} {self.suite.lattice}"
            )
        value = compute_qoi(name, self.calc, self.element, suite=self.suite, **self.settings)
        kind = next(k for k in _GRADIENTS if name == k or name.startswith(k + "_"))
        grad = _GRADIENTS[kind](self, name)
        return value, np.asarray(grad, dtype=float)

    def gradients(self, names: Iterable[str], progress: bool | None = False) -> dict[str, dict]:
        """``{name: {"value", "unit", "gradient" (P,)}}`` for several QoIs (shared work);
        ``progress``: a bar (None: only on a terminal)."""
        out = {}
        for name in progress_bar(names, desc="sensitivities dQ/dθ", unit="QoI", progress=progress):
            value, grad = self.gradient(name)
            out[name] = {"value": value, "unit": get_qoi(name).unit, "gradient": grad}
        return out

    # bulk ----------------------------------------------------------------------------------
    def _bulk_energy_per_atom(self) -> np.ndarray:
        g = self.suite.ground()
        return self.energy_gradient(g.atoms, cell_relaxed=True) / len(g.atoms)

    def _a0(self, name: str) -> np.ndarray:
        a = self.suite.lattice_constant()
        return a * self.lattice_strain_gradient()[0]

    def _c_over_a(self, name: str) -> np.ndarray:
        deps = self.lattice_strain_gradient()
        return self.suite.ground().c_over_a * (deps[1] - deps[0])

    def _ecoh(self, name: str) -> np.ndarray:
        edge = max(20.0, 2.0 * self.model.cutoff + 2.0)
        free = [
            self._rows(Atoms(s, positions=[[edge / 2] * 3], cell=[edge] * 3, pbc=True)).rows.energy
            for s in species(self.element)
        ]  # the free atoms of every species, in the compound's proportions
        return np.mean(free, axis=0) - self._bulk_energy_per_atom()

    def _dhf(self, name: str) -> np.ndarray:
        """dΔH_f/dθ: the compound's ground state and its elements' reference states are all
        stationary (cells relaxed to zero stress; a dimer's bond relaxed in a fixed box), so
        each contributes its energy row per atom."""
        refs = self.settings["references"]
        self.suite.formation_energy(refs)
        rows = [
            self._rows(r.atoms).rows.energy / len(r.atoms)
            for r in (self.suite.reference(s, refs) for s in species(self.element))
        ]
        return self._bulk_energy_per_atom() - np.mean(rows, axis=0)

    def _bulk_modulus(self, name: str) -> np.ndarray:
        span = self.settings["ev_span"]
        vols, energies = self.suite.energy_volume(span)
        structures = self.suite.structures[("ev", span, len(vols))]
        n = len(structures[0])
        de = np.array([self.energy_gradient(a) / n for a in structures])  # (M, P)
        dv = vols[:, None] * 3.0 * self.lattice_strain_gradient()[0][None, :]
        jac_e, jac_v = _bm_jacobian(vols, energies)
        return EV_A3_TO_GPA * (jac_e @ de + jac_v @ dv)

    def _elastic(self, name: str) -> np.ndarray:
        """dC/dθ from the central differences of the relaxed stress derivatives: only the
        strained cells of the Voigt columns the constant needs (``± strain e_j``, memoised per
        cell, so C11, C12 and C44 together cost the 12 cells once)."""
        strain = self.settings["strain"]
        self.suite.elastic_tensor(strain)
        structures = self.suite.structures[("elastic", strain)]
        strains = strain_set(strain)  # ±strain·e_j: rows j and j + 6
        if self.suite.lattice in CUBIC_CONSTANTS:
            pairs = {
                "C11": [(0, 0), (1, 1), (2, 2)],
                "C12": [(0, 1), (0, 2), (1, 2)],
                "C44": [(3, 3), (4, 4), (5, 5)],
            }[name]
        else:
            pairs = [{"C11": (0, 0), "C12": (0, 1), "C44": (3, 3), "C13": (0, 2),
                      "C33": (2, 2)}[name]]  # fmt: skip

        def column(j: int) -> np.ndarray:  # dσ/dε_j, (6, P): central difference
            key = ("dsigma", strain, j)
            if key not in self._memo:
                plus, minus = (
                    self.relaxed_stress_gradient(
                        structures[m], np.eye(3) + voigt_strain_matrix(strains[m])
                    )
                    for m in (j, j + 6)
                )
                self._memo[key] = (plus - minus) / (strains[j, j] - strains[j + 6, j])
            return self._memo[key]

        # the symmetrised stiffness, as elastic_from_stress_strain: ½(dσ_i/dε_j + dσ_j/dε_i)
        dc = [0.5 * (column(j)[i] + column(i)[j]) for i, j in pairs]
        return EV_A3_TO_GPA * np.mean(dc, axis=0)

    # defects -------------------------------------------------------------------------------
    def _formation(self, key, n_ref) -> np.ndarray:
        (atoms,) = self.suite.structures[key]
        return self.energy_gradient(atoms) - n_ref(len(atoms)) * self._bulk_energy_per_atom()

    def _evac(self, name: str) -> np.ndarray:
        return self._formation(("vac", self.settings["vacancy_size"]), lambda n: n)

    def _esia(self, name: str) -> np.ndarray:
        kind = name.split("_", 1)[1]
        return self._formation(("sia", kind, self.settings["sia_size"]), lambda n: n)

    def _surface(self, name: str) -> np.ndarray:
        s = self.settings
        key = ("surf", name.rsplit("_", 1)[1], s["slab_thickness"], s["vacuum"])
        (atoms,) = self.suite.structures[key]
        area = float(np.linalg.norm(np.cross(atoms.cell[0], atoms.cell[1])))
        gamma = self.suite.surface_energy(key[1], key[2], key[3])
        de = self.energy_gradient(atoms) - len(atoms) * self._bulk_energy_per_atom()
        deps = self.lattice_strain_gradient()[0]
        return EV_A2_TO_J_M2 * (de / (2.0 * area) - gamma * 2.0 * deps)

    def _gsf(self, plane: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Shifts, energies (eV/Å²) and d(energies)/dθ (M, P) of a GSF curve."""
        s = self.settings
        key = ("gsf", plane, s["gsf_points"], s["gsf_thickness"])
        shifts, energies = self.suite.gsf_curve(plane, s["gsf_points"], s["gsf_thickness"])
        structures = self.suite.structures[key]
        area = float(np.linalg.norm(np.cross(structures[0].cell[0], structures[0].cell[1])))
        de = np.array([self.energy_gradient(a) for a in structures])
        deps = self.lattice_strain_gradient()[0]
        dy = (de - de[0]) / area - energies[:, None] * 2.0 * deps[None, :]
        return shifts, energies, dy

    def _usf(self, name: str) -> np.ndarray:
        shifts, energies, dy = self._gsf(name.rsplit("_", 1)[1])
        jx, jy = _explicit_jacobian(unstable_fault_energy, shifts, energies)
        dx = shifts[:, None] * self.lattice_strain_gradient()[0][None, :]
        return EV_A2_TO_J_M2 * (jy @ dy + jx @ dx)

    def _isf(self, name: str) -> np.ndarray:
        return EV_A2_TO_J_M2 * self._gsf("111")[2][-1]

    def _phase(self, name: str) -> np.ndarray:
        phase = name.split("_", 1)[1]
        state = self.suite.phase(phase)
        return (
            self.energy_gradient(state.atoms, cell_relaxed=True) / len(state.atoms)
            - self._bulk_energy_per_atom()
        )

    def _phonon(self, name: str) -> np.ndarray:
        return _phonon_gradient(self, name.split("_", 1)[1])

    # ideal strength ------------------------------------------------------------------------
    def _tau_ideal(self, name: str) -> np.ndarray:
        """dτ*/dθ of the relaxed ideal shear strength (:mod:`potforge.properties.shear`).

        At the maximum ``dτ/dγ = 0`` along the relaxed path, so γ* moving with θ adds nothing;
        the five relaxed strains obey ``σ⊥(γ*, ε⊥; θ) = 0``, so ``dε⊥/dθ = −(∂σ⊥/∂ε⊥)⁻¹
        ∂σ⊥/∂θ`` and ``dτ*/dθ = ∂τ/∂θ + (∂τ/∂ε⊥) dε⊥/dθ``: the stress rows of the relaxed cell
        at the maximum and its strain stiffness (central differences at fixed θ).  The ground-
        state lattice adds nothing: a uniform scaling ``1 + e`` of the reference maps the path
        onto itself with ``γ → (1 + e) γ``, which leaves the maximum unchanged.
        """
        s = self.settings
        plane = name.rsplit("_", 1)[1]
        result = self.suite.ideal_shear(plane, s["shear_step"], s["shear_max"])
        (atoms,) = self.suite.structures[("shear", plane, s["shear_step"], s["shear_max"])]
        rows = self.stress_rows(atoms)  # ∂σ/∂θ (6, P), slip frame
        jac = strain_stiffness(self.fd_calc, result.reference, result.point.strain)
        o = list(OTHER)
        deps = -np.linalg.solve(jac[np.ix_(o, o)], rows[o])  # dε⊥/dθ (5, P)
        return EV_A3_TO_GPA * (rows[SHEAR] + jac[SHEAR, o] @ deps)


def _explicit_jacobian(func: Callable, x: np.ndarray, y: np.ndarray, rel: float = 1e-7):
    """Central-difference Jacobians of a cheap explicit ``func(x, y) -> float`` w.r.t. x and y
    (steps ``rel`` × the largest |entry| of each)."""
    x, y = np.array(x, dtype=float), np.array(y, dtype=float)

    def step(v: np.ndarray) -> float:
        return rel * max(1e-12, float(np.abs(v).max()))

    return (
        fd_jacobian(lambda v: func(v, y), x, step(x)),
        fd_jacobian(lambda v: func(x, v), y, step(y)),
    )


def _bm_jacobian(vols: np.ndarray, energies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """∂B/∂E_i and ∂B/∂V_i of the Birch–Murnaghan least-squares fit, each shape (M,).

    Implicit differentiation of the stationarity ``G(p; V, E) = Σ r_i ∂BM_i/∂p = 0``;
    ``∂BM/∂p`` by complex step (exact), ``∂G/∂(p, V, E)`` by central differences of ``G``.
    """
    p0 = np.array(fit_birch_murnaghan(vols, energies))

    def grad_p(p: np.ndarray, v: np.ndarray) -> np.ndarray:
        h = 1e-30
        return np.stack(
            [birch_murnaghan(v, *(p + 1j * h * np.eye(4)[k])).imag / h for k in range(4)]
        )  # (4, M)

    def stationarity(p: np.ndarray, v: np.ndarray, e: np.ndarray) -> np.ndarray:
        return grad_p(p, v) @ (birch_murnaghan(v, *p) - e)

    # polish p0 to the exact stationary point (Newton on G, the gradient of ½|r|² in p)
    def dG_dp(p):
        return fd_hessian(
            lambda q: stationarity(q, vols, energies), p, 1e-6 * np.maximum(np.abs(p), 1e-3)
        )

    for _ in range(3):
        p0 = p0 - np.linalg.solve(dG_dp(p0), stationarity(p0, vols, energies))
    hess = dG_dp(p0)
    jac_e = -grad_p(p0, vols)  # ∂G/∂E_i = −∂BM_i/∂p
    jac_v = fd_jacobian(lambda v: stationarity(p0, v, energies), vols, 1e-6 * vols)
    dp_de = -np.linalg.solve(hess, jac_e)
    dp_dv = -np.linalg.solve(hess, jac_v)
    return dp_de[2], dp_dv[2]


def _phonon_gradient(sens: Sensitivity, point: str) -> np.ndarray:
    """dν/dθ (THz per unit θ) of the highest frequency at a named point.

    Force constants are linear in the forces of the displaced supercells, which are linear in θ
    at fixed structure: ``dλ/dθ_p = e†D(Φ(f_p))e`` over the (degenerate) top eigenspace, and
    ``dν = ν dλ / (2λ)``.  The lattice-constant dependence is a central difference of ν at
    fixed θ, times ``a0 dε*/dθ``.
    """
    from potforge.properties.phonons import SPECIAL_POINTS, compute_phonons
    from potforge.properties.structures import bulk_phase

    s = sens.settings
    suite = sens.suite
    result = suite.phonons(s["phonon_supercell"], s["check_stability"])
    ph = result.phonon
    q_cart = np.asarray(SPECIAL_POINTS[result.lattice][point], dtype=float)
    q = np.asarray(ph.primitive.cell) @ (q_cart / result.conventional_a)
    dyn = ph.get_dynamical_matrix_at_q(q)
    lam, vec = np.linalg.eigh(dyn)
    nu = result.at(point)[-1]
    top = np.abs(lam - lam[-1]) <= 1e-6 * abs(lam[-1])
    proj = vec[:, top]

    def rows(sc) -> np.ndarray:
        atoms = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        return sens._rows(atoms).rows.forces  # (N, 3, P)

    f0 = rows(ph.supercell)
    fd = [rows(sc) - f0 for sc in ph.supercells_with_displacements]
    saved_forces, saved_fc = ph.forces, ph.force_constants
    p = f0.shape[-1]
    dlam = np.empty(p)
    try:
        for k in range(p):
            ph.forces = np.array([f[..., k] for f in fd])
            ph.produce_force_constants()
            dk = ph.get_dynamical_matrix_at_q(q)
            dlam[k] = np.real(np.trace(proj.conj().T @ dk @ proj)) / proj.shape[1]
    finally:
        ph.forces = saved_forces
        ph.force_constants = saved_fc
    dnu_theta = nu * dlam / (2.0 * lam[-1])

    g = suite.ground()
    h = LATTICE_STEP * 10

    def nu_at(scale: float) -> float:
        cell = bulk_phase(sens.element, suite.lattice, g.a * scale, cubic=True)
        res = compute_phonons(
            sens.fd_calc,
            cell,
            supercell=s["phonon_supercell"],
            lattice=suite.lattice,
            conventional_a=g.a * scale,
            check_stability=False,
        )
        return float(res.at(point)[-1])

    dnu_deps = (nu_at(1 + h) - nu_at(1 - h)) / (2 * h)
    return dnu_theta + dnu_deps * sens.lattice_strain_gradient()[0]


_GRADIENTS: dict[str, Callable[[Sensitivity, str], np.ndarray]] = {
    "a0": Sensitivity._a0,
    "c_over_a": Sensitivity._c_over_a,
    "Ecoh": Sensitivity._ecoh,
    "dHf": Sensitivity._dhf,
    "B": Sensitivity._bulk_modulus,
    "C11": Sensitivity._elastic,
    "C12": Sensitivity._elastic,
    "C13": Sensitivity._elastic,
    "C33": Sensitivity._elastic,
    "C44": Sensitivity._elastic,
    "Evac": Sensitivity._evac,
    "Esia": Sensitivity._esia,
    "gamma_surf": Sensitivity._surface,
    "usf": Sensitivity._usf,
    "isf": Sensitivity._isf,
    "nu": Sensitivity._phonon,
    "dE": Sensitivity._phase,
    "tau_ideal": Sensitivity._tau_ideal,
}
"""QoI name (or ``prefix_``) → gradient method."""
