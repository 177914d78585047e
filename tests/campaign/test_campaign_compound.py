"""A compound campaign with MD active learning: zincblende SiC with LAMMPS' Tersoff (1989) SiC
potential as the oracle — the explorers start from SiC cells (bulk, an A vacancy), the frames
they label are SiC, and the property table is the zincblende one (real LAMMPS, Dask, SQLite)."""

from __future__ import annotations

import pytest

from potforge.active.starts import start_structures
from potforge.campaign.config import load_campaign
from potforge.campaign.runner import run_campaign
from potforge.errors import DataError

SIC = """
elements = ["Si", "C"]
oracle = "lammps:SiC.tersoff"
workers = 1
seed = 0
[oracle_settings]
elements = ["Si", "C"]
[budget]
oracle_calls = 14
minutes = 20.0
[targets]
a0 = 0.02
[property_settings]
structure = "zincblende"
[generate]
n = 0
near_equilibrium = 10
near_kinds = ["strained", "rattled"]
[select]
init = 6
max_iterations = 1
[fit]
model = "snap(twojmax=2,rcutfac=4.0)+zbl(inner=1.0,outer=1.5)+const"
sigma_energy = 1e-3
sigma_force = 0.1
[uq]
calibration = "none"
[active]
iterations = 1
starts = ["bulk", "vacancy"]
temperatures = [1000.0]
steps = 30
interval = 10
frames_per_iteration = 2
[refine]
rounds = 0
"""


def test_compound_starts_are_the_compounds_own_cells():
    starts = start_structures("SiC", ["bulk", "vacancy", "surface_110"], lattice="zincblende")
    assert starts["bulk"].get_chemical_formula() == "C108Si108"
    assert starts["vacancy"].get_chemical_formula() == "C108Si107"  # an A (Si) vacancy
    assert set(starts["surface_110"].get_chemical_symbols()) == {"Si", "C"}
    with pytest.raises(DataError, match="self-interstitial start, for an element"):
        start_structures("SiC", ["sia_111"])
    with pytest.raises(DataError, match="zincblende and rocksalt, not 'bcc'"):
        start_structures("SiC", ["bulk"], lattice="bcc")


def test_a_compound_campaign_explores_and_labels_the_compound(tmp_path):
    path = tmp_path / "sic.toml"
    path.write_text(SIC)
    out = tmp_path / "out"
    lines: list[str] = []
    result = run_campaign(load_campaign(path), out, say=lines.append, progress=False)
    status = {t["stage"]: t["status"] for t in result.timeline}
    assert status["active"] == "done", (result.timeline, lines)
    from potforge.data.store import Store

    store = Store(out / "campaign.db")
    frames = [a for a in store.to_atoms("ok") if len(a) > 100]  # MD frames of the 216-atom cells
    assert frames, "active learning labelled no explorer frame"
    assert all(set(a.get_chemical_symbols()) == {"Si", "C"} for a in frames)
    a0 = result.properties["qois"]["a0"]
    assert a0["reference"] == pytest.approx(4.32, abs=0.01)  # Tersoff SiC zincblende
    assert a0["value"] is not None
    assert result.oracle_calls <= 14
