"""Async engine and sessions for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

READ_ONLY = "switchboard_read_only"  # execution option: the transaction only reads


class Database:
    """One engine and its session factory; `is_sqlite` picks the claiming strategy."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 24) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, object] = {"echo": echo}
        if not self.is_sqlite:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size // 2)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _tune_sqlite(self.engine)
        else:
            drop_closed_on_checkout(self.engine)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session that only reads; on SQLite it never waits for the writer."""
        async with self.sessions() as session:
            await session.connection(execution_options={READ_ONLY: True})
            yield session

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def drop_closed_on_checkout(engine: AsyncEngine) -> None:
    """Replace a pooled connection the server has closed, without a round trip.

    Instead of pool_pre_ping, which costs three round trips per checkout with asyncpg
    (BEGIN, a ping, ROLLBACK: a third of a webhook's), this asks asyncpg whether it has
    seen the socket close. A PostgreSQL restart or a terminated backend closes every
    connection; asyncpg reads that EOF while the connection idles in the pool, and the
    pool then opens a fresh one (DisconnectionError makes it retry the checkout). What
    this cannot see (the server going away while a connection is checked out, or a
    silently dead network) fails at most the requests in flight on it: the first such
    error invalidates the whole pool, so each pooled connection costs at most one
    failed request, and nothing of that request was committed.
    """

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if dbapi_connection.driver_connection.is_closed():
            raise exc.DisconnectionError("the server closed this pooled connection")


def _tune_sqlite(engine: AsyncEngine) -> None:
    """WAL, a busy timeout, foreign keys, and BEGIN IMMEDIATE for every transaction.

    pysqlite's own BEGIN handling defers the write lock to the first write, so two
    writers can deadlock upgrading; taking the lock at BEGIN (the recipe in SQLAlchemy's
    SQLite docs) makes SQLite's single writer explicit and claims safe.
    """
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A transaction that only reads (`Database.reading`) needs no write lock: in WAL
        # it reads the last commit while a writer works instead of queueing behind every
        # writer (/health behind an AMI flood's inserts waited seconds).
        read_only = connection.get_execution_options().get(READ_ONLY)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
