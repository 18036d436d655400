"""Faults the running stack must survive, with real processes on real Redis.

* many mixed drops at once: every file ends in exactly one of archive/ or quarantine/,
  with exactly one row (CI drops 200; `benchmarks/mixed_drops.py` drops 1,000);
* kill -9 of the ingest worker mid-batch and of the learning worker mid-retrain: after
  restart every file is recorded once and the batch's retrain happens once;
* kill -9 of what runs ingest tasks under `labloop run` while 200 files land, on Redis and
  on the embedded broker: ingest goes on and every file still ends in one place;
* the broker stopped while files keep arriving: nothing is lost once it is back;
* a worker that dies under `labloop run` is started again.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
from sqlmodel import Session, select

from agent.config import EMBEDDED_BROKER, FAST_BUDGET
from agent.store.db import Batch, IngestedFile, ModelRun, Result, make_engine
from benchmarks.mixed_drops import (
    DropSet,
    check_conservation,
    check_slow_copies,
    count_rows,
    drop_all,
    kill_ingest_runner,
    make_drops,
    prepare_home,
    settled,
)
from tests.stack import Stack, free_port, home_with_batches, sheet, start_redis
from tests.synthetic import write_history

pytestmark = pytest.mark.redis

FAST = {
    "LABLOOP_SETTLE_SECONDS": "0.2",
    "LABLOOP_INGEST_LEASE_SECONDS": "3",
    "LABLOOP_BROKER_VISIBILITY_TIMEOUT_SECONDS": "5",
    "LABLOOP_RESUBMIT_AFTER_SECONDS": "5",
    **FAST_BUDGET,
    # a retrain long enough (seconds) to kill a worker in the middle of
    "LABLOOP_SEARCH_ITERATIONS": "12",
    "LABLOOP_CV_FOLDS": "5",
    "PYTHONUNBUFFERED": "1",
}


def environment(home: Path, broker: str) -> dict[str, str]:
    return {**os.environ, **FAST, "LABLOOP_HOME": str(home), "LABLOOP_BROKER_URL": broker}


def kill_group(stack: Stack) -> None:
    """kill -9 the process and its pool children (it runs in a session of its own)."""
    os.killpg(stack.process.pid, signal.SIGKILL)
    stack.process.wait()


def mixed_drops_stack(tmp_path: Path, broker: str) -> tuple[Path, DropSet, Stack]:
    """A home whose batches name 200 samples, 200 drops staged for it, `labloop run` up."""
    home, staging = tmp_path / "home", tmp_path / "staging"
    staging.mkdir()
    prepare_home(home, 200)
    drops = make_drops(staging, 200, huge_mb=20)
    (home / "inbox").mkdir()
    shutil.copyfile(staging / "masses.csv", home / "inbox" / "masses.csv")
    stack = Stack(home, environment(home, broker), tmp_path / "run.log")
    stack.start()
    return home, drops, stack


def test_mixed_drops_end_in_exactly_one_place(tmp_path):
    url = "redis://127.0.0.1:6379/12"
    redis.Redis.from_url(url).flushdb()
    home, drops, stack = mixed_drops_stack(tmp_path, url)
    try:
        drop_all(drops.first_wave, home / "inbox", slow=drops.slow)
        assert stack.wait_for(lambda: settled(home, len(drops.first_wave)), timeout=180)
        drop_all(drops.second_wave, home / "inbox")
        assert stack.wait_for(lambda: settled(home, drops.total), timeout=120)
        assert stack.process.poll() is None  # the services are still up
    finally:
        stack.stop()
    counts = check_conservation(home, drops.total)
    assert counts["archived rows"] >= 90  # the valid exports, each recorded once
    assert counts["quarantined rows"] >= len(drops.second_wave)
    # copied in chunks with pauses longer than the settle time: read whole all the same
    assert check_slow_copies(home, drops.slow) == len(drops.slow) > 0
    # two names for the same new bytes at once: one archived, the other its duplicate
    twins = twin_rows(home)
    assert twins and all(sorted(statuses) == ["archived", "quarantined"] for statuses in twins)
    # names that are not UTF-8 are recorded, escaped
    assert undecodable_rows(home) and all("\\xe9" in name for name in undecodable_rows(home))


def twin_rows(home: Path) -> list[list[str]]:
    engine = make_engine(f"sqlite:///{home / 'var' / 'labloop.db'}")
    with Session(engine) as session:
        rows = session.exec(select(IngestedFile).where(IngestedFile.original_name.like("twin-%")))
        pairs: dict[str, list[str]] = {}
        for row in rows:
            pairs.setdefault(row.original_name.split("-")[1], []).append(row.status)
    engine.dispose()
    return list(pairs.values())


def undecodable_rows(home: Path) -> list[str]:
    engine = make_engine(f"sqlite:///{home / 'var' / 'labloop.db'}")
    with Session(engine) as session:
        names = session.exec(
            select(IngestedFile.original_name).where(IngestedFile.original_name.like("re-test %"))
        ).all()
    engine.dispose()
    return list(names)


@pytest.mark.parametrize("broker", ["redis", "embedded"])
def test_killed_ingest_costs_a_retry_not_the_inbox(tmp_path, broker: str):
    """kill -9 of what runs ingest tasks while 200 files land: every file still ends once.

    The issue killed one prefork pool child: on the embedded broker an idle child holds
    the lock of the pipe all children take tasks from, so its death left no task running
    again while the worker looked alive. Ingest workers now run tasks in threads, so what
    runs them, and what this test kills, is the ingest worker process itself (were a pool
    back, `kill_ingest_runner` would kill one of its children: the issue's case). Its
    unacknowledged tasks cost a retry: Redis delivers them again after the visibility
    timeout, and on the embedded broker the watcher hands their files on again.
    """
    url = "redis://127.0.0.1:6379/14" if broker == "redis" else EMBEDDED_BROKER
    if broker == "redis":
        redis.Redis.from_url(url).flushdb()
    home, drops, stack = mixed_drops_stack(tmp_path, url)
    half = len(drops.first_wave) // 2
    try:
        drop_all(drops.first_wave[:half], home / "inbox")
        assert stack.wait_for(lambda: count_rows(home) >= 20, timeout=120)
        killed = kill_ingest_runner(stack.process.pid)
        drop_all(drops.first_wave[half:], home / "inbox")
        in_first = lambda: settled(home, len(drops.first_wave))  # noqa: E731
        assert stack.wait_for(in_first, timeout=240), (killed, stack.log.read_text()[-3000:])
        drop_all(drops.second_wave, home / "inbox")
        assert stack.wait_for(lambda: settled(home, drops.total), timeout=180), killed
        assert stack.process.poll() is None
    finally:
        stack.stop()
    check_conservation(home, drops.total)


def test_killed_workers_lose_no_file_and_retrain_once(tmp_path):
    url = "redis://127.0.0.1:6379/11"
    redis.Redis.from_url(url).flushdb()
    home = tmp_path / "home"
    engine = home_with_batches(home)
    env = environment(home, url)
    done = subprocess.run(
        [*Stack(home, env, tmp_path / "x.log").command(), "import-history",
         str(write_history(tmp_path / "history.csv", rows=300, seed=5))],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    watcher = Stack(home, env, tmp_path / "watch.log", args=["watch"])
    ingest = Stack(home, env, tmp_path / "ingest.log", args=["worker", "--queue", "ingest"])
    learning = Stack(home, env, tmp_path / "learning.log", args=["worker", "--queue", "learning"])
    staging = tmp_path / "staging"
    staging.mkdir()
    files = [
        sheet(staging / f"B001-S{i:02d}.csv", f"B001-S{i:02d}", 215.0 + i) for i in range(1, 11)
    ]
    history_results = watcher.count(Result)
    try:
        for process in (watcher, ingest):
            process.start()
        drop_all(files[:5], home / "inbox")
        assert ingest.wait_for(lambda: ingest.count(IngestedFile, status="archived") >= 1, 60)
        kill_group(ingest)  # mid-batch: some files done, some handed on, some still arriving
        drop_all(files[5:], home / "inbox")
        time.sleep(2)
        ingest.start()
        recorded = lambda: settled(home, 10) and ingest.count(Result) == history_results + 10  # noqa: E731
        assert ingest.wait_for(recorded, timeout=120), ingest.log.read_text()[-3000:]
        assert ingest.count(IngestedFile) == 10

        learning.start()
        started = lambda: "labloop.retrain" in learning.log.read_text()  # noqa: E731
        assert learning.wait_for(started, timeout=60)
        kill_group(learning)  # mid-retrain
        assert learning.count(ModelRun) == 0
        learning.start()
        recipe = home / "recipes" / "batch-002.csv"
        assert learning.wait_for(recipe.exists, timeout=180), learning.log.read_text()[-3000:]
        time.sleep(8)  # the killed worker's unacknowledged task comes back meanwhile
        with Session(engine) as session:
            triggers = session.exec(select(ModelRun.trigger_batch)).all()
            batches = session.exec(select(Batch.number)).all()
        assert triggers == [1]
        assert sorted(batches) == [1, 2]
        assert ingest.count(Result) == history_results + 10
    finally:
        for process in (watcher, ingest, learning):
            process.stop()


@pytest.mark.parametrize(
    "outage_seconds", [10.0, pytest.param(30.0, marks=pytest.mark.slow, id="30s")]
)
def test_broker_outage_loses_no_file(tmp_path, outage_seconds: float):
    port = free_port()
    broker = start_redis(port)
    home = tmp_path / "home"
    home_with_batches(home).dispose()
    stack = Stack(home, environment(home, f"redis://127.0.0.1:{port}/0"), tmp_path / "run.log")
    stack.start()
    try:
        inbox = home / "inbox"
        inbox.mkdir(exist_ok=True)
        for slot in range(1, 4):
            sheet(inbox / f"B001-S{slot:02d}.csv", f"B001-S{slot:02d}", 220.0)
        assert stack.wait_for(lambda: stack.count(Result) == 3, timeout=60)
        broker.terminate()
        broker.wait()
        deadline = time.monotonic() + outage_seconds
        slot = 4
        while time.monotonic() < deadline and slot <= 10:  # files keep arriving
            sheet(inbox / f"B001-S{slot:02d}.csv", f"B001-S{slot:02d}", 220.0)
            slot += 1
            time.sleep(outage_seconds / 8)
        time.sleep(max(0.0, deadline - time.monotonic()))
        assert stack.process.poll() is None  # the stack rode it out
        broker = start_redis(port)
        assert stack.wait_for(lambda: stack.count(Result) == slot - 1, timeout=90), (
            stack.log.read_text()[-3000:]
        )
        assert stack.count(IngestedFile) == slot - 1
    finally:
        stack.stop()
        broker.terminate()
        broker.wait()


def test_labloop_run_starts_a_dead_worker_again(tmp_path):
    home = tmp_path / "home"
    home_with_batches(home).dispose()
    env = {
        **os.environ,
        "LABLOOP_HOME": str(home),
        "LABLOOP_SETTLE_SECONDS": "0.2",
        "COLUMNS": "200",
    }
    stack = Stack(home, env, tmp_path / "run.log")
    stack.start()
    try:
        sheet(home / "inbox" / "B001-S01.csv", "B001-S01", 220.0)
        assert stack.wait_for(lambda: stack.count(Result) == 1, timeout=60)
        workers = subprocess.run(["pgrep", "-f", "-P", str(stack.process.pid), "ingest@"],
                                 capture_output=True, text=True).stdout.split()  # fmt: skip
        assert workers
        os.kill(int(workers[0]), signal.SIGKILL)
        sheet(home / "inbox" / "B001-S02.csv", "B001-S02", 221.0)
        assert stack.wait_for(lambda: stack.count(Result) == 2, timeout=60)
        assert "worker ingest exited (-9)" in stack.log.read_text()
    finally:
        stack.stop()
