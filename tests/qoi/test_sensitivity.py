"""dQ/dθ of linear potentials against central finite differences in θ (real LAMMPS descriptors).

Each model is fitted to structures labelled by a real calculator; the analytic gradient along a
random direction v is compared with ``(Q(θ+hv) − Q(θ−hv)) / 2h`` where every Q is recomputed
from scratch (relaxations included) by the property suite.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from potforge.data.builders import w_structures
from potforge.errors import NotFittedError
from potforge.model import LinearPotential
from potforge.oracles import make_oracle
from potforge.oracles.labelling import label_in_process
from potforge.properties import NotApplicableError, compute_qoi
from potforge.qoi.sensitivity import Sensitivity

TOL = 1e-4
COARSE = {"B": 1e-3}
"""QoIs needing a larger step: B is fitted on a volume grid tied to the relaxed v0, whose
relaxation noise (~1e-9) moves B by ~1e-8 relative, too much for a 1e-4 relative step."""
W_SETTINGS = dict(
    fmax=1e-7,
    steps=3000,
    vacancy_size=2,
    sia_size=2,
    slab_thickness=8.0,
    gsf_points=5,
    gsf_thickness=12.0,
    phonon_supercell=3,
)
W_QOIS = [
    "a0",
    "Ecoh",
    "B",
    "C11",
    "C12",
    "C44",
    "Evac",
    "Esia_111",
    "gamma_surf_110",
    "usf_112",
    "nu_H",
    "dE_fcc",
]


@pytest.fixture(scope="module")
def w_data():
    return label_in_process(w_structures(), make_oracle("lammps:W_2940_2017_2.snap").build())


def fd_check(model, element, qois, settings, seed=0):
    """Relative errors of analytic directional derivatives against central differences."""
    sens = Sensitivity(model, element, **settings)
    grads = {q: sens.gradient(q) for q in qois}
    rng = np.random.default_rng(seed)
    theta = model.coef_
    v = rng.normal(size=len(theta)) * (np.abs(theta) + 1e-3 * np.abs(theta).max())
    a0, da0 = grads["a0"][0], grads["a0"][1] @ v
    errors = {}
    for q, (value, grad) in grads.items():
        d = grad @ v
        # steps that change Q by ~1e-4 relative and the lattice by ≤ 1e-5 (curvature)
        h = min(1e-4 * abs(value) / abs(d), 1e-5 * a0 / abs(da0))
        if q in COARSE:
            h = COARSE[q] * abs(value) / abs(d)
        plus, minus = (
            compute_qoi(q, model.as_calculator(theta + s * h * v), element, **settings)
            for s in (1.0, -1.0)
        )
        fd = (plus - minus) / (2 * h)
        errors[q] = abs(d - fd) / abs(fd)
    return errors


def test_snap_gradients_match_finite_differences(w_data):
    model = LinearPotential("snap(twojmax=4,rcutfac=4.7)+zbl(inner=1.0,outer=1.6)+const")
    errors = fd_check(model.fit(w_data), "W", W_QOIS, W_SETTINGS)
    assert max(errors.values()) < TOL, errors


def test_pair_embedding_gradients_match_finite_differences(w_data):
    model = LinearPotential("pair(n_basis=10,rcut=5.5)+embed(n_basis=6,rcut=5.5)+const")
    errors = fd_check(model.fit(w_data), "W", W_QOIS, W_SETTINGS, seed=1)
    assert max(errors.values()) < TOL, errors


def test_hcp_lattice_and_relaxed_ion_elastic_constants():
    """hcp: two lattice modes (a, c) and internal relaxations under strain (the Hessian path)."""
    rng = np.random.default_rng(0)
    structures = []
    for lattice, kw in (("hcp", dict(a=2.55, c=4.16)), ("fcc", dict(a=3.6, cubic=True))):
        base = bulk("Cu", lattice, **kw).repeat((3, 3, 2) if lattice == "hcp" else 2)
        for k in range(8):
            a = base.copy()
            eps = rng.uniform(-0.03, 0.03, (3, 3))
            a.set_cell(a.cell @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
            a.rattle(0.05, seed=k)
            structures.append(a)
    model = LinearPotential("pair(n_basis=8,rcut=5.0)+embed(n_basis=6,rcut=5.0)+const")
    model.fit(label_in_process(structures, EMT()))
    settings = dict(structure="hcp", fmax=1e-7, steps=3000, vacancy_size=2)
    errors = fd_check(model, "Cu", ["a0", "c_over_a", "C13", "C33", "C44", "Evac"], settings)
    assert max(errors.values()) < TOL, errors


def test_fd_hessian_is_the_central_difference_of_the_gradient():
    """The one finite-difference Hessian (potforge.linalg) that the sensitivities and the
    implicit Newton steps share: central differences, per-entry steps, columns left out (zero,
    no call), further quantities differentiated beside the gradient, optional symmetrisation."""
    from potforge.linalg import fd_hessian, fd_jacobian

    a = np.array([[2.0, 0.3, 0.0], [0.3, 1.0, -0.2], [0.0, -0.2, 3.0]])
    x0 = np.array([0.1, -0.4, 0.7])
    calls = []

    def gradient(x):  # E = ½ xᵀAx + Σ x⁴/4 (so H = A + diag 3x²), then q = sin(x)
        calls.append(x.copy())
        return np.concatenate([a @ x + x**3, np.sin(x)])

    h = np.array([1e-4, 2e-4, 1e-4])
    both = fd_hessian(gradient, x0, h, symmetrize=True)
    assert both.shape == (6, 3) and len(calls) == 6
    np.testing.assert_allclose(both[:3], a + np.diag(3 * x0**2), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(both[3:], np.diag(np.cos(x0)), rtol=1e-7, atol=1e-9)
    assert np.array_equal(both[:3], both[:3].T)
    k = 1  # column k is exactly (g(x0 + h e_k) − g(x0 − h e_k)) / 2h, + side first
    assert np.array_equal(calls[2], x0 + h[k] * np.eye(3)[k])
    plus, minus = gradient(calls[2]), gradient(calls[3])
    raw = fd_hessian(gradient, x0, h)
    assert np.array_equal(raw[:, k], (plus - minus) / (2 * h[k]))
    calls.clear()
    part = fd_hessian(gradient, x0, 1e-4, columns=[2])
    assert len(calls) == 2 and not part[:, :2].any() and part[2, 2] > 0
    assert fd_jacobian(lambda x: float(x @ x), x0, 1e-5).shape == (3,)
    with pytest.raises(ValueError, match="at least 3 entries"):
        fd_hessian(lambda x: x[:2], x0, 1e-4)


def test_gradient_errors(w_data):
    model = LinearPotential("pair(n_basis=6,rcut=5.0)+const")
    with pytest.raises(NotFittedError):
        Sensitivity(model, "W")
    model.fit(w_data)
    with pytest.raises(NotApplicableError, match="c_over_a"):
        Sensitivity(model, "W").gradient("c_over_a")


def test_gradient_after_the_suite_cache_moved_on(w_data):
    """A Sensitivity owns its suite: many other suites made in between (they once evicted it
    from the registry's former 8-suite cache) leave its value and gradient unchanged."""
    from potforge.properties.registry import suite_for

    model = LinearPotential("pair(n_basis=6,rcut=5.0)+const").fit(w_data)
    fresh = Sensitivity(model, "W", vacancy_size=2).gradient("Evac")
    sens = Sensitivity(model, "W", vacancy_size=2)
    sens.gradient("a0")
    for _ in range(9):
        suite_for(model.as_calculator(), "W")
    late = sens.gradient("Evac")  # its first structures are made after the other suites
    assert late[0] == pytest.approx(fresh[0], rel=1e-6)
    np.testing.assert_allclose(late[1], fresh[1], rtol=1e-5, atol=1e-12)


def test_lammps_twin_stands_in_only_where_it_is_the_same_potential(w_data):
    """The finite differences of the sensitivities (and the Newton steps of property UQ) call
    the model's own LAMMPS pair style where it is the same function — SNAP + ZBL + constant,
    checked here at other parameters, the ZBL range included — and the model itself for
    tabulated terms (pair and embedding splines)."""
    from ase.build import bulk as build

    from potforge.engines.lammps import LammpsCalculator
    from potforge.model import PotentialCalculator
    from potforge.qoi.fast import fast_calculator

    snap = LinearPotential("snap(twojmax=4,rcutfac=4.7)+zbl(inner=1.0,outer=1.6)+const")
    snap.fit(w_data)
    coef = snap.coef_ * (1.0 + 0.01 * np.random.default_rng(0).normal(size=snap.n_params))
    twin = fast_calculator(snap, coef)
    assert isinstance(twin, LammpsCalculator)
    atoms = build("W", "bcc", a=3.17, cubic=True).repeat(2)
    atoms.rattle(0.1, seed=3)
    atoms.positions[3] = atoms.positions[2] + [1.2, 0.3, 0.2]  # inside ZBL's switching range
    results = []
    for calc in (snap.as_calculator(coef), twin):
        atoms.calc = calc
        results.append((atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()))
    (e0, f0, s0), (e1, f1, s1) = results
    assert abs(e1 - e0) < 1e-10 * abs(e0)
    assert np.abs(f1 - f0).max() < 1e-10 * np.abs(f0).max() and np.abs(f0).max() > 10
    assert np.abs(s1 - s0).max() < 1e-10 * np.abs(s0).max()
    pair = LinearPotential("pair(n_basis=6,rcut=5.0)+embed(n_basis=4,rcut=5.0)+const")
    assert isinstance(fast_calculator(pair.fit(w_data)), PotentialCalculator)


def test_ideal_shear_strength_gradient_matches_finite_differences(w_data):
    """dτ*/dθ of the relaxed ideal shear strength ⟨111⟩{110}: stress rows of the cell at the
    maximum and implicit differentiation of the five relaxed strains (no γ* term, no
    ground-state lattice term), against central differences in θ that recompute everything —
    along a random direction and along the largest components."""
    model = LinearPotential("snap(twojmax=4,rcutfac=4.7)+zbl(inner=1.0,outer=1.6)+const")
    model.fit(w_data)
    settings = dict(fmax=1e-7, steps=3000)
    errors = fd_check(model, "W", ["a0", "tau_ideal_110"], settings, seed=2)
    assert errors["tau_ideal_110"] < TOL, errors
    value, grad = Sensitivity(model, "W", **settings).gradient("tau_ideal_110")
    theta = model.coef_
    for k in np.argsort(-np.abs(grad * theta))[:2]:
        h = 1e-4 * abs(value) / abs(grad[k])
        step = h * np.eye(len(theta))[k]
        plus, minus = (
            compute_qoi("tau_ideal_110", model.as_calculator(theta + s * step), "W", **settings)
            for s in (1.0, -1.0)
        )
        assert grad[k] == pytest.approx((plus - minus) / (2 * h), rel=TOL), k
