"""Fixtures for the cycler reader tests: where the real exports and the local test data are."""

from __future__ import annotations

from pathlib import Path

import pytest

# the real exports live beside the repository: <repo>/../shared/cycler_files (read-only)
CYCLER_FILES = Path(__file__).resolve().parents[2].parent / "shared" / "cycler_files"
TEST_DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="session")
def cycler_files() -> Path:
    if not CYCLER_FILES.is_dir():  # pragma: no cover - a checkout without shared/
        pytest.fail(f"real cycler exports not found at {CYCLER_FILES}")
    return CYCLER_FILES


@pytest.fixture(scope="session")
def local_data() -> Path:
    return TEST_DATA
