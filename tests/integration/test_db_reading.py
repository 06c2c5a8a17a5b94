"""`Database.reading()`: a read never waits for a writer (on SQLite the others' BEGIN
IMMEDIATE takes the one write lock; /health behind an AMI flood's inserts waited seconds)."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select, text

from gateway.core.db.engine import Database
from gateway.core.db.models import Call


async def test_a_read_goes_on_while_a_writer_holds_its_transaction(database: Database) -> None:
    holding, released = asyncio.Event(), asyncio.Event()

    async def writer() -> None:
        async with database.transaction() as session:
            await session.execute(text("UPDATE calls SET topic = topic WHERE 1 = 0"))
            holding.set()
            await released.wait()

    task = asyncio.create_task(writer())
    await asyncio.wait_for(holding.wait(), 10)
    try:

        async def read() -> int:
            async with database.reading() as session:
                return int(await session.scalar(select(func.count()).select_from(Call)) or 0)

        # Generous: the read itself takes milliseconds; before, it waited for the writer.
        assert await asyncio.wait_for(read(), 5) == 0
    finally:
        released.set()
        await task
