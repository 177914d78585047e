"""Kill-and-resume of a whole campaign: SIGKILL of ``potforge run`` (its Dask workers with it)
at a random moment inside each stage and inside a refinement round's selection, and once while
active learning labels its held-out set, then a resume;
the result must equal an uninterrupted run's — the same oracle results (none lost, none
labelled twice) and the same final model."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_campaign_refine import REFINED

pytestmark = pytest.mark.slow

POINTS = (
    *(f"— stage {s} —" for s in ("generate", "select", "fit", "uq", "active", "properties")),
    "— round 1 —",
)


def start(campaign: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "potforge.cli", "run", str(campaign), "--out", str(out), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_for(out: Path, text: str, proc: subprocess.Popen, limit: float = 600) -> bool:
    """True once ``text`` is in the campaign's log (False if the run ended first)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        log = out / "log.txt"
        if log.is_file() and text in log.read_text(encoding="utf-8"):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in the log after {limit} s")


def label_rows(out: Path) -> list[tuple]:
    with sqlite3.connect(out / "campaign.db") as con:
        return con.execute(
            "SELECT t.value, s.energy FROM text_key_values t JOIN systems s ON s.id = t.id "
            "WHERE t.key = 'label_key' ORDER BY t.value"
        ).fetchall()


def test_killed_campaign_resumes_to_the_uninterrupted_result(tmp_path):
    campaign = tmp_path / "campaign.toml"
    campaign.write_text(REFINED)
    ref = tmp_path / "ref"
    assert start(campaign, ref).wait(timeout=900) in (0, 1)
    out = tmp_path / "killed"
    rng = random.Random(7)
    kills = []
    for point in POINTS:
        proc = start(campaign, out)
        if wait_for(out, point, proc):
            time.sleep(rng.uniform(0.0, 4.0))
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                kills.append(point)
        proc.wait(timeout=60)
    assert len(kills) >= 6 and "— round 1 —" in kills, kills
    assert start(campaign, out).wait(timeout=900) in (0, 1)
    # and once while active learning labels its held-out set: resumed, those labels are its
    # own (not an earlier round's), so its budget and stored settings stay what they were
    held = tmp_path / "held"
    proc = start(campaign, held)
    assert wait_for(held, "explorers, up to", proc)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert start(campaign, held).wait(timeout=900) in (0, 1)
    for folder in (out, held, ref):
        failed = [x for x in (folder / "log.txt").read_text().splitlines() if ": failed:" in x]
        assert not failed, failed
    assert [k for k, _ in label_rows(held)] == [k for k, _ in label_rows(ref)]
    rows, ref_rows = label_rows(out), label_rows(ref)
    assert len({k for k, _ in rows}) == len(rows)  # none labelled twice
    assert [k for k, _ in rows] == [k for k, _ in ref_rows]  # none lost, none extra
    np.testing.assert_allclose([e for _, e in rows], [e for _, e in ref_rows], rtol=1e-12)
    coef = json.loads((out / "model" / "model.json").read_text())["coef"]
    ref_coef = json.loads((ref / "model" / "model.json").read_text())["coef"]
    np.testing.assert_allclose(coef, ref_coef, rtol=1e-8, atol=1e-12)
    props = json.loads((out / "properties.json").read_text())["qois"]
    ref_props = json.loads((ref / "properties.json").read_text())["qois"]
    for name, q in ref_props.items():
        assert props[name]["value"] == pytest.approx(q["value"], rel=1e-8), name
    timeline = json.loads((out / "timeline.json").read_text())
    assert [t["status"] for t in timeline] == [
        t["status"] for t in json.loads((ref / "timeline.json").read_text())
    ]
