"""Customer lifecycle on both databases: a year replayed tick by tick with an injected time.

CRM events go through the real ingest (`apply_event`), so the lifecycle reads exactly
what the webhook path stores.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from crm_sync.events import ParseContext, parse_data, parse_envelope
from crm_sync.ingest import apply_event
from gateway.core.clock import FixedClock, isoformat_z
from gateway.core.db.engine import Database
from gateway.core.db.models import Customer, OutboxItem, StatusChange, Task
from gateway.lifecycle.cadence import (
    add_months,
    after_monitoring_call,
    cadence_task_id,
    due_call_tasks,
)
from gateway.lifecycle.detectors import detect_new_active, detect_recession, recovery_task_id
from gateway.lifecycle.policy import LifecyclePolicy
from gateway.lifecycle.transitions import (
    InvalidStatus,
    LifecycleError,
    RefreshCounts,
    StatusLocked,
    apply_status,
    refresh_statuses,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CONTEXT = ParseContext("UA", "UTC")
_ids = itertools.count(1)


def day(n: float, hour: float = 0) -> datetime:
    """T0 plus `n` days and `hour` hours."""
    return T0 + timedelta(days=n, hours=hour)


async def crm(database: Database, type_: str, data: dict[str, Any], now: datetime) -> None:
    """Feed one CRM event through the real ingest."""
    raw = {"id": f"evt-{next(_ids)}", "type": type_, "occurred_at": isoformat_z(now), "data": data}
    envelope = parse_envelope(raw, CONTEXT)
    async with database.transaction() as session:
        await apply_event(session, envelope, parse_data(envelope, CONTEXT), now)


async def customer(database: Database, external_id: str, now: datetime, agent: str | None) -> str:
    """Create a customer as the CRM would; returns our id."""
    data = {"external_id": external_id, "name": external_id.title(), "responsible_agent": agent}
    await crm(database, "customer.upserted", data, now)
    async with database.transaction() as session:
        found = await session.scalar(select(Customer.id).where(Customer.external_id == external_id))
    assert found is not None
    return found


async def order(database: Database, external_id: str, at: datetime, kind: str = "order") -> None:
    """An activity reported by the CRM (at the time it happened)."""
    data = {"external_id": external_id, "kind": kind, "at": isoformat_z(at)}
    await crm(database, "customer.activity", data, at)


async def history(database: Database, customer_id: str) -> list[tuple[Any, ...]]:
    """(from, to, at, reason) of every status change, oldest first."""
    async with database.transaction() as session:
        rows = await session.execute(
            select(
                StatusChange.from_status,
                StatusChange.to_status,
                StatusChange.at,
                StatusChange.reason,
            )
            .where(StatusChange.customer_id == customer_id)
            .order_by(StatusChange.at, StatusChange.to_status)
        )
        return [tuple(row) for row in rows]


async def events(database: Database) -> list[OutboxItem]:
    """The customer.status_changed activities queued for the CRM, in order."""
    async with database.transaction() as session:
        rows = await session.scalars(
            select(OutboxItem)
            .where(OutboxItem.type == "customer.status_changed")
            .order_by(OutboxItem.seq)
        )
        return list(rows)


async def status_of(database: Database, customer_id: str) -> Customer:
    async with database.transaction() as session:
        found = await session.get(Customer, customer_id)
        assert found is not None
        return found


async def tick(database: Database, as_of: datetime, policy: LifecyclePolicy) -> RefreshCounts:
    async with database.transaction() as session:
        return await refresh_statuses(session, as_of, policy)


CREATED = (None, "active", T0, "created")  # written by the CRM ingest, not the lifecycle


def moves(*items: tuple[str | None, str, datetime, str]) -> list[tuple[Any, ...]]:
    """A customer's expected history: created at T0, then `items`."""
    return [CREATED, *items]


