"""Every bad input is one sentence naming the option/file/value: CLI exit status 2 without a
traceback, a PotforgeError subclass from Python.  Table-driven, on real files and models."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from potforge.cli import main
from potforge.data import attach_labels, write_extxyz
from potforge.errors import DataError, ModelError, PotforgeError
from potforge.model import LinearPotential

SPEC = "snap(twojmax=2,rcutfac=4.0)+const"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Labelled Cu cells (EMT), a PNG renamed .json, a fitted model with a POPS posterior and a
    copy of it whose posterior.npz is corrupt."""
    root = tmp_path_factory.mktemp("bad")
    data = []
    for k in range(6):
        a = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 1))
        a.rattle(0.05, seed=k)
        a.calc = EMT()
        data.append(attach_labels(a, a.get_potential_energy(), a.get_forces(), a.get_stress()))
    write_extxyz(root / "cu.extxyz", data)
    model = LinearPotential(SPEC).fit(data)
    model.fit_posterior(data)
    model.save(root / "model")
    shutil.copytree(root / "model", root / "corrupt")
    (root / "corrupt" / "posterior.npz").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (root / "picture.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
    (root / "afile").write_text("not a folder\n")
    (root / "pngmodel").mkdir()
    (root / "pngmodel" / "model.json").write_bytes((root / "picture.json").read_bytes())
    return {
        "root": root,
        "cu": root / "cu.extxyz",
        "model": root / "model",
        "corrupt": root / "corrupt",
        "png": root / "picture.json",
        "afile": root / "afile",
        "pngmodel": root / "pngmodel",
    }


FIT = ["fit", "--train", "{cu}", "--model", SPEC, "--out", "{root}/out"]
CLI_CASES = [
    # fit: model parameters (one declaration, LinearPotential.PARAMETERS)
    (FIT + ["--sigma-force", "0"], "--sigma-force"),
    (FIT + ["--sigma-energy", "-1"], "--sigma-energy"),
    (FIT + ["--sigma-stress", "nan"], "--sigma-stress"),
    (FIT + ["--alpha", "-1"], "--alpha"),
    (FIT + ["--jobs", "0"], "--jobs"),
    (FIT + ["--loss", "cauchy"], "--loss"),
    (FIT + ["--huber-delta", "1.0"], "--huber-delta applies to --loss huber only"),
    (FIT + ["--loss", "huber", "--huber-delta", "0"], "--huber-delta"),
    (FIT + ["--group-weight", "AIMD=-1"], "--group-weight AIMD"),
    (FIT + ["--group-weight", "AIMD"], "--group-weight needs KEY=VALUE"),
    (FIT + ["--config", "{root}/missing.toml"], "missing.toml"),
    # fit: posterior options
    (FIT + ["--uq", "pops", "--max-members", "0"], "--max-members"),
    (FIT + ["--uq", "pops", "--leverage-percentile", "100"], "--leverage-percentile"),
    (FIT + ["--uq", "pops", "--percentile-clipping", "50"], "--percentile-clipping"),
    (FIT + ["--uq", "bayes", "--n-sigma", "0"], "--n-sigma"),
    (FIT + ["--uq", "bayes", "--temperature", "-1"], "--temperature"),
    (FIT + ["--uq", "bootstrap", "--n-members", "1"], "--n-members"),
    (FIT + ["--uq", "pops", "--seed", "-1"], "--seed"),
    (FIT + ["--uq", "bayes", "--max-members", "5"], "--max-members applies to --uq pops"),
    # fit: files and folders
    (["fit", "--train", "{root}/none.json", "--out", "{root}/o2"], "none.json"),
    (["fit", "--train", "{png}", "--out", "{root}/o3"], "picture.json"),
    (["fit", "--train", "{cu}", "--out", "{afile}"], "is a file"),
    (["fit", "--out", "{root}/o4"], "--train is required"),
    # eval / uq
    (["eval", "--model", "{root}/nomodel", "--data", "{cu}", "--out", "{root}/e"], "nomodel"),
    (["eval", "--model", "{corrupt}", "--data", "{cu}", "--out", "{root}/e"], "posterior.npz"),
    (["eval", "--model", "{model}", "--data", "{cu}", "--out", "{model}"], "an input"),
    (
        [
            "uq",
            "--model",
            "{model}",
            "--train",
            "{cu}",
            "--method",
            "bayes",
            "--posterior",
            "hypercube",
        ],
        "--posterior applies to --method pops",
    ),
    (["uq", "--model", "{root}/nomodel", "--train", "{cu}"], "nomodel"),
    (["uq", "--model", "{model}", "--train", "{cu}", "--jobs", "-2"], "--jobs"),
    (["uq", "--model", "{model}/model.json", "--train", "{cu}"], "give the model's folder"),
    (
        ["uq", "--model", "{model}", "--train", "{cu}", "--percentile-clipping", "5"],
        "--percentile-clipping applies to --posterior hypercube only",
    ),
    (
        [
            "uq",
            "--model",
            "{model}",
            "--train",
            "{cu}",
            "--posterior",
            "hypercube",
            "--max-members",
            "5",
        ],
        "--max-members applies to the ensemble posterior only",
    ),
    (FIT + ["--config", "{png}"], "not a text file"),
    (FIT + ["--group-weight", "NoSuchGroup=0.5"], "no training structure has this group"),
    (FIT[:4] + ["pair(rcut=1e6)+const", "--out", "{root}/out"], "rcut must be a number"),
    (["eval", "--model", "{pngmodel}", "--data", "{cu}", "--out", "{root}/e"], "not a text file"),
]


def _fill(argv: list[str], files: dict[str, Path]) -> list[str]:
    return [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]


def run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse: usage line + "error: argument --x: ...", status 2
        return int(exc.code)


@pytest.mark.parametrize(("argv", "words"), CLI_CASES, ids=[" ".join(c[0][-2:]) for c in CLI_CASES])
def test_cli_bad_input(files, capsys, argv, words):
    code = run_cli(_fill(argv, files))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert words in err, err
    assert len(err.strip().splitlines()) == 1, err  # one line, argparse's errors too
    assert len(err) < 400, err  # no file dumped into the message
    assert not (files["root"] / "out").exists()  # nothing written, no work done


def _model():
    return LinearPotential(SPEC, elements=["Cu"]).setup()


PY_CASES = [
    (lambda f: LinearPotential(SPEC, sigma_force=0).setup(), ModelError, "sigma_force"),
    (lambda f: LinearPotential(SPEC, alpha=-1.0).setup(), ModelError, "alpha"),
    (lambda f: LinearPotential(SPEC, loss="lsq").setup(), ModelError, "loss"),
    (lambda f: LinearPotential(SPEC, n_jobs=0).setup(), ModelError, "n_jobs"),
    (lambda f: LinearPotential(SPEC, sigma_energy="1e-3").setup(), ModelError, "sigma_energy"),
    (lambda f: LinearPotential(SPEC, group_weights={"AIMD": -1}).setup(), ModelError, "AIMD"),
    (lambda f: LinearPotential(SPEC).set_params(sigma=1), ModelError, "sigma"),
    (lambda f: LinearPotential.load(f["corrupt"]), DataError, "posterior.npz"),
    (lambda f: LinearPotential.load(f["root"]), DataError, "model.json"),
    (
        lambda f: LinearPotential.load(f["model"]).predict_designs([], np.zeros(3)),
        ModelError,
        "parameters",
    ),
    (
        lambda f: LinearPotential.load(f["model"]).predict_designs([], np.zeros((2, 2, 2))),
        ModelError,
        "shape",
    ),
    (lambda f: LinearPotential.load(f["model"]).predict("cu.extxyz"), DataError, "str"),
]


@pytest.mark.parametrize(
    ("call", "exc", "words"), PY_CASES, ids=[f"py{k}-{c[2]}" for k, c in enumerate(PY_CASES)]
)
def test_python_bad_input(files, call, exc, words):
    with pytest.raises(exc, match=None) as info:
        call(files)
    assert isinstance(info.value, PotforgeError)
    assert words in str(info.value)
    assert "\n" not in str(info.value)
