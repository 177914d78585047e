"""POD term (LAMMPS ML-POD): rows against finite differences of its own energy row, the
exported ``pair_style pod`` against the ASE-side prediction, a fit to W SNAP labels, and bad
settings as one sentence.  Real LAMMPS throughout."""

from __future__ import annotations

import re

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from potforge.engines.lammps import new_lammps, static_point
from potforge.errors import EngineError, ModelError
from potforge.model import LinearPotential
from potforge.oracles import make_oracle
from potforge.oracles.labelling import label_in_process
from potforge.terms import POD, parse_spec, term_from_dict, term_to_dict

VOIGT = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]


def sheared_w(seed: int = 0, n: int = 2) -> Atoms:
    """A rattled, sheared bcc W cell (16 atoms for n = 2)."""
    rng = np.random.default_rng(seed)
    a = bulk("W", "bcc", a=3.17, cubic=True).repeat(n)
    a.set_cell(a.cell @ (np.eye(3) + 0.04 * rng.normal(size=(3, 3))), scale_atoms=True)
    a.rattle(0.1, seed=seed)
    return a


def strained(atoms: Atoms, k: int, t: float) -> Atoms:
    i, j = VOIGT[k]
    eps = np.zeros((3, 3))
    eps[i, j] = eps[j, i] = t if i == j else t / 2
    b = atoms.copy()
    b.set_cell(b.cell @ (np.eye(3) + eps), scale_atoms=True)
    return b


def random_model(spec: str, elements=("Mo", "W"), seed: int = 0) -> LinearPotential:
    m = LinearPotential(spec, elements=list(elements)).setup()
    m.coef_ = np.random.default_rng(seed).normal(size=m.n_params) * 0.05
    return m


def test_counts_names_and_spec_round_trip():
    one = POD()
    one.setup(["W"])
    assert one.n_params == 6 + 5 * 5 == 31  # radial2 + (angular3 + 1) * radial3
    assert one.param_names[0] == "pod[W].2b0" and one.param_names[-1] == "pod[W].3b24"
    two = POD(radial4=2, angular4=2)
    two.setup(["Mo", "W"])
    # per element: 6·2 two-body, 5·5·3 three-body, 4·2·4 four-body (4 angular functions)
    assert two.n_params == 2 * (12 + 75 + 32)
    assert [t.kind for t in parse_spec("pod+zbl+const")] == ["pod", "zbl", "const"]
    spec = "snap(twojmax=4)+pod(rcut=4.8,radial3=3,angular3=2)+const"
    assert [t.kind for t in parse_spec(spec)] == ["snap", "pod", "const"]
    back = term_from_dict(term_to_dict(two))
    assert back.get_params() == two.get_params()
    # ML-POD's one-body column (the atom count, duplicating const) is dropped from the rows
    atoms = sheared_w(0)
    _, raw = one._compute(atoms, "pod/global")
    assert raw.shape == (1 + 3 * 16, 32) and raw[0, 0] == 16.0
    np.testing.assert_array_equal(one.rows(atoms).energy, raw[0, 1:])


def test_force_rows_are_minus_the_gradient_of_the_energy_row():
    term = POD(radial4=2, angular4=2)
    term.setup(["W"])
    atoms = sheared_w(1)
    rows = term.rows(atoms)
    h = 1e-5
    scale = np.abs(rows.forces).max()
    for i, ax in [(0, 0), (5, 1), (11, 2)]:
        p, m = atoms.copy(), atoms.copy()
        p.positions[i, ax] += h
        m.positions[i, ax] -= h
        fd = -(term.rows(p).energy - term.rows(m).energy) / (2 * h)
        assert np.abs(fd - rows.forces[i, ax]).max() <= 1e-7 * scale  # measured 2e-8


def test_virial_rows_are_minus_the_strain_derivative_of_the_energy_row():
    """W = -dE/dε (eV), ASE Voigt order, as the SNAP term's rows: the stress is -W/V."""
    term = POD()
    term.setup(["W"])
    atoms = sheared_w(2)
    rows = term.rows(atoms)
    h = 1e-5
    for k in range(6):
        fd = -(term.rows(strained(atoms, k, h)).energy - term.rows(strained(atoms, k, -h)).energy)
        fd /= 2 * h
        assert np.abs(fd - rows.virial[k]).max() <= 1e-6 * np.abs(rows.virial).max()
    # a finite cluster: exact W = Σ r ⊗ F from the force rows, same convention
    cluster = Atoms("W9", positions=atoms.positions[:9], cell=np.eye(3) * 25.0, pbc=False)
    cluster.center()
    rows = term.rows(cluster)
    for k in (0, 3):
        e = [term.rows(strained(cluster, k, s)).energy for s in (h, -h)]
        fd = -(e[0] - e[1]) / (2 * h)
        assert np.abs(fd - rows.virial[k]).max() <= 1e-6 * np.abs(rows.virial).max()


def test_model_stress_is_the_strain_derivative_of_its_energy():
    model = random_model("pod(radial4=2,angular4=2)+const", elements=("W",))
    atoms = sheared_w(3)
    s = model.predict([atoms])[0]["stress"]
    h = 1e-6
    for k in (0, 2, 3, 5):
        e = [float(model.predict([strained(atoms, k, t)])[0]["energy"]) for t in (h, -h)]
        assert (e[0] - e[1]) / (2 * h) / atoms.get_volume() == pytest.approx(s[k], rel=1e-5)


