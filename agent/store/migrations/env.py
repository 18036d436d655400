"""Alembic environment: migrations run on the connection labloop hands over (agent.store.db)."""

from alembic import context
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import agent.store.db  # noqa: F401  (registers the tables on SQLModel.metadata)

config = context.config


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # `alembic` run by hand with -x url=...
        url = context.get_x_argument(as_dictionary=True)["url"]
        with create_engine(url).begin() as own:
            _run(own)
    else:
        _run(connection)


def _run(connection) -> None:  # noqa: ANN001 - a SQLAlchemy Connection
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        # SQLite cannot ALTER most things: batch mode copies the table instead
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
