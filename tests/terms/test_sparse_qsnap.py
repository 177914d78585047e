"""Sparsified quadratic SNAP (``quadratic_columns``): its rows are the chosen columns of full
quadratic SNAP, its export (the full coefficient file, zeros in the dropped columns) is the
same function, it fits between linear and full quadratic SNAP, and bad subsets are one
sentence.  Real LAMMPS throughout."""

from __future__ import annotations

import re

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from potforge.engines.lammps import new_lammps, static_point
from potforge.errors import ModelError
from potforge.model import LinearPotential
from potforge.oracles import make_oracle
from potforge.oracles.labelling import label_in_process
from potforge.terms import SNAP, parse_spec, term_from_dict, term_to_dict
from potforge.terms.snap import n_bispectrum, quadratic_names

PICK = [0, "B1*B2", 7, "B3*B0"]  # twojmax=2: 5 bispectrum components, 15 quadratic columns


def mixed(seed: int, n: int = 2) -> Atoms:
    rng = np.random.default_rng(seed)
    a = bulk("Mo", "bcc", a=3.15, cubic=True).repeat(n)
    a.set_cell(a.cell @ (np.eye(3) + 0.04 * rng.normal(size=(3, 3))), scale_atoms=True)
    a.rattle(0.12, seed=seed)
    a.symbols[::3] = "W"
    return a


def test_rows_are_the_chosen_columns_of_full_quadratic_snap():
    full = SNAP(twojmax=2, rcutfac=4.2, quadratic=True)
    sparse = SNAP(twojmax=2, rcutfac=4.2, quadratic=True, quadratic_columns=PICK)
    assert sparse.quadratic_columns == [0, 3, 6, 7]  # sorted; 'B3*B0' is 'B0*B3'
    for t in (full, sparse):
        t.setup(["Mo", "W"])
    nb, nq = n_bispectrum(2), len(quadratic_names(2))
    assert (nb, nq) == (5, 15) and full.n_params == 2 * (nb + nq)
    assert sparse.n_params == 2 * (nb + 4)
    cols = [
        e * (nb + nq) + c for e in range(2) for c in [*range(nb), *(nb + i for i in (0, 3, 6, 7))]
    ]
    assert sparse.param_names == [full.param_names[c] for c in cols]
    assert sparse.param_names[5:9] == [
        f"snap[Mo].{n}" for n in ("B0*B0", "B0*B3", "B1*B2", "B1*B3")
    ]
    atoms = mixed(0)
    r_full, r_sparse = full.rows(atoms), sparse.rows(atoms)
    np.testing.assert_array_equal(r_sparse.energy, r_full.energy[cols])
    np.testing.assert_array_equal(r_sparse.forces, r_full.forces[..., cols])
    np.testing.assert_array_equal(r_sparse.virial, r_full.virial[..., cols])
    assert term_from_dict(term_to_dict(sparse)).get_params() == sparse.get_params()
    from_numpy = SNAP(twojmax=2, quadratic=True, quadratic_columns=np.array([7, 0, 3, 6]))
    assert from_numpy.quadratic_columns == [0, 3, 6, 7]  # e.g. indices kept by FIM pruning
    spec = "qsnap(twojmax=2, rcutfac=4.2, quadratic_columns=[0, 'B1*B2', 7, 'B3*B0'])+zbl+const"
    assert parse_spec(spec)[0].get_params() == SNAP(**sparse.get_params()).get_params()


def test_forces_and_stress_are_derivatives_of_the_energy():
    model = LinearPotential(
        "snap(twojmax=2,rcutfac=4.2,quadratic=True,quadratic_columns=[1,4,9])+const",
        elements=["Mo", "W"],
    ).setup()
    model.coef_ = np.random.default_rng(1).normal(size=model.n_params) * 0.05
    atoms = mixed(1)
    pred = model.predict([atoms], progress=False)[0]
    h = 1e-5

    def energy(a):
        return float(model.predict([a], progress=False)[0]["energy"])

    for i, ax in [(0, 0), (7, 2)]:
        p, m = atoms.copy(), atoms.copy()
        p.positions[i, ax] += h
        m.positions[i, ax] -= h
        assert -(energy(p) - energy(m)) / (2 * h) == pytest.approx(pred["forces"][i, ax], rel=1e-5)
    e = []
    for t in (h, -h):
        b = atoms.copy()
        b.set_cell(b.cell @ (np.eye(3) + np.diag([0.0, t, 0.0])), scale_atoms=True)
        e.append(energy(b))
    assert (e[0] - e[1]) / (2 * h) / atoms.get_volume() == pytest.approx(
        pred["stress"][1], rel=1e-5
    )