@pytest.mark.parametrize(
    "spec",
    ["pod+zbl(inner=2.0,outer=2.6)+const", "snap(twojmax=2,rcutfac=4.2)+pod(radial4=2,angular4=1)"],
)
def test_ase_path_equals_lammps_export(spec, tmp_path):
    """``pair_style pod`` (alone or in hybrid/overlay, const absorbed into its one-body
    coefficients) is the ASE-side function: energies and forces to round-off (measured
    ≤ 1.3e-15), stresses to the virial's finite-difference accuracy (measured ≤ 1.2e-10)."""
    model = random_model(spec, seed=5)
    lines = [
        ln for ln in model.to_lammps(tmp_path).read_text().splitlines() if not ln.startswith("#")
    ]
    assert any(ln.startswith("pair_style") and " pod" in f" {ln}" for ln in lines)
    lmp = new_lammps()
    for seed in range(2):
        atoms = sheared_w(10 + seed)
        atoms.symbols[::3] = "Mo"
        pred = model.predict([atoms])[0]
        e, f, w = static_point(lmp, atoms, model.elements_, lines, workdir=tmp_path)
        s = -w / atoms.get_volume()
        assert abs(e - pred["energy"]) <= 1e-12 * abs(pred["energy"])
        assert np.abs(f - pred["forces"]).max() <= 1e-12 * np.abs(pred["forces"]).max()
        assert np.abs(s - pred["stress"]).max() <= 1e-8 * np.abs(pred["stress"]).max()


def force_rmse(model: LinearPotential, structures: list[Atoms]) -> float:
    pred = model.predict(structures, progress=False)
    ref = np.concatenate([a.get_forces() for a in structures])
    return float(np.sqrt(np.mean((np.concatenate([p["forces"] for p in pred]) - ref) ** 2)))


def test_fit_to_w_snap_labels():
    """pod+zbl+const (32 parameters) learns the shipped W SNAP from 12 strained, rattled
    16-atom cells; held-out forces follow (measured 7 % of the force scale; snap(twojmax=6)
    gets 8 % on the same data)."""
    rng = np.random.default_rng(0)
    cells = []
    for k in range(15):
        a = bulk("W", "bcc", a=3.17, cubic=True).repeat(2)
        eps = rng.uniform(-0.03, 0.03, (3, 3))
        a.set_cell(a.cell @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
        a.rattle(0.04 + 0.005 * k, seed=k)
        cells.append(a)
    labelled = label_in_process(cells, make_oracle("lammps:W_2940_2017_2.snap").build(), False)
    order = np.random.default_rng(1).permutation(len(labelled))
    train, test = [labelled[i] for i in order[:12]], [labelled[i] for i in order[12:]]
    model = LinearPotential("pod+zbl(inner=1.5,outer=2.0)+const", sigma_energy=1e-3)
    model.fit(train, progress=False)
    scale = np.sqrt(np.mean(np.concatenate([a.get_forces() for a in test]) ** 2))
    assert force_rmse(model, train) < 0.12 * scale  # measured 0.08
    assert force_rmse(model, test) < 0.12 * scale  # measured 0.07
    pred = model.predict(test, progress=False)
    e_err = [
        abs(p["energy"] - a.get_potential_energy()) / len(a)
        for p, a in zip(pred, test, strict=True)
    ]
    assert max(e_err) < 0.01  # eV/atom; measured 4.5e-3


def test_a_pair_at_exactly_rin_is_an_error_not_nan():
    term = POD()
    term.setup(["W"])
    dimer = Atoms("W2", positions=[[5, 5, 5], [5, 5, 6.0]], cell=[12, 12, 12], pbc=True)
    with pytest.raises(EngineError, match="a pair at exactly rin = 1 Å"):
        term.rows(dimer)
    dimer.positions[1, 2] += 0.001
    assert np.isfinite(term.rows(dimer).energy).all()


@pytest.mark.parametrize(
    "spec, message",
    [
        ("pod(rin=6)", "pod rin must be below rcut, got rin=6 Å and rcut=5 Å"),
        ("pod(rcut=0)", "pod rcut must be a number > 0 and ≤ 20, got 0"),
        ("pod(rcut=25)", "pod rcut must be a number > 0 and ≤ 20, got 25"),
        ("pod(radial2=0)", "pod radial2 must be an integer ≥ 1, got 0"),
        ("pod(radial3=2.5)", "pod radial3 must be an integer ≥ 0, got 2.5"),
        ("pod(bessel_degree=0)", "pod bessel_degree must be an integer ≥ 1, got 0"),
        ("pod(radial2=21)", "pod radial2 must be at most the number of radial snapshots 3 ×"),
        ("pod(angular3=13)", "pod angular3 must be an integer ≥ 0 and ≤ 12, got 13"),
        ("pod(radial4=6)", "pod radial4 must be at most radial3 = 5"),
        (
            "pod(radial4=2,angular3=2,angular4=3)",
            "pod angular4 must be at most angular3 = 2, got 3",
        ),
        ("pod(angular4=7)", "pod angular4 must be an integer ≥ 0 and ≤ 6, got 7"),
        ("pod(nrbf2=3)", "term 'pod' has no setting 'nrbf2'"),
        ("pod+pod", "uses term 'pod' twice"),
    ],
)
def test_bad_settings_are_one_sentence(spec, message):
    with pytest.raises(ModelError, match=re.escape(message)) as info:
        parse_spec(spec)
    assert "\n" not in str(info.value)