async def replay(
    database: Database,
    days: int,
    policy: LifecyclePolicy,
    script: dict[int, list[Any]],
    *,
    cadence: bool = False,
) -> tuple[RefreshCounts, list[Any]]:
    """Tick at midnight of every day; before each tick feed that day's scripted events."""
    clock = FixedClock(T0)
    total = RefreshCounts()
    created: list[Any] = []
    for n in range(days + 1):
        for action in script.get(n - 1, []):  # yesterday's events, reported before tonight's tick
            await action()
        clock.set(day(n))
        as_of = clock.now()
        counts = await tick(database, as_of, policy)
        for status, count in counts.moves.items():
            total.moves[status] += count
        total.reactivations += counts.reactivations
        total.complaints += counts.complaints
        if cadence:
            async with database.transaction() as session:
                created.extend(await due_call_tasks(session, as_of, policy))
    return total, created


def schedule(script: dict[int, list[Any]], n: int, action: Any) -> None:
    script.setdefault(n, []).append(action)


async def test_a_year_of_statuses_replays_exactly(database: Database) -> None:
    policy = LifecyclePolicy()
    steady = await customer(database, "steady", T0, "agent-1")
    fades = await customer(database, "fades", T0, "agent-2")
    moody = await customer(database, "moody", T0, "agent-1")
    silent = await customer(database, "silent", T0, None)
    leaves = await customer(database, "leaves", T0, "agent-1")
    script: dict[int, list[Any]] = {}

    def buy(external_id: str, n: int, hour: float) -> None:
        schedule(script, n, lambda: order(database, external_id, day(n, hour)))

    for n in range(0, 365, 7):
        buy("steady", n, 9)
    buy("fades", 1, 10)
    buy("fades", 200, 12)
    for n in range(0, 100, 3):
        buy("moody", n, 11)
    complaint = {"external_id": "moody", "at": isoformat_z(day(50, 15)), "topic": "billing"}
    schedule(script, 50, lambda: crm(database, "complaint.created", complaint, day(50, 15)))
    schedule(
        script, 10, lambda: crm(database, "customer.deleted", {"external_id": "leaves"}, day(10, 8))
    )

    total, _ = await replay(database, 365, policy, script)

    assert await history(database, steady) == moves()
    assert await history(database, fades) == moves(
        ("active", "warm", day(31, 10), "inactivity"),
        ("warm", "cold", day(61, 10), "inactivity"),
        ("cold", "lost", day(91, 10), "inactivity"),
        ("lost", "active", day(200, 12), "reactivation"),
        ("active", "warm", day(230, 12), "inactivity"),
        ("warm", "cold", day(260, 12), "inactivity"),
        ("cold", "lost", day(290, 12), "inactivity"),
    )
    assert await history(database, moody) == moves(
        ("active", "cold", day(50, 15), "complaint"),
        ("cold", "active", day(51, 11), "activity"),
        ("active", "warm", day(129, 11), "inactivity"),
        ("warm", "cold", day(159, 11), "inactivity"),
        ("cold", "lost", day(189, 11), "inactivity"),
    )
    # Never any activity: the silence counts from when the CRM first sent the customer.
    assert await history(database, silent) == moves(
        ("active", "warm", day(30), "inactivity"),
        ("warm", "cold", day(60), "inactivity"),
        ("cold", "lost", day(90), "inactivity"),
    )
    # Cancelled by the CRM: only the deletion's own change, never a lifecycle move.
    assert [row[1] for row in await history(database, leaves)] == ["active", "cancelled"]
    assert (await status_of(database, leaves)).status == "cancelled"
    assert (await status_of(database, fades)).status == "lost"
    assert total.moves == {"active": 2, "warm": 4, "cold": 5, "lost": 4}
    assert total.reactivations == 1 and total.complaints == 1

    queued = await events(database)
    assert len(queued) == total.total == 15
    first = next(item for item in queued if item.ordering_key == fades)
    assert first.event_id == f"customer.status_changed:{fades}:2026-02-01T10:00:00Z:warm"
    assert first.payload == {
        "external_id": "fades",
        "from": "active",
        "to": "warm",
        "at": "2026-02-01T10:00:00Z",
        "reason": "inactivity",
    }
    assert first.occurred_at == day(31, 10)
    reactivation = [item for item in queued if item.payload["reason"] == "reactivation"]
    assert [item.ordering_key for item in reactivation] == [fades]


