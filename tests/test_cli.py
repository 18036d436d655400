"""The `labloop` command line: backfill, batches, status (in-process, no broker)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from agent.db import init_db, make_engine
from tests.conftest import add_batch

DATA = Path(__file__).parent / "data" / "ingest"


def labloop(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LABLOOP_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_backfill_records_a_folder_and_leaves_the_originals(tmp_path):
    home = tmp_path / "home"
    (home / "var").mkdir(parents=True)
    engine = make_engine(f"sqlite:///{home / 'var' / 'labloop.db'}")
    init_db(engine)
    add_batch(engine, 1)
    engine.dispose()
    old = tmp_path / "old-results"
    shutil.copytree(DATA, old)
    before = sorted(p.name for p in old.iterdir())
    done = labloop(home, "ingest", str(old))
    assert done.returncode == 0, done.stderr
    # B001-results and the re-test are recorded; the manual trial too; two are refused
    assert "3 archived, 2 quarantined" in done.stdout
    assert "unknown sample id B003-S99" in done.stdout
    assert sorted(p.name for p in old.iterdir()) == before
    listing = labloop(home, "batch", "list")
    assert "B001" in listing.stdout and "running" in listing.stdout


def test_closing_an_unknown_batch_is_a_clear_error(tmp_path):
    done = labloop(tmp_path, "batch", "close", "7", "--reason", "cells lost")
    assert done.returncode != 0
    assert "batch 7 is not open" in done.stderr + done.stdout
