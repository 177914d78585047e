"""Shared fixtures: paths to the real DFT data in ../shared/data (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def shared_file(rel: str) -> Path:
    path = SHARED / rel
    if not path.exists():
        pytest.skip(
            f"reference data {path} not present (../shared/data is not beside the checkout)"
        )
    return path


@pytest.fixture(scope="session")
def mo_train() -> Path:
    return shared_file("mlearn/Mo/training.json")


@pytest.fixture(scope="session")
def mo_test() -> Path:
    return shared_file("mlearn/Mo/test.json")
