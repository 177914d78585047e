"""The layer contract (import-linter, in pyproject.toml) holds, and it catches a wrong-way
import, function-level ones included."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )


def test_layer_contract_is_kept():
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 kept, 0 broken" in out.stdout


def test_layer_contract_catches_a_wrong_way_import(tmp_path):
    shutil.copytree(
        ROOT / "potforge", tmp_path / "potforge", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / "potforge" / "uq" / "_base.py"  # uq (arrays only) must not know the model
    target.write_text(
        target.read_text() + "\n\ndef _bad():\n    from potforge.model import "
        "LinearPotential\n\n    return LinearPotential\n"
    )
    out = _lint(tmp_path)
    assert out.returncode != 0
    assert "BROKEN" in out.stdout and "potforge.uq._base -> potforge.model" in out.stdout
