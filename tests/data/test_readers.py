"""Readers: units, Voigt order and sign of VASP stresses checked against the published Mo SNAP;
the shear order of mlearn/maml files detected from their sheared cells; bad files."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from ase.build import bulk
from ase.units import GPa
from conftest import shared_file

from potforge.cli import main
from potforge.data import labels, read_many, read_structures, structure_hash, write_extxyz
from potforge.data.readers import (
    KBAR,
    MLEARN_TO_ASE_VOIGT,
    SHEAR,
    STRESS_ORDERS,
    parse_stress_order,
    stress_orders,
    vasp_kbar_to_ase,
)
from potforge.engines.lammps import LammpsCalculator, potentials_dir
from potforge.errors import DataError
from potforge.oracles import make_oracle


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


# --- shear order of mlearn/maml stresses ----------------------------------------------------

W_A = 3.18  # Å, near the W SNAP's lattice constant


def _strained_w(eps: np.ndarray):
    a = bulk("W", "bcc", a=W_A, cubic=True)
    a.set_cell(a.cell @ (np.eye(3) + eps), scale_atoms=True)
    return a


def _voigt_strain(k: int, size: float) -> np.ndarray:
    """Symmetric strain with ASE Voigt component ``k`` (shear: engineering strain ``size``)."""
    i, j = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)][k]
    eps = np.zeros((3, 3))
    eps[i, j] = eps[j, i] = size if i == j else size / 2
    return eps


@pytest.fixture(scope="module")
def w_elastic():
    """Sheared and stretched bcc W cells labelled by the W SNAP in LAMMPS (ASE units)."""
    calc = make_oracle("lammps:W_2940_2017_2.snap").build()
    cells = [_strained_w(np.zeros((3, 3)))]
    cells += [_strained_w(_voigt_strain(k, s)) for k in range(6) for s in (-0.02, 0.01, 0.03)]
    out = []
    for a in cells:
        a.calc = calc
        out.append((a.copy(), a.get_potential_energy(), a.get_forces(), a.get_stress()))
    return out


def _mlearn_json(path, labelled, slots, field="virial_stress", only=None):
    """Write ``labelled`` as mlearn JSON, stresses as VASP kbar with shear columns ``slots``."""
    entries = []
    for a, e, f, s in labelled:
        raw = -s / KBAR  # kbar, compression positive
        raw6 = [*raw[:3], *(raw[3 + SHEAR.index(c)] for c in slots)]
        entries.append(
            {
                "structure": {
                    "lattice": {"matrix": np.array(a.cell).tolist()},
                    "sites": [
                        {"species": [{"element": sym, "occu": 1}], "xyz": list(map(float, x))}
                        for sym, x in zip(a.get_chemical_symbols(), a.positions, strict=True)
                    ],
                },
                "outputs": {"energy": float(e), "forces": f.tolist(), field: raw6},
                "group": "Elastic",
            }
        )
    path.write_text(json.dumps(entries))
    return path


@pytest.mark.parametrize("field", ["virial_stress", "stress"])
@pytest.mark.parametrize("name", list(STRESS_ORDERS))
def test_stress_order_detected_from_sheared_cells(tmp_path, w_elastic, name, field):
    """Each order is found from the data (not from the field name) and read back exactly."""
    path = _mlearn_json(tmp_path / "W_Elastic.json", w_elastic, STRESS_ORDERS[name], field)
    frames = read_structures(path)
    assert {a.info["stress_order"] for a in frames} == {",".join(STRESS_ORDERS[name])}
    assert f"({name}), detected from 9 sheared cells" in stress_orders(frames)[str(path)]
    for a, (_, _, _, s) in zip(frames, w_elastic, strict=True):
        np.testing.assert_allclose(labels(a)["stress"], s, rtol=1e-9, atol=1e-12)


def test_explicit_stress_order_wins(tmp_path, w_elastic):
    path = _mlearn_json(tmp_path / "w.json", w_elastic, STRESS_ORDERS["mlearn-mo"])
    with pytest.warns(UserWarning, match="sheared cells say xy,zx,yz"):
        frames = read_many([path], stress_order="vasp")
    assert frames[0].info["stress_order"] == "xy,yz,zx"
    assert frames[0].info["stress_order_from"] == "given"
    sheared = next(k for k, (a, *_) in enumerate(w_elastic) if abs(a.cell[1, 2]) > 1e-3)  # yz
    got, want = labels(frames[sheared])["stress"], w_elastic[sheared][3]
    assert got[4] == pytest.approx(want[3]) and abs(got[3]) < 1e-9  # yz read as xz: as told
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # agreeing with the data: no warning
        read_structures(path, stress_order="xy,xz,yz")


@pytest.mark.parametrize(
    "keep, message",
    [
        (lambda a: np.allclose(a.cell, np.diag(np.diag(a.cell))), "no cell is sheared"),
        (
            lambda a: abs(a.cell[1, 2]) < 1e-9 and abs(a.cell[0, 2]) < 1e-9,
            "only xy, so the yz and zx",
        ),
    ],
)
def test_stress_order_undecidable_asks_for_the_option(tmp_path, w_elastic, keep, message):
    subset = [x for x in w_elastic if keep(x[0])]
    path = _mlearn_json(tmp_path / "w.json", subset, STRESS_ORDERS["vasp"])
    with pytest.raises(DataError, match=message) as info:
        read_structures(path)
    assert "stress_order (CLI --stress-order)" in str(info.value) and str(path) in str(info.value)
    assert read_structures(path, stress_order="vasp")[0].info["stress_order_from"] == "given"
    dropped = read_structures(path, stress_order="drop")  # e.g. structures to relabel
    assert "stress" not in labels(dropped[0]) and "energy" in labels(dropped[0])
    assert stress_orders(dropped)[str(path)].startswith("stresses not read")


def test_zero_shear_stress_needs_no_order(tmp_path, w_elastic):
    unsheared = [(a, e, f, np.r_[s[:3], 0.0, 0.0, 0.0]) for a, e, f, s in w_elastic[:4]]
    frames = read_structures(_mlearn_json(tmp_path / "w.json", unsheared, ("xy", "yz", "zx")))
    assert frames[0].info["stress_order_from"].startswith("not needed")
    write_extxyz(tmp_path / "w.xyz", frames)  # ASE formats carry no order: the entry is dropped
    assert "stress_order" not in read_structures(tmp_path / "w.xyz")[0].info


def test_stress_order_of_the_real_files():
    """mlearn Mo: xy zx yz (the order used before detection); maml Nb_Elastic: VASP's."""
    mo = shared_file("mlearn/Mo/training.json")
    frames = read_structures(mo)
    assert frames[0].info["stress_order"] == "xy,zx,yz"
    raw = json.loads(mo.read_text())
    for k in (0, 150):
        want = vasp_kbar_to_ase(raw[k]["outputs"]["virial_stress"], MLEARN_TO_ASE_VOIGT)
        np.testing.assert_array_equal(labels(frames[k])["stress"], want)
    nb = read_structures(shared_file("maml-NbMoTaW/Nb_Elastic.json"))
    assert nb[0].info["stress_order"] == "xy,yz,zx"
    assert "(vasp), detected from 60 sheared cells" in stress_orders(nb)[nb[0].info["source"]]
    # mlearn's test.json shears only xy: it cannot decide, and says so
    with pytest.raises(DataError, match="strain only xy"):
        read_structures(shared_file("mlearn/Mo/test.json"))
    test = read_structures(shared_file("mlearn/Mo/test.json"), stress_order="mlearn-mo")
    assert len(test) == 23


