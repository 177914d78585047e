"""``potforge run``: a reduced default campaign end to end, resume with nothing relabelled,
``--from``, the output-folder rules and bad inputs (potforge.campaign.runner, real LAMMPS oracle,
real Dask cluster, real SQLite store, real Chromium-free HTML file)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from potforge.campaign.config import load_campaign
from potforge.campaign.runner import run_campaign

W_SNAP = "lammps:W_2940_2017_2.snap"
SMALL = f"""
elements = ["W"]
oracle = "{W_SNAP}"
workers = 1
seed = 0
[budget]
oracle_calls = 26
minutes = 20.0
[targets]
a0 = 0.01
C44 = "10%"
Evac = {{ tolerance = 0.3, indirect = true }}
[generate]
n = 2
atoms = [4, 6]
iterations = 3
near_equilibrium = 12
[select]
init = 10
max_iterations = 2
[fit]
model = "snap(twojmax=2,rcutfac=4.6)+zbl(inner=1.0,outer=1.6)+const"
sigma_energy = 1e-3
sigma_force = 0.1
[uq]
folds = 3
[active]
iterations = 1
starts = ["bulk"]
temperatures = [1000.0]
steps = 40
interval = 10
frames_per_iteration = 2
[refine]
rounds = 0
"""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "potforge.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def labels(out: Path) -> list[tuple]:
    """(label key, energy) of every oracle result in the campaign's store."""
    with sqlite3.connect(out / "campaign.db") as con:
        rows = con.execute(
            "SELECT t.value, s.energy FROM text_key_values t JOIN systems s ON s.id = t.id "
            "WHERE t.key = 'label_key' ORDER BY t.value"
        ).fetchall()
    return rows


@pytest.fixture(scope="module")
def campaign_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("camp") / "campaign.toml"
    path.write_text(SMALL)
    return path


@pytest.fixture(scope="module")
def finished(campaign_file) -> tuple[Path, object, list[str]]:
    out = campaign_file.parent / "out"
    lines: list[str] = []
    result = run_campaign(load_campaign(campaign_file), out, say=lines.append, progress=False)
    return out, result, lines


def test_reduced_campaign_writes_every_product(finished):
    out, result, _ = finished
    for name in (
        "campaign.resolved.toml",
        "campaign.db",
        "properties.json",
        "timeline.json",
        "provenance.json",
        "report.html",
        "model/model.json",
        "model/lammps",
    ):
        assert (out / name).exists(), name
    assert [t["status"] for t in result.timeline] == ["done"] * 6, result.timeline
    assert 0 < result.oracle_calls <= 26
    assert result.oracle_calls == len(labels(out))
    props = json.loads((out / "properties.json").read_text())
    assert set(props["qois"]) == {"a0", "C44", "Evac"}
    for name, q in props["qois"].items():
        assert q["value"] is not None and q["reference"] is not None, (name, q)
        assert q["lower"] <= q["value"] <= q["upper"], (name, q)
        for verdict in ("precision_met", "reference_inside", "accurate"):
            assert isinstance(q[verdict], bool), (name, verdict, q)
        failed = [v for v in ("precision_met", "reference_inside", "accurate") if not q[v]]
        assert bool(failed) == bool(q["reasons"]), (name, q)
    a0 = props["qois"]["a0"]
    assert abs(a0["reference"] - 3.18) < 0.05  # the W SNAP's own lattice constant
    assert props["qois"]["Evac"]["target"] is False  # indirect: reported, not targeted
    # the model in OUT/model is ASE-loadable and is the one the table describes
    from potforge.model import LinearPotential

    model = LinearPotential.load(out / "model")
    assert model.n_params == props["n_params"]


def test_resume_recomputes_nothing(finished, campaign_file):
    out, first, _ = finished
    before = labels(out)
    coef = json.loads((out / "model" / "model.json").read_text())["coef"]
    lines: list[str] = []
    again = run_campaign(load_campaign(campaign_file), out, say=lines.append, progress=False)
    assert labels(out) == before  # 0 lost, 0 duplicated
    assert any("resuming: generate, select, fit, uq, active" in line for line in lines), lines
    assert [t["message"] for t in again.timeline[:5]] == ["finished in an earlier run"] * 5
    assert again.properties["qois"] == first.properties["qois"]
    assert json.loads((out / "model" / "model.json").read_text())["coef"] == coef


