"""What the loop has recorded: the facts behind `labloop status` (and later the web page)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from agent.config import Settings
from agent.cycler.base import Outcome
from agent.inbox.sample_ids import find_sample_id
from agent.loop.batches import TEST_RAN
from agent.ops.heartbeat import ServiceBeat, service_beats
from agent.ops.task_failures import FailureFacts, open_failures
from agent.store.db import Batch, Experiment, FileStatus, IngestedFile, Result, as_utc


@dataclass(frozen=True)
class FileCounts:
    archived: int
    quarantined: int  # all ever quarantined, resolved ones included
    processing: int


@dataclass(frozen=True)
class QuarantinedFile:
    name: str
    reason: str
    stored_path: str | None
    finished_at: datetime | None = None
    # what made the file moot since (None: it still needs a person)
    resolved_by: str | None = None
    # the batch whose row shows what resolved it, for a link
    resolved_batch: int | None = None


@dataclass(frozen=True)
class Quarantine:
    """Quarantined files, split into what still needs a person and what was resolved since."""

    open: list[QuarantinedFile]  # newest first, at most the limit asked for
    resolved: list[QuarantinedFile]  # newest first, at most the limit asked for
    open_total: int
    resolved_total: int


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
    quarantine: Quarantine
    batches: list[BatchProgress]
    failures: list[FailureLine]
    services: list[ServiceBeat]
    task_failures: list[FailureFacts]  # tasks that gave up, until resolved


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
            # an untested result (rest or impedance only) does not count: the test is to come
            func.count(func.distinct(Result.experiment_id)).filter(TEST_RAN).label("with_result"),
            func.count(Result.id).filter(Result.outcome == Outcome.OK).label("ok"),
            func.count(Result.id).filter(Result.outcome == Outcome.FAILED).label("failed"),
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


def quarantine(session: Session, limit: int) -> Quarantine:
    """Quarantined files (``limit`` of each kind), each marked resolved when what it was
    for happened since: its content is archived under another name (a duplicate), a file of
    the same name was archived after it (the corrected drop), or the sample named in it got
    a result after it."""
    rows = session.exec(
        select(IngestedFile)
        .where(IngestedFile.status == FileStatus.QUARANTINED)
        .order_by(IngestedFile.id.desc())
    ).all()
    archived = _archived_by_name_and_hash(session, rows)
    recorded = _results_by_sample(session, rows)
    open_files: list[QuarantinedFile] = []
    resolved: list[QuarantinedFile] = []
    for row in rows:
        by, batch = _resolution(row, archived, recorded)
        line = QuarantinedFile(
            row.original_name, row.error or "", row.stored_path, row.finished_at, by, batch
        )
        (open_files if by is None else resolved).append(line)
    return Quarantine(open_files[:limit], resolved[:limit], len(open_files), len(resolved))


_Archived = dict[str, list[IngestedFile]]


def _archived_by_name_and_hash(
    session: Session, rows: Sequence[IngestedFile]
) -> tuple[_Archived, _Archived]:
    names = {row.original_name for row in rows}
    hashes = {row.sha256 for row in rows}
    found = session.exec(
        select(IngestedFile).where(
            IngestedFile.status == FileStatus.ARCHIVED,
            IngestedFile.original_name.in_(names) | IngestedFile.sha256.in_(hashes),
        )
    ).all()
    by_name: _Archived = defaultdict(list)
    by_hash: _Archived = defaultdict(list)
    for row in found:
        by_name[row.original_name].append(row)
        by_hash[row.sha256].append(row)
    return by_name, by_hash


def _results_by_sample(
    session: Session, rows: Sequence[IngestedFile]
) -> dict[str, list[tuple[Result, int | None]]]:
    """Results read from files for the samples named in the quarantined files' names."""
    samples = {sid for row in rows if (sid := find_sample_id(row.original_name))}
    found = session.exec(
        select(Experiment.sample_id, Result, Batch.number)
        .join(Result, Result.experiment_id == Experiment.id)
        .join(Batch, Batch.id == Experiment.batch_id, isouter=True)
        .where(Experiment.sample_id.in_(samples), Result.cycler_format.is_not(None))
    ).all()
    grouped: dict[str, list[tuple[Result, int | None]]] = defaultdict(list)
    for sample_id, result, batch in found:
        grouped[sample_id].append((result, batch))
    return grouped


def _resolution(
    row: IngestedFile,
    archived: tuple[_Archived, _Archived],
    recorded: dict[str, list[tuple[Result, int | None]]],
) -> tuple[str | None, int | None]:
    by_name, by_hash = archived
    if same := by_hash.get(row.sha256):
        return f"its content is archived as file #{same[0].id} ({same[0].original_name})", None
    if later := [f for f in by_name.get(row.original_name, []) if f.id > row.id]:
        return f"dropped again and archived as file #{later[0].id}", None
    sample_id = find_sample_id(row.original_name)
    since = [
        (result, batch)
        for result, batch in recorded.get(sample_id or "", [])
        if row.finished_at is None or as_utc(result.recorded_at) >= as_utc(row.finished_at)
    ]
    if since:
        result, batch = since[-1]
        measured = (
            f"ok, {result.discharge_mah_g:.1f} mAh/g"
            if result.outcome == Outcome.OK and result.discharge_mah_g is not None
            else f"{result.outcome} ({result.failure_class or 'no class'})"
        )
        return f"{sample_id} recorded since: {measured}", batch
    return None, None


def recent_failures(session: Session, limit: int) -> list[FailureLine]:
    """The most recent failed tests read from files or sheets (not imported history)."""
    rows = session.exec(
        select(Experiment.sample_id, Result.failure_class, Result.reason, Result.recorded_at)
        .join(Result, Result.experiment_id == Experiment.id)
        .where(Result.outcome == Outcome.FAILED, Result.cycler_format.is_not(None))
        .order_by(Result.id.desc())
        .limit(limit)
    ).all()
    return [FailureLine(*row) for row in rows]


def build_status(
    engine: Engine,
    limit: int = 20,
    heartbeat_seconds: float = Settings.model_fields["heartbeat_seconds"].default,
) -> Status:
    with Session(engine) as session:
        return Status(
            files=file_counts(session),
            quarantine=quarantine(session, limit),
            batches=batch_progress(session),
            failures=recent_failures(session, limit),
            services=service_beats(engine, heartbeat_seconds),
            task_failures=open_failures(engine),
        )
