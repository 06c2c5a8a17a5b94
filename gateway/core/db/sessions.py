"""Sessions for the call path's short database steps, without round trips they don't need.

On PostgreSQL a BEGIN and a COMMIT (or ROLLBACK) around a single statement are two round
trips that change nothing: in autocommit the statement is its own transaction, and under
read committed every statement of a read-only session takes its own snapshot anyway.
Each round trip is also a pass of the event loop the screen-pops share. SQLite, in
process, has no round trips to save and keeps BEGIN IMMEDIATE (its single writer).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.db.engine import Database


@asynccontextmanager
async def _autocommit(database: Database) -> AsyncIterator[AsyncSession]:
    """A session on a pooled connection in autocommit, closed without extra loop passes.

    SQLAlchemy's `async with` exits close in a task of their own (so a cancellation
    cannot abandon a rollback halfway), which costs two passes of the event loop each:
    the bench saw a pop's read session take 25 ms to close on a busy loop. In autocommit
    there is nothing to roll back, so closing does no I/O, never suspends (a
    cancellation cannot land in it) and is awaited directly.
    """
    connection = await database.engine.connect()
    try:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        session = AsyncSession(bind=autocommit)
        try:
            yield session
        finally:
            await session.close()
    finally:
        await connection.close()


@asynccontextmanager
async def read_session(database: Database) -> AsyncIterator[AsyncSession]:
    """A session that only reads (a pop's lookup and card)."""
    if database.is_sqlite:
        async with database.reading() as session:
            yield session
        return
    async with _autocommit(database) as session:
        yield session


@asynccontextmanager
async def one_statement(database: Database) -> AsyncIterator[AsyncSession]:
    """A session for exactly one write statement (atomic on its own)."""
    if database.is_sqlite:
        async with database.transaction() as session:
            yield session
        return
    async with _autocommit(database) as session:
        yield session
