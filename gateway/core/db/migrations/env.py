"""Alembic environment: runs on a connection handed in by gateway.core.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from gateway.core.db.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite can't ALTER most things: batch mode copies tables
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _configure(connection)
else:
    # Plain `alembic` CLI use (autogenerate during development): a sync driver URL.
    url = config.get_main_option("sqlalchemy.url") or ""
    sync_url = url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg")
    with create_engine(sync_url).connect() as sync_connection:
        _configure(sync_connection)
