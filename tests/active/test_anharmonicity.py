"""Anharmonicity score σ^A: the array core on exact cases, the whole pipeline (phonopy force
constants + ASE Langevin MD) on an exactly harmonic spring crystal (σ^A = 0 at any T), and on the
shipped W EAM: σ^A → 0 as T → 0 and grows with T (issue 17, part 5); the CLI."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from ase.neighborlist import neighbor_list

from potforge.active.anharmonicity import (
    anharmonicity,
    anharmonicity_score,
    displacements,
    harmonic_forces,
    harmonic_reference,
)
from potforge.cli import main
from potforge.errors import DataError
from potforge.oracles import make_oracle
from potforge.properties.structures import cubic_supercell

A_EAM = 3.1648  # bcc W lattice constant of W_zhou.eam.alloy (relax_bulk), Å
MD = dict(steps=60, interval=10, equilibrate=60)  # short: ~0.1 ps, 6 frames of 54 atoms


class Springs(Calculator):
    """Exactly harmonic crystal: E = ½ k Σ_pairs |u_i − u_j|² over nearest-neighbour pairs of
    the reference, u the minimum-image displacement from it (translation invariant)."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, reference, k=2.0, cutoff=2.9, **kw):
        super().__init__(**kw)
        self.ref = reference.copy()
        self.k = k
        self.i, self.j = neighbor_list("ij", reference, cutoff)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        u = displacements(self.ref.positions, self.atoms.positions, self.ref.cell.array)
        d = u[self.i] - u[self.j]  # each pair twice
        f = np.zeros_like(u)
        np.add.at(f, self.i, -self.k * d)
        self.results = {"energy": 0.25 * self.k * float(np.sum(d * d)), "forces": f}


def _toy(n=6, seed=0):
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(3 * n, 3 * n))
    phi = (m @ m.T).reshape(n, 3, n, 3).transpose(0, 2, 1, 3)  # symmetric, (N, N, 3, 3)
    u = rng.normal(scale=0.05, size=(4, n, 3))
    return phi, u


def test_harmonic_forces_are_minus_phi_u():
    phi, u = _toy()
    h = harmonic_forces(phi, u)
    flat = phi.transpose(0, 2, 1, 3).reshape(18, 18)
    expect = -np.einsum("pq,fq->fp", flat, u.reshape(4, 18)).reshape(4, 6, 3)
    np.testing.assert_allclose(h, expect, rtol=1e-12)
    np.testing.assert_allclose(harmonic_forces(phi, u[0]), expect[0], rtol=1e-12)


def test_score_zero_for_harmonic_forces_and_known_value_for_a_perturbation():
    phi, u = _toy()
    h = harmonic_forces(phi, u)
    assert anharmonicity(h, h) == 0.0
    # F = 1.25 F_harm: σ^A = 0.25 / 1.25 = 0.2 exactly
    assert anharmonicity(1.25 * h, h) == pytest.approx(0.2, rel=1e-12)
    # F = F_harm + δ with δ ⟂ F_harm: σ^A = |δ| / sqrt(|F_harm|² + |δ|²)
    delta = np.random.default_rng(1).normal(size=h.shape)
    delta -= np.sum(delta * h) / np.sum(h * h) * h
    delta *= 0.3 * np.linalg.norm(h) / np.linalg.norm(delta)
    assert anharmonicity(h + delta, h) == pytest.approx(0.3 / np.sqrt(1.09), rel=1e-10)
    assert anharmonicity(h, np.zeros_like(h)) == pytest.approx(1.0)


def test_displacements_minimum_image_and_mean_removed():
    cell = np.diag([5.0, 6.0, 7.0])
    ref = np.array([[0.1, 0.1, 0.1], [2.0, 3.0, 3.0]])
    pos = ref + np.array([[-0.3, 0.2, 0.0], [0.1, 0.0, -0.2]])
    pos[0] += cell[0]  # wrapped through the boundary
    u = displacements(ref, pos, cell)
    np.testing.assert_allclose(u, [[-0.2, 0.1, 0.1], [0.2, -0.1, -0.1]], atol=1e-12)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: harmonic_forces(np.zeros((2, 3, 3, 3)), np.zeros((1, 2, 3))), "(N, N, 3, 3)"),
        (lambda: harmonic_forces(np.zeros((2, 2, 3, 3)), np.zeros((1, 3, 3))), "(F, 2, 3)"),
        (lambda: anharmonicity(np.zeros((2, 3)), np.zeros((2, 3))), "every force is zero"),
        (lambda: anharmonicity(np.ones((2, 3)), np.ones((3, 3))), "one shape"),
        (lambda: anharmonicity(np.full((2, 3), np.nan), np.ones((2, 3))), "finite"),
    ],
)
def test_array_bad_input(call, words):
    with pytest.raises(DataError, match=re.escape(words)):
        call()


