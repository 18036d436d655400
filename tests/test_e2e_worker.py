"""End to end: `labloop run` (watcher + real Celery workers) on Redis and on the embedded broker.

Files copied into the inbox must be recorded within seconds, bad files quarantined,
duplicates recorded once, and files dropped while the stack was down ingested at start.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
import redis
from sqlmodel import Session, select

from agent.store.db import Heartbeat, IngestedFile, Result
from tests.stack import REDIS_URL, Stack, home_with_batches, sheet


@pytest.fixture(params=["redis", "embedded"])
def stack(request, tmp_path) -> Iterator[Stack]:
    home = tmp_path / "home"
    env = {
        **os.environ,
        "LABLOOP_HOME": str(home),
        "LABLOOP_SETTLE_SECONDS": "0.3",
        "PYTHONUNBUFFERED": "1",
    }
    if request.param == "redis":
        redis.Redis.from_url(REDIS_URL).flushdb()
        env["LABLOOP_BROKER_URL"] = REDIS_URL
    home_with_batches(home).dispose()
    running = Stack(home, env, tmp_path / "labloop-run.log")
    yield running
    running.stop()


def test_files_in_the_inbox_are_recorded_through_real_workers(stack, tmp_path):
    # dropped while nothing runs: must be picked up at start
    sheet(stack.inbox / "B001-S01.csv", "B001-S01", 220.5)
    stack.start()
    assert stack.wait_for(lambda: stack.count(Result) == 1, timeout=60), stack.log.read_text()

    staging = tmp_path / "staging"
    staging.mkdir()
    for slot in range(2, 11):
        sheet(staging / f"B001-S{slot:02d}.csv", f"B001-S{slot:02d}", 210 + slot)
    (staging / "garbage.csv").write_bytes(os.urandom(2048))
    for path in sorted(staging.iterdir()):
        shutil.copy(path, stack.inbox / path.name)
    # the garbage is new and looks cut off: it is judged once its grace (6 settle times) is
    # over, so wait for where each file ends, not for a moment when none is being read
    assert stack.wait_for(
        lambda: (
            stack.count(IngestedFile, status="archived") == 10
            and stack.count(IngestedFile, status="quarantined") == 1
        ),
        timeout=30,
    ), stack.log.read_text()[-3000:]
    assert stack.count(IngestedFile) == 11
    assert stack.count(Result) == 10

    # the same bytes again under another name: one more row, no new result
    shutil.copy(staging / "B001-S05.csv", stack.inbox / "B001-S05 copy.csv")
    # the row is committed before the file moves (a crash between them is redone from the
    # row), so wait for the inbox to empty as well as for the row
    assert stack.wait_for(
        lambda: (
            stack.count(IngestedFile, status="quarantined") == 2 and not any(stack.inbox.iterdir())
        ),
        20,
    ), sorted(p.name for p in stack.inbox.iterdir())
    assert stack.count(Result) == 10
    quarantined = sorted(p.name for p in (stack.home / "quarantine").iterdir())
    assert any(name.endswith("garbage.csv.error.txt") for name in quarantined)
    assert len(list((stack.home / "archive").iterdir())) == 10

    # the watcher and both workers beat, each under its own name (a worker slow to start
    # on a loaded machine beats a moment later)
    def beating() -> list[str]:
        with Session(stack.database()) as session:
            return sorted(session.exec(select(Heartbeat.service)).all())

    assert stack.wait_for(lambda: beating() == ["ingest", "learning", "watcher"], 60), beating()


def test_real_cycler_files_are_recorded_and_shown_by_status(tmp_path):
    """The issue's "done": real exports (with a mass sidecar) through `labloop run`,
    broken ones quarantined, all of it visible in `labloop status`."""
    import subprocess
    import sys

    from tests.conftest import CYCLER_FILES

    home = tmp_path / "home"
    env = {**os.environ, "LABLOOP_HOME": str(home), "LABLOOP_SETTLE_SECONDS": "0.3",
           "COLUMNS": "250"}  # fmt: skip
    home_with_batches(home).dispose()
    stack = Stack(home, env, tmp_path / "run.log")
    stack.start()
    try:
        inbox = stack.inbox
        inbox.mkdir(parents=True, exist_ok=True)
        (inbox / "masses.csv").write_text("sample_id,active_mass_mg\nB001-S01,10\nB001-S03,10\n")
        drops = {
            "maccor/maccor_002.txt": "B001-S01.txt",
            "neware/neware_uio.csv": "B001-S02.csv",
            "arbin/FastCharge_000025_CH8.csv": "B001-S03.csv",
            "biologic/biol.mpr": "B001-S04.mpr",
            "novonix/test_Nova_Form-CH01-01_short.csv": "B001-S05.csv",
            "pec/Test25205.csv": "B001-S06.csv",
            "maccor/PredictionDiagnostics_000151_test.052": "B001-S07.052",
        }
        for fixture, name in drops.items():
            shutil.copy(CYCLER_FILES / fixture, inbox / name)
        finished = lambda: stack.count(IngestedFile) == 7 and stack.count(  # noqa: E731
            IngestedFile, status="processing") == 0  # fmt: skip
        assert stack.wait_for(finished, timeout=60), stack.log.read_text()[-3000:]
    finally:
        stack.stop()
    assert stack.count(IngestedFile, status="archived") == 3  # S01-S03
    assert stack.count(IngestedFile, status="quarantined") == 4
    status = subprocess.run([sys.executable, "-m", "agent.cli", "status"], env=env,
                            capture_output=True, text=True, timeout=60, check=True,
                            ).stdout  # fmt: skip
    assert "3 archived, 4 quarantined" in status
    for words in ("unsupported format", "Novonix", "PEC", "cycle 37", "no active mass",
                  "charge cutoff never reached", "no discharge"):  # fmt: skip
        assert words in status, (words, status)
