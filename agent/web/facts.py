"""The facts behind the status page and its JSON API, as small dataclasses.

Every query aggregates or limits in SQL, so a campaign of 50 batches and 10,000 files
costs what a small one does. No Flask here: the page and the API share these.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from agent.cycler.base import Outcome
from agent.inbox.watcher import is_candidate
from agent.loop.batches import missing_samples
from agent.loop.recipe_files import interval_95, recipe_path
from agent.ops.heartbeat import ServiceBeat
from agent.ops.task_failures import FailureFacts, by_batch
from agent.reports.per_batch import BatchSummary, batch_summaries
from agent.reports.status import (
    FailureLine,
    FileCounts,
    Quarantine,
    batch_progress,
    file_counts,
    quarantine,
    recent_failures,
)
from agent.store.db import Batch, BatchState, Experiment, FileStatus, IngestedFile, ModelRun, Result
from agent.store.files import readable_name

# the only names the recipe route serves: what agent.loop.recipe_files.recipe_path writes
RECIPE_NAME = re.compile(r"batch-\d{3}\.csv")


# a draft or a rejected proposal was never made: none of its samples is "still missing"
NOT_AT_THE_LAB = ("awaiting approval", BatchState.REJECTED)


@dataclass(frozen=True)
class BatchFacts:
    number: int
    state: str
    samples: int
    with_result: int
    ok: int
    failed: int
    missing: list[str]
    failures: list[FailureLine]
    closed_reason: str | None
    recipe_file: str | None  # name under settings.recipes, when the file is there
    measured_max_mah_g: float | None
    best_so_far_mah_g: float | None  # best measured up to this batch, history included
    # the sample predicted best when the batch was proposed, with its 95 % interval
    predicted: PredictedLine | None = None
    probes: int = 0  # samples that try a value few or no tried recipes used


@dataclass(frozen=True)
class PredictedLine:
    sample_id: str
    mean_mah_g: float
    low_mah_g: float
    high_mah_g: float


@dataclass(frozen=True)
class WaitingFile:
    name: str  # relative to the inbox
    size_bytes: int
    # when it came into the inbox: a copy may keep its old modification time, not this
    arrived_at: datetime


@dataclass(frozen=True)
class ArchivedFile:
    name: str
    cycler_format: str | None
    results: int
    finished_at: datetime | None


@dataclass(frozen=True)
class FileFacts:
    counts: FileCounts
    waiting: list[WaitingFile]  # oldest first: the one waiting longest is the one to look at
    waiting_more: int
    archived: list[ArchivedFile]  # newest first
    quarantine: Quarantine  # newest first, open and resolved apart


@dataclass(frozen=True)
class ModelLine:
    version: int
    trigger_batch: int | None
    n_train: int
    n_outcomes: int
    cv_rmse: float
    cv_r2: float
    created_at: datetime
    # the tuned GBM's error on held-out regions: what to expect on recipes unlike the tried
    region_cv_rmse: float | None = None


@dataclass(frozen=True)
class ModelFacts:
    latest: ModelLine | None
    # the latest run's DT / RF / GBM / NN five-fold CV: {model: {metric: value}}
    comparison: dict[str, dict[str, float]]
    runs: list[ModelLine]  # newest first


@dataclass(frozen=True)
class Parity:
    version: int
    measured: list[float]
    predicted: list[float]


@dataclass(frozen=True)
class ErrorLine:
    at: datetime | None
    kind: str  # "quarantined file" | "failed test"
    subject: str  # file name or sample id
    reason: str


def database_ok(engine: Engine) -> bool:
    """Whether the database answers a trivial query."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:  # any failure means "not reachable" to a health check
        return False
    return True


