"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from gateway.core.db.engine import Database
from gateway.core.db.migrate import alembic_config, upgrade
from gateway.core.db.models import Base


async def test_models_and_migrations_agree(database: Database) -> None:
    def check(connection: Connection) -> list[str]:
        config = alembic_config(database.url)
        config.attributes["connection"] = connection
        command.check(config)  # raises when autogenerate would find a difference
        return inspect(connection).get_table_names()

    async with database.engine.begin() as connection:
        tables = await connection.run_sync(check)
    assert set(Base.metadata.tables) <= set(tables)


async def test_upgrade_is_idempotent(database: Database) -> None:
    await upgrade(database)
    await upgrade(database)
