"""Per-atom descriptors and the whitened descriptor space of the generator (real LAMMPS)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from scipy.spatial.distance import cdist

from potforge.errors import DataError
from potforge.generate.descriptors import (
    MAX_GRADIENT_ATOMS,
    DescriptorSpace,
    QuestsDescriptor,
    SnapDescriptor,
    descriptor_from_dict,
    descriptor_matrix,
    snap_descriptors,
)
from potforge.generate.entropy import silverman_bandwidth
from potforge.terms.snap import SNAP


def _triclinic_wmo(seed: int = 3) -> Atoms:
    """8 atoms of bcc W/Mo in a sheared cell (a non-trivial rotation into LAMMPS' frame)."""
    atoms = bulk("W", "bcc", a=3.16, cubic=True).repeat((2, 2, 1))
    cell = atoms.cell.array @ np.array([[1.0, 0.08, -0.05], [0.0, 0.97, 0.1], [0.06, 0.0, 1.04]])
    atoms.set_cell(cell, scale_atoms=True)
    atoms.rattle(0.12, seed=seed)
    symbols = atoms.get_chemical_symbols()
    symbols[1] = symbols[4] = "Mo"
    atoms.set_chemical_symbols(symbols)
    return atoms


def test_per_atom_sum_is_the_snap_term_energy_row():
    atoms = _triclinic_wmo()
    radii, wj = {"Mo": 0.48, "W": 0.5}, {"Mo": 0.9, "W": 1.0}
    term = SNAP(twojmax=4, rcutfac=4.6, radii=radii, wj=wj)
    term.setup(["Mo", "W"])
    row = term.rows(atoms).energy
    b = snap_descriptors(atoms, elements=["Mo", "W"], twojmax=4, radii=radii, wj=wj)
    assert b.shape == (8, term.n_params)
    np.testing.assert_allclose(b.sum(axis=0), row, rtol=1e-12, atol=1e-10)
    # each atom's values sit in its own element's block only
    nb = term.n_per_element
    mo = np.array(atoms.get_chemical_symbols()) == "Mo"
    assert np.all(b[mo, nb:] == 0) and np.all(b[~mo, :nb] == 0)
    assert np.all(np.abs(b[mo, :nb]).sum(axis=1) > 0)
    # the gradient path (dgradflag 1, blocks placed by potforge) gives the same B
    b2, _ = snap_descriptors(
        atoms, elements=["Mo", "W"], twojmax=4, radii=radii, wj=wj, gradient=True
    )
    np.testing.assert_allclose(b2, b, rtol=1e-12, atol=1e-12)


def test_descriptor_gradient_matches_central_differences():
    atoms = _triclinic_wmo(seed=5)
    desc = SnapDescriptor(("Mo", "W"), twojmax=2, wj={"Mo": 0.8})
    b, db = desc.compute_gradient(atoms)
    n, d = b.shape
    assert db.shape == (n, d, n, 3)
    step = 1e-5
    fd = np.zeros_like(db)
    for j in range(n):
        for a in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[j, a] += step
            minus.positions[j, a] -= step
            fd[:, :, j, a] = (desc.compute(plus) - desc.compute(minus)) / (2 * step)
    scale = np.abs(fd).max()
    assert scale > 1.0  # the derivatives are not trivially zero
    assert np.abs(db - fd).max() < 1e-6 * scale


def test_strain_gradient_matches_central_differences():
    # two elements with their own radii and weights, a sheared cell of 8 atoms: each atom
    # sees several periodic images of the others, which per-pair dgradflag rows cannot resolve
    atoms = _triclinic_wmo(seed=7)
    desc = SnapDescriptor(("Mo", "W"), twojmax=4, radii={"Mo": 0.46}, wj={"Mo": 0.8})
    b, db, ds = desc.compute_strain_gradient(atoms)
    b0, db0 = desc.compute_gradient(atoms)
    np.testing.assert_allclose(b, b0, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, db0, rtol=1e-10, atol=1e-10)
    n, d = b.shape
    assert ds.shape == (n, d, 3, 3)
    np.testing.assert_allclose(ds, ds.transpose(0, 1, 3, 2), atol=1e-10)  # rotation invariant
    step = 1e-6
    for e in (np.random.default_rng(0).normal(size=(3, 3)), np.eye(3)[[0, 2, 1]]):

        def deformed(t: float, e: np.ndarray = e) -> np.ndarray:
            a = atoms.copy()
            a.set_cell(atoms.cell.array @ (np.eye(3) + t * e), scale_atoms=True)
            return desc.compute(a)

        fd = (deformed(step) - deformed(-step)) / (2 * step)
        analytic = np.einsum("ikab,ab->ik", ds, e)
        scale = np.abs(fd).max()
        assert scale > 1.0
        assert np.abs(analytic - fd).max() < 1e-6 * scale
    with pytest.raises(DataError, match="limited to"):
        SnapDescriptor(("W",), twojmax=2).compute_strain_gradient(
            bulk("W", "bcc", a=3.16, cubic=True).repeat((6, 6, 4))
        )


def test_space_whitens_drops_constant_columns_and_round_trips(tmp_path):
    desc = SnapDescriptor(("Mo", "W"), twojmax=2)
    pure_w = [bulk("W", "bcc", a=3.16, cubic=True).repeat((2, 1, 1)) for _ in range(3)]
    for s, a in enumerate(pure_w):
        a.rattle(0.15, seed=s)
    ref = descriptor_matrix(pure_w, desc)
    assert ref.shape == (12, 10)
    space = DescriptorSpace.fit(ref, desc, floor=0.0)
    # no Mo atom: the Mo block has zero variance and is dropped
    assert space.dimension == 5 and space.keep.tolist() == [5, 6, 7, 8, 9]
    z = space.transform_descriptors(ref)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(np.cov(z, rowvar=False, bias=True), np.eye(5), atol=1e-6)
    assert space.bandwidth == silverman_bandwidth(12, 5)
    nearest = DescriptorSpace.fit(ref, desc, floor=0.0, bandwidth="nearest")
    dist = cdist(z, z) + np.diag(np.full(12, np.inf))
    assert nearest.bandwidth == pytest.approx(np.median(dist.min(axis=1)), rel=1e-9)
    with pytest.raises(DataError, match="'silverman' or 'nearest', got 'scott'"):
        DescriptorSpace.fit(ref, desc, bandwidth="scott")
    path = tmp_path / "space.json"
    path.write_text(json.dumps(space.to_dict()))
    again = DescriptorSpace.from_dict(json.loads(path.read_text()))
    assert again.descriptor == desc and again.bandwidth == space.bandwidth
    np.testing.assert_array_equal(again.transform_descriptors(ref), z)
    # the gradient maps linearly: the whitened gradient is the gradient of the whitened values
    _, db = desc.compute_gradient(pure_w[0])
    dz = space.transform_gradient(db)
    np.testing.assert_allclose(dz, np.einsum("ikja,kl->ilja", db[:, space.keep], space.transform))
    g = np.ones((4, 5))
    assert np.allclose(space.pull_back(g)[:, :5], 0)


def test_space_of_identical_environments_is_refused():
    desc = SnapDescriptor(("W",), twojmax=2)
    perfect = bulk("W", "bcc", a=3.16, cubic=True).repeat((2, 1, 1))
    ref = desc.compute(perfect)
    with pytest.raises(DataError, match="every descriptor component has zero variance"):
        DescriptorSpace.fit(ref, desc)
    with pytest.raises(DataError, match="at least 2 environments"):
        DescriptorSpace.fit(ref[:1], desc)
    with pytest.raises(DataError, match=r"shape \(M, 5\)"):
        DescriptorSpace.fit(np.zeros((4, 7)), desc)


def test_bad_descriptor_settings_are_one_sentence():
    with pytest.raises(DataError, match="'Xx', which is not a chemical symbol"):
        SnapDescriptor(("W", "Xx"))
    with pytest.raises(DataError, match="twojmax must be an integer"):
        SnapDescriptor(("W",), twojmax=-2)
    with pytest.raises(DataError, match="radii has a value for 'Mo'"):
        SnapDescriptor(("W",), radii={"Mo": 0.5})
    atoms = bulk("Mo", "bcc", a=3.15, cubic=True)
    with pytest.raises(DataError, match="contains element"):
        SnapDescriptor(("W",)).compute(atoms)
    big = bulk("W", "bcc", a=3.16, cubic=True).repeat((5, 5, 6))
    assert len(big) > MAX_GRADIENT_ATOMS
    with pytest.raises(DataError, match="limited to 256 atoms, got a structure of 300"):
        SnapDescriptor(("W",), twojmax=2).compute_gradient(big)
    with pytest.raises(DataError, match="kind must be 'snap' or 'quests'"):
        descriptor_from_dict({"kind": "soap"})


def test_quests_option_has_no_gradient():
    atoms = bulk("W", "bcc", a=3.16, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=1)
    desc = QuestsDescriptor(k=8, cutoff=5.0)
    x = desc.compute(atoms)
    assert x.shape == (4, 15) and np.all(np.isfinite(x)) and x.std(axis=0).max() > 0
    assert descriptor_from_dict(desc.to_dict()) == desc
    with pytest.raises(DataError, match="QUESTS descriptor has no position gradient"):
        desc.compute_gradient(atoms)
