"""Tasks that gave up: recorded with what they were for, shown until that is done.

A failure is resolved when what the task was for happened since, whoever did it (a later
task, `labloop ingest`, `labloop retrain`): the file recorded (archived or quarantined),
the batch trained, the model version's batch proposed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from agent.ops.task_names import INGEST_TASK, PROPOSE_TASK, RETRAIN_TASK, TASK_KINDS
from agent.store.db import Batch, FileStatus, IngestedFile, ModelRun, TaskFailure, as_utc
from agent.store.files import readable_name

log = logging.getLogger(__name__)

# a message is for a person to read, not a traceback
MESSAGE_CHARS = 500


@dataclass(frozen=True)
class FailureFacts:
    task: str  # ingest | retrain | propose
    subject: str
    batch_number: int | None
    error_type: str
    message: str
    failed_at: datetime

    def describe(self) -> str:
        """'retrain of batch 3 failed: LabloopError: no history yet ...'."""
        return f"{self.what} failed: {self.error_type}: {self.message}"

    @property
    def step(self) -> str:
        """What failed, as a batch's step: 'retrain', 'proposing the next batch'."""
        return {"retrain": "retrain", "propose": "proposing the next batch"}.get(self.task, "")

    @property
    def what(self) -> str:
        if self.task == "ingest":
            return f"reading {self.subject}"
        if self.task == "retrain":
            return f"retrain of batch {self.subject}" if self.subject else "retrain"
        batch = f" (after batch {self.batch_number})" if self.batch_number is not None else ""
        return f"recipe file of model v{self.subject}{batch}"


def record_failure(
    engine: Engine, task_name: str, args: Sequence[Any], error: BaseException
) -> None:
    """Record that ``task_name`` called with ``args`` gave up with ``error``."""
    kind = TASK_KINDS.get(task_name)
    if kind is None:
        return
    argument = args[0] if args else None
    subject = "" if argument is None else str(argument)
    with Session(engine) as session:
        batch = None
        if task_name == INGEST_TASK:
            subject = readable_name(subject)
        elif task_name == RETRAIN_TASK and argument is not None:
            batch = int(argument)
        elif task_name == PROPOSE_TASK and argument is not None:
            batch = session.exec(
                select(ModelRun.trigger_batch).where(ModelRun.version == int(argument))
            ).first()
        session.add(
            TaskFailure(
                task=kind,
                subject=subject,
                batch_number=batch,
                error_type=type(error).__name__,
                message=str(error)[:MESSAGE_CHARS],
            )
        )
        session.commit()
    log.error("%s %s gave up: %s: %s", kind, subject, type(error).__name__, error)


def open_failures(engine: Engine) -> list[FailureFacts]:
    """The latest failure of each task and subject that nothing resolved since, newest first."""
    with Session(engine) as session:
        rows = session.exec(select(TaskFailure).order_by(TaskFailure.id.desc())).all()
        latest: dict[tuple[str, str], TaskFailure] = {}
        for row in rows:
            latest.setdefault((row.task, row.subject), row)
        return [_facts(row) for row in latest.values() if not _resolved(session, row)]


def by_batch(failures: list[FailureFacts]) -> dict[int, FailureFacts]:
    """The newest open failure of each batch a retrain or proposal failure holds up."""
    held: dict[int, FailureFacts] = {}
    for failure in failures:  # newest first
        if failure.batch_number is not None and failure.task != "ingest":
            held.setdefault(failure.batch_number, failure)
    return held


def _resolved(session: Session, row: TaskFailure) -> bool:
    since = as_utc(row.failed_at)
    if row.task == "ingest":
        finished = session.exec(
            select(IngestedFile.finished_at).where(
                IngestedFile.original_name == row.subject,
                IngestedFile.status != FileStatus.PROCESSING,
                IngestedFile.finished_at.is_not(None),
            )
        ).all()
        return any(as_utc(moment) >= since for moment in finished)
    if row.task == "retrain":
        if row.subject:  # a batch trains once: its model run is the resolution
            query = select(ModelRun.id).where(ModelRun.trigger_batch == int(row.subject))
        else:
            query = select(ModelRun.id).where(ModelRun.created_at >= row.failed_at)
        return session.exec(query).first() is not None
    proposed = select(Batch.id).where(Batch.model_version == int(row.subject))
    return session.exec(proposed).first() is not None


def _facts(row: TaskFailure) -> FailureFacts:
    return FailureFacts(
        row.task, row.subject, row.batch_number, row.error_type, row.message, as_utc(row.failed_at)
    )