@pytest.mark.parametrize(
    "value, message",
    [
        ("mlearn", "ambiguous"),
        ("vsap", "did you mean 'vasp'"),
        ("xy,xy,zx", "not a shear order"),
        (3, "must be a string"),
    ],
)
def test_bad_stress_order(value, message):
    with pytest.raises(DataError, match=message):
        parse_stress_order(value)


def test_cli_stress_order(tmp_path, w_elastic, capsys):
    path = _mlearn_json(tmp_path / "w.json", w_elastic[:4], STRESS_ORDERS["vasp"])  # no shear
    args = ["fit", "--train", str(path), "--model", "snap(twojmax=2)+const", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "--stress-order" in err and "Traceback" not in err
    assert main([*args, "--out", str(tmp_path / "b"), "--stress-order", "sideways"]) == 2
    assert "stress_order 'sideways'" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "c"), "--stress-order", "vasp"]) == 0


# --- bad files: one sentence each -----------------------------------------------------------


def _bad_file(tmp_path, case):
    good = _entry([[0, 0, 0], [1.6, 1.6, 1.6]])
    p = tmp_path / f"{case}.json"
    if case == "png":
        p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(200)))
    elif case == "truncated":
        p.write_text(json.dumps([good])[:-40])
    elif case == "unterminated":
        p.write_text('[{"structure": {"lattice": "ab')
    elif case == "blank":
        p.write_text(" \n")
    elif case == "directory":
        p.mkdir()
    elif case == "energy_string":
        p.write_text(json.dumps([{**good, "outputs": {**good["outputs"], "energy": "-20.0"}}]))
    elif case == "forces_shape":
        p.write_text(json.dumps([{**good, "outputs": {**good["outputs"], "forces": [[0, 0, 0]]}}]))
    elif case == "stress_short":
        p.write_text(json.dumps([{**good, "outputs": {**good["outputs"], "stress": [1, 2, 3]}}]))
    elif case == "lower_element":
        p.write_text(json.dumps([_entry([[0, 0, 0], [1.6, 1.6, 1.6]], ("Mo", "mo"))]))
    elif case == "no_species":
        bad = json.loads(json.dumps(good))
        bad["structure"]["sites"][1]["species"] = []
        p.write_text(json.dumps([bad]))
    elif case == "flat_cell":
        bad = json.loads(json.dumps(good))
        bad["structure"]["lattice"]["matrix"] = [[3.2, 0, 0], [0, 3.2, 0], [3.2, 3.2, 0]]
        p.write_text(json.dumps([bad]))
    elif case == "outputs_list":
        p.write_text(json.dumps([{**good, "outputs": [1, 2]}]))
    elif case == "entry_string":
        p.write_text(json.dumps(["abc"]))
    return p


