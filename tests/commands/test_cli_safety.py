"""The command line never loses a user's data: real folders, every pre-existing file checked
byte for byte; provenance, log, residuals and config files of output folders."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from potforge.cli import main
from potforge.commands._output import MARKER
from potforge.data import attach_labels, write_extxyz
from potforge.errors import DataError

SPEC = "snap(twojmax=2,rcutfac=4.0)+const"


def _snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative names)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _kept(before: dict[str, str], root: Path) -> None:
    after = _snapshot(root)
    for name, digest in before.items():
        assert after.get(name) == digest, f"{name} was changed or deleted"


@pytest.fixture(scope="module")
def cu_file(tmp_path_factory) -> Path:
    """Eight Cu cells labelled by ASE's EMT (a real calculator)."""
    out = []
    for k in range(8):
        a = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 1))
        a.set_cell(a.cell * (1 + 0.01 * (k - 4)), scale_atoms=True)
        a.rattle(0.05, seed=k)
        a.calc = EMT()
        a = attach_labels(a, a.get_potential_energy(), a.get_forces(), a.get_stress())
        a.info["group"] = "strained" if k % 2 else "rattled"
        out.append(a)
    path = tmp_path_factory.mktemp("data") / "cu.extxyz"
    write_extxyz(path, out)
    return path


