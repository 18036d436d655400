"""End to end: `labloop run` (watcher + real Celery workers) on Redis and on the embedded broker.

Files copied into the inbox must be recorded within seconds, bad files quarantined,
duplicates recorded once, and files dropped while the stack was down ingested at start.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator

import pytest
import redis

from agent.db import IngestedFile, Result, init_db, make_engine
from tests.conftest import add_batch
from tests.stack import REDIS_URL, Stack, sheet


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
    (home / "var").mkdir(parents=True)
    engine = make_engine(f"sqlite:///{home / 'var' / 'labloop.db'}")
    init_db(engine)
    add_batch(engine, 1)
    engine.dispose()
    running = Stack(home, env, tmp_path / "labloop-run.log")
    yield running
    running.stop()


def test_files_in_the_inbox_are_recorded_through_real_workers(stack, tmp_path):
    stack.inbox.mkdir(parents=True)
    # dropped while nothing runs: must be picked up at start
    sheet(stack.inbox / "B001-S01.csv", "B001-S01", 220.5)
    stack.start()
    assert stack.wait_for(lambda: stack.count(Result) == 1, timeout=60), stack.log.read_text()

    staging = tmp_path / "staging"
    staging.mkdir()
    for slot in range(2, 11):
        sheet(staging / f"B001-S{slot:02d}.csv", f"B001-S{slot:02d}", 210 + slot)
    (staging / "garbage.csv").write_bytes(os.urandom(2048))
    started = time.monotonic()
    for path in sorted(staging.iterdir()):
        shutil.copy(path, stack.inbox / path.name)
    assert stack.wait_for(
        lambda: (
            stack.count(IngestedFile) == 11 and stack.count(IngestedFile, status="processing") == 0
        ),
        timeout=30,
    ), stack.log.read_text()[-3000:]
    elapsed = time.monotonic() - started
    assert elapsed < 20, f"ten files took {elapsed:.1f} s"
    assert stack.count(Result) == 10
    assert stack.count(IngestedFile, status="quarantined") == 1

    # the same bytes again under another name: one more row, no new result
    shutil.copy(staging / "B001-S05.csv", stack.inbox / "B001-S05 copy.csv")
    assert stack.wait_for(lambda: stack.count(IngestedFile, status="quarantined") == 2, 20)
    assert stack.count(Result) == 10
    assert sorted(p.name for p in stack.inbox.iterdir()) == []
    quarantined = sorted(p.name for p in (stack.home / "quarantine").iterdir())
    assert any(name.endswith("garbage.csv.error.txt") for name in quarantined)
    assert len(list((stack.home / "archive").iterdir())) == 10