class SummaryCache:
    """``report.batch_summaries`` for one database, recomputed only when it could change.

    It reads every experiment and result, so its answer is kept until the count or the
    highest id of batches, experiments or results moves. The capacities taken from it
    change only when such rows are added: labloop never updates or deletes them.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # (key, summaries) as one value: a reader never pairs a key with another's summaries
        self._cached: tuple[tuple[Any, ...], dict[int, BatchSummary]] | None = None

    def key(self) -> tuple[Any, ...]:
        """What changes whenever the summaries (or the figures drawn from the same rows) can."""
        probes = [
            select(aggregate(column)).scalar_subquery()
            for column in (Batch.id, Experiment.id, Result.id)
            for aggregate in (func.count, func.max)
        ]
        with Session(self._engine) as session:
            return tuple(session.exec(select(*probes)).one())

    def get(self) -> dict[int, BatchSummary]:
        """{batch number: summary}, fresh as of this call."""
        key = self.key()
        cached = self._cached
        if cached is None or cached[0] != key:
            cached = (key, {s.number: s for s in batch_summaries(self._engine)})
            self._cached = cached
        return cached[1]


def batch_facts(engine: Engine, recipes: Path, summaries: SummaryCache) -> list[BatchFacts]:
    """Every numbered batch, oldest first."""
    with Session(engine) as session:
        progress = [p for p in batch_progress(session) if p.number is not None]
        rows = session.exec(select(Batch.number, Batch.id, Batch.closed_reason)).all()
        ids = {number: batch_id for number, batch_id, _ in rows}
        closed = {number: reason for number, _, reason in rows}
        # only batches at the lab and short of results miss samples: one small query each
        missing = {
            p.number: missing_samples(session, ids[p.number])
            for p in progress
            if p.with_result < p.samples and p.state not in NOT_AT_THE_LAB
        }
        failures = _failures_by_batch(session)
        predicted, probes = _predictions_by_batch(session)
    best = summaries.get()
    facts = []
    for p in progress:
        recipe = recipe_path(recipes, p.number)
        summary = best.get(p.number)
        facts.append(
            BatchFacts(
                number=p.number,
                state=p.state,
                samples=p.samples,
                with_result=p.with_result,
                ok=p.ok,
                failed=p.failed,
                missing=missing.get(p.number, []),
                failures=failures.get(ids[p.number], []),
                closed_reason=closed[p.number],
                recipe_file=recipe.name if recipe.is_file() else None,
                measured_max_mah_g=summary.measured_max if summary else None,
                best_so_far_mah_g=summary.best_so_far if summary else None,
                predicted=predicted.get(ids[p.number]),
                probes=probes.get(ids[p.number], 0),
            )
        )
    return facts


def _predictions_by_batch(
    session: Session,
) -> tuple[dict[int, PredictedLine], dict[int, int]]:
    rows = session.exec(
        select(
            Experiment.batch_id,
            Experiment.sample_id,
            Experiment.predicted_mah_g,
            Experiment.predicted_std_mah_g,
            Experiment.probe,
        ).where(Experiment.batch_id.is_not(None), Experiment.predicted_mah_g.is_not(None))
    ).all()
    best: dict[int, PredictedLine] = {}
    probes: dict[int, int] = defaultdict(int)
    for batch_id, sample_id, mean, std, probe in rows:
        probes[batch_id] += probe is not None
        if batch_id in best and best[batch_id].mean_mah_g >= mean:
            continue
        best[batch_id] = PredictedLine(sample_id, mean, *interval_95(mean, std or 0.0))
    return best, dict(probes)


def _failures_by_batch(session: Session) -> dict[int, list[FailureLine]]:
    rows = session.exec(
        select(
            Experiment.batch_id,
            Experiment.sample_id,
            Result.failure_class,
            Result.reason,
            Result.recorded_at,
        )
        .join(Result, Result.experiment_id == Experiment.id)
        .where(Result.outcome == Outcome.FAILED, Experiment.batch_id.is_not(None))
        .order_by(Experiment.sample_id, Result.id)
    ).all()
    grouped: dict[int, list[FailureLine]] = defaultdict(list)
    for batch_id, *line in rows:
        grouped[batch_id].append(FailureLine(*line))
    return grouped


def file_facts(engine: Engine, inbox: Path, masses_file: str, cap: int = 200) -> FileFacts:
    """The inbox, the most recently archived files and the quarantine (``cap`` rows each)."""
    waiting = waiting_files(inbox, masses_file)
    with Session(engine) as session:
        counts = file_counts(session)
        archived = session.exec(
            select(
                IngestedFile.original_name,
                IngestedFile.cycler_format,
                IngestedFile.results,
                IngestedFile.finished_at,
            )
            .where(IngestedFile.status == FileStatus.ARCHIVED)
            .order_by(IngestedFile.id.desc())
            .limit(min(cap, 20))
        ).all()
        held = quarantine(session, cap)
    return FileFacts(
        counts=counts,
        waiting=waiting[:cap],
        waiting_more=max(0, len(waiting) - cap),
        archived=[ArchivedFile(*row) for row in archived],
        quarantine=held,
    )


def waiting_files(inbox: Path, masses_file: str) -> list[WaitingFile]:
    """Files in the inbox that the watcher will hand on (as it decides), oldest first."""
    found = []
    for root, _dirs, names in os.walk(inbox):
        for name in names:
            path = Path(root, name)
            relative = path.relative_to(inbox)
            if not is_candidate(relative, masses_file):
                continue
            try:
                stat = path.lstat()  # a symbolic link is listed, never followed
            except FileNotFoundError:  # taken by a worker while we looked
                continue
            # ctime: when the copy or move into the inbox made this entry (Linux, macOS)
            arrived = datetime.fromtimestamp(max(stat.st_mtime, stat.st_ctime), UTC)
            found.append(WaitingFile(readable_name(relative.as_posix()), stat.st_size, arrived))
    return sorted(found, key=lambda f: f.arrived_at)


def model_facts(engine: Engine, limit: int = 20) -> ModelFacts:
    """The latest model runs (without their bulky parity data) and the latest comparison."""
    with Session(engine) as session:
        rows = session.exec(
            select(
                ModelRun.version,
                ModelRun.trigger_batch,
                ModelRun.n_train,
                ModelRun.n_outcomes,
                ModelRun.cv_rmse,
                ModelRun.cv_r2,
                ModelRun.created_at,
                ModelRun.region_cv_rmse,
            )
            .order_by(ModelRun.version.desc())
            .limit(limit)
        ).all()
        runs = [ModelLine(*row) for row in rows]
        comparison: dict[str, Any] | None = None
        if runs:
            comparison = session.exec(
                select(ModelRun.comparison).where(ModelRun.version == runs[0].version)
            ).one()
    return ModelFacts(latest=runs[0] if runs else None, comparison=comparison or {}, runs=runs)


def latest_parity(engine: Engine) -> Parity | None:
    """The latest model's out-of-fold predictions beside the measured values."""
    with Session(engine) as session:
        row = session.exec(
            select(ModelRun.version, ModelRun.parity).order_by(ModelRun.version.desc()).limit(1)
        ).first()
    if row is None or not row[1]:
        return None
    version, parity = row
    return Parity(version, parity.get("measured", []), parity.get("predicted", []))


