"""Celery tasks: a few lines each, calling the domain in ``agent``."""

from __future__ import annotations

import logging
from functools import lru_cache

from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import OperationalError

from agent import campaign
from agent.config import get_settings
from agent.ingest import Ingestor
from workers.app import INGEST_QUEUE, app

log = logging.getLogger(__name__)

# worth another try: a locked SQLite file, a database or broker blip
TRANSIENT = (OperationalError, RedisConnectionError, TimeoutError)


@lru_cache(maxsize=1)
def _ingestor() -> Ingestor:
    settings = get_settings()
    settings.ensure_folders()
    return Ingestor(settings)


@app.task(
    name="labloop.ingest_file",
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=10,
)
def ingest_file(name: str) -> dict[str, object]:
    """Record one inbox file (``name`` relative to the inbox). Safe to run twice."""
    ingestor = _ingestor()
    report = ingestor.ingest(name)
    for batch_id in report.batch_ids:
        campaign.record_progress(ingestor.engine, batch_id)
    return {"name": report.name, "status": report.status, "reason": report.reason}


def submit_ingest(name: str) -> None:
    """Queue the ingest of one inbox file; raises when the broker cannot take it."""
    ingest_file.apply_async(
        args=[name],
        queue=INGEST_QUEUE,
        retry=True,
        retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5},
    )
