"""Celery signals wired to the domain: a worker's heartbeat, and tasks that gave up."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import (
    task_failure,
    task_postrun,
    task_prerun,
    task_received,
    worker_ready,
    worker_shutdown,
)
from sqlalchemy.exc import SQLAlchemyError

from agent.ops.heartbeat import Beater
from agent.ops.task_failures import record_failure
from agent.ops.task_names import doing
from workers.tasks import _engine, _settings

log = logging.getLogger(__name__)

_beater: Beater | None = None


@worker_ready.connect
def _start_beating(sender: Any, **_kwargs: Any) -> None:
    """Beat as the worker's Celery name says: "learning@host" beats as service "learning"."""
    global _beater
    service, _, host = sender.hostname.partition("@")
    settings = _settings()
    _beater = Beater(settings.database_url, service, settings.heartbeat_seconds, host=host).start()


@worker_shutdown.connect
def _stop_beating(**_kwargs: Any) -> None:
    if _beater is not None:
        _beater.stop()


@task_received.connect
def _held_for_retry(request: Any, **_kwargs: Any) -> None:
    """A task with a retry time (ETA) waits in this worker, unseen by the embedded broker."""
    if _beater is not None and request.eta:
        _beater.retrying(request.id, _queue(request.delivery_info))


@task_prerun.connect
def _busy(task_id: str, task: Any, args: Any = (), **_kwargs: Any) -> None:
    if _beater is not None:
        _beater.busy(task_id, doing(task.name, args or ()), _queue(task.request.delivery_info))


@task_postrun.connect
def _idle(task_id: str, **_kwargs: Any) -> None:
    if _beater is not None:
        _beater.done(task_id)


def _queue(delivery_info: dict[str, Any] | None) -> str:
    return (delivery_info or {}).get("routing_key") or ""


@task_failure.connect
def _record_failure(sender: Any, exception: BaseException, args: Any = (), **_kwargs: Any) -> None:
    try:
        record_failure(_engine(), sender.name, args or (), exception)
    except SQLAlchemyError as error:  # the database is what failed: the log has to do
        log.error("%s gave up (%s) and could not be recorded: %s", sender.name, exception, error)
