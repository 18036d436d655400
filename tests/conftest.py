"""Shared fixtures: a labloop home in a temporary folder, on SQLite or PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

from agent.config import FAST_BUDGET, Settings
from agent.inbox.sample_ids import format_sample_id
from agent.loop.batches import campaign_space
from agent.loop.history_import import import_history
from agent.store.db import Batch, BatchState, Experiment, Origin, Result, init_db, make_engine
from tests.synthetic import write_history

REPO = Path(__file__).resolve().parents[1]
# real exports from BEEP (Apache-2.0) and cellpy (MIT), copied unmodified with their
# SOURCES.md, so the tests pass in a plain clone
CYCLER_FILES = REPO / "tests" / "data" / "cycler_files"
POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[str]:
    """A fresh schema for this test run, dropped at the end."""
    schema = f"labloop_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as error:  # pragma: no cover - only when the server is down
        pytest.fail(f"PostgreSQL on 127.0.0.1:5432 is needed for this test: {error}")
    yield schema
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def small_budget(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The demo's --fast budgets in this test's environment (labloop commands it starts
    inherit them); returns them, for a subprocess given an environment of its own."""
    for key, value in FAST_BUDGET.items():
        monkeypatch.setenv(key, value)
    return dict(FAST_BUDGET)


def postgres_url(schema: str) -> str:
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test that uses it runs once on SQLite and once on PostgreSQL (emptied first)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'labloop.db'}"
        return
    url = postgres_url(request.getfixturevalue("postgres_schema"))
    engine = create_engine(url)
    init_db(engine)
    with engine.begin() as connection:
        tables = ", ".join(SQLModel.metadata.tables)
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # files are judged as they stand unless a test asks for the grace given to new files
    s = Settings(home=tmp_path / "home", database_url=database_url, cut_short_grace_seconds=0)
    s.ensure_folders()
    return s


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    init_db(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def small(settings: Settings) -> Settings:
    """The demo's --fast budgets (FAST_BUDGET, the one small budget of the tests too): the
    same code paths, in seconds."""
    budget = {key.removeprefix("LABLOOP_").lower(): value for key, value in FAST_BUDGET.items()}
    return Settings.model_validate(settings.model_dump() | budget | {"seed": 7})


@pytest.fixture
def with_history(engine: Engine, small: Settings, tmp_path: Path) -> Path:
    """120 rows of a known capacity function, imported."""
    path = write_history(tmp_path / "history.csv", rows=120, seed=3)
    import_history(engine, path, campaign_space(small))
    return path


def add_ok_results(engine: Engine, batch_id: int, capacity: float = 220.0) -> None:
    """An ok result for every sample of the batch, stored as a sheet's rows would be."""
    with Session(engine) as session:
        samples = session.exec(select(Experiment).where(Experiment.batch_id == batch_id)).all()
        for row, sample in enumerate(samples, start=2):
            session.add(Result(experiment_id=sample.id, outcome="ok", discharge_mah_g=capacity,
                               source_sha256=f"sheet-{batch_id}", source_row=row))  # fmt: skip
        session.commit()


def add_batch(engine: Engine, number: int, size: int = 10, **parameters: float | str) -> Batch:
    """A proposed batch with ``size`` experiments B<number>-S01.. (no results yet)."""
    with Session(engine, expire_on_commit=False) as session:
        batch = Batch(number=number, state=BatchState.RUNNING)
        session.add(batch)
        session.flush()
        for slot in range(1, size + 1):
            session.add(
                Experiment(
                    sample_id=format_sample_id(number, slot),
                    batch_id=batch.id,
                    origin=Origin.PROPOSED,
                    parameters={"ni_fraction": 0.94, **parameters},
                )
            )
        session.commit()
        return batch
