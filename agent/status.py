"""What the loop has recorded: the facts behind `labloop status` (and later the web page)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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
    finished_at: datetime | None = None


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
    recorded_at: datetime | None = None


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
    progress = [
        BatchProgress(
            b.number,
            "awaiting approval" if b.awaiting_approval else b.state,
            *counts.get(b.id, (0, 0, 0, 0)),
        )
        for b in batches
    ]
    if None in counts:
        progress.insert(0, BatchProgress(None, "-", *counts[None]))
    return progress


def recent_quarantined(session: Session, limit: int) -> list[QuarantinedFile]:
    """The most recently quarantined files, newest first."""
    rows = session.exec(
        select(IngestedFile)
        .where(IngestedFile.status == "quarantined")
        .order_by(IngestedFile.id.desc())
        .limit(limit)
    ).all()
    return [
        QuarantinedFile(f.original_name, f.error or "", f.stored_path, f.finished_at) for f in rows
    ]


def recent_failures(session: Session, limit: int) -> list[FailureLine]:
    """The most recent failed tests read from files or sheets (not imported history)."""
    rows = session.exec(
        select(Experiment.sample_id, Result.failure_class, Result.reason, Result.recorded_at)
        .join(Result, Result.experiment_id == Experiment.id)
        .where(Result.outcome == "failed", Result.cycler_format.is_not(None))
        .order_by(Result.id.desc())
        .limit(limit)
    ).all()
    return [FailureLine(*row) for row in rows]


def build_status(engine: Engine, limit: int = 20) -> Status:
    with Session(engine) as session:
        return Status(
            files=file_counts(session),
            quarantined=recent_quarantined(session, limit),
            batches=batch_progress(session),
            failures=recent_failures(session, limit),
        )
