"""Call cadence per status, and the monitoring date after a monitoring call.

`customers.next_contact_at` is when the customer's next cadence call is due. A status
move sets it to the move's time when the new status has a cadence (so the first call is
due at once) and clears it otherwise. A due customer gets a `call` task for their
responsible agent (`due_at` = the due time, `min_call_seconds` from the policy), and
`next_contact_at` moves forward by the status's cadence on a fixed grid: from the due
time, in whole periods, to the first one after `as_of` — a gateway that was down for two
periods creates one task, not two (as a missed campaign schedule runs once).

Task ids are deterministic, `tsk_cad_` + a digest of (customer, due day), so a repeated
or raced tick adds nothing. A customer who opted out of calls or must not be contacted
gets no task (their date still advances, so they are not reconsidered every tick).
"""

from __future__ import annotations

import calendar
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.clock import as_utc
from gateway.core.db.dialect import insert_for
from gateway.core.db.models import Customer, Task
from gateway.core.db.states import CustomerStatus, TaskStatus
from gateway.core.db.types import UtcDateTime
from gateway.lifecycle.policy import LifecyclePolicy

CALL_KIND = "call"


@dataclass(frozen=True)
class CadenceTask:
    """A cadence call task created by this tick."""

    task_id: str
    customer_id: str
    assignee: str | None
    status: str
    due_at: datetime


def cadence_task_id(customer_id: str, due: datetime) -> str:
    """Deterministic id of the cadence task for a customer and due day."""
    key = f"{customer_id}|{as_utc(due):%Y%m%d}"
    return f"tsk_cad_{hashlib.sha256(key.encode()).hexdigest()[:24]}"


def add_months(value: datetime, months: int) -> datetime:
    """`value` moved by whole calendar months; the day is clamped (31 Jan + 1 = 28/29 Feb)."""
    index = value.year * 12 + value.month - 1 + months
    year, month = divmod(index, 12)
    day = min(value.day, calendar.monthrange(year, month + 1)[1])
    return value.replace(year=year, month=month + 1, day=day)


def _next_due(due: datetime, as_of: datetime, every: timedelta) -> datetime:
    periods = (as_of - due) // every + 1
    return due + every * periods


async def due_call_tasks(
    session: AsyncSession, as_of: datetime, policy: LifecyclePolicy
) -> list[CadenceTask]:
    """Create the call tasks due by `as_of` for statuses with a cadence; returns the new ones."""
    as_of = as_utc(as_of)
    await session.flush()  # the statements below bypass the unit of work
    created: list[CadenceTask] = []
    if not policy.call_every_days:
        return created
    query = select(
        Customer.id,
        Customer.status,
        Customer.responsible_agent,
        Customer.next_contact_at,
        Customer.voice_opt_out,
        Customer.do_not_contact,
    ).where(
        Customer.status.in_(tuple(policy.call_every_days)),
        Customer.deleted_at.is_(None),
        or_(
            Customer.next_contact_at.is_(None),
            Customer.next_contact_at <= bindparam("as_of", as_of, type_=UtcDateTime()),
        ),
    )
    table = cast(Table, Customer.__table__)
    advance = (
        update(table)
        .where(table.c.id == bindparam("b_id"), table.c.status == bindparam("b_status"))
        .values(next_contact_at=bindparam("b_next", type_=UtcDateTime()))
    )
    after = ""
    while True:
        page = query.where(Customer.id > after).order_by(Customer.id).limit(policy.batch_size)
        rows = (await session.execute(page)).all()
        if not rows:
            return created
        tasks: list[CadenceTask] = []
        updates: list[dict[str, object]] = []
        for row in rows:
            every = timedelta(days=policy.call_every_days[row.status])
            due = as_utc(row.next_contact_at) if row.next_contact_at is not None else as_of
            updates.append(
                {"b_id": row.id, "b_status": row.status, "b_next": _next_due(due, as_of, every)}
            )
            if not (row.voice_opt_out or row.do_not_contact):
                tasks.append(
                    CadenceTask(
                        cadence_task_id(row.id, due), row.id, row.responsible_agent, row.status, due
                    )
                )
        await session.execute(advance, updates, execution_options={"synchronize_session": False})
        created.extend(await _insert_tasks(session, tasks, as_of, policy))
        after = rows[-1].id


async def _insert_tasks(
    session: AsyncSession, tasks: list[CadenceTask], as_of: datetime, policy: LifecyclePolicy
) -> list[CadenceTask]:
    """Insert the tasks, skipping ids that exist; returns the ones actually inserted."""
    if not tasks:
        return []
    table = cast(Table, Task.__table__)
    # One statement with a list of rows: SQLAlchemy batches it (insertmanyvalues) with
    # RETURNING, far cheaper to compile than one literal multi-row VALUES.
    statement = (
        insert_for(session)(table)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(table.c.id)
    )
    rows = [
        {
            "id": task.task_id,
            "kind": CALL_KIND,
            "customer_id": task.customer_id,
            "assignee": task.assignee,
            "status": TaskStatus.OPEN,
            "min_call_seconds": policy.min_call_seconds,
            "priority": 0,
            "created_at": as_of,
            "due_at": task.due_at,
        }
        for task in tasks
    ]
    inserted = set((await session.execute(statement, rows)).scalars())
    return [task for task in tasks if task.task_id in inserted]


async def after_monitoring_call(
    session: AsyncSession, customer: Customer, at: datetime, policy: LifecyclePolicy
) -> datetime:
    """Set the next monitoring date after a monitoring call at `at`; returns it."""
    months = (
        policy.monitoring_months_active
        if customer.status == CustomerStatus.ACTIVE
        else policy.monitoring_months_other
    )
    customer.next_monitoring_at = add_months(as_utc(at), months)
    await session.flush()
    return customer.next_monitoring_at