async def test_rerunning_a_tick_changes_nothing(database: Database) -> None:
    policy = LifecyclePolicy()
    first = await customer(database, "a", T0, None)
    await order(database, "a", day(0, 1))
    assert (await tick(database, day(95), policy)).moves["lost"] == 1
    again = await tick(database, day(95), policy)
    assert again.total == 0
    # A tick long after the fact moves straight to the deepest status crossed.
    assert await history(database, first) == moves(("active", "lost", day(90, 1), "inactivity"))
    assert len(await events(database)) == 1


async def test_activity_after_the_as_of_time_is_ignored(database: Database) -> None:
    policy = LifecyclePolicy()
    cid = await customer(database, "late", T0, None)
    await order(database, "late", day(0))
    await tick(database, day(40), policy)
    await order(database, "late", day(50))
    # Replaying day 45: the order of day 50 has not happened yet.
    assert (await tick(database, day(45), policy)).total == 0
    assert (await status_of(database, cid)).status == "warm"
    assert (await tick(database, day(51), policy)).moves["active"] == 1


async def test_cadence_calls_every_14_and_30_days_and_reruns_add_nothing(
    database: Database,
) -> None:
    policy = LifecyclePolicy(lost_after_days=400)
    cid = await customer(database, "quiet", T0, "agent-7")
    opted = await customer(database, "no-calls", T0, "agent-7")
    await crm(
        database,
        "consent.changed",
        {"external_id": "no-calls", "channel": "voice", "opted_out": True},
        T0,
    )
    script: dict[int, list[Any]] = {}
    schedule(script, 0, lambda: order(database, "quiet", day(0, 10)))
    _, created = await replay(database, 200, policy, script, cadence=True)

    warm = [day(n, 10) for n in (30, 44, 58)]
    cold = [day(n, 10) for n in (60, 90, 120, 150, 180)]
    mine = [task for task in created if task.customer_id == cid]
    assert [(task.status, task.due_at) for task in mine] == [("warm", at) for at in warm] + [
        ("cold", at) for at in cold
    ]
    assert not [task for task in created if task.customer_id == opted]
    async with database.transaction() as session:
        rows = list(
            await session.scalars(select(Task).where(Task.customer_id == cid).order_by(Task.due_at))
        )
        assert [row.id for row in rows] == [cadence_task_id(cid, at) for at in warm + cold]
        assert {(row.kind, row.assignee, row.min_call_seconds, row.status) for row in rows} == {
            ("call", "agent-7", 20, "open")
        }
        assert rows[0].created_at == day(31)  # the tick after the due time
        assert await due_call_tasks(session, day(200), policy) == []
    async with database.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Task)) == len(mine)


async def test_cadence_after_downtime_creates_one_task_on_the_grid(database: Database) -> None:
    policy = LifecyclePolicy()
    cid = await customer(database, "gap", T0, "agent-1")
    await order(database, "gap", day(0, 10))
    await tick(database, day(31), policy)
    async with database.transaction() as session:
        assert [t.due_at for t in await due_call_tasks(session, day(31), policy)] == [day(30, 10)]
    # Down from day 31 to day 59: periods due on days 44 and 58 collapse into one.
    async with database.transaction() as session:
        assert [t.due_at for t in await due_call_tasks(session, day(59), policy)] == [day(44, 10)]
    assert (await status_of(database, cid)).next_contact_at == day(72, 10)


