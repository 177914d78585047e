"""Entropy-maximising generator: objective gradient, floor, entropy gain, determinism, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list

from potforge.errors import DataError
from potforge.generate.descriptors import (
    DescriptorSpace,
    QuestsDescriptor,
    SnapDescriptor,
    descriptor_matrix,
)
from potforge.generate.entropy import entropy
from potforge.generate.generator import (
    EntropyObjective,
    GeneratorSettings,
    _deformation,
    _deformation_derivative,
    generate_batch,
    generate_configuration,
    generation_space,
    random_start,
)

DESC = SnapDescriptor(("W",), twojmax=4)


def _rattled_w(seed: int, amplitude: float = 0.12, shear: float = 0.04) -> Atoms:
    atoms = bulk("W", "bcc", a=3.16, cubic=True).repeat((2, 2, 2))  # 16 atoms
    cell = atoms.cell.array @ (np.eye(3) + shear * np.array([[0, 1, 0], [0, 0, -1], [1, 0, 0]]))
    atoms.set_cell(cell, scale_atoms=True)
    atoms.rattle(amplitude, seed=seed)
    return atoms


EXISTING = [_rattled_w(10, 0.15), _rattled_w(11, 0.3)]


def _settings(**kw) -> GeneratorSettings:
    base = dict(
        elements=("W",), volume_per_atom=(14.0, 18.0), r_min=2.1, n_atoms=(8, 12), max_iter=12
    )
    base.update(kw)
    return GeneratorSettings(**base)


@pytest.fixture(scope="module")
def space() -> DescriptorSpace:
    # whitened on the existing data and on random starts; kernels as wide as the median
    # nearest-neighbour distance (Silverman's h ≈ 0.7 barely overlaps in 14 dimensions)
    return generation_space(DESC, _settings(), structures=EXISTING, n_starts=4, bandwidth="nearest")


@pytest.fixture(scope="module")
def existing(space: DescriptorSpace) -> np.ndarray:
    return space.environments(EXISTING)


def _central(objective: EntropyObjective, atoms: Atoms, step: float = 1e-5) -> np.ndarray:
    fd = np.zeros((len(atoms), 3))
    for j in range(len(atoms)):
        for a in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[j, a] += step
            minus.positions[j, a] -= step
            fd[j, a] = (objective.value(plus) - objective.value(minus)) / (2 * step)
    return fd


def test_objective_gradient_matches_central_differences(space, existing):
    atoms = _rattled_w(4, 0.1)
    wide = DescriptorSpace.fit(
        descriptor_matrix([_rattled_w(s, 0.2) for s in range(3)], DESC), DESC, bandwidth=3.0
    )
    near = wide.environments([_rattled_w(10, 0.15)])
    # entropy alone (no pair within r_min), with kernels that overlap, then with the repulsion
    for r_min, sp, x in ((0.5, wide, near), (2.75, space, existing)):
        objective = EntropyObjective(sp, x, r_min=r_min, repulsion=10.0)
        value, grad = objective.value_and_gradient(atoms)
        assert value == pytest.approx(objective.value(atoms), rel=1e-12)
        fd = _central(objective, atoms)
        scale = np.abs(fd).max()
        assert scale > 1e-3
        assert np.abs(grad - fd).max() < 1e-5 * scale
    pairs = neighbor_list("d", atoms, 2.75)
    assert pairs.size > 0  # the second case exercises the penalty


def test_strain_derivative_matches_central_differences(space, existing):
    atoms = _rattled_w(6, 0.1)
    objective = EntropyObjective(space, existing, r_min=2.75, repulsion=10.0)
    assert neighbor_list("d", atoms, 2.75).size > 0  # the repulsion's virial is exercised
    value, grad, strain = objective.value_gradient_strain(atoms)
    value2, grad2 = objective.value_and_gradient(atoms)
    assert value == pytest.approx(value2, rel=1e-12)
    np.testing.assert_allclose(grad, grad2, rtol=1e-10, atol=1e-12)
    e = np.random.default_rng(2).normal(size=(3, 3))

    def deformed(t: float) -> float:
        a = atoms.copy()
        a.set_cell(atoms.cell.array @ (np.eye(3) + t * e), scale_atoms=True)
        return objective.value(a)

    step = 1e-6
    fd = (deformed(step) - deformed(-step)) / (2 * step)
    assert abs(fd) > 1e-2
    assert np.sum(strain * e) == pytest.approx(fd, rel=1e-6)
    # the volume-preserving parametrisation's derivative
    strain_vec = np.random.default_rng(3).uniform(-0.1, 0.1, 6)
    df = _deformation_derivative(strain_vec)
    for k in range(6):
        plus, minus = strain_vec.copy(), strain_vec.copy()
        plus[k] += 1e-6
        minus[k] -= 1e-6
        np.testing.assert_allclose(
            df[k], (_deformation(plus) - _deformation(minus)) / 2e-6, atol=1e-8
        )


def test_analytic_and_finite_difference_cell_gradients_agree(space, existing):
    # the same optimisation (same start, same L-BFGS-B) with either cell gradient
    kw = dict(max_iter=8, n_atoms=(9, 9), cell_strain=0.1)
    one = generate_configuration(space, _settings(**kw), existing=existing, seed=2)
    two = generate_configuration(
        space, _settings(cell_gradient="finite_difference", **kw), existing=existing, seed=2
    )
    start = random_start(_settings(**kw), np.random.default_rng(2))
    assert not np.allclose(one.cell.array, start.cell.array, atol=1e-3)  # the cell moved
    np.testing.assert_allclose(one.cell.array, two.cell.array, atol=1e-5)
    np.testing.assert_allclose(one.positions, two.positions, atol=1e-4)
    assert one.info["entropy"] == pytest.approx(two.info["entropy"], rel=1e-6)
    assert json.loads(one.info["generate_settings"])["cell_gradient"] == "analytic"
    with pytest.raises(DataError, match="cell_gradient must be one of analytic"):
        _settings(cell_gradient="numeric")


def test_batch_respects_the_floor_and_raises_the_joint_entropy(space, existing):
    settings = _settings()
    batch = generate_batch(2, space, settings, existing=existing, seed=7, progress=False)
    x = existing
    h = space.bandwidth
    for k, atoms in enumerate(batch):
        info = atoms.info
        assert info["generate_index"] == k and info["n_existing"] == x.shape[0]
        assert 8 <= len(atoms) <= 12 and atoms.pbc.all()
        assert 14.0 - 1e-9 <= atoms.get_volume() / len(atoms) <= 18.0 + 1e-9
        d = neighbor_list("d", atoms, 2 * settings.r_min)
        assert d.min() >= 0.98 * settings.r_min - 1e-9
        assert info["min_distance"] == pytest.approx(d.min())
        z = space.environments([atoms])
        h_joint = entropy(np.concatenate([x, z]), h)
        assert info["entropy"] == pytest.approx(h_joint, rel=1e-10)
        assert info["entropy_gain"] == pytest.approx(h_joint - entropy(x, h), rel=1e-10)
        # the optimised configuration adds clearly more entropy than its random start
        assert info["entropy_gain"] > 1.3 * info["entropy_gain_start"] > 0
        assert info["novelty"] > 0
        assert json.loads(info["generate_settings"])["r_min"] == settings.r_min
        x = np.concatenate([x, z])  # the next one is measured against everything so far


def test_deterministic_for_a_seed_and_composition(space, existing):
    settings = _settings(elements=("W",), max_iter=4, n_atoms=(9, 9))
    one = generate_configuration(space, settings, existing=existing, seed=3)
    two = generate_configuration(space, settings, existing=existing, seed=3)
    other = generate_configuration(space, settings, existing=existing, seed=4)
    np.testing.assert_array_equal(one.positions, two.positions)
    np.testing.assert_array_equal(one.cell.array, two.cell.array)
    assert one.info == two.info and one.info["generate_seed"] == 3
    assert not np.allclose(one.positions, other.positions)
    # the cell was optimised at the start's volume (volume-preserving strain)
    start = random_start(settings, np.random.default_rng(3))
    assert one.get_volume() == pytest.approx(start.get_volume(), rel=1e-12)
    assert not np.allclose(one.cell.array, start.cell.array)
    # a batch member is regenerated alone from its recorded seed and everything before it
    batch = generate_batch(2, space, settings, existing=existing, seed=5, progress=False)
    before = np.concatenate([existing, space.environments(batch[:1])])
    alone = generate_configuration(
        space, settings, existing=before, seed=batch[1].info["generate_seed"]
    )
    np.testing.assert_allclose(alone.positions, batch[1].positions, atol=1e-8)
    mixed = GeneratorSettings(
        elements=("Mo", "W"),
        composition=(1, 4),
        volume_per_atom=(15, 15),
        r_min=2.0,
        n_atoms=(10, 10),
    )
    start = random_start(mixed, np.random.default_rng(0))
    assert start.get_chemical_symbols().count("Mo") == 2  # 10 × 1/5
    assert start.get_volume() == pytest.approx(150.0)
    assert start.cell.rank == 3


def test_bad_inputs_are_one_sentence(space):
    with pytest.raises(DataError, match=r"1 ≤ low ≤ high ≤ 256, got \(64, 8\)"):
        _settings(n_atoms=(64, 8))
    with pytest.raises(DataError, match=r"0 < low ≤ high, got \(0.0, 10.0\)"):
        _settings(volume_per_atom=(0.0, 10.0))
    with pytest.raises(DataError, match=r"0 < low ≤ high, got \(20.0, 10.0\)"):
        _settings(volume_per_atom=(20.0, 10.0))
    with pytest.raises(DataError, match="'Xx', which is not a chemical symbol"):
        _settings(elements=("W", "Xx"))
    with pytest.raises(DataError, match="r_min = 3 Å cannot be kept at 14 Å³/atom"):
        _settings(r_min=3.0)
    with pytest.raises(DataError, match="one fraction ≥ 0 per element"):
        _settings(composition=(0.5, 0.5))
    with pytest.raises(DataError, match="knows elements \\['W'\\], not Mo"):
        generate_configuration(space, _settings(elements=("Mo", "W")), seed=0)
    with pytest.raises(DataError, match=r"existing must be whitened descriptors of shape \(n, "):
        generate_configuration(space, _settings(), existing=np.zeros((3, 2)), seed=0)
    ref = descriptor_matrix([_rattled_w(0)], QuestsDescriptor(k=8))
    quests_space = DescriptorSpace.fit(ref, QuestsDescriptor(k=8))
    with pytest.raises(DataError, match="quests descriptor lacks"):
        EntropyObjective(quests_space, r_min=2.0, repulsion=1.0)
