"""Storage: SQLModel tables and session helpers (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import JSON, Column, Index, UniqueConstraint, event, inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel, create_engine


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """Times are stored in UTC; some databases (SQLite) hand them back without a zone."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class Origin(StrEnum):
    HISTORICAL = "historical"
    PROPOSED = "proposed"
    MANUAL = "manual"


class FileStatus(StrEnum):
    PROCESSING = "processing"
    ARCHIVED = "archived"
    QUARANTINED = "quarantined"


class BatchState(StrEnum):
    PROPOSED = "proposed"
    RUNNING = "running"
    COMPLETE = "complete"
    TRAINED = "trained"
    # a proposal someone turned down before it reached the lab (approval gate)
    REJECTED = "rejected"


class Batch(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    number: int = Field(unique=True, index=True)
    state: str = Field(default=BatchState.PROPOSED, index=True)
    recipe_file: str | None = None
    # sha256 of the recipe file as written: a file changed since is not ours to hand out
    recipe_sha256: str | None = None
    # the model that proposed it: unique, so one model version proposes one batch
    model_version: int | None = Field(default=None, unique=True)
    closed_reason: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    completed_at: datetime | None = None
    trained_at: datetime | None = None
    # approval gate: the recipe file reaches the lab only once someone approved the batch
    approval_required: bool = False
    approved_by: str | None = None
    approved_at: datetime | None = None
    rejected_reason: str | None = None

    @property
    def awaiting_approval(self) -> bool:
        return (
            self.approval_required
            and self.approved_at is None
            and self.state == BatchState.PROPOSED
        )

    @property
    def at_no_bench(self) -> bool:
        """Its recipes are not made: rejected, or a draft still awaiting approval."""
        return self.state == BatchState.REJECTED or self.awaiting_approval


class Experiment(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    sample_id: str = Field(unique=True, index=True)
    batch_id: int | None = Field(default=None, foreign_key="batch.id", index=True)
    origin: str = Field(default=Origin.PROPOSED)
    # recipe as {parameter name: value}; the design space is user-editable, so no fixed columns
    parameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    predicted_mah_g: float | None = None
    predicted_std_mah_g: float | None = None
    p_success: float | None = None
    model_version: int | None = None
    # a proposal that tries a value no (or hardly any) tried recipe used: "atmosphere=air"
    probe: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Result(SQLModel, table=True):
    """One test of one sample. A re-test adds a row; nothing is overwritten."""

    __table_args__ = (UniqueConstraint("source_sha256", "source_row", name="uq_result_source"),)

    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiment.id", index=True)
    outcome: str  # ok | failed
    failure_class: str | None = None  # synthesis | cell | measurement
    reason: str | None = None
    charge_mah_g: float | None = None
    discharge_mah_g: float | None = None
    coulombic_efficiency: float | None = None
    active_mass_mg: float | None = None
    mass_source: str | None = None  # file | sidecar | default | sheet
    cycler_format: str | None = None
    # content hash of the file the result came from and its row there: makes ingest idempotent
    source_sha256: str = Field(index=True)
    source_row: int = 0
    recorded_at: datetime = Field(default_factory=utcnow)


class IngestedFile(SQLModel, table=True):
    """One row per file dropped into the inbox, whatever became of it.

    Content is archived once: the hash is unique among archived rows, so the same
    bytes dropped again end in quarantine as a duplicate with a row of their own.
    While a drop is processed, (name, hash) is unique: a retried task finds its row.
    """

    __table_args__ = (
        Index(
            "uq_ingestedfile_archived_content",
            "sha256",
            unique=True,
            sqlite_where=text("status = 'archived'"),
            postgresql_where=text("status = 'archived'"),
        ),
        Index(
            "uq_ingestedfile_processing_drop",
            "original_name",
            "sha256",
            unique=True,
            sqlite_where=text("status = 'processing'"),
            postgresql_where=text("status = 'processing'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(index=True)
    original_name: str
    size_bytes: int
    status: str = Field(default=FileStatus.PROCESSING, index=True)
    stored_path: str | None = None
    cycler_format: str | None = None
    error: str | None = None
    results: int = 0
    # a worker holds the drop until then; a crashed worker's lease runs out and a retry takes over
    lease_until: datetime | None = None
    received_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class ModelRun(SQLModel, table=True):
    """One trained model. Its file is never overwritten; its hash is checked before loading."""

    id: int | None = Field(default=None, primary_key=True)
    version: int = Field(unique=True, index=True)
    # the batch whose completion triggered the retrain: unique, so a batch trains once
    trigger_batch: int | None = Field(default=None, unique=True)
    n_train: int
    n_outcomes: int
    counts: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON))
    hyperparameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    # DT / RF / GBM / NN by five-fold CV: {model: {"RMSE test": .., ...}}
    comparison: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    cv_rmse: float
    cv_r2: float
    # the tuned GBM's error on held-out regions of the tried recipes (honest for new ones)
    region_cv_rmse: float | None = None
    timings: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON))
    # out-of-fold predictions beside the measured values, for the parity plot
    parity: dict[str, list] = Field(default_factory=dict, sa_column=Column(JSON))
    model_path: str
    model_sha256: str
    created_at: datetime = Field(default_factory=utcnow)


class Heartbeat(SQLModel, table=True):
    """The latest sign of life of one service on one host, written every few seconds by a
    thread of its own, so a process busy with a long retrain keeps beating."""

    __table_args__ = (UniqueConstraint("service", "host", name="uq_heartbeat_service_host"),)

    id: int | None = Field(default=None, primary_key=True)
    # "watcher", or a worker's queues as in its Celery name ("learning", "ingest")
    service: str = Field(index=True)
    host: str
    pid: int
    started_at: datetime = Field(default_factory=utcnow)
    beat_at: datetime = Field(default_factory=utcnow)
    busy_with: str | None = None  # "retraining batch 3"; None: idle
    # tasks it holds per queue: {"ingest": {"running": 1, "retrying": 2}}; the embedded
    # broker forgets a task once a worker took it, so only the worker can count these
    holding: dict[str, dict[str, int]] = Field(default_factory=dict, sa_column=Column(JSON))


class TaskFailure(SQLModel, table=True):
    """A task that gave up (its retries spent, or an error no retry mends). It is shown until
    what it was for is done: the file recorded, the batch trained, the model's batch proposed."""

    id: int | None = Field(default=None, primary_key=True)
    task: str = Field(index=True)  # ingest | retrain | propose
    # the file name (ingest), the batch number (retrain; "" for a retrain by hand) or the
    # model version (propose), as text
    subject: str
    batch_number: int | None = None  # the batch it holds up, when there is one
    error_type: str
    message: str
    failed_at: datetime = Field(default_factory=utcnow)


_engines: dict[tuple[int, str], Engine] = {}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: the watcher, workers and CLI read and write the same file at once
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """A new engine for ``url``, with SQLite tuned for several processes."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def get_engine(url: str) -> Engine:
    """The engine for ``url`` in this process (engines must not cross a fork)."""
    key = (os.getpid(), url)
    if key not in _engines:
        engine = make_engine(url)
        init_db(engine)  # kept only once migrated: a database down now is asked again next time
        _engines[key] = engine
    return _engines[key]


MIGRATIONS = Path(__file__).with_name("migrations")
# the schema of labloop 0.1.0, made by create_all before there were migrations
BASELINE = "0001"


def init_db(engine: Engine) -> None:
    """Bring the schema to the latest migration (idempotent, safe from several processes).

    A database made before migrations existed (no ``alembic_version``) is stamped with the
    baseline it matches, then upgraded: every row is kept.
    """
    sqlite = engine.dialect.name == "sqlite"
    with _migration_lock(engine), engine.connect() as connection:
        if sqlite:  # SQLite alters a table by copying it: foreign keys would refuse the drop
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        tables = set(inspect(connection).get_table_names())
        if "alembic_version" not in tables and "batch" in tables:
            command.stamp(config, BASELINE)
        command.upgrade(config, "head")
        connection.commit()
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """One process migrates at a time: workers starting together would race on the schema."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(7275001)"))
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(7275001)"))
                connection.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate-lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