def test_exactly_harmonic_crystal_scores_zero_at_any_temperature():
    """Phonopy recovers the spring constants exactly; the MD forces are then −Φu to round-off."""
    cell = cubic_supercell("W", "bcc", A_EAM, 3)
    calc = Springs(cell)
    rattled = cell.copy()
    rattled.rattle(0.02, seed=3)
    ref = harmonic_reference(calc, rattled)
    assert ref.relaxed and ref.max_force > 1e-3  # a rattled start is relaxed (at fixed cell)
    back = displacements(cell.positions, ref.atoms.positions, cell.cell.array)
    np.testing.assert_allclose(back, 0.0, atol=1e-4)  # the lattice, up to a rigid translation
    perfect = harmonic_reference(calc, cell)
    assert perfect.relaxed is False  # the perfect cell is force-free: used as given
    for t in (300.0, 3000.0):
        r = anharmonicity_score(
            calc, cell, t, steps=100, interval=10, equilibrate=50, reference=perfect
        )
        assert r["relaxed"] is False
        assert r["n_frames"] == 10 and len(r["per_frame"]) == 10
        assert r["score"] < 1e-3, r["score"]


@pytest.fixture(scope="module")
def eam():
    calc = make_oracle("lammps:W_zhou.eam.alloy").build()
    cell = cubic_supercell("W", "bcc", A_EAM, 3)  # 54 atoms
    return calc, cell, harmonic_reference(calc, cell)


def test_w_eam_score_vanishes_as_t_goes_to_zero_and_grows_with_t(eam):
    calc, cell, ref = eam
    assert ref.force_constants.shape == (54, 54, 3, 3)
    s = {
        t: anharmonicity_score(calc, cell, t, reference=ref, seed=1, **MD)["score"]
        for t in (10.0, 300.0, 1500.0)
    }
    print("W EAM σ^A:", {t: round(v, 4) for t, v in s.items()})
    # harmonic limit: σ^A ∝ √T at low T, so 10 K is ~√30 ≈ 5.5× below 300 K
    assert s[10.0] < 0.05 and s[10.0] < 0.3 * s[300.0]
    assert 0.03 < s[300.0] < s[1500.0] < 0.6
    assert s[1500.0] > 1.5 * s[300.0]


def test_score_bad_settings(eam):
    calc, cell, ref = eam
    for kw, words in (
        ({"temperature": 0.0}, "temperature must be"),
        ({"temperature": -5.0}, "temperature must be"),
        ({"temperature": 300.0, "interval": 20, "steps": 10}, "must not exceed steps"),
    ):
        with pytest.raises(DataError, match=words):
            anharmonicity_score(calc, cell, reference=ref, **kw)
    with pytest.raises(DataError, match="periodic bulk cell"):
        slab = cell.copy()
        slab.pbc = (True, True, False)
        harmonic_reference(calc, slab)


def test_cli_one_temperature(tmp_path, capsys):
    path = tmp_path / "w54.extxyz"
    cubic_supercell("W", "bcc", A_EAM, 3).write(path)
    out = tmp_path / "anh"
    argv = ["anharmonicity", "--calc", "lammps:W_zhou.eam.alloy", "--structure", str(path)]
    argv += ["--temps", "300", "--steps", "40", "--interval", "10", "--equilibrate", "60"]
    assert main([*argv, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    m = re.search(r"^300 K: σ\^A = (0\.\d{3}) \(4 frames\)$", text, re.M)
    assert m, text
    assert "used as given (already relaxed)" in text
    doc = json.loads((out / "anharmonicity.json").read_text())
    (r,) = doc["results"]
    assert r["temperature"] == 300.0 and r["n_frames"] == 4
    assert f"{r['score']:.3f}" == m.group(1) and 0.03 < r["score"] < 0.3
    assert (out / "anharmonicity.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--temps", "300,0"], "every temperature must be"),
        (["--temps", "hot"], "must be temperatures in K"),
        (["--calc", "lammps:nothing.eam"], "nothing.eam"),
        (["--calc", "nonsense"], "unknown oracle"),
        (["--structure", "missing.extxyz"], "no such file"),
        (["--structure", "bcc:Xx"], "unknown element"),
        (["--calc", "emt"], "No EMT-potential for W"),
    ],
)
def test_cli_bad_input(tmp_path, capsys, extra, words):
    argv = ["anharmonicity", "--calc", "lammps:W_zhou.eam.alloy", "--structure", "bcc:W"]
    flags = {extra[0]: extra[1]}
    for i, a in enumerate(argv):
        if a in flags:
            argv[i + 1] = flags.pop(a)
    argv += [x for k, v in flags.items() for x in (k, v)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err
    assert err.startswith("potforge anharmonicity: error:")