async def test_recession_uses_each_customers_own_rhythm(database: Database) -> None:
    policy = LifecyclePolicy()
    weekly = await customer(database, "weekly", T0, "agent-3")
    await customer(database, "irregular", T0, "agent-3")
    await customer(database, "newbie", T0, "agent-3")
    for n in range(0, 176, 7):  # 26 orders, last on day 175
        await order(database, "weekly", day(n, 10))
    for n in (0, 2, 32, 37, 97, 100, 145, 165):  # gaps 2, 30, 5, 60, 3, 45, 20: median 20
        await order(database, "irregular", day(n, 10))
    for n in range(50, 85, 7):  # only 5 orders: too little history to know a habit
        await order(database, "newbie", day(n, 10))
    await order(database, "weekly", day(300, 10))  # the future, for a replay of day 196

    async def detect(at: datetime) -> list[Any]:
        async with database.transaction() as session:
            return await detect_recession(session, at, policy)

    assert await detect(day(196, 9)) == []  # 3 × 7 days not yet exceeded
    flags = await detect(day(196, 11))
    # The irregular buyer is 31 days silent, past any global 30-day rule, yet within
    # 3 × their own 20 days; the newbie is 112 days silent with no known habit.
    assert [flag.customer_id for flag in flags] == [weekly]
    flag = flags[0]
    assert flag.orders == 26 and flag.usual_interval == timedelta(days=7)
    assert flag.last_order_at == day(175, 10) and flag.new_task
    assert flag.task_id == recovery_task_id(weekly, day(175, 10))
    again = await detect(day(197))
    assert [(f.customer_id, f.task_id, f.new_task) for f in again] == [
        (weekly, flag.task_id, False)
    ]
    async with database.transaction() as session:
        tasks = list(await session.scalars(select(Task)))
    assert [(t.id, t.kind, t.assignee, t.due_at, t.min_call_seconds) for t in tasks] == [
        (flag.task_id, "recovery_call", "agent-3", day(196, 11), 20)
    ]


async def test_recession_ends_with_an_order_and_a_new_silence_is_a_new_episode(
    database: Database,
) -> None:
    policy = LifecyclePolicy(recession_factor=2.5)
    cid = await customer(database, "back", T0, None)
    for n in range(0, 71, 7):
        await order(database, "back", day(n, 8))
    async with database.transaction() as session:
        assert [f.customer_id for f in await detect_recession(session, day(88), policy)] == [cid]
    await order(database, "back", day(90, 8))
    async with database.transaction() as session:
        assert await detect_recession(session, day(91), policy) == []
        later = await detect_recession(session, day(90 + 18), policy)
    assert [f.task_id for f in later] == [recovery_task_id(cid, day(90, 8))]
    assert later[0].task_id != recovery_task_id(cid, day(70, 8))


async def test_new_active_customers_get_monitoring(database: Database) -> None:
    policy = LifecyclePolicy()
    as_of = day(10, 12)
    burst = await customer(database, "burst", T0, None)
    await customer(database, "three", T0, None)
    await customer(database, "spread", T0, None)
    planned = await customer(database, "planned", T0, None)
    await customer(database, "cards", T0, None)
    for hours in (23, 10, 5, 1):
        await order(database, "burst", as_of - timedelta(hours=hours))
    for hours in (20, 10, 1):
        await order(database, "three", as_of - timedelta(hours=hours))
        await order(database, "cards", as_of - timedelta(hours=hours))
    for hours in (25, 10, 5, 1):
        await order(database, "spread", as_of - timedelta(hours=hours))
    for hours in (22, 12, 6, 2, 1):
        await order(database, "planned", as_of - timedelta(hours=hours))
    await order(database, "cards", as_of - timedelta(hours=2), kind="card_use")
    await order(database, "cards", as_of - timedelta(hours=3), kind="login")
    async with database.transaction() as session:
        row = await session.get(Customer, planned)
        assert row is not None
        row.next_monitoring_at = day(40)

    async with database.transaction() as session:
        flags = await detect_new_active(session, as_of, policy)
    assert sorted((f.customer_id, f.orders, f.monitoring_set) for f in flags) == sorted(
        [(burst, 4, True), (planned, 5, False)]
    )
    assert (await status_of(database, burst)).next_monitoring_at == as_of
    assert (await status_of(database, planned)).next_monitoring_at == day(40)
    async with database.transaction() as session:
        rerun = await detect_new_active(session, as_of + timedelta(minutes=30), policy)
    assert {(f.customer_id, f.monitoring_set) for f in rerun} == {(burst, False), (planned, False)}
    assert (await status_of(database, burst)).next_monitoring_at == as_of


