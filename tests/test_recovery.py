"""Recovery with nobody at hand: a worker killed, the database away, a learning worker's
helpers. Each fault test prints the time it measured (`pytest -s` shows it)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from agent.inbox.lease import LeaseKeeper
from agent.store.db import (
    FileStatus,
    IngestedFile,
    Result,
    get_engine,
    init_db,
    make_engine,
    utcnow,
)
from benchmarks.mixed_drops import child_pids
from tests.conftest import POSTGRES_URL, add_batch, postgres_url
from tests.proxy import TcpProxy
from tests.stack import Stack, free_port, home_with_batches, sheet, start_redis
from tests.synthetic import write_history
from workers import tasks

# what the defaults promise: an ingest cut short is taken over within a minute
RECOVERY_BOUND_SECONDS = 60.0


def test_recovery_keeps_asking_until_the_database_answers(monkeypatch):
    answers = iter([OperationalError("SELECT", {}, Exception("refused"))] * 3 + [([4], [7])])

    def unfinished_work(_engine):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    queued = []
    waits = []
    monkeypatch.setattr(tasks, "_engine", lambda: None)
    monkeypatch.setattr(tasks.batches, "unfinished_work", unfinished_work)
    monkeypatch.setattr(tasks.time, "sleep", waits.append)
    monkeypatch.setattr(tasks.retrain, "apply_async", lambda **kw: queued.append(("retrain", kw)))
    monkeypatch.setattr(
        tasks.propose_batch, "apply_async", lambda **kw: queued.append(("propose", kw))
    )
    tasks.requeue_unfinished_work(first_wait=1.0, longest_wait=3.0)
    assert waits == [1.0, 2.0, 3.0]  # backed off, capped, and never gave up
    assert [(name, kw["args"]) for name, kw in queued] == [("retrain", [4]), ("propose", [7])]


def lease_until(engine, file_id: int):
    with Session(engine) as session:
        return session.get(IngestedFile, file_id).lease_until


def test_a_lease_lives_as_long_as_its_keeper_and_no_longer(engine):
    with Session(engine, expire_on_commit=False) as session:
        row = IngestedFile(sha256="a" * 64, original_name="B001-S01.csv", size_bytes=1,
                           lease_until=utcnow() + timedelta(seconds=0.6))  # fmt: skip
        session.add(row)
        session.commit()
    with LeaseKeeper(engine, row.id, lease_seconds=0.6):
        time.sleep(1.5)  # two and a half leases: held only by renewing
        assert lease_until(engine, row.id) > utcnow()
    time.sleep(0.8)  # its keeper gone (as with its worker), the lease runs out
    assert lease_until(engine, row.id) < utcnow()
    # a finished row is never held again
    with Session(engine) as session:
        session.get(IngestedFile, row.id).status = FileStatus.ARCHIVED
        session.commit()
    assert LeaseKeeper(engine, row.id, lease_seconds=5).renew() is False


def recovery_env(home: Path, broker: str, **settings: str) -> dict[str, str]:
    """The services' environment: the default lease, resubmit and visibility timeout, since
    those are what is tested; inotify hands a file on 0.2 s after its close."""
    return {**os.environ, "LABLOOP_HOME": str(home), "LABLOOP_BROKER_URL": broker,
            "LABLOOP_SETTLE_SECONDS": "0.2", "PYTHONUNBUFFERED": "1", **settings}  # fmt: skip


def retest_sheet(path: Path, rows: int) -> Path:
    """A result sheet of ``rows`` re-tests of batch 1: seconds of work for a worker."""
    lines = [f"B001-S{row % 10 + 1:02d},{200 + row % 30}.5,ok," for row in range(rows)]
    path.write_text("sample_id,initial_discharge_mah_g,status,reason\n" + "\n".join(lines) + "\n")
    return path


@pytest.fixture
def home_on_own_redis(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A home with batches, and a Redis server of this test's own (killed at the end):
    yields the home and the broker URL."""
    port = free_port()
    broker = start_redis(port)
    home = tmp_path / "home"
    home_with_batches(home).dispose()
    yield home, f"redis://127.0.0.1:{port}/0"
    broker.terminate()
    broker.wait()