def test_from_stage_reruns_later_stages_and_labels_nothing_new(finished, campaign_file):
    out, first, _ = finished
    before = labels(out)
    lines: list[str] = []
    again = run_campaign(
        load_campaign(campaign_file), out, start="fit", say=lines.append, progress=False
    )
    assert any("rerunning from fit (--from fit)" in line for line in lines), lines
    assert [t["message"] for t in again.timeline[:2]] == ["finished in an earlier run"] * 2
    assert all(t["message"] != "finished in an earlier run" for t in again.timeline[2:])
    assert labels(out) == before  # MD is seeded: the same frames, already labelled
    for name, q in again.properties["qois"].items():
        assert q["value"] == pytest.approx(first.properties["qois"][name]["value"], rel=1e-8)
    state = json.loads((out / "state.json").read_text())
    assert state["epochs"] == {"fit": 1, "uq": 1, "active": 1, "properties": 1}


def test_changed_stage_settings_rerun_from_that_stage(finished, campaign_file, tmp_path):
    out, _, _ = finished
    text = SMALL.replace("steps = 40", "steps = 30")
    changed = tmp_path / "changed.toml"
    changed.write_text(text)
    lines: list[str] = []
    run_campaign(load_campaign(changed), out, say=lines.append, progress=False)
    assert any("rerunning from active (the [active] settings changed)" in line for line in lines), (
        lines
    )


def test_another_campaign_in_the_folder_is_refused(finished, tmp_path):
    out, _, _ = finished
    other = tmp_path / "other.toml"
    other.write_text(SMALL.replace("a0 = 0.01", "a0 = 0.02"))
    before = sorted(p.name for p in out.iterdir())
    r = cli("run", str(other), "--out", str(out), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "another campaign" in r.stderr and "a0 0.01 Å → 0.02 Å" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(p.name for p in out.iterdir()) == before


def test_a_folder_with_user_files_is_refused(tmp_path, campaign_file):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    r = cli("run", str(campaign_file), "--out", str(out), cwd=tmp_path)
    assert r.returncode == 2
    assert "holds files potforge did not write (notes.txt)" in r.stderr, r.stderr
    assert (out / "notes.txt").read_text() == "my notes"
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    r = cli("run", str(campaign_file), "--out", str(out), "--force", cwd=tmp_path)
    assert r.returncode == 2 and (out / "notes.txt").read_text() == "my notes"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("[fit]", "[fitt]"), "'fitt'"),
        (("steps = 40", 'steps = "many"'), "[active] steps"),
        ((W_SNAP, "lammps:Nope.snap"), "Nope.snap"),
    ],
)
def test_bad_campaign_files_get_one_sentence(tmp_path, edit, expected):
    path = tmp_path / "bad.toml"
    path.write_text(SMALL.replace(*edit))
    r = cli("run", str(path), "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert expected in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "o").exists()


def test_unreachable_scheduler_is_one_sentence(tmp_path, campaign_file):
    r = cli(
        "run",
        str(campaign_file),
        "--out",
        str(tmp_path / "o"),
        "--scheduler",
        "tcp://127.0.0.1:9",
        cwd=tmp_path,
    )
    assert r.returncode == 2, r.stderr
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_show_default_is_the_default_campaign(tmp_path):
    r = cli("run", "--show-default", cwd=tmp_path)
    assert r.returncode == 0
    path = tmp_path / "default.toml"
    path.write_text(r.stdout)
    c = load_campaign(path)
    assert c.elements == ("W",) and c.oracle == W_SNAP


def test_example_campaigns_load():
    root = Path(__file__).resolve().parents[2] / "examples"
    gpaw = load_campaign(root / "campaign-gpaw.toml")
    assert gpaw.oracle == "gpaw" and gpaw.generate.near_kinds == ("strained",)
    try:
        cui = load_campaign(root / "campaign-cui-chgnet.toml")
    except Exception as exc:  # CHGNet is an optional extra: the sentence says how to install it
        assert "pip install" in str(exc) and "chgnet" in str(exc), exc
    else:
        assert cui.formula == "CuI" and cui.property_settings["structure"] == "zincblende"
        assert cui.active.enabled and cui.select.init >= 9  # the uq stage's 90 % quantile
    assert gpaw.select.init >= 9


def test_stage_files_write_an_unbounded_sigma_as_null(tmp_path):
    from potforge.campaign.stages import write_json

    write_json(tmp_path / "x.json", {"sigma": [float("inf"), 1.5, float("nan")], "n": 2})
    assert json.loads((tmp_path / "x.json").read_text()) == {"sigma": [None, 1.5, None], "n": 2}


def test_the_cli_offers_every_stage_for_from():
    from potforge.campaign.config import STAGES
    from potforge.commands.run import STAGE_NAMES

    assert STAGE_NAMES == STAGES