def last_errors(engine: Engine, limit: int = 10) -> list[ErrorLine]:
    """The most recent quarantined files and failed tests, newest first."""
    with Session(engine) as session:
        files = quarantine(session, limit).open
        tests = recent_failures(session, limit)
    lines = [ErrorLine(f.finished_at, "quarantined file", f.name, f.reason) for f in files] + [
        ErrorLine(
            t.recorded_at,
            "failed test",
            t.sample_id,
            f"{t.failure_class or 'failed'}: {t.reason or 'no reason given'}",
        )
        for t in tests
    ]
    lines.sort(key=lambda line: (line.at is not None, line.at), reverse=True)
    return lines[:limit]


def header_notes(
    batches: list[BatchFacts], failures: list[FailureFacts], services: list[ServiceBeat]
) -> list[str]:
    """The batches that need someone, newest first: 'Batch 4 awaits approval', 'Batch 3:
    retrain failed', 'model retraining batch 3' (only while a live worker says so)."""
    held = by_batch(failures)
    doing = {part for s in services if s.fresh and s.busy_with for part in s.busy_with.split("; ")}
    notes = []
    for batch in reversed(batches):
        if f"retraining batch {batch.number}" in doing:  # a rerun after a failure, too
            notes.append(f"model retraining batch {batch.number}")
        elif batch.number in held:
            notes.append(f"Batch {batch.number}: {held[batch.number].step} failed")
        elif batch.state == "awaiting approval":
            notes.append(f"Batch {batch.number} awaits approval")
        elif batch.state == "complete":
            notes.append(f"Batch {batch.number} is complete; its retrain waits for a worker")
    return notes
