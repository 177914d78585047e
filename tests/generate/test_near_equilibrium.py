"""The campaign's near-equilibrium pool: structures of the kinds material properties are made of,
and the elemental reference states of a compound (potforge.generate.generator)."""

from __future__ import annotations

import numpy as np
import pytest

from potforge.errors import DataError
from potforge.generate.generator import crystal_state, elemental_references, near_equilibrium


def test_near_equilibrium_cycles_the_kinds_at_the_given_volume():
    out = near_equilibrium("W", "bcc", 16.0, 12, seed=3)
    groups = [a.info["group"] for a in out]
    assert groups[:6] == ["strained", "rattled", "strained", "vacancy", "rattled", "surface_110"]
    assert [len(a) for a in out[:6]] == [2, 16, 2, 15, 16, 8]
    strained = [a for a in out if a.info["group"] == "strained"]
    for a in strained:  # homogeneous strains of at most 3 %: the volume within ±9 %
        assert abs(a.get_volume() / len(a) / 16.0 - 1) < 0.09
    again = near_equilibrium("W", "bcc", 16.0, 12, seed=3)
    assert all(np.allclose(a.positions, b.positions) for a, b in zip(out, again, strict=True))
    only = near_equilibrium("W", "bcc", 16.0, 4, kinds=("strained",))
    assert {a.info["group"] for a in only} == {"strained"} and {len(a) for a in only} == {2}
    with pytest.raises(DataError, match="choose from"):
        near_equilibrium("W", "bcc", 16.0, 4, kinds=("liquid",))


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
