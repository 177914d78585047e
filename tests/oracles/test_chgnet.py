"""The CHGNet oracle: real universal-potential single points (optional extra `chgnet`)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

pytest.importorskip("chgnet", reason="CHGNet not installed: pip install torch==2.13.0 '.[chgnet]'")


def test_chgnet_single_point_on_a_compound():
    from potforge.oracles import make_oracle

    atoms = bulk("CuI", "zincblende", a=6.05) * (2, 1, 1)
    atoms.rattle(0.05, seed=0)
    atoms.calc = make_oracle("chgnet").build()
    e = atoms.get_potential_energy() / len(atoms)
    f = atoms.get_forces()
    assert -4.5 < e < -1.5  # eV/atom, a bound compound
    assert np.abs(f.sum(axis=0)).max() < 1e-3  # Newton's third law
    assert 0.01 < np.abs(f).max() < 5.0
    assert atoms.get_stress().shape == (6,)
