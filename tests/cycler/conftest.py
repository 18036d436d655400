"""Fixtures for the cycler reader tests: where the real exports and the local test data are."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CYCLER_FILES

TEST_DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="session")
def cycler_files() -> Path:
    return CYCLER_FILES


@pytest.fixture(scope="session")
def local_data() -> Path:
    return TEST_DATA
