"""Fixtures for the cycler reader tests: where the real exports and the local test data are."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CYCLER_FILES, REPO

TEST_DATA = Path(__file__).resolve().parents[1] / "data"
# BioLogic GCPL files from yadg (GPL-3.0): read from the shared folder beside the repo, never
# copied into it (see tests/data/cycler_files/SOURCES.md)
SHARED_GCPL = REPO.parent / "shared" / "cycler_files" / "biologic" / "gcpl"


@pytest.fixture(scope="session")
def cycler_files() -> Path:
    return CYCLER_FILES


@pytest.fixture(scope="session")
def local_data() -> Path:
    return TEST_DATA


@pytest.fixture(scope="session")
def gcpl_files() -> Path:
    if not SHARED_GCPL.is_dir():
        pytest.skip(f"{SHARED_GCPL} is absent: the GPL-3.0 GCPL files are not shipped")
    return SHARED_GCPL
