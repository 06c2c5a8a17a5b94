"""Fuzzing helpers: running coroutines from hypothesis's thread, counting every table's rows."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from sqlalchemy import text

from gateway.core.db.engine import Database
from gateway.core.db.models import Base

T = TypeVar("T")


def drive(loop: asyncio.AbstractEventLoop, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on the test's loop from hypothesis's thread."""
    return asyncio.run_coroutine_threadsafe(make(), loop).result(timeout=60)


async def row_counts(database: Database) -> tuple[int, ...]:
    """Rows in every table, in one round trip."""
    tables = [table.name for table in Base.metadata.sorted_tables]
    counts = ", ".join(f'(SELECT count(*) FROM "{name}")' for name in tables)
    async with database.engine.connect() as connection:
        row = (await connection.execute(text(f"SELECT {counts}"))).one()
    return tuple(int(value) for value in row)
