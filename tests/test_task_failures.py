"""A task that gives up is shown by `labloop status` and the page until it is resolved:
a real learning worker on the real Redis (db 15), a retrain that fails, then succeeds."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import update
from sqlmodel import Session, select

from agent.config import FAST_BUDGET, Settings
from agent.loop.batches import campaign_space
from agent.loop.history_import import import_history
from agent.store.db import Batch, BatchState, Heartbeat, ModelRun, TaskFailure, init_db, make_engine
from agent.web.app import create_app
from tests.conftest import add_batch
from tests.synthetic import write_history
from workers.app import make_app
from workers.supervisor import worker_command

REDIS_URL = "redis://127.0.0.1:6379/15"
SMALL = {**FAST_BUDGET, "LABLOOP_SEED": "3"}


def wait_for(predicate: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


@pytest.fixture
def redis_home(tmp_path: Path) -> Iterator[Settings]:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    settings = Settings(home=tmp_path / "home", broker_url=REDIS_URL, heartbeat_seconds=1)
    settings.ensure_folders()
    yield settings
    client.flushdb()


def env_of(settings: Settings) -> dict[str, str]:
    return {**os.environ, **SMALL, "LABLOOP_HOME": str(settings.home),
            "LABLOOP_BROKER_URL": REDIS_URL, "LABLOOP_HEARTBEAT_SECONDS": "1",
            "COLUMNS": "250"}  # fmt: skip


def status(settings: Settings, *command: str) -> str:
    """What ``labloop status`` (or another read-only ``command``) prints."""
    done = subprocess.run([sys.executable, "-m", "agent.cli", *(command or ["status"])],
                          env=env_of(settings), capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.redis
def test_a_failed_retrain_is_shown_until_a_rerun_trains_the_batch(
    redis_home: Settings, tmp_path: Path
) -> None:
    engine = make_engine(redis_home.database_url)
    init_db(engine)
    batch = add_batch(engine, 1)
    with Session(engine) as session:  # every result in, as the last ingest leaves it
        session.exec(update(Batch).where(Batch.id == batch.id).values(state=BatchState.COMPLETE))
        session.commit()
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        worker_command(["learning"], 1, "learning"),
        env=env_of(redis_home),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    celery = make_app(redis_home)
    page = create_app(redis_home, celery).test_client()
    try:
        beating = wait_for(lambda: count(engine, Heartbeat), timeout=60)
        assert beating, log.read_text()[-3000:]

        # no history: nothing to learn from, the retrain gives up at once
        celery.send_task("labloop.retrain", args=[1], queue="learning")
        assert wait_for(lambda: count(engine, TaskFailure), timeout=60), log.read_text()[-3000:]
        shown = status(redis_home)
        assert "retrain of batch 1" in shown and "NotEnoughData" in shown, shown
        assert "learning worker: beat" in shown
        assert "complete, retrain failed" in shown
        assert "complete, retrain failed" in status(redis_home, "batch", "list")
        html = page.get("/").get_data(as_text=True)
        assert "Batch 1: retrain failed" in html
        assert "retrain of batch 1 failed: NotEnoughData" in html
        assert "the model is retraining" not in html and "model retraining batch 1" not in html

        history = write_history(tmp_path / "history.csv", rows=60)
        import_history(engine, history, campaign_space(redis_home))
        celery.send_task("labloop.retrain", args=[1], queue="learning")
        busy = wait_for(lambda: busy_with(engine) == "retraining batch 1", timeout=60)
        assert busy, log.read_text()[-3000:]
        html = page.get("/").get_data(as_text=True)
        assert "model retraining batch 1" in html
        # busy, not dead: a solo worker deep in a fit cannot answer pings, but it beats
        assert "learning worker: busy retraining batch 1, beat" in html
        assert wait_for(lambda: count(engine, ModelRun), timeout=120), log.read_text()[-3000:]
        shown = status(redis_home)
        assert "retrain of batch 1" not in shown and "NotEnoughData" not in shown, shown
        html = page.get("/").get_data(as_text=True)
        assert "retrain failed" not in html and "NotEnoughData" not in html
        assert "No task has given up." in html
    finally:
        worker.kill()
        worker.wait(timeout=30)
        engine.dispose()


def count(engine, model) -> int:  # noqa: ANN001 - an Engine and a table
    with Session(engine) as session:
        return len(session.exec(select(model)).all())


def busy_with(engine) -> str | None:  # noqa: ANN001 - an Engine
    with Session(engine) as session:
        row = session.exec(select(Heartbeat).where(Heartbeat.service == "learning")).first()
    return row.busy_with if row else None