@pytest.fixture
def work(tmp_path, cu_file, monkeypatch) -> Path:
    """A user's folder: data/cu.extxyz, notes.txt, and cwd set to it."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cu.extxyz").write_bytes(cu_file.read_bytes())
    (tmp_path / "notes.txt").write_text("my notes\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def fit(*extra: str) -> int:
    return main(["fit", "--train", "data/cu.extxyz", "--model", SPEC, "--quiet", *extra])


def test_fit_writes_a_marked_folder_with_provenance_log_and_residuals(work, capsys):
    assert fit("--out", "run") == 0
    assert capsys.readouterr().out == ""  # --quiet
    run = work / "run"
    marker = json.loads((run / MARKER).read_text())
    assert {
        "model.json",
        "metrics.json",
        "residuals.csv",
        "parity.png",
        "group_errors.png",
        "provenance.json",
        "log.txt",
        "lammps/potential.in",
    } <= set(marker["files"])
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["argv"][:3] == ["fit", "--train", "data/cu.extxyz"]
    assert {"potforge", "numpy", "ase", "lammps"} <= set(prov["versions"])
    digest = hashlib.sha256((work / "data" / "cu.extxyz").read_bytes()).hexdigest()
    assert [i["sha256"] for i in prov["inputs"]] == [digest]
    assert "parameters, fit in" in (run / "log.txt").read_text()  # printed though --quiet
    rows = list(csv.DictReader((run / "residuals.csv").open()))
    assert len(rows) == 8 and {r["group"] for r in rows} == {"strained", "rattled"}
    assert all(
        float(r["force_max_error_eV_per_A"]) >= float(r["force_rmse_eV_per_A"]) for r in rows
    )
    lammps_in = (run / "lammps" / "potential.in").read_text()
    assert f"variable potforge_dir index {run.resolve() / 'lammps'}\n" in lammps_in  # not staging
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(run.stat().st_mode) == 0o777 & ~mask  # not mkdtemp's 0700


@pytest.mark.parametrize(
    ("out", "words"),
    [
        ("data", "holds data/cu.extxyz, an input"),
        (".", "current folder"),
        ("..", "current folder or one above"),
        ("notes.txt", "is a file"),
    ],
)
def test_fit_refuses_folders_it_must_not_touch(work, capsys, out, words):
    before = _snapshot(work.parent) if out == ".." else _snapshot(work)
    assert fit("--out", out, "--force") == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    _kept(before, work.parent if out == ".." else work)
    assert not [p for p in work.parent.iterdir() if "staging" in p.name]


def test_existing_user_folder_is_refused_even_with_force(work, capsys):
    (work / "existing").mkdir()
    (work / "existing" / "notes.txt").write_text("keep me")
    before = _snapshot(work)
    assert fit("--out", "existing", "--force") == 2
    assert "not written by potforge" in capsys.readouterr().err
    _kept(before, work)


def test_potforge_folder_needs_force_and_keeps_files_the_user_added(work, capsys):
    assert fit("--out", "run") == 0
    before = _snapshot(work)
    assert fit("--out", "run") == 2
    assert "--force" in capsys.readouterr().err
    _kept(before, work)
    (work / "run" / "my_analysis.txt").write_text("mine")
    before = _snapshot(work)
    assert fit("--out", "run", "--force") == 2
    assert "my_analysis.txt" in capsys.readouterr().err
    _kept(before, work)
    (work / "run" / "my_analysis.txt").unlink()
    (work / "run" / "lammps" / "mine.in").write_text("mine")  # files in sub-folders count too
    before = _snapshot(work)
    assert fit("--out", "run", "--force") == 2
    assert "lammps/mine.in" in capsys.readouterr().err
    _kept(before, work)
    (work / "run" / "lammps" / "mine.in").unlink()
    assert fit("--out", "run", "--force", "--alpha", "1e-6") == 0
    assert json.loads((work / "run" / "model.json").read_text())["params"]["alpha"] == 1e-6
    assert (work / "notes.txt").read_text() == "my notes\n"


def test_empty_folder_is_used(work):
    (work / "empty").mkdir()
    assert fit("--out", "empty") == 0
    assert (work / "empty" / "model.json").is_file()


def test_eval_and_uq_never_delete_the_model(work, capsys):
    assert fit("--out", "m") == 0
    before = _snapshot(work)
    assert main(["eval", "--model", "m", "--data", "data/cu.extxyz", "--out", "m"]) == 2
    assert "holds m, an input" in capsys.readouterr().err
    _kept(before, work)
    (work / "m" / "my_notes.txt").write_text("mine")  # uq updates only its own two files
    assert main(["uq", "--model", "m", "--train", "data/cu.extxyz", "--quiet"]) == 0
    assert (work / "m" / "my_notes.txt").read_text() == "mine"
    assert (work / "m" / "posterior.npz").is_file()
    assert not [p for p in (work / "m").iterdir() if "staging" in p.name]
    (work / "m" / "my_notes.txt").unlink()
    assert fit("--out", "m", "--force") == 0  # uq's files are named in the marker


def test_eval_names_its_data_set(work, capsys):
    assert fit("--out", "m") == 0
    capsys.readouterr()
    assert main(["eval", "--model", "m", "--data", "data/cu.extxyz", "--out", "e"]) == 0
    out = capsys.readouterr().out
    assert "\ncu " in out and "\ntest " not in out
    assert "test" in json.loads((work / "e" / "metrics.json").read_text())  # keys unchanged


def test_corrupt_posterior_is_one_sentence_and_uq_repairs_it(work, capsys):
    assert fit("--out", "m", "--uq", "pops") == 0
    (work / "m" / "posterior.npz").write_bytes(b"PNG not a zip")
    assert main(["eval", "--model", "m", "--data", "data/cu.extxyz", "--out", "e"]) == 2
    err = capsys.readouterr().err
    assert "posterior.npz: not a readable posterior file" in err and "Traceback" not in err
    assert main(["uq", "--model", "m", "--train", "data/cu.extxyz", "--quiet"]) == 0
    err = capsys.readouterr().err  # one line, no source line
    assert "potforge uq: warning: replacing an unreadable posterior" in err and ".py:" not in err
    assert main(["eval", "--model", "m", "--data", "data/cu.extxyz", "--out", "e"]) == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folders_are_refused_before_any_work(work, capsys):
    assert fit("--out", "m") == 0
    (work / "ro").mkdir()
    for p in (work / "ro", work / "m"):
        p.chmod(0o555)
    try:
        assert main(["eval", "--model", "m", "--data", "data/cu.extxyz", "--out", "ro/e"]) == 2
        assert "permission denied" in capsys.readouterr().err
        assert main(["uq", "--model", "m", "--train", "data/cu.extxyz"]) == 2
        assert "permission denied" in capsys.readouterr().err
    finally:
        for p in (work / "ro", work / "m"):
            p.chmod(0o755)


def test_config_file_and_group_weights(work, capsys):
    (work / "fit.toml").write_text(
        'train = ["data/cu.extxyz"]\nmodel = "snap(twojmax=2,rcutfac=4.0)+const"\n'
        "sigma-force = 0.1\nalpha = 1e-8\n[group-weight]\nrattled = 0.5\n"
    )
    assert main(["fit", "--config", "fit.toml", "--out", "c", "--alpha", "1e-6", "--quiet"]) == 0
    params = json.loads((work / "c" / "model.json").read_text())["params"]
    assert params["sigma_force"] == 0.1 and params["alpha"] == 1e-6  # command line wins
    assert params["group_weights"] == {"rattled": 0.5}
    (work / "bad.toml").write_text('train = ["data/cu.extxyz"]\nsigma_froce = 0.1\n')
    assert main(["fit", "--config", "bad.toml", "--out", "d"]) == 2
    assert "did you mean 'sigma-force'" in capsys.readouterr().err
    (work / "bad.yaml").write_text("train: [data/cu.extxyz]\nalpha: -1\n")
    assert main(["fit", "--config", "bad.yaml", "--out", "d"]) == 2
    assert "alpha" in capsys.readouterr().err and not (work / "d").exists()


def test_help_loads_no_numerical_package():
    code = (
        "import sys\nfrom potforge.cli import main\n"
        "for verb in ([], ['fit'], ['eval'], ['uq'], ['demo'], ['label'], ['db'], "
        "['properties']):\n"
        "    try:\n        main([*verb, '--help'])\n    except SystemExit:\n        pass\n"
        "heavy = {'numpy', 'scipy', 'sklearn', 'ase', 'lammps', 'matplotlib'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_demo_uq_properties_chain_and_default_folder_numbering(tmp_path, monkeypatch, capsys):
    """The README's recipe: the demo's folder holds its labelled data, `uq` adds a posterior
    (and its marker names the new file, so --force still replaces the folder), `properties`
    gives bounds; a second demo without --out does not touch the first."""
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--quiet"]) == 0
    assert main(["demo", "--quiet"]) == 0
    first, second = tmp_path / "runs" / "demo", tmp_path / "runs" / "demo-2"
    assert (first / "train.extxyz").is_file() and (second / "model.json").is_file()
    capsys.readouterr()
    assert main(["uq", "--model", str(first), "--train", str(first / "train.extxyz")]) == 0
    err = capsys.readouterr().err
    assert "not those the model was fitted on" not in err  # extxyz round trip is the same data
    assert "posterior.npz" in json.loads((first / MARKER).read_text())["files"]
    assert (
        main(["properties", "--model", str(first), "--element", "W", "--qoi", "a0", "--quiet"]) == 0
    )
    assert "a0" in capsys.readouterr().out
    assert main(["demo", "--out", str(first), "--force", "--quiet"]) == 0
    assert not (first / "posterior.npz").exists()  # replaced by a fresh demo folder


def test_uq_updates_its_two_files_together_or_not_at_all(work, capsys):
    """A model.json that cannot be replaced (here: a folder in its way) leaves the previous
    posterior and model.json in place, with one sentence."""
    from potforge.commands._output import replace_files

    assert fit("--out", "m", "--uq", "pops") == 0
    before = _snapshot(work / "m")

    def write(tmp):
        (tmp / "posterior.npz").write_bytes(b"new")
        (tmp / "zz.json").write_text("{}")

    (work / "m" / "zz.json").mkdir()  # cannot be replaced by a file
    with pytest.raises(DataError, match="cannot replace zz.json .*the folder is as it was"):
        replace_files(work / "m", write)
    (work / "m" / "zz.json").rmdir()
    _kept(before, work / "m")
    assert not [p for p in (work / "m").iterdir() if "staging" in p.name]


def test_sigterm_removes_the_staging_folder_and_keeps_the_old_output(work):
    """A batch system's SIGTERM (sent here by the process to itself while it writes the staged
    folder) ends the command with status 143 and leaves the earlier output as it was."""
    assert fit("--out", "run") == 0
    before = _snapshot(work)
    code = (
        "import os, signal, sys\n"
        "import potforge.model.plots as plots\n"
        "plots.parity_plot = lambda *a, **k: os.kill(os.getpid(), signal.SIGTERM)\n"
        "from potforge.cli import main\n"
        f"sys.exit(main(['fit', '--train', 'data/cu.extxyz', '--model', '{SPEC}', "
        "'--out', 'run', '--force', '--quiet']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True)
    assert out.returncode == 143, out.stderr
    assert "terminated" in out.stderr and "Traceback" not in out.stderr
    _kept(before, work)
    assert not [p for p in work.iterdir() if "staging" in p.name]


def test_more_jobs_than_cores_is_capped_with_a_warning(work, capsys):
    assert fit("--out", "run", "--jobs", str((os.cpu_count() or 1) + 7)) == 0
    assert "cores here: using" in capsys.readouterr().err
