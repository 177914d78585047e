"""One real GPAW single point through the ``gpaw`` oracle (plane waves, 2-atom bcc W)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

gpaw = pytest.importorskip("gpaw", reason="GPAW is not installed (pip install 'potforge[dft]')")


@pytest.mark.gpaw
@pytest.mark.timeout(300)
def test_gpaw_single_point_on_compressed_bcc_w(tmp_path):
    from potforge.data.store import Store
    from potforge.oracles import make_oracle
    from potforge.oracles.labelling import label

    # low cutoff and k-points keep this to about a minute; the physics checks still bite
    oracle = make_oracle("gpaw", ecut=250, kpts=[3, 3, 3], width=0.2, maxiter=80)
    assert oracle.name == "gpaw" and oracle.version.startswith("gpaw ")
    atoms = bulk("W", "bcc", a=3.05, cubic=True)  # compressed from 3.17 Å
    shift = np.array([0.04, 0.02, -0.03])
    atoms.positions[1] += shift
    store = Store(tmp_path / "dft.db")
    report = label([atoms], oracle, store, workers=1, progress=False)  # a real Dask worker
    row = next(store.rows(include_data=True))
    assert report.ok == 1, row.data.get("message")
    energy, forces, stress = row.energy, row.forces, row.stress
    assert forces.shape == (2, 3) and stress.shape == (6,)
    # GPAW energies are relative to free atoms: bound W lies several eV/atom below them
    assert -20.0 < energy / len(atoms) < -5.0
    # two atoms: Newton's third law; the displaced atom is pulled back
    np.testing.assert_allclose(forces[0], -forces[1], atol=0.05)
    assert np.dot(forces[1], shift) < 0.0
    # a cell compressed by 4 % is under compression: negative (ASE sign) normal stress
    assert np.all(stress[:3] < -0.005), stress
    kvp = row.key_value_pairs
    assert kvp["oracle_name"] == "gpaw" and kvp["status"] == "ok" and kvp["wall_time"] > 0
    assert row.data["oracle_settings"]["ecut"] == 250