def test_export_with_zeros_is_the_same_function(tmp_path):
    """The exported full-size coefficient file (zeros in the dropped columns) gives the ASE
    prediction to round-off (measured ≤ 1e-15 relative), and so does a full quadratic model
    whose dropped coefficients are zero."""
    spec = "qsnap(twojmax=2,rcutfac=4.2,quadratic_columns=%s)+zbl(inner=2.0,outer=2.6)+const"
    sparse = LinearPotential(spec % "[0,'B1*B2',7,'B3*B0']", elements=["Mo", "W"]).setup()
    sparse.coef_ = np.random.default_rng(5).normal(size=sparse.n_params) * 0.05
    full = LinearPotential(spec % "None", elements=["Mo", "W"]).setup()
    keep = [full.param_names.index(n) for n in sparse.param_names]
    full.coef_ = np.zeros(full.n_params)
    full.coef_[keep] = sparse.coef_
    lines = [ln for ln in sparse.to_lammps(tmp_path).read_text().splitlines() if ln[:1] != "#"]
    coeff = (tmp_path / "potforge_0_snap.snapcoeff").read_text().split()
    assert coeff[:2] == ["2", str(5 + 15 + 1)]  # every quadratic column is written
    lmp = new_lammps()
    for seed in range(2):
        atoms = mixed(10 + seed)
        p_sparse, p_full = (
            sparse.predict([atoms], progress=False)[0],
            full.predict([atoms], progress=False)[0],
        )
        e, f, w = static_point(lmp, atoms, sparse.elements_, lines, workdir=tmp_path)
        s = -w / atoms.get_volume()
        for pred in (p_sparse, p_full):
            assert abs(e - pred["energy"]) <= 1e-12 * abs(pred["energy"])
            assert np.abs(f - pred["forces"]).max() <= 1e-12 * np.abs(pred["forces"]).max()
            assert np.abs(s - pred["stress"]).max() <= 1e-12 * np.abs(pred["stress"]).max()


def test_fit_lies_between_linear_and_full_quadratic_snap():
    """Nested column sets on the same W SNAP labels: the weighted training loss of the sparse
    model is at most linear SNAP's and at least full quadratic SNAP's."""
    rng = np.random.default_rng(0)
    cells = []
    for k in range(8):
        a = bulk("W", "bcc", a=3.17, cubic=True).repeat(2)
        eps = rng.uniform(-0.03, 0.03, (3, 3))
        a.set_cell(a.cell @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
        a.rattle(0.04 + 0.01 * k, seed=k)
        cells.append(a)
    train = label_in_process(cells, make_oracle("lammps:W_2940_2017_2.snap").build(), False)
    loss = {}
    for name, extra in [
        ("linear", ""),
        ("sparse", ",quadratic=True,quadratic_columns=[0,5,13,40,77,104]"),
        ("full", ",quadratic=True"),
    ]:
        model = LinearPotential(f"snap(twojmax=4{extra})+const", sigma_energy=1e-3, alpha=1e-12)
        model.fit(train, progress=False)
        dm = model.design(train)
        r = dm.A @ model.coef_ - dm.y
        loss[name] = float(np.sum(dm.weights(model.sigma) * r**2))
    assert loss["full"] <= loss["sparse"] * (1 + 1e-6) and loss["sparse"] < loss["linear"]


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            "snap(quadratic_columns=[0,1])",
            "snap quadratic_columns picks among the quadratic columns, so it needs quadratic=True",
        ),
        (
            "qsnap(twojmax=2,quadratic_columns=[15])",
            "snap quadratic_columns index 15 is out of range: twojmax=2 has 15 quadratic "
            "columns per element (0 … 14)",
        ),
        (
            "qsnap(twojmax=2,quadratic_columns=[-1])",
            "snap quadratic_columns index -1 is out of range",
        ),
        (
            "qsnap(twojmax=2,quadratic_columns=[3,'B0*B3'])",
            "snap quadratic_columns gives column 3 (B0*B3) twice (as 3 and 'B0*B3'); list each "
            "column once",
        ),
        ("qsnap(twojmax=2,quadratic_columns=['B1*B1','B1*B1'])", "gives column 5 (B1*B1) twice"),
        (
            "qsnap(twojmax=2,quadratic_columns=['B1*B7'])",
            "snap quadratic_columns has 'B1*B7', which is no quadratic column of twojmax=2",
        ),
        (
            "qsnap(twojmax=2,quadratic_columns=['B1+B2'])",
            "has 'B1+B2', which is no quadratic column of twojmax=2 (did you mean 'B1*B2'?)",
        ),
        ("qsnap(twojmax=2,quadratic_columns=['snap[W].B1*B2'])", "which is no quadratic column"),
        (
            "qsnap(quadratic_columns=3)",
            "snap quadratic_columns must be a list of column indices or names such as 'B0*B3', "
            "or none, got 3",
        ),
        (
            "qsnap(quadratic_columns=[True])",
            "snap quadratic_columns must be a list of column indices",
        ),
        (
            "qsnap(quadratic_columns=[1.0])",
            "snap quadratic_columns must be a list of column indices",
        ),
    ],
)
def test_bad_subsets_are_one_sentence(spec, message):
    with pytest.raises(ModelError, match=re.escape(message)) as info:
        parse_spec(spec)
    assert "\n" not in str(info.value) and f"model spec {spec!r}" in str(info.value)
