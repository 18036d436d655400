"""Celery tasks: a few lines each, calling the domain in ``agent``.

ingest_file -> (the batch's last result) retrain -> propose_batch. Every task is safe to
run twice: the database decides what is already done.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from functools import lru_cache

from celery import Task
from celery.signals import worker_ready
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from agent.config import Settings, get_settings
from agent.inbox.ingest import Ingestor
from agent.loop import batches, model_files, propose
from agent.loop.retrain import retrain as retrain_model
from agent.ops.task_names import INGEST_TASK, PROPOSE_TASK, RETRAIN_TASK
from agent.store.db import get_engine
from workers.app import app
from workers.queues import LEARNING_QUEUE

log = logging.getLogger(__name__)

# worth another try: a locked SQLite file, a database or broker blip
TRANSIENT = (OperationalError, RedisConnectionError, TimeoutError)
RETRY = {"autoretry_for": TRANSIENT, "retry_backoff": True, "retry_backoff_max": 60,
         "max_retries": 10}  # fmt: skip
# An ingest rides out a blip itself (at most 1 + 2 + 4 + 8 s of waits, within the watcher's
# default resubmit_after_seconds); a longer outage is left to the watcher, which hands a
# file still in the inbox on again every resubmit_after_seconds however long it lasts. A
# longer chain here would only pile up one waiting retry per hand-on and file.
INGEST_RETRY = {**RETRY, "retry_backoff_max": 8, "max_retries": 4}


@lru_cache(maxsize=1)
def _settings() -> Settings:
    settings = get_settings()
    settings.ensure_folders()
    return settings


def _engine() -> Engine:
    return get_engine(_settings().database_url)


@lru_cache(maxsize=1)
def _ingestor() -> Ingestor:
    return Ingestor(_settings(), _engine())


@app.task(name=INGEST_TASK, bind=True, **INGEST_RETRY)
def ingest_file(self: Task, name: str) -> dict[str, object]:
    """Record one inbox file (``name`` relative to the inbox)."""
    report = _ingestor().ingest(name)
    if report.status == "in-progress":
        # another worker holds the file; if that worker died, its lease runs out (a live
        # one renews it) and a retry takes the file over before the watcher's next resubmit
        raise self.retry(countdown=_settings().ingest_lease_seconds / 4, max_retries=20)
    if report.status == "unfinished":
        # it looks cut off and is new: judged once its writer has had the grace period
        grace = _settings().cut_short_grace
        raise self.retry(countdown=max(1.0, grace / 6), max_retries=20)
    advance_batches(report.batch_ids)
    return {"name": report.name, "status": report.status, "reason": report.reason}


def advance_batches(batch_ids: Iterable[int]) -> list[int]:
    """Move the batches a stored file touched forward and queue the retrain of each batch
    this call completed (their numbers are returned). Every way of recording results
    (the ingest task, ``labloop ingest``) goes through here."""
    completed = [
        number
        for batch_id in batch_ids
        if (number := batches.record_progress(_engine(), batch_id)) is not None
    ]
    for number in completed:
        retrain.apply_async(args=[number])
    return completed


@app.task(name=RETRAIN_TASK, **RETRY)
def retrain(batch_number: int | None = None) -> int:
    """Train a new model on everything recorded; then propose the next batch."""
    settings = _settings()
    run = retrain_model(_engine(), settings, batches.campaign_space(settings), batch_number)
    propose_batch.apply_async(args=[run.version])
    return run.version


@app.task(name=PROPOSE_TASK, **RETRY)
def propose_batch(model_version: int) -> int | None:
    """Write the next recipe file from a model version (once per version)."""
    settings = _settings()
    engine = _engine()
    run = model_files.run_by_version(engine, model_version)
    if run is None:
        raise LookupError(f"no model v{model_version}")
    batch = propose.propose_next_batch(engine, settings, batches.campaign_space(settings), run)
    return None if batch is None else batch.number


def submit_ingest(name: str) -> None:
    """Queue the ingest of one inbox file; raises when the broker cannot take it."""
    ingest_file.apply_async(
        args=[name],
        retry=True,
        retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5},
    )


@worker_ready.connect
def _finish_interrupted_work(sender, **_kwargs) -> None:
    """A learning worker starting up re-queues what a crash left undone (idempotent)."""
    queues = {queue.name for queue in sender.task_consumer.queues}
    if LEARNING_QUEUE not in queues:
        return
    # the database may be down at this moment: keep asking in the background, never give up
    threading.Thread(target=requeue_unfinished_work, daemon=True, name="recovery").start()


def requeue_unfinished_work(first_wait: float = 1.0, longest_wait: float = 60.0) -> None:
    """Re-queue what a crash left undone, waiting (with back-off) for the database."""
    wait = first_wait
    while True:
        try:
            complete, unproposed = batches.unfinished_work(_engine())
            break
        except OperationalError as error:
            log.warning("start-up recovery: database unreachable (%s); again in %.0f s",
                        error.orig or error, wait)  # fmt: skip
            time.sleep(wait)
            wait = min(longest_wait, wait * 2)
    for number in complete:
        log.info("batch %d is complete but untrained: retraining", number)
        retrain.apply_async(args=[number])
    for version in unproposed:
        log.info("model v%d proposed no batch yet: proposing", version)
        propose_batch.apply_async(args=[version])
