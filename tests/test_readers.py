"""Readers: units, Voigt order and sign of VASP stresses checked against the published Mo SNAP."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.units import GPa

from potforge.data import labels, read_structures, structure_hash, write_extxyz
from potforge.data.readers import vasp_kbar_to_ase
from potforge.engines.lammps import LammpsCalculator, potentials_dir
from potforge.errors import DataError


def test_mlearn_reader_units(mo_train):
    frames = read_structures(mo_train)
    assert len(frames) == 194
    assert sum(len(a) for a in frames) == 10087
    groups = {a.info["group"] for a in frames}
    assert len(groups) == 4 and {"Elastic", "Surface", "Vacancy"} <= groups
    lab = labels(frames[0])
    assert lab["energy"] / len(frames[0]) == pytest.approx(-10.75, abs=0.2)  # eV/atom for Mo
    assert lab["forces"].shape == (len(frames[0]), 3)


def test_stress_order_and_sign_match_published_snap(mo_train):
    """Shear stresses of strained Elastic cells: label vs the published Mo SNAP in LAMMPS."""
    frames = [a for a in read_structures(mo_train) if a.info["group"] == "Elastic"]
    calc = LammpsCalculator(["include Mo_Zuo_JPCA2020.snap"], ["Mo"], potentials_dir())
    ref, lab = [], []
    for a in frames:
        b = a.copy()
        b.calc = calc
        ref.append(b.get_stress())
        lab.append(labels(a)["stress"])
    ref, lab = np.array(ref), np.array(lab)
    sheared = np.abs(ref[:, 3:]).max(axis=1) > 1.0 * GPa
    assert sheared.sum() >= 10
    # each shear component matches in sign and (within the model's error) size
    shear_ref, shear_lab = ref[sheared, 3:], lab[sheared, 3:]
    big = np.abs(shear_ref) > 1.0 * GPa
    assert np.all(np.sign(shear_ref[big]) == np.sign(shear_lab[big]))
    assert np.median(np.abs(shear_lab[big] / shear_ref[big])) == pytest.approx(1.0, abs=0.15)
    # diagonal: strongly correlated and on the same scale
    assert np.corrcoef(ref[:, :3].ravel(), lab[:, :3].ravel())[0, 1] > 0.9


def test_vasp_conversion():
    s = vasp_kbar_to_ase([10, 20, 30, 1, 2, 3])  # xx yy zz xy yz zx, compression positive
    np.testing.assert_allclose(s / (-0.1 * GPa), [10, 20, 30, 2, 3, 1])


def test_extxyz_round_trip_and_hash(tmp_path):
    a = bulk("W", "bcc", a=3.2, cubic=True).repeat(2)
    a.rattle(0.05, seed=0)
    from potforge.data import attach_labels

    attach_labels(a, -10.0, np.zeros((len(a), 3)), np.arange(6) * 1e-3)
    a.info["group"] = "g1"
    write_extxyz(tmp_path / "x.xyz", [a])
    b = read_structures(tmp_path / "x.xyz")[0]
    assert b.info["group"] == "g1"
    np.testing.assert_allclose(labels(b)["stress"], labels(a)["stress"])
    assert structure_hash(a) == structure_hash(b)
    c = a[::-1]
    c.positions[0] += a.cell[0]  # permuted and wrapped: same structure
    assert structure_hash(c) == structure_hash(a)
    c.positions[1, 0] += 0.01
    assert structure_hash(c) != structure_hash(a)


def _write(tmp_path, name, entries):
    p = tmp_path / name
    p.write_text(json.dumps(entries))
    return p


def _entry(positions, symbols=("Mo", "Mo"), energy=-20.0, forces=None):
    return {
        "structure": {
            "lattice": {"matrix": [[3.2, 0, 0], [0, 3.2, 0], [0, 0, 3.2]]},
            "sites": [
                {"species": [{"element": s}], "xyz": p}
                for s, p in zip(symbols, positions, strict=True)
            ],
        },
        "outputs": {
            "energy": energy,
            "forces": forces if forces is not None else [[0, 0, 0]] * len(symbols),
        },
    }


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "no such file"),
        ("badjson", "not valid JSON"),
        ("badxyz", "cannot be read"),
        ("noenergy", "no 'energy' label"),
        ("noforces", "no 'forces' label"),
        ("nan", "non-finite 'energy'"),
        ("close", "apart"),
        ("element", "unknown element 'Xx'"),
        ("empty", "contains no structures"),
    ],
)
def test_bad_input_gives_one_clear_sentence(tmp_path, case, message):
    good = [[0, 0, 0], [1.6, 1.6, 1.6]]
    path = {
        "missing": lambda: tmp_path / "nope.json",
        "badjson": lambda: (tmp_path / "b.json").write_text("[{") and tmp_path / "b.json",
        "badxyz": lambda: (tmp_path / "b.xyz").write_text("2\nx\nMo 0 0\n") and tmp_path / "b.xyz",
        "noenergy": lambda: _write(
            tmp_path, "e.json", [{**_entry(good), "outputs": {"forces": [[0, 0, 0]] * 2}}]
        ),
        "noforces": lambda: _write(
            tmp_path, "f.json", [{**_entry(good), "outputs": {"energy": -1.0}}]
        ),
        "nan": lambda: (
            (tmp_path / "n.json").write_text(json.dumps([_entry(good)]).replace("-20.0", "NaN"))
            and tmp_path / "n.json"
        ),
        "close": lambda: _write(tmp_path, "c.json", [_entry([[0, 0, 0], [0.3, 0, 0]])]),
        "element": lambda: _write(tmp_path, "x.json", [_entry(good, ("Mo", "Xx"))]),
        "empty": lambda: _write(tmp_path, "z.json", []),
    }[case]()
    with pytest.raises(DataError, match=message) as info:
        read_structures(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)
