"""Schema migrations: the models and the migrations agree, and upgrades keep every row."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlmodel import SQLModel

from agent.db import MIGRATIONS, init_db, make_engine

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
