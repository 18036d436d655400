"""Queue and worker facts: the real Redis (db 9), the embedded broker's folder, a real worker."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from flask.testing import FlaskClient

from agent.config import Settings
from agent.store.db import init_db, make_engine
from agent.web.app import create_app
from workers.app import make_app
from workers.queues import WorkerLine, WorkerProbe, broker_words, queue_counter
from workers.supervisor import worker_command

REDIS_URL = "redis://127.0.0.1:6379/9"


def shown_depth(page: str, queue: str) -> tuple[str, ...]:
    """The waiting, running and retrying cells of ``queue``'s row on the page."""
    row = re.search(rf'<tr id="queue-{queue}">(.*?)</tr>', page, re.S)
    assert row, page
    return tuple(re.findall(r'class="num \w+">([^<]*)</td>', row.group(1)))


def home(tmp_path: Path, **overrides: Any) -> Settings:
    settings = Settings(home=tmp_path / "home", **overrides)
    settings.ensure_folders()
    init_db(make_engine(settings.database_url))
    return settings


@pytest.fixture
def redis_home(tmp_path: Path) -> Iterator[Settings]:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield home(tmp_path, broker_url=REDIS_URL)
    client.flushdb()


def queue_tasks(client: FlaskClient) -> dict[str, int]:
    waiting = client.get("/api/queues").get_json()["queues"]["waiting"]
    return {q["name"]: q["tasks"] for q in waiting}


def send(celery: Celery, ingest: int, learning: int) -> None:
    """Tasks queued as the watcher and a finished batch queue them, with no worker to take them."""
    for i in range(ingest):
        celery.send_task("labloop.ingest_file", args=[f"B001-S{i + 1:02d}.csv"], queue="ingest")
    for _ in range(learning):
        celery.send_task("labloop.retrain", args=[1], queue="learning")


def wait_for(predicate: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


@pytest.mark.redis
def test_tasks_waiting_on_redis_are_counted(redis_home: Settings) -> None:
    celery = make_app(redis_home)
    send(celery, ingest=3, learning=1)
    client = create_app(redis_home, celery).test_client()
    # the first look does not wait for the workers; their answer comes in the background
    started = time.monotonic()
    first = client.get("/api/queues").get_json()
    assert time.monotonic() - started < 0.3
    assert first["workers"]["checked_at"] is None
    assert first["workers"]["note"] == "asking the workers…"
    assert {q["name"]: q["tasks"] for q in first["queues"]["waiting"]} == {
        "ingest": 3,
        "learning": 1,
    }
    page = client.get("/").get_data(as_text=True)
    assert "Redis at redis://127.0.0.1:6379/9" in page
    assert '<td class="num waiting">3</td>' in page

    answered = wait_for(
        lambda: client.get("/api/queues").get_json()["workers"]["checked_at"], timeout=5
    )
    assert answered, "the workers were never asked"
    assert "no worker answered" in client.get("/api/queues").get_json()["workers"]["note"]


def test_tasks_waiting_on_the_embedded_broker_are_counted(tmp_path: Path) -> None:
    settings = home(tmp_path)
    assert settings.embedded_broker
    celery = make_app(settings)
    send(celery, ingest=2, learning=3)
    assert len(list((settings.state / "broker" / "queue").glob("*.msg"))) == 5
    client = create_app(settings, celery).test_client()
    assert queue_tasks(client) == {"ingest": 2, "learning": 3}
    assert "Broker: embedded (a folder: " in client.get("/").get_data(as_text=True)


@pytest.mark.redis
def test_a_live_worker_is_seen_and_remembered_when_it_stops(
    redis_home: Settings, tmp_path: Path
) -> None:
    env = {**os.environ, "LABLOOP_HOME": str(redis_home.home), "LABLOOP_BROKER_URL": REDIS_URL}
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        worker_command(["learning"], 1, "webtest"), env=env, stdout=log, stderr=subprocess.STDOUT
    )
    probe = WorkerProbe(make_app(redis_home).control, "Redis", timeout=0.5)
    try:
        seen = wait_for(lambda: probe.refresh().workers, timeout=30)
        assert seen, (tmp_path / "worker.log").read_text()[-2000:]
        (line,) = seen
        assert line.name.startswith("webtest@") and line.answering and line.running == 0
        assert (datetime.now(UTC) - line.last_heard).total_seconds() < 5
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    after = probe.refresh()
    assert after.workers == [WorkerLine(line.name, False, line.last_heard, 0)]
    assert "no worker answered" in after.note


class FakeInspect:
    def __init__(self, control: FakeControl) -> None:
        self.control = control

    def ping(self) -> dict[str, Any]:
        self.control.calls.append("ping")
        if self.control.error:
            raise self.control.error
        return {name: {"ok": "pong"} for name in self.control.active}

    def active(self) -> dict[str, list[dict[str, Any]]]:
        self.control.calls.append("active")
        return self.control.active


