"""Physics of every term and of a sum of terms: real LAMMPS, random parameters, random cells."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from potforge.engines.lammps import new_lammps, static_point
from potforge.model import LinearPotential

SPECS = {
    "snap": "snap(twojmax=4,rcutfac=4.2)+const",
    "qsnap": "snap(twojmax=2,rcutfac=4.2,quadratic=True)+const",
    "pair": "pair(n_basis=9,rcut=4.8)+const",
    "embed": "embed(n_basis=6,rcut=4.6,rho_max=3.0)+const",
    "all": "snap(twojmax=4,rcutfac=4.2)+pair(n_basis=8,rcut=4.8)+embed(n_basis=6,rcut=4.6,"
    "rho_max=3.0)+zbl(inner=2.0,outer=2.6)+const",
}


def random_model(spec: str, elements=("Mo",), seed: int = 0) -> LinearPotential:
    m = LinearPotential(spec, elements=list(elements)).setup()
    rng = np.random.default_rng(seed)
    m.coef_ = rng.normal(size=m.n_params) * 0.05
    return m


def distorted(seed: int, n: int = 2, symbols: str = "Mo"):
    rng = np.random.default_rng(seed)
    a = bulk(symbols, "bcc", a=3.15, cubic=True).repeat(n)
    a.set_cell(a.cell @ (np.eye(3) + 0.04 * rng.normal(size=(3, 3))), scale_atoms=True)
    a.rattle(0.12, seed=seed)
    return a


def energy(model, atoms):
    return float(model.predict([atoms])[0]["energy"])


@pytest.mark.parametrize("name", list(SPECS))
def test_forces_are_minus_gradient(name):
    model = random_model(SPECS[name])
    atoms = distorted(1)
    f = model.predict([atoms])[0]["forces"]
    h = 1e-5
    for i, ax in [(0, 0), (3, 1), (7, 2)]:
        p, m = atoms.copy(), atoms.copy()
        p.positions[i, ax] += h
        m.positions[i, ax] -= h
        fd = -(energy(model, p) - energy(model, m)) / (2 * h)
        assert fd == pytest.approx(f[i, ax], rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("name", list(SPECS))
def test_stress_is_strain_derivative(name):
    model = random_model(SPECS[name])
    atoms = distorted(2)
    s = model.predict([atoms])[0]["stress"]
    h = 1e-6
    voigt = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
    for k in (0, 2, 3, 5):
        i, j = voigt[k]
        eps = np.zeros((3, 3))
        eps[i, j] = eps[j, i] = h if i == j else h / 2
        vals = []
        for sign in (1, -1):
            b = atoms.copy()
            b.set_cell(b.cell @ (np.eye(3) + sign * eps), scale_atoms=True)
            vals.append(energy(model, b))
        fd = (vals[0] - vals[1]) / (2 * h) / atoms.get_volume()
        assert fd == pytest.approx(s[k], rel=1e-4, abs=1e-8)


def test_invariances():
    model = random_model(SPECS["all"])
    atoms = distorted(3)
    ref = model.predict([atoms])[0]
    rot = atoms.copy()
    rot.rotate(37, (1, 2, 3), rotate_cell=True)
    perm = atoms[np.random.default_rng(0).permutation(len(atoms))]
    shifted = atoms.copy()
    shifted.translate([0.3, -1.1, 2.0])
    out = model.predict([rot, perm, shifted])
    R = np.linalg.solve(atoms.cell.array, rot.cell.array)  # cell_rot = cell @ R
    assert out[0]["energy"] == pytest.approx(ref["energy"], rel=1e-10)
    np.testing.assert_allclose(out[0]["forces"], ref["forces"] @ R, atol=1e-9)
    assert out[1]["energy"] == pytest.approx(ref["energy"], rel=1e-10)
    order = np.random.default_rng(0).permutation(len(atoms))
    np.testing.assert_allclose(out[1]["forces"], ref["forces"][order], atol=1e-9)
    assert out[2]["energy"] == pytest.approx(ref["energy"], rel=1e-10)
    np.testing.assert_allclose(out[2]["forces"], ref["forces"], atol=1e-9)
    np.testing.assert_allclose(out[2]["stress"], ref["stress"], atol=1e-12)


def test_small_cell_equals_supercell():
    """Cutoffs far beyond half the 2-atom cell are handled through periodic images."""
    model = random_model(SPECS["all"])
    small = distorted(4, n=1)
    big = small.repeat((3, 2, 2))
    p_small, p_big = model.predict([small, big])
    assert p_big["energy"] / len(big) == pytest.approx(p_small["energy"] / len(small), rel=1e-9)
    np.testing.assert_allclose(p_big["stress"], p_small["stress"], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", list(SPECS))
def test_ase_path_equals_lammps_export(name, tmp_path):
    model = random_model(SPECS[name], elements=("Mo", "W"), seed=5)
    lines = [
        ln for ln in model.to_lammps(tmp_path).read_text().splitlines() if not ln.startswith("#")
    ]
    lmp = new_lammps()
    for seed in range(3):
        atoms = distorted(10 + seed)
        atoms.symbols[::3] = "W"
        pred = model.predict([atoms])[0]
        e, f, w = static_point(lmp, atoms, model.elements_, lines, workdir=tmp_path)
        s = -w / atoms.get_volume()
        assert abs(e - pred["energy"]) <= 1e-8 * abs(pred["energy"])
        assert np.abs(f - pred["forces"]).max() <= 1e-8 * np.abs(pred["forces"]).max()
        assert np.abs(s - pred["stress"]).max() <= 1e-8 * np.abs(pred["stress"]).max()


def test_sum_of_terms_concatenates_columns():
    atoms = distorted(6)
    full = LinearPotential(SPECS["all"], elements=["Mo"]).setup()
    d_full = full.structure_designs([atoms])[0]
    start = 0
    for t in full.linear_terms:
        alone = LinearPotential([type(t)(**t.get_params())], elements=["Mo"]).setup()
        d = alone.structure_designs([atoms])[0]
        cols = slice(start, start + t.n_params)
        np.testing.assert_array_equal(d_full.rows.energy[cols], d.rows.energy)
        np.testing.assert_allclose(d_full.rows.forces[..., cols], d.rows.forces, atol=1e-13)
        np.testing.assert_allclose(d_full.rows.virial[..., cols], d.rows.virial, atol=1e-12)
        start += t.n_params
    assert start == full.n_params
