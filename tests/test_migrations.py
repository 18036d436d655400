"""Schema migrations: the models and the migrations agree, and upgrades keep every row."""

from __future__ import annotations

import sqlite3
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlmodel import SQLModel

from agent.store.db import BASELINE, MIGRATIONS, init_db, make_engine
from tests.conftest import POSTGRES_URL, postgres_url

LEGACY_DUMP = Path(__file__).parent / "data" / "labloop-0.1.0.sql"


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def test_migrated_schema_matches_the_models(database_url):
    engine = create_engine(database_url)
    init_db(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()
    assert differences == [], "a model changed without a migration: " + repr(differences)
    assert version == head_revision()


def test_a_database_from_before_migrations_keeps_every_row(tmp_path):
    path = tmp_path / "labloop.db"
    with sqlite3.connect(path) as legacy:
        legacy.executescript(LEGACY_DUMP.read_text())
    tables = ("batch", "experiment", "result", "ingestedfile", "modelrun")
    with sqlite3.connect(path) as before:
        counts = {t: before.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    assert all(counts.values())
    engine = make_engine(f"sqlite:///{path}")
    init_db(engine)
    init_db(engine)  # and again: nothing to do
    engine.dispose()
    with sqlite3.connect(path) as after:
        assert {t: after.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables} == (
            counts
        )
        assert after.execute("SELECT version_num FROM alembic_version").fetchone()[0] == (
            head_revision()
        )
        assert after.execute(
            "SELECT discharge_mah_g, mass_source FROM result WHERE outcome = 'ok'"
        ).fetchone() == (223.4, "sidecar")


def _init(url: str) -> bool:
    engine = make_engine(url)
    init_db(engine)
    engine.dispose()
    return True


def test_workers_starting_together_migrate_once_without_errors(tmp_path):
    url = f"sqlite:///{tmp_path / 'labloop.db'}"
    with ProcessPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(_init, [url] * 4))
    with sqlite3.connect(tmp_path / "labloop.db") as db:
        assert db.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 1


def _upgrade(connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_upgrading_from_the_baseline_keeps_rows(backend, tmp_path):
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        cleanup = None
    else:
        schema = f"labloop_upgrade_{uuid.uuid4().hex[:8]}"
        with create_engine(POSTGRES_URL).begin() as admin:
            admin.execute(text(f'CREATE SCHEMA "{schema}"'))
        url, cleanup = postgres_url(schema), schema
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            _upgrade(connection, BASELINE)
            connection.execute(text(
                "INSERT INTO batch (number, state, created_at) VALUES (1, 'running', :now)"
            ), {"now": "2026-01-05 10:00:00"})  # fmt: skip
        init_db(engine)
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT number, state, approval_required, approved_by FROM batch")
            ).all()
        assert [tuple(r) for r in rows] == [(1, "running", False, None)]
    finally:
        engine.dispose()
        if cleanup:
            with create_engine(POSTGRES_URL).begin() as admin:
                admin.execute(text(f'DROP SCHEMA "{cleanup}" CASCADE'))
