"""Throwaway databases on the real servers: a fresh PostgreSQL database per test run,
a migrated SQLite template copied per test."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
from sqlalchemy import text

from gateway.core.db.engine import Database
from gateway.core.db.migrate import upgrade
from gateway.core.db.models import Base

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


class ServiceMissing(RuntimeError):
    """A required test service is not reachable: the suite fails rather than skip."""


def require_listening(url: str, what: str) -> None:
    """Fail loudly when the server behind `url` does not accept TCP connections."""
    parts = urlsplit(url.replace("+asyncpg", ""))
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 2).close()
    except OSError as exc:
        raise ServiceMissing(
            f"{what} at {parts.hostname}:{parts.port} is not reachable ({exc}); "
            "run `make test` (it starts or installs it) or scripts/ensure-services.sh"
        ) from exc


def postgres_admin_url() -> str:
    """The PostgreSQL URL the environment gives (make test sets it)."""
    url = os.environ.get("SWITCHBOARD_TEST_DATABASE_URL", DEFAULT_PG)
    require_listening(url, "PostgreSQL")
    return url


def redis_test_url() -> str:
    """The Redis URL the environment gives, on a database index of its own (15, or
    SWITCHBOARD_TEST_REDIS_DB so that two test runs on one machine never flush each other)."""
    url = os.environ.get("SWITCHBOARD_TEST_REDIS_URL", DEFAULT_REDIS)
    require_listening(url, "Redis")
    index = int(os.environ.get("SWITCHBOARD_TEST_REDIS_DB", "15"))
    return url.rsplit("/", 1)[0] + f"/{index}"


def _asyncpg_dsn(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://")


def create_postgres_database() -> str:
    """Create and migrate a database of our own; returns its SQLAlchemy URL."""
    admin = postgres_admin_url()
    name = f"switchboard_test_{os.getpid()}_{secrets.token_hex(3)}"

    async def run() -> None:
        connection = await asyncpg.connect(_asyncpg_dsn(admin))
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        database = Database(admin.rsplit("/", 1)[0] + "/" + name)
        try:
            await upgrade(database)
        finally:
            await database.dispose()

    asyncio.run(run())
    return admin.rsplit("/", 1)[0] + "/" + name


def drop_postgres_database(url: str) -> None:
    """Drop a database made by create_postgres_database."""
    admin = postgres_admin_url()
    name = url.rsplit("/", 1)[1]

    async def run() -> None:
        connection = await asyncpg.connect(_asyncpg_dsn(admin))
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    asyncio.run(run())


def create_sqlite_template(directory: Path) -> Path:
    """A migrated SQLite file to copy for each test."""
    path = directory / "template.db"

    async def run() -> None:
        database = Database(f"sqlite+aiosqlite:///{path}")
        try:
            await upgrade(database)
        finally:  # closing the last connection checkpoints the WAL into the file
            await database.dispose()

    asyncio.run(run())
    return path


def copy_sqlite(template: Path, directory: Path) -> str:
    """A fresh copy of the template; returns its URL."""
    target = directory / "switchboard.db"
    shutil.copyfile(template, target)
    return f"sqlite+aiosqlite:///{target}"


async def truncate_all(database: Database) -> None:
    """Empty every table (PostgreSQL), keeping the schema and alembic_version."""
    names = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    async with database.engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