async def test_apply_status_writes_once_and_refuses_bad_moves(database: Database) -> None:
    cid = await customer(database, "one", T0, None)
    gone = await customer(database, "gone", T0, None)
    await crm(database, "customer.deleted", {"external_id": "gone"}, day(1))
    async with database.transaction() as session:
        row = await session.get(Customer, cid)
        assert row is not None
        assert await apply_status(session, row, "warm", day(3), "campaign:win-back")
        assert not await apply_status(session, row, "warm", day(4), "campaign:win-back")
        assert row.next_contact_at == day(3)
    async with database.transaction() as session:
        row = await session.get(Customer, cid)
        assert row is not None
        with pytest.raises(InvalidStatus):
            await apply_status(session, row, "sleepy", day(5), "typo")
        with pytest.raises(LifecycleError):
            await apply_status(session, row, "cold", day(5), "")
        cancelled = await session.get(Customer, gone)
        assert cancelled is not None
        with pytest.raises(StatusLocked):
            await apply_status(session, cancelled, "active", day(5), "campaign")
    assert await history(database, cid) == moves(("active", "warm", day(3), "campaign:win-back"))
    assert [item.event_id for item in await events(database)] == [
        f"customer.status_changed:{cid}:2026-01-04T00:00:00Z:warm"
    ]
    assert (await status_of(database, cid)).status == "warm"


async def test_monitoring_moves_by_calendar_months(database: Database) -> None:
    policy = LifecyclePolicy()
    active = await customer(database, "act", T0, None)
    other = await customer(database, "oth", T0, None)
    async with database.transaction() as session:
        first = await session.get(Customer, active)
        second = await session.get(Customer, other)
        assert first is not None and second is not None
        second.status = "cold"
        at = datetime(2027, 1, 31, 14, 30, tzinfo=UTC)
        assert await after_monitoring_call(session, first, at, policy) == datetime(
            2027, 2, 28, 14, 30, tzinfo=UTC
        )
        assert await after_monitoring_call(session, second, at, policy) == datetime(
            2027, 4, 30, 14, 30, tzinfo=UTC
        )
    assert (await status_of(database, active)).next_monitoring_at == datetime(
        2027, 2, 28, 14, 30, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        ((2028, 1, 31), 1, (2028, 2, 29)),
        ((2027, 11, 30), 3, (2028, 2, 29)),
        ((2027, 12, 15), 1, (2028, 1, 15)),
        ((2027, 3, 31), -1, (2027, 2, 28)),
        ((2027, 10, 31), 14, (2028, 12, 31)),
    ],
)
def test_add_months_clamps_the_day(
    start: tuple[int, int, int], months: int, expected: tuple[int, int, int]
) -> None:
    assert add_months(datetime(*start, 9, tzinfo=UTC), months) == datetime(*expected, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    "overrides",
    [
        {"warm_after_days": 60, "cold_after_days": 60},
        {"lost_after_days": 50},
        {"call_every_days": {"sleepy": 7}},
        {"call_every_days": {"warm": 0}},
        {"recession_factor": 1.0},
    ],
)
def test_contradictory_policies_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        LifecyclePolicy(**overrides)
