"""The Celery app, built from Settings: Redis when a URL is set, else an embedded broker.

The embedded broker is kombu's filesystem transport under ``<state>/broker`` (writing each
message atomically, `workers.embedded_broker`): it needs no server, so one machine runs the
whole loop with nothing installed beside Python.
"""

from __future__ import annotations

from celery import Celery

from agent.config import Settings, get_settings
from agent.ops.task_names import INGEST_TASK, PROPOSE_TASK, RETRAIN_TASK
from workers.embedded_broker import TRANSPORT as EMBEDDED_TRANSPORT
from workers.queues import INGEST_QUEUE, LEARNING_QUEUE


def _embedded_transport_options(settings: Settings) -> dict[str, object]:
    root = settings.state / "broker"
    queue, control = root / "queue", root / "control"
    return {
        "data_folder_in": str(queue),
        "data_folder_out": str(queue),
        "control_folder": str(control),
        "store_processed": False,
        # the transport polls its folder; 0.1 s keeps a file's latency well under a second
        "polling_interval": 0.1,
    }


def make_app(settings: Settings) -> Celery:
    app = Celery("labloop", include=["workers.tasks", "workers.signals"])
    transport_options = (
        _embedded_transport_options(settings)
        if settings.embedded_broker
        # an unacknowledged task (its worker died) is delivered again after this long:
        # longer than any task runs, or a running retrain would start twice (agent.config)
        else {"visibility_timeout": settings.broker_visibility_timeout_seconds}
    )
    app.conf.update(
        broker_url=settings.broker_url,
        # kombu's filesystem transport, but writing each message atomically
        broker_transport=EMBEDDED_TRANSPORT if settings.embedded_broker else None,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        # results live in the database, not in a result backend
        task_ignore_result=True,
        # a task is acknowledged after it ran: a worker killed mid-task leaves it to be redone
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=INGEST_QUEUE,
        task_routes={
            INGEST_TASK: {"queue": INGEST_QUEUE},
            RETRAIN_TASK: {"queue": LEARNING_QUEUE},
            PROPOSE_TASK: {"queue": LEARNING_QUEUE},
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        task_send_sent_event=True,
    )
    return app


app = make_app(get_settings())
