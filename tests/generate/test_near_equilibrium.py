"""The campaign's near-equilibrium pool: structures of the kinds material properties are made of,
and the elemental reference states of a compound (potforge.generate.generator)."""

from __future__ import annotations

import numpy as np
import pytest

from potforge.errors import DataError
from potforge.generate.generator import (
    _fault_slab,
    crystal_state,
    elemental_references,
    near_equilibrium,
)


def test_near_equilibrium_cycles_the_kinds_at_the_given_volume():
    out = near_equilibrium("W", "bcc", 16.0, 12, seed=3)
    groups = [a.info["group"] for a in out]
    assert groups[:7] == [
        "strained", "rattled", "strained", "vacancy", "rattled", "surface_110", "fault"
    ]  # fmt: skip
    assert [len(a) for a in out[:7]] == [2, 16, 2, 15, 16, 8, 18]
    strained = [a for a in out if a.info["group"] == "strained"]
    for a in strained:  # homogeneous strains of at most 3 %: the volume within ±9 %
        assert abs(a.get_volume() / len(a) / 16.0 - 1) < 0.09
    again = near_equilibrium("W", "bcc", 16.0, 12, seed=3)
    assert all(np.allclose(a.positions, b.positions) for a, b in zip(out, again, strict=True))
    only = near_equilibrium("W", "bcc", 16.0, 4, kinds=("strained",))
    assert {a.info["group"] for a in only} == {"strained"} and {len(a) for a in only} == {2}
    with pytest.raises(DataError, match="choose from"):
        near_equilibrium("W", "bcc", 16.0, 4, kinds=("liquid",))
    assert "fault" not in {a.info["group"] for a in near_equilibrium("Mg", "hcp", 23.0, 14)}
    with pytest.raises(DataError, match="has none of them"):
        near_equilibrium("Mg", "hcp", 23.0, 4, kinds=("fault",))


def test_fault_cells_are_slipped_slabs_of_the_usf_system():
    """A "fault" cell is the usf_110 slab (6 (110) planes, 6 Å vacuum) with its upper three
    planes slipped along x ([-111]) by a fraction of a/2<111>: the lower half stays where the
    perfect slab has it, the upper half moves rigidly by that fraction."""
    a0 = (2 * 16.0) ** (1 / 3)
    faults = [
        a for a in near_equilibrium("W", "bcc", 16.0, 28, seed=1) if a.info["group"] == "fault"
    ]
    assert len(faults) == 4
    for f in faults:
        z = np.sort(f.positions[:, 2])
        planes = np.split(z, np.flatnonzero(np.diff(z) > 1.0) + 1)  # rattle 0.03 Å, spacing 2.2 Å
        assert [len(p) for p in planes] == [3] * 6 and f.cell[2, 2] - (z[-1] - z[0]) > 6.0
        assert f.cell[0, 0] == pytest.approx(a0 * np.sqrt(3) / 2)
    perfect, slipped = _fault_slab("W", "bcc", a0, 0.0), _fault_slab("W", "bcc", a0, 0.25)
    shift = (slipped.positions - perfect.positions)[:, 0] % perfect.cell[0, 0]
    upper = perfect.positions[:, 2] > np.median(perfect.positions[:, 2])
    assert np.allclose(slipped.positions[~upper], perfect.positions[~upper])
    assert np.allclose(shift[upper], 0.25 * a0 * np.sqrt(3) / 2)


def test_compound_crystal_and_its_elemental_references():
    phase, v, nn = crystal_state("CuI")
    assert phase == "zincblende" and v > 0 and nn > 2
    pool = near_equilibrium("CuI", phase, v, 6)
    assert all(sorted(set(a.get_chemical_symbols())) == ["Cu", "I"] for a in pool)
    refs = elemental_references(["Cu", "I"], {"I": "dimer"}, n=3)
    formulas = [a.get_chemical_formula() for a in refs]
    assert formulas == ["Cu4"] * 3 + ["I2"] * 3
    bonds = [a.get_distance(0, 1, mic=True) for a in refs if len(a) == 2]
    assert bonds[0] < bonds[1] < bonds[2] and bonds[2] / bonds[0] == pytest.approx(1.1 / 0.9)
    assert {a.info["group"] for a in refs} == {"reference"}
