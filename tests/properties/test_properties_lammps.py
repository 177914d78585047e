"""Property suite vs the same quantities computed natively in LAMMPS input scripts (W, EAM + SNAP).

The native side uses only LAMMPS: ``fix box/relax`` + ``minimize`` for the lattice constant,
``change_box ... remap`` + ``minimize`` for finite strains, ``delete_atoms`` + ``minimize`` for the
vacancy and a periodic slab opened with ``change_box`` for surfaces.  Agreement: 1e-3 relative.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest

from potforge.engines.lammps import LammpsCalculator, new_lammps, potentials_dir
from potforge.properties import EV_A2_TO_J_M2, PropertySuite, cubic_constants
from potforge.properties.structures import SURFACE_ORIENTATIONS
from potforge.properties.surfaces import slab

POTENTIALS = {
    "zhou": ["pair_style eam/alloy", "pair_coeff * * W_zhou.eam.alloy W"],
    "snap": ["include W_2940_2017_2.snap"],
}
MASS = 183.84
RTOL = 1e-3


@contextlib.contextmanager
def in_potentials():
    cwd = os.getcwd()
    os.chdir(potentials_dir())
    try:
        yield
    finally:
        os.chdir(cwd)


def native(
    pair: list[str], body: list[str], *, a: float, orient=None, size=(1, 1, 1), lengths=None
):
    """A LAMMPS instance with a bcc W box (``lengths`` in Å or lattice cells), run ``body``."""
    lmp = new_lammps()
    orient_txt = ""
    if orient is not None:
        orient_txt = " ".join(
            f"orient {ax} {d[0]} {d[1]} {d[2]}" for ax, d in zip("xyz", orient, strict=True)
        )
    if lengths is None:
        region = f"region box prism 0 {size[0]} 0 {size[1]} 0 {size[2]} 0 0 0"
    else:
        lx, ly, lz = lengths
        region = f"region box prism 0 {lx!r} 0 {ly!r} 0 {lz!r} 0 0 0 units box"
    with in_potentials():
        lmp.commands_list(
            [
                "units metal",
                "atom_style atomic",
                "boundary p p p",
                f"lattice bcc {a!r} {orient_txt}",
                region,
                "create_box 1 box",
                "create_atoms 1 box",
                f"mass 1 {MASS}",
                *pair,
                "thermo_style custom step pe lx ly lz pxx pyy pzz pyz pxz pxy",
                "thermo_modify norm no",
                "min_style cg",
                *body,
            ]
        )
    return lmp


def minimize(lmp) -> float:
    lmp.command("minimize 0 1e-12 20000 200000")
    return float(lmp.get_thermo("pe"))


@pytest.fixture(scope="module", params=list(POTENTIALS))
def pot(request):
    calc = LammpsCalculator(POTENTIALS[request.param], ["W"], potentials_dir())
    suite = PropertySuite(calc, "W")
    return request.param, POTENTIALS[request.param], suite


@pytest.fixture(scope="module")
def native_a0(pot):
    _, pair, _ = pot
    lmp = native(
        pair,
        [
            "fix br all box/relax iso 0.0 vmax 0.001",
            "minimize 0 1e-12 20000 200000",
            "unfix br",
            "minimize 0 1e-12 20000 200000",
        ],
        a=3.16,
    )
    a0 = float(lmp.get_thermo("lx"))
    assert abs(float(lmp.get_thermo("pxx"))) < 1.0  # bar
    return a0, float(lmp.get_thermo("pe")) / 2


def test_lattice_constant_matches_box_relax(pot, native_a0):
    _, _, suite = pot
    a0, e0 = native_a0
    assert suite.lattice_constant() == pytest.approx(a0, rel=1e-5)
    assert suite.ground().energy_per_atom == pytest.approx(e0, rel=1e-6)


def test_elastic_constants_match_change_box(pot, native_a0):
    _, pair, suite = pot
    a0, _ = native_a0
    delta = 0.005
    strains = {  # Voigt index -> change_box argument for a strain of ±delta
        0: lambda d: f"x final 0 {a0 * (1 + d)!r}",
        1: lambda d: f"y final 0 {a0 * (1 + d)!r}",
        2: lambda d: f"z final 0 {a0 * (1 + d)!r}",
        3: lambda d: f"yz final {a0 * d!r}",
        4: lambda d: f"xz final {a0 * d!r}",
        5: lambda d: f"xy final {a0 * d!r}",
    }
    order = ("pxx", "pyy", "pzz", "pyz", "pxz", "pxy")
    c = np.zeros((6, 6))
    for j, arg in strains.items():
        p = []
        for d in (delta, -delta):
            lmp = native(pair, [f"change_box all {arg(d)} remap units box"], a=a0)
            minimize(lmp)
            p.append([float(lmp.get_thermo(k)) for k in order])
        c[:, j] = -(np.array(p[0]) - np.array(p[1])) / (2 * delta) * 1e-4  # bar -> GPa
    ref = cubic_constants(c)
    got = cubic_constants(suite.elastic_tensor())
    got = tuple(g * 160.21766208 for g in got)
    for name, r, g in zip(("C11", "C12", "C44"), ref, got, strict=True):
        assert g == pytest.approx(r, rel=RTOL), name


def test_vacancy_matches_delete_atoms(pot, native_a0):
    _, pair, suite = pot
    a0, _ = native_a0
    lmp = native(pair, ["run 0"], a=a0, size=(3, 3, 3))
    n = lmp.get_natoms()
    e_bulk = float(lmp.get_thermo("pe"))
    lmp.commands_list(["group gone id 28", "delete_atoms group gone"])
    e_def = minimize(lmp)
    ref = e_def - (n - 1) / n * e_bulk
    assert n == 54
    assert suite.vacancy_formation_energy(3) == pytest.approx(ref, rel=RTOL)


@pytest.mark.parametrize("miller", list(SURFACE_ORIENTATIONS))
def test_surface_energy_matches_native_slab(pot, native_a0, miller):
    _, pair, suite = pot
    a0, _ = native_a0
    atoms, _ = slab(suite.ground(), miller)
    dirs = SURFACE_ORIENTATIONS[miller]
    lengths = [float(a0 * np.linalg.norm(d)) for d in dirs[:2]] + [float(atoms.cell[2, 2]) - 15.0]
    lmp = native(pair, ["run 0"], a=a0, orient=dirs, lengths=lengths)
    n = lmp.get_natoms()
    area = float(np.linalg.norm(np.cross(atoms.cell[0], atoms.cell[1])))
    assert n / (lengths[0] * lengths[1]) == pytest.approx(len(atoms) / area)  # same thickness
    e_bulk = float(lmp.get_thermo("pe"))
    lmp.command(f"change_box all z final 0 {lengths[2] + 15.0!r} units box")
    e_slab = minimize(lmp)
    ref = (e_slab - e_bulk) / (2 * lengths[0] * lengths[1]) * EV_A2_TO_J_M2
    got = suite.surface_energy(miller) * EV_A2_TO_J_M2
    assert got == pytest.approx(ref, rel=RTOL)
    assert 1.0 < got < 5.0  # J/m², tungsten
