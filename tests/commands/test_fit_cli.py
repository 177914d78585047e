"""The fit/eval command line, on real data and real LAMMPS."""

from __future__ import annotations

import json

import pytest

from potforge.cli import main
from potforge.data import read_structures, write_extxyz

SMALL = "snap(twojmax=4,rcutfac=4.6)+pair(n_basis=8,rcut=5.0)+zbl+const"


def test_cli_fit_and_eval(mo_train, mo_test, tmp_path, capsys):
    out = tmp_path / "fit"
    sub = read_structures(mo_train)[::4]
    write_extxyz(tmp_path / "train.xyz", sub)
    rc = main(
        [
            "fit",
            "--train",
            str(tmp_path / "train.xyz"),
            "--test",
            str(mo_test),
            "--stress-order",
            "mlearn-mo",
            "--out",
            str(out),
            "--model",
            SMALL,
        ]
    )
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in (
        "energy_mae_meV_per_atom",
        "energy_rmse_meV_per_atom",
        "force_mae_eV_per_A",
        "force_rmse_eV_per_A",
        "stress_rmse_GPa",
    ):
        assert metrics["train"][key] > 0 and metrics["test"][key] > 0
    assert metrics["n_params"] > 10 and metrics["fit_seconds"] > 0
    assert metrics["test"]["force_rmse_eV_per_A"] < 0.6
    assert (out / "parity.png").stat().st_size > 10_000
    assert (out / "lammps" / "potential.in").exists()
    assert "Elastic" in capsys.readouterr().out
    rc = main(
        [
            "eval",
            "--model",
            str(out),
            "--data",
            str(mo_test),
            "--stress-order",
            "mlearn-mo",
            "--out",
            str(tmp_path / "ev"),
        ]
    )
    assert rc == 0
    ev = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert ev["test"]["force_rmse_eV_per_A"] == pytest.approx(
        metrics["test"]["force_rmse_eV_per_A"], rel=1e-9
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--train", "MISSING.json"], "no such file"),
        (["--train", "{bad}", "--model", "snap(twojmax=2)+nosuchterm"], "unknown term"),
    ],
)
def test_cli_bad_input_leaves_nothing(tmp_path, capsys, args, message, mo_train):
    args = [str(mo_train) if a == "{bad}" else a for a in args]
    out = tmp_path / "out"
    rc = main(["fit", *args, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert not list(tmp_path.glob(".out.*"))