@pytest.mark.redis
def test_a_file_held_by_a_killed_ingest_worker_is_recorded_within_a_minute(
    tmp_path, home_on_own_redis
):
    home, broker_url = home_on_own_redis
    env = recovery_env(home, broker_url)
    watcher = Stack(home, env, tmp_path / "watch.log", args=["watch"])
    ingest = Stack(home, env, tmp_path / "ingest.log",
                   args=["worker", "--queue", "ingest", "--concurrency", "2"])  # fmt: skip
    try:
        watcher.start()
        ingest.start()
        retest_sheet(home / "inbox" / "retests.csv", rows=2000)
        held = lambda: ingest.count(IngestedFile, status="processing") == 1  # noqa: E731
        assert ingest.wait_for(held, timeout=60), ingest.log.read_text()[-3000:]
        os.kill(ingest.process.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        ingest.process.wait()
        assert ingest.count(IngestedFile, status="processing") == 1  # killed mid-file
        ingest.start()  # as `labloop run` or the compose restart policy does
        archived = lambda: ingest.count(IngestedFile, status="archived") == 1  # noqa: E731
        assert ingest.wait_for(archived, timeout=RECOVERY_BOUND_SECONDS + 30), (
            ingest.log.read_text()[-3000:]
        )
        recovered_s = time.monotonic() - killed_at
        print(f"\nkill -9 of the ingest worker mid-file -> file recorded: {recovered_s:.1f} s")
        assert recovered_s < RECOVERY_BOUND_SECONDS
        assert ingest.count(IngestedFile) == 1
        assert ingest.count(Result) == 2000  # the half-done attempt stored nothing twice
    finally:
        for service in (watcher, ingest):
            service.stop()


@pytest.fixture
def proxied_database():
    """A schema of its own on PostgreSQL, reached through a proxy the test can stop:
    yields (the URL through the proxy, the direct URL, the proxy)."""
    schema = f"labloop_outage_{uuid.uuid4().hex[:8]}"
    with create_engine(POSTGRES_URL).begin() as admin:
        admin.execute(text(f'CREATE SCHEMA "{schema}"'))
    proxy = TcpProxy(free_port(), ("127.0.0.1", 5432))
    proxy.start()
    direct = postgres_url(schema)
    through = direct.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    yield through, direct, proxy
    proxy.stop()
    with create_engine(POSTGRES_URL).begin() as admin:
        admin.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.mark.redis
@pytest.mark.postgres
def test_files_dropped_while_the_database_is_down_are_recorded_soon_after_it_is_back(
    tmp_path, proxied_database
):
    """Half a minute of outage, twice an ingest task's own retries (at most 1 + 2 + 4 + 8 s
    of back-off, then it gives up): every file dropped meanwhile is recorded within one
    resubmit_after_seconds (20 s) of the database coming back. Before, each waited for its
    task's jittered retries (up to a minute apart), then for the 300 s resubmit."""
    through, direct, proxy = proxied_database
    engine = make_engine(direct)
    init_db(engine)
    add_batch(engine, 1)
    port = free_port()
    broker = start_redis(port)
    home = tmp_path / "home"
    env = recovery_env(home, f"redis://127.0.0.1:{port}/0", LABLOOP_DATABASE_URL=through)
    watcher = Stack(home, env, tmp_path / "watch.log", args=["watch"])
    ingest = Stack(home, env, tmp_path / "ingest.log",
                   args=["worker", "--queue", "ingest", "--concurrency", "2"])  # fmt: skip
    inbox = home / "inbox"

    def archived() -> int:
        with Session(engine) as session:
            query = select(func.count()).select_from(IngestedFile)
            return session.exec(query.where(IngestedFile.status == "archived")).one()

    try:
        inbox.mkdir(parents=True)
        watcher.start()
        ingest.start()
        sheet(inbox / "B001-S01.csv", "B001-S01", 220.0)  # the worker has met the database
        # two services starting on a loaded machine: allow for a slow start
        assert watcher.wait_for(lambda: archived() == 1, timeout=120), ingest.log.read_text()
        proxy.stop()
        for slot in range(2, 10):
            sheet(inbox / f"B001-S{slot:02d}.csv", f"B001-S{slot:02d}", 220.0)
            time.sleep(0.5)
        time.sleep(30)
        assert archived() == 1  # nothing could be recorded meanwhile
        proxy.start()
        back_at = time.monotonic()
        assert watcher.wait_for(lambda: archived() == 9, timeout=90), ingest.log.read_text()
        recovered_s = time.monotonic() - back_at
        print(f"\ndatabase back after 30 s -> all 8 files dropped meanwhile: {recovered_s:.1f} s")
        assert recovered_s < 20.0 + 10.0  # one resubmit, plus time to read on a busy machine
        assert not list(inbox.glob("B001-*.csv"))
    finally:
        for service in (watcher, ingest):
            service.stop()
        broker.terminate()
        broker.wait()
        engine.dispose()


@pytest.mark.postgres
def test_a_process_that_met_the_database_down_migrates_it_once_it_is_back(proxied_database):
    through, direct, proxy = proxied_database
    proxy.stop()
    with pytest.raises(OperationalError):
        get_engine(through)  # a worker's first task, during an outage
    proxy.start()
    engine = get_engine(through)
    with Session(engine) as session:  # the schema is there: the engine was not kept half made
        assert session.exec(select(func.count()).select_from(IngestedFile)).one() == 0
    engine.dispose()


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie waiting for its reaper is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.redis
def test_a_killed_learning_worker_leaves_no_process_behind(tmp_path, home_on_own_redis):
    home, broker_url = home_on_own_redis
    # a search long enough to be killed in the middle of
    env = recovery_env(home, broker_url, LABLOOP_SEARCH_ITERATIONS="200",
                       LABLOOP_COMPARE_MODELS="false", LABLOOP_ENSEMBLE_SIZE="2")  # fmt: skip
    staging = tmp_path / "staging"
    staging.mkdir()
    sheets = [
        sheet(staging / f"B001-S{i:02d}.csv", f"B001-S{i:02d}", 215.0 + i) for i in range(1, 11)
    ]
    history = write_history(tmp_path / "history.csv", rows=300, seed=5)
    for args in (["import-history", str(history)], ["ingest", *map(str, sheets)]):
        done = subprocess.run([*Stack.command(), *args], env=env, capture_output=True,
                              text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr  # the batch is complete: its retrain queued
    learning = Stack(home, env, tmp_path / "learning.log", args=["worker", "--queue", "learning"])
    helpers: list[int] = []
    try:
        learning.start()
        searching = lambda: "labloop.retrain" in learning.log.read_text()  # noqa: E731
        assert learning.wait_for(searching, timeout=60), learning.log.read_text()[-3000:]
        time.sleep(3.0)  # well into the random search
        helpers = child_pids(learning.process.pid)
        assert "succeeded" not in learning.log.read_text()  # killed mid-retrain
        os.kill(learning.process.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        learning.process.wait()
        while any(alive(pid) for pid in helpers) and time.monotonic() - killed_at < 30:
            time.sleep(0.1)
        left = [pid for pid in helpers if alive(pid)]
        print(f"\nkill -9 of the learning worker mid-retrain: {len(helpers)} child processes, "
              f"{len(left)} left after {time.monotonic() - killed_at:.1f} s")  # fmt: skip
        assert left == []
        assert time.monotonic() - killed_at < 5.0
    finally:
        for pid in helpers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        learning.stop()
