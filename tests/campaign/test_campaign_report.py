"""The campaign report: built from stage outputs only, one offline HTML file, checked in a real
headless Chromium (page loads, every image renders, no console errors, a screenshot)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from potforge.campaign.report import build_report

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
QOIS = {  # name: (value, unit, sigma, reference, tolerance)
    "a0": (3.167, "Å", 0.002, 3.165, 0.01),
    "C11": (522.1, "GPa", 4.1, 523.0, 15.0),
    "C12": (204.3, "GPa", 3.2, 203.0, 10.0),
    "C44": (160.8, "GPa", 2.9, 161.0, 10.0),
    "E_vac": (3.41, "eV", 0.09, 3.56, 0.1),  # accurate fails: |3.41 - 3.56| > 0.1
    "E_surf_100": (3.98, "J/m²", 0.05, 4.02, 0.2),
    "B": (310.2, "GPa", 3.5, 309.7, 10.0),
}


def _qoi(value: float, unit: str, sigma: float, ref: float, tol: float) -> dict:
    lower, upper = value - 2 * sigma, value + 2 * sigma
    verdicts = {
        "precision_met": sigma <= tol,
        "reference_inside": lower <= ref <= upper,
        "accurate": abs(value - ref) <= tol,
    }
    reasons = [f"{k} failed" for k, v in verdicts.items() if not v]
    return {
        "value": value,
        "unit": unit,
        "sigma": sigma,
        "lower": lower,
        "upper": upper,
        "reference": ref,
        "tolerance": tol,
        "reasons": reasons,
        **verdicts,
    }


def _write(folder: Path, rel: str, data: object) -> None:
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _campaign_folder(folder: Path) -> Path:
    """Every file of the output-folder contract, with realistic numbers."""
    rng = np.random.default_rng(0)
    t = "2025-06-01T10:{:02d}:{:02d}+00:00"
    stages = ["generate", "select", "fit", "uq", "active", "properties"]
    timeline = [
        {
            "stage": s,
            "status": "done",
            "started": t.format(2 * i, 0),
            "finished": t.format(2 * i + 1, 30),
            "oracle_calls": 40 * i,
            "message": "",
        }
        for i, s in enumerate(stages)
    ]
    timeline[4].update(status="failed", message="MD exploded at step 1200 (T = 3000 K) <stop>")
    timeline[5].update(status="skipped", started=None, finished=None, oracle_calls=0)
    _write(folder, "timeline.json", timeline)
    _write(
        folder,
        "provenance.json",
        {
            "potforge": "0.1.0",
            "python": "3.11.2",
            "started": t.format(0, 0),
            "host": "node-7",
            "argv": ["potforge", "run", "campaign.toml"],
            "seed": 7,
            "lammps": {"version": "2Aug2023"},
        },
    )
    qois = {name: _qoi(*args) for name, args in QOIS.items()}
    _write(folder, "properties.json", {"element": "W", "qois": qois})
    parity, errors = {}, {}
    for g, (e0, n) in {"bulk": (-12.9, 60), "vacancy": (-12.7, 25)}.items():
        e_ref = e0 + 0.05 * rng.standard_normal(n)
        f_ref = 1.5 * rng.standard_normal(30 * n)
        e_pred, f_pred = (
            e_ref + 0.004 * rng.standard_normal(n),
            f_ref + 0.08 * rng.standard_normal(30 * n),
        )
        parity[g] = {
            "energy_ref": e_ref.tolist(),
            "energy_pred": e_pred.tolist(),
            "force_ref": f_ref.tolist(),
            "force_pred": f_pred.tolist(),
        }
        de, df = 1e3 * (e_pred - e_ref), f_pred - f_ref
        errors[g] = {
            "n": n,
            "energy_rmse": float(np.sqrt(np.mean(de**2))),
            "energy_mae": float(np.mean(abs(de))),
            "force_rmse": float(np.sqrt(np.mean(df**2))),
            "force_mae": float(np.mean(abs(df))),
        }
    _write(folder, "stages/fit/parity.json", {"groups": parity})
    _write(folder, "stages/fit/errors.json", {"groups": errors, "overall": errors["bulk"]})
    _write(
        folder,
        "stages/select/fim.json",
        {
            "data_eigenvalues": np.logspace(6, -3, 30).tolist(),
            "target_eigenvalues": (np.logspace(4, -6, 30) * rng.uniform(0.5, 2, 30)).tolist(),
        },
    )
    calls = [10, 25, 45, 70, 100]
    _write(
        folder,
        "stages/select/curve.json",
        {
            "iterations": [
                {
                    "oracle_calls": c,
                    "sigma": {q: a[2] * 8 / (i + 1) for q, a in QOIS.items()},
                    "tolerance": {q: a[4] for q, a in QOIS.items()},
                }
                for i, c in enumerate(calls)
            ]
        },
    )
    _write(
        folder,
        "stages/active/curve.json",
        {
            "iterations": [
                {
                    "oracle_calls": 100 + 20 * i,
                    "force_rmse": 0.2 / (i + 1),
                    "energy_rmse": 9.0 / (i + 1),
                    "predicted_sigma": None if i == 0 else 0.15 / i,
                }
                for i in range(5)
            ]
        },
    )
    _write(
        folder,
        "stages/generate/entropy.json",
        {
            "curves": {
                "generated": {"sizes": [10, 20, 40, 80], "entropy": [2.1, 2.9, 3.5, 3.9]},
                "random": {"sizes": [10, 20, 40, 80], "entropy": [1.8, 2.3, 2.7, 2.9]},
            }
        },
    )
    (folder / "campaign.resolved.toml").write_text('element = "W"\n[fit]\nterms = ["snap"]\n')
    return folder


def test_report_from_properties_only_is_offline(tmp_path):
    """Only properties.json: the report still builds, every other section says 'not run', and
    the page names no URL at all."""
    _write(tmp_path, "properties.json", {"element": "W", "qois": {"a0": _qoi(*QOIS["a0"])}})
    html = build_report(tmp_path).read_text()
    assert "1 of 1 targets met" in html
    assert html.count("not run") == 9  # every section but the two from properties.json
    assert "http://" not in html and "https://" not in html and "<script" not in html


def test_report_survives_a_malformed_file(tmp_path):
    _write(tmp_path, "stages/fit/errors.json", {"groups": 3})
    (tmp_path / "timeline.json").write_text("{not json")
    html = build_report(tmp_path).read_text()
    assert "stages/fit/errors.json could not be read" in html
    assert "timeline: not run" in html


def test_report_renders_in_headless_chromium(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is absent (scripts/bootstrap.sh test installs it)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    folder = _campaign_folder(tmp_path / "out")
    page = build_report(folder)
    html = page.read_text()
    assert "6 of 7 targets met" in html and "accurate failed" in html
    assert "&lt;stop&gt;" in html  # the failed stage's message, escaped
    assert "http://" not in html and "https://" not in html

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,2400",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.get(page.as_uri())
        assert driver.title == "potforge campaign report: W"
        images = driver.find_elements("tag name", "img")
        assert len(images) == 7
        for img in images:
            ok = driver.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth", img
            )
            assert ok, img.get_attribute("alt")
        assert "6 of 7 targets met" in driver.find_element("css selector", ".summary").text
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe
        shot = tmp_path / "report.png"
        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(1280, min(int(height) + 300, 8000))
        assert driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
    finally:
        driver.quit()