@pytest.mark.parametrize(
    "case, message",
    [
        ("png", "not a JSON text file .* PNG image"),
        ("truncated", "not valid JSON: .*the file ends early"),
        ("unterminated", "unterminated string starting at line 1, column"),
        ("blank", "the file is empty"),
        ("directory", "is a directory, not a data file"),
        ("energy_string", "outputs.energy must be a number .eV., got '-20.0'"),
        ("forces_shape", r"outputs.forces must be 2×3 numbers .*, got shape 1×3"),
        ("stress_short", "outputs.stress must be 6 numbers .kbar. or a 3×3 matrix, got shape 3"),
        ("lower_element", "structure.sites.1. has unknown element 'mo' .*did you mean 'Mo'"),
        ("no_species", r"structure.sites\[1\].species\[0\].element is missing"),
        ("flat_cell", "degenerate cell"),
        ("outputs_list", "'outputs' must be an object"),
        ("entry_string", "entry 0: expected an object"),
    ],
)
def test_bad_json_files_give_one_sentence(tmp_path, case, message):
    path = _bad_file(tmp_path, case)
    with pytest.raises(DataError, match=message) as info:
        read_structures(path)
    text = str(info.value)
    assert str(path) in text and "\n" not in text and "at at" not in text


def test_bad_require_and_empty_xyz(tmp_path):
    (tmp_path / "e.xyz").write_text("")
    with pytest.raises(DataError, match="e.xyz: the file is empty"):
        read_structures(tmp_path / "e.xyz")
    with pytest.raises(DataError, match=r"unknown label\(s\) \['energies'\]"):
        read_structures(tmp_path / "e.xyz", require=("energies",))
