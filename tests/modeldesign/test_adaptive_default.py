"""The adaptive default of `potforge fit` (issue 19, part 4): on an element with no hand-tuned
default it takes its cutoff from the neighbour shells and its σ's from grouped CV, the same with
and without --test; Mo keeps the hand-tuned spec (real LAMMPS, the W SNAP oracle)."""

from __future__ import annotations

import json

import pytest

from potforge.cli import main
from potforge.data.builders import w_structures
from potforge.data.readers import write_extxyz
from potforge.modeldesign.adaptive import (
    SIGMA_ENERGY_GRID,
    SIGMA_FORCE_GRID,
    adaptive_spec,
    closest_pair,
    tuned_spec,
)
from potforge.options import DEFAULT_SPEC
from potforge.oracles import make_oracle
from potforge.oracles.labelling import label_in_process


@pytest.fixture(scope="module")
def w_files(tmp_path_factory):
    oracle = make_oracle("lammps:W_2940_2017_2.snap").build()
    root = tmp_path_factory.mktemp("w")
    write_extxyz(root / "train.xyz", label_in_process(w_structures(0)[::2], oracle))
    write_extxyz(root / "test.xyz", label_in_process(w_structures(1)[1::4], oracle))
    return root


def test_spec_adapts_cutoff_and_core_to_the_data():
    from ase.build import bulk

    w = [bulk("W", "bcc", a=3.17, cubic=True).repeat(3)]
    spec, cut, shells = adaptive_spec(w)
    assert shells[:4] == pytest.approx([2.745, 3.17, 4.483, 5.257], abs=0.05)
    assert cut == pytest.approx(0.5 * (shells[2] + shells[3]), abs=0.01)
    assert f"rcutfac={cut:g}" in spec and "outer=1.6" in spec
    squeezed = [bulk("W", "bcc", a=2.0, cubic=True).repeat(2)]  # closest pair 1.73 Å
    assert closest_pair(squeezed) == pytest.approx(2.0 * 3**0.5 / 2)
    assert "outer=1.56" in adaptive_spec(squeezed)[0]  # the core stays below the data
    mo = [bulk("Mo", "bcc", a=3.16)]
    assert tuned_spec(mo) == DEFAULT_SPEC and tuned_spec(w) is None


def test_fit_without_model_adapts_and_ignores_the_test_file(w_files, tmp_path, capsys):
    train, test = str(w_files / "train.xyz"), str(w_files / "test.xyz")
    slow = ["--adapt-minutes", "30"]  # a loaded machine must not cut the grid short
    assert main(["fit", "--train", train, *slow, "--out", str(tmp_path / "a"), "--quiet"]) == 0
    args = ["fit", "--train", train, "--test", test, *slow, "--out", str(tmp_path / "b")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "adaptive default: neighbour shells" in out and "block CV" in out
    a = json.loads((tmp_path / "a" / "adaptive.json").read_text())
    b = json.loads((tmp_path / "b" / "adaptive.json").read_text())
    assert a["complete"] and len(a["trials"]) == len(SIGMA_ENERGY_GRID) * len(SIGMA_FORCE_GRID)
    for key in ("spec", "sigma_energy", "sigma_force", "cutoff", "trials"):
        assert a[key] == b[key], key  # the test file changes no decision
    best = min(a["trials"], key=lambda t: t["score"])
    assert (a["sigma_energy"], a["sigma_force"]) == (best["sigma_energy"], best["sigma_force"])
    doc = json.loads((tmp_path / "b" / "model.json").read_text())
    assert doc["spec"] == a["spec"] and doc["params"]["sigma_energy"] == a["sigma_energy"]
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert metrics["model"] == a["spec"] and metrics["test"]["force_rmse_eV_per_A"] < 0.6
    # σ's given on the command line are kept; only the cutoff and the core adapt
    assert main(["fit", "--train", train, "--model", "adaptive", "--sigma-energy", "0.002",
                 "--sigma-force", "0.3", "--out", str(tmp_path / "c"), "--quiet"]) == 0  # fmt: skip
    params = json.loads((tmp_path / "c" / "model.json").read_text())["params"]
    assert (params["sigma_energy"], params["sigma_force"]) == (0.002, 0.3)
