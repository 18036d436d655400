"""What the loop has recorded: the facts behind `labloop status` (and later the web page)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from agent.db import Batch, Experiment, IngestedFile, Result


@dataclass(frozen=True)
class FileCounts:
    archived: int
    quarantined: int
    processing: int


@dataclass(frozen=True)
class QuarantinedFile:
    name: str
    reason: str
    stored_path: str | None


@dataclass(frozen=True)
class BatchProgress:
    number: int | None  # None: experiments outside any batch (history, manual)
    state: str
    samples: int
    with_result: int
    ok: int
    failed: int


@dataclass(frozen=True)
class FailureLine:
    sample_id: str
    failure_class: str | None
    reason: str | None


@dataclass(frozen=True)
class Status:
    files: FileCounts
    quarantined: list[QuarantinedFile]
    batches: list[BatchProgress]
    failures: list[FailureLine]


def file_counts(session: Session) -> FileCounts:
    rows = dict(
        session.exec(select(IngestedFile.status, func.count()).group_by(IngestedFile.status)).all()
    )
    return FileCounts(
        archived=rows.get("archived", 0),
        quarantined=rows.get("quarantined", 0),
        processing=rows.get("processing", 0),
    )


def batch_progress(session: Session) -> list[BatchProgress]:
    """Per batch: samples, how many have any result, ok and failed results."""
    tested = (
        select(
            Experiment.batch_id,
            func.count(func.distinct(Experiment.id)).label("samples"),
            func.count(func.distinct(Result.experiment_id)).label("with_result"),
            func.count(Result.id).filter(Result.outcome == "ok").label("ok"),
            func.count(Result.id).filter(Result.outcome == "failed").label("failed"),
        )
        .join(Result, Result.experiment_id == Experiment.id, isouter=True)
        .group_by(Experiment.batch_id)
    )
    counts = {row[0]: row[1:] for row in session.exec(tested).all()}
    batches = session.exec(select(Batch).order_by(Batch.number)).all()
    progress = [BatchProgress(b.number, b.state, *counts.get(b.id, (0, 0, 0, 0))) for b in batches]
    if None in counts:
        progress.insert(0, BatchProgress(None, "-", *counts[None]))
    return progress


def build_status(engine: Engine, limit: int = 20) -> Status:
    with Session(engine) as session:
        quarantined = session.exec(
            select(IngestedFile)
            .where(IngestedFile.status == "quarantined")
            .order_by(IngestedFile.id.desc())
            .limit(limit)
        ).all()
        failures = session.exec(
            select(Experiment.sample_id, Result.failure_class, Result.reason)
            .join(Result, Result.experiment_id == Experiment.id)
            .where(Result.outcome == "failed", Result.cycler_format.is_not(None))
            .order_by(Result.id.desc())
            .limit(limit)
        ).all()
        return Status(
            files=file_counts(session),
            quarantined=[
                QuarantinedFile(f.original_name, f.error or "", f.stored_path) for f in quarantined
            ],
            batches=batch_progress(session),
            failures=[FailureLine(*row) for row in failures],
        )