class FakeControl:
    """Stands in for celery's Control: answers as `inspect().ping()` / `.active()` do."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.error: Exception | None = None
        self.active: dict[str, list[dict[str, Any]]] = {
            "ingest@lab": [
                {"name": "labloop.ingest_file", "args": ["B004-S07.mpt"], "time_start": 1.7e9}
            ]
        }

    def inspect(self, timeout: float, limit: int | None = None) -> FakeInspect:
        return FakeInspect(self)


def test_the_worker_probe_caches_skips_and_remembers() -> None:
    control, now = FakeControl(), [100.0]
    probe = WorkerProbe(control, "embedded broker", max_age=5.0, clock=lambda: now[0])
    facts = probe.refresh()
    assert [(w.name, w.answering, w.running) for w in facts.workers] == [("ingest@lab", True, 1)]
    (task,) = facts.running
    assert (task.task, task.argument) == ("reading a file", "B004-S07.mpt")
    assert task.started_at == datetime.fromtimestamp(1.7e9, UTC)

    assert probe.facts() is facts and control.calls == ["ping", "active"]  # fresh: not asked

    control.active = {}  # the worker stopped: nobody answers the ping, so no `active` question
    now[0] += 6
    probe.facts()
    wait_for(lambda: probe.facts() is not facts, timeout=2)
    assert control.calls == ["ping", "active", "ping"]
    (gone,) = probe.facts().workers
    assert not gone.answering and gone.last_heard == facts.workers[0].last_heard

    control.error = NotImplementedError("no broadcast")
    broken = probe.refresh()
    assert not broken.available
    assert broken.note == "not available on the embedded broker: no broadcast"


@pytest.fixture(params=[pytest.param("redis", marks=pytest.mark.redis), "embedded"])
def any_home(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "redis":
        return request.getfixturevalue("redis_home")
    return home(tmp_path)


def test_tasks_a_worker_holds_running_or_for_a_retry_count_in_the_depth(
    any_home: Settings, tmp_path: Path
) -> None:
    """On Redis, from the messages taken and not yet acknowledged; on the embedded broker,
    which forgets a message once taken, from the workers' heartbeats."""
    from agent.loop.batches import campaign_space
    from agent.loop.history_import import import_history
    from tests.synthetic import write_history

    engine = make_engine(any_home.database_url)
    history = write_history(tmp_path / "history.csv", rows=120)
    import_history(engine, history, campaign_space(any_home))
    engine.dispose()
    # an empty file just written: the worker leaves it and tries again in 20 s (an ETA)
    (any_home.inbox / "B001-S01.csv").write_bytes(b"")
    env = {**os.environ, "LABLOOP_HOME": str(any_home.home),
           "LABLOOP_BROKER_URL": any_home.broker_url,
           "LABLOOP_CUT_SHORT_GRACE_SECONDS": "120"}  # fmt: skip
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        worker_command(["ingest", "learning"], 1, "depth"),
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    celery = make_app(any_home)
    client = create_app(any_home, celery).test_client()

    def depth() -> dict[str, tuple[int, int, int]]:
        waiting = client.get("/api/queues").get_json()["queues"]["waiting"]
        return {q["name"]: (q["tasks"], q["running"], q["retrying"]) for q in waiting}

    try:
        celery.send_task("labloop.ingest_file", args=["B001-S01.csv"], queue="ingest")
        retrying = wait_for(lambda: depth()["ingest"] == (0, 0, 1), timeout=60)
        assert retrying, (depth(), log.read_text()[-3000:])
        # a retrain at full budgets takes a while: one runs, the next waits behind it
        for _ in range(2):
            celery.send_task("labloop.retrain", args=[1], queue="learning")
        both = wait_for(lambda: depth() == {"ingest": (0, 0, 1), "learning": (1, 1, 0)}, 60)
        assert both, (depth(), log.read_text()[-3000:])
        page = client.get("/").get_data(as_text=True)
        assert shown_depth(page, "ingest") == ("0", "0", "1")
        assert shown_depth(page, "learning") == ("1", "1", "0")
    finally:
        worker.kill()
        worker.wait(timeout=30)


def test_the_page_and_the_command_name_the_broker_in_the_same_words(tmp_path: Path):
    """The embedded broker is a folder, not a URL; a Redis password is never shown."""
    settings = home(tmp_path)
    embedded = queue_counter(make_app(settings)).broker
    assert embedded == broker_words(settings.broker_url, settings.state / "broker")
    assert embedded == f"embedded (a folder: {settings.state / 'broker'}, no server)"
    secret = "redis://:hunter2@127.0.0.1:6379/9"
    assert "hunter2" not in broker_words(secret)
    assert broker_words(secret).startswith("Redis at redis://")
