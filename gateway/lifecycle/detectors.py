"""Behaviour detectors, computed in SQL (window functions: SQLite ≥ 3.25 and PostgreSQL).

Recession: from each customer's own orders (`activities.kind = 'order'`) within
`recession_lookback_days` before `as_of`, the intervals between consecutive orders (LAG)
and their median (ROW_NUMBER/COUNT over the sorted intervals: the middle one, or the mean
of the middle two). A customer with at least `recession_min_orders` orders spread over at
least `recession_min_history_days`, silent since their last order for *more than*
`recession_factor` × that median, is in recession. The threshold is the customer's own
habit, never a global one: a weekly buyer is flagged after three weeks of silence, a
buyer who comes every two months is not.

Each recession episode gets one `recovery_call` task for the responsible agent (due at
`as_of`, `recovery_call_seconds` minimum), id `tsk_rec_` + a digest of (customer, last
order): a later tick in the same silence creates nothing new, and a customer who orders
again and then falls silent again gets a new task. Customers who opted out of calls or
must not be contacted are still reported, without a task.

New active: more than `new_active_orders` orders within the `new_active_window_hours`
before `as_of` flags the customer for monitoring: `next_monitoring_at` is set to `as_of`
when it is unset (a monitoring date already planned is kept).

Orders later than `as_of` are ignored, so the detectors can be replayed `--as-of` the past.
Cancelled and deleted customers are never flagged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import BindParameter, Table, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.clock import as_utc, isoformat_z
from gateway.core.db.dialect import insert_for, seconds_between
from gateway.core.db.models import Activity, Customer, Task
from gateway.core.db.states import CustomerStatus, TaskStatus
from gateway.core.db.types import UtcDateTime
from gateway.lifecycle.policy import LifecyclePolicy

RECOVERY_KIND = "recovery_call"
_SECONDS_PER_DAY = 86_400.0
# Bound IN lists well under every driver's parameter limit.
_CHUNK = 1000


@dataclass(frozen=True)
class RecessionFlag:
    """A regular buyer silent for longer than their habit allows."""

    customer_id: str
    orders: int
    usual_interval: timedelta
    last_order_at: datetime
    silent_for: timedelta
    task_id: str | None
    new_task: bool


@dataclass(frozen=True)
class NewActiveFlag:
    """A customer with a burst of orders; `monitoring_set` when this tick planned monitoring."""

    customer_id: str
    orders: int
    monitoring_set: bool


def recovery_task_id(customer_id: str, last_order_at: datetime) -> str:
    """Deterministic id of the recovery call for one silence episode."""
    key = f"{customer_id}|{isoformat_z(last_order_at)}"
    return f"tsk_rec_{hashlib.sha256(key.encode()).hexdigest()[:24]}"


def _at(value: datetime) -> BindParameter[datetime]:
    return literal(value, UtcDateTime())


def _recession_query(session: AsyncSession, as_of: datetime, policy: LifecyclePolicy) -> Any:
    since = as_of - timedelta(days=policy.recession_lookback_days)
    orders = (
        select(
            Activity.customer_id,
            Activity.at,
            func.lag(Activity.at)
            .over(partition_by=Activity.customer_id, order_by=Activity.at)
            .label("prev"),
        )
        .where(Activity.kind == "order", Activity.at <= _at(as_of), Activity.at > _at(since))
        .cte("orders")
    )
    gaps = (
        select(
            orders.c.customer_id, seconds_between(session, orders.c.at, orders.c.prev).label("gap")
        )
        .where(orders.c.prev.is_not(None))
        .cte("gaps")
    )
    ranked = select(
        gaps.c.customer_id,
        gaps.c.gap,
        func.row_number().over(partition_by=gaps.c.customer_id, order_by=gaps.c.gap).label("rn"),
        func.count().over(partition_by=gaps.c.customer_id).label("n"),
    ).cte("ranked")
    medians = (
        select(ranked.c.customer_id, func.avg(ranked.c.gap).label("median"))
        .where(or_(ranked.c.rn == (ranked.c.n + 1) // 2, ranked.c.rn == (ranked.c.n + 2) // 2))
        .group_by(ranked.c.customer_id)
        .cte("medians")
    )
    history = (
        select(
            orders.c.customer_id,
            func.count().label("orders"),
            func.min(orders.c.at).label("first_at"),
            func.max(orders.c.at).label("last_at"),
        )
        .group_by(orders.c.customer_id)
        .cte("history")
    )
    silence = seconds_between(session, _at(as_of), history.c.last_at)
    return (
        select(
            Customer.id,
            Customer.responsible_agent,
            Customer.voice_opt_out,
            Customer.do_not_contact,
            history.c.orders,
            history.c.last_at,
            medians.c.median,
        )
        .join(history, history.c.customer_id == Customer.id)
        .join(medians, medians.c.customer_id == Customer.id)
        .where(
            Customer.deleted_at.is_(None),
            Customer.status != CustomerStatus.CANCELLED,
            history.c.orders >= policy.recession_min_orders,
            seconds_between(session, history.c.last_at, history.c.first_at)
            >= policy.recession_min_history_days * _SECONDS_PER_DAY,
            medians.c.median > 0,
            silence > medians.c.median * policy.recession_factor,
        )
        .order_by(Customer.id)
    )


async def detect_recession(
    session: AsyncSession, as_of: datetime, policy: LifecyclePolicy
) -> list[RecessionFlag]:
    """Customers silent for more than k × their own median order interval, with recovery tasks."""
    as_of = as_utc(as_of)
    await session.flush()  # the statements below bypass the unit of work
    rows = (await session.execute(_recession_query(session, as_of, policy))).all()
    planned: dict[str, dict[str, Any]] = {}
    for row in rows:
        if not (row.voice_opt_out or row.do_not_contact):
            planned[row.id] = {
                "id": recovery_task_id(row.id, as_utc(row.last_at)),
                "kind": RECOVERY_KIND,
                "customer_id": row.id,
                "assignee": row.responsible_agent,
                "status": TaskStatus.OPEN,
                "min_call_seconds": policy.recovery_call_seconds,
                "priority": 0,
                "created_at": as_of,
                "due_at": as_of,
            }
    inserted: set[str] = set()
    if planned:
        table = cast(Table, Task.__table__)
        statement = (
            insert_for(session)(table)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(table.c.id)
        )
        inserted.update((await session.execute(statement, list(planned.values()))).scalars())
    flags = []
    for row in rows:
        last = as_utc(row.last_at)
        task_id = planned[row.id]["id"] if row.id in planned else None
        flags.append(
            RecessionFlag(
                customer_id=row.id,
                orders=row.orders,
                usual_interval=timedelta(seconds=round(float(row.median))),
                last_order_at=last,
                silent_for=as_of - last,
                task_id=task_id,
                new_task=task_id in inserted,
            )
        )
    return flags


async def detect_new_active(
    session: AsyncSession, as_of: datetime, policy: LifecyclePolicy
) -> list[NewActiveFlag]:
    """Customers with more than the threshold of orders in the window; plans their monitoring."""
    as_of = as_utc(as_of)
    start = as_of - timedelta(hours=policy.new_active_window_hours)
    await session.flush()  # the statements below bypass the unit of work
    count = func.count(Activity.id)
    query = (
        select(Customer.id, Customer.next_monitoring_at, count.label("orders"))
        .join(Activity, Activity.customer_id == Customer.id)
        .where(
            # last_activity_at is indexed and never older than any order: it narrows the
            # join to customers active in the window before activities are touched.
            Customer.last_activity_at > _at(start),
            Customer.deleted_at.is_(None),
            Customer.status != CustomerStatus.CANCELLED,
            Activity.kind == "order",
            Activity.at > _at(start),
            Activity.at <= _at(as_of),
        )
        .group_by(Customer.id, Customer.next_monitoring_at)
        .having(count > policy.new_active_orders)
        .order_by(Customer.id)
    )
    rows = (await session.execute(query)).all()
    unset = [row.id for row in rows if row.next_monitoring_at is None]
    for begin in range(0, len(unset), _CHUNK):
        await session.execute(
            update(Customer)
            .where(Customer.id.in_(unset[begin : begin + _CHUNK]))
            .where(Customer.next_monitoring_at.is_(None))
            .values(next_monitoring_at=as_of),
            execution_options={"synchronize_session": False},
        )
    chosen = set(unset)
    return [NewActiveFlag(row.id, row.orders, row.id in chosen) for row in rows]
