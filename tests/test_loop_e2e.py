"""The learning loop through real processes on the real Redis.

* full chain: history imported -> `labloop propose` -> ten result sheets dropped into the
  inbox of a running `labloop run` -> batch-002.csv appears with ten valid, new recipes;
* exactly once: two ingest worker processes record a batch's ten results at the same
  moment, twenty times over, and each batch queues exactly one retrain; a learning worker
  then turns those into exactly one model and one recipe file per batch.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time

import pytest
import redis
from celery import Celery
from sqlmodel import Session, select

from agent.config import FAST_BUDGET
from agent.loop.recipe_files import read_recipe_file
from agent.space.design import DesignSpace
from agent.store.db import Batch, IngestedFile, ModelRun
from tests.stack import Stack, home_with_batches, sheet
from tests.synthetic import capacity, write_history

pytestmark = pytest.mark.redis
# a Redis database of this file's own: test files run side by side (pytest -n)
REDIS_URL = "redis://127.0.0.1:6379/6"

SMALL_BUDGET = {**FAST_BUDGET, "LABLOOP_SEED": "1", "LABLOOP_SETTLE_SECONDS": "0.3"}


@pytest.fixture
def stack(tmp_path) -> Stack:
    redis.Redis.from_url(REDIS_URL).flushdb()
    home = tmp_path / "home"
    env = {**os.environ, **SMALL_BUDGET, "LABLOOP_HOME": str(home),
           "LABLOOP_BROKER_URL": REDIS_URL, "PYTHONUNBUFFERED": "1"}  # fmt: skip
    running = Stack(home, env, tmp_path / "stack.log")
    yield running
    running.stop()


def labloop(stack: Stack, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "agent.cli", *args], env=stack.env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_ten_results_in_the_inbox_produce_the_next_recipe_file(stack, tmp_path):
    space = DesignSpace.load()
    history = write_history(tmp_path / "history.csv", rows=150, seed=2)
    assert "150 experiments added" in labloop(stack, "import-history", str(history))
    assert "batch 1" in labloop(stack, "propose")
    first = read_recipe_file(stack.home / "recipes" / "batch-001.csv", space)
    stack.start()
    import pandas as pd

    measured = capacity(pd.DataFrame([s.recipe for s in first]))
    for sample, value in zip(first, measured, strict=True):
        sheet(stack.inbox / f"{sample.sample_id}.csv", sample.sample_id, round(value, 1))
    second_file = stack.home / "recipes" / "batch-002.csv"
    assert stack.wait_for(second_file.exists, timeout=120), stack.log.read_text()[-4000:]
    second = read_recipe_file(second_file, space)  # validates each recipe
    assert [s.sample_id for s in second] == [f"B002-S{i:02d}" for i in range(1, 11)]
    old = {tuple(sorted(s.recipe.items())) for s in first}
    new = {tuple(sorted(s.recipe.items())) for s in second}
    assert len(new) == 10 and not new & old
    assert {s.model_version for s in second} == {2}
    engine = stack.database()
    with Session(engine) as session:
        states = dict(session.exec(select(Batch.number, Batch.state)).all())
    assert states == {1: "trained", 2: "proposed"}


def queued_retrains(client: redis.Redis) -> list[tuple[str, int]]:
    """(task name, batch number) of every message waiting in the learning queue."""
    queued = []
    for raw in client.lrange("learning", 0, -1):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        queued.append((message["headers"]["task"], args[0]))
    return queued


@pytest.mark.timeout(900)
@pytest.mark.parametrize("repeats", [6, pytest.param(20, marks=pytest.mark.slow, id="20")])
def test_concurrent_results_trigger_exactly_one_retrain_per_batch(stack, tmp_path, repeats):
    engine = home_with_batches(stack.home, repeats)
    ingest_workers = [Stack(stack.home, stack.env, tmp_path / f"ingest{i}.log",
                            args=["worker", "--queue", "ingest", "--concurrency", "2"])
                      for i in range(2)]  # fmt: skip
    client = redis.Redis.from_url(REDIS_URL)
    sender = Celery(broker=REDIS_URL)
    try:
        for worker in ingest_workers:
            worker.start()
        for number in range(1, repeats + 1):
            names = []
            for slot in range(1, 11):
                sample = f"B{number:03d}-S{slot:02d}"
                names.append(sheet(stack.inbox / f"{sample}.csv", sample, 215.0 + slot).name)
            for name in names:  # all ten queued at once, for four worker processes
                sender.send_task("labloop.ingest_file", args=[name], queue="ingest")
            done = lambda n=number: stack.count(IngestedFile, status="archived") == 10 * n  # noqa: E731
            assert ingest_workers[0].wait_for(done, timeout=60), (
                tmp_path / "ingest0.log"
            ).read_text()[-3000:]
            retrain = ("labloop.retrain", number)
            queued = lambda r=retrain: queued_retrains(client).count(r) >= 1  # noqa: E731
            assert ingest_workers[0].wait_for(queued, timeout=20)
            time.sleep(0.5)  # a second retrain, if any, would be queued by now
            assert queued_retrains(client).count(retrain) == 1
        assert len(queued_retrains(client)) == repeats
    finally:
        for worker in ingest_workers:
            worker.stop()

    history = write_history(tmp_path / "history.csv", rows=60, seed=4)
    labloop(stack, "import-history", str(history))
    learning = Stack(stack.home, stack.env, tmp_path / "learning.log",
                     args=["worker", "--queue", "learning", "--concurrency", "1"])  # fmt: skip
    try:
        learning.start()
        recipes = stack.home / "recipes"
        finished = lambda: len(list(recipes.glob("batch-*.csv"))) >= repeats  # noqa: E731
        # a retrain per batch, each fitting the GBM, the GP and the region error: ~5 s each
        # on an idle 2-core machine, several times that when other jobs share it
        assert learning.wait_for(finished, timeout=600), learning.log.read_text()[-3000:]
    finally:
        learning.stop()
    with Session(engine) as session:
        triggers = session.exec(select(ModelRun.trigger_batch)).all()
    assert sorted(triggers) == list(range(1, repeats + 1))
    assert len(list((stack.home / "recipes").glob("batch-*.csv"))) == repeats
