"""Rows for tests, written through the same repository code the gateway uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.core.db.engine import Database
from gateway.core.db.models import Call, Task
from gateway.core.db.types import new_id
from gateway.customers.repository import upsert_customer

# When the `clock` fixture starts (tests/conftest.py).
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


async def make_customer(
    database: Database, now: datetime, external_id: str, phones: list[str], name: str = ""
) -> str:
    """A customer with E.164 phones; returns its id."""
    async with database.transaction() as session:
        customer, _ = await upsert_customer(
            session, external_id, {"name": name or external_id}, phones, now
        )
        return customer.id


async def make_call(
    database: Database,
    *,
    started_at: datetime,
    talk_seconds: int,
    caller: str,
    callee: str = "201",
    customer_id: str | None = None,
    match: str = "exact",
) -> str:
    """An ended inbound call record; returns its id."""
    answered = started_at + timedelta(seconds=3)
    async with database.transaction() as session:
        call = Call(
            id=new_id("call"),
            pbx_linkedid=new_id("lnk"),
            direction="inbound",
            state="ended",
            caller=caller,
            callee=callee,
            extension=callee,
            customer_id=customer_id,
            match=match if customer_id else "none",
            started_at=started_at,
            answered_at=answered if talk_seconds else None,
            ended_at=answered + timedelta(seconds=talk_seconds),
            ring_seconds=3,
            talk_seconds=talk_seconds,
            disposition="answered" if talk_seconds else "no_answer",
            details={},
            created_at=started_at,
            updated_at=started_at,
        )
        session.add(call)
        return call.id


async def make_task(
    database: Database,
    *,
    customer_id: str,
    created_at: datetime,
    min_call_seconds: int = 20,
    task_id: str | None = None,
    assignee: str | None = None,
) -> str:
    """An open call task; returns its id."""
    async with database.transaction() as session:
        task = Task(
            id=new_id("tsk"),
            task_id=task_id,
            kind="call",
            customer_id=customer_id,
            assignee=assignee,
            status="open",
            min_call_seconds=min_call_seconds,
            priority=0,
            created_at=created_at,
        )
        session.add(task)
        return task.id
