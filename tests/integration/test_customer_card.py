"""The customer card's lists: orders, limits and exact values, read in one PostgreSQL
statement (`card_query`) and by the ORM (`service`), which must agree row for row."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models import Call, OutboundContact, Payment, Task
from gateway.customers.card_query import CARD_OPEN_TASKS, CARD_RECENT, card_lists
from gateway.customers.service import card, get_live
from tests.support.card_reference import card_lists_by_orm
from tests.support.factories import make_customer


async def fill(database: Database, clock: FixedClock, customer_id: str, other: str) -> None:
    """More than the card shows of everything, ties in the orders, nulls, microseconds,
    money with four places, and rows of another customer that must not show."""
    now = clock.now()
    async with database.transaction() as session:
        for index in range(CARD_OPEN_TASKS + 3):
            session.add(
                Task(
                    id=f"tsk_{index:03d}",
                    task_id=f"T{index}",
                    kind="call" if index % 2 else "monitoring",
                    customer_id=customer_id,
                    assignee="agent-201" if index % 3 else None,
                    status="open",
                    min_call_seconds=20 + index,
                    created_at=now - timedelta(minutes=index, microseconds=index * 7),
                    due_at=None if index % 4 == 0 else now + timedelta(hours=index % 5),
                )
            )
        session.add(Task(id="tsk_done", customer_id=customer_id, status="done", created_at=now))
        session.add(Task(id="tsk_other", customer_id=other, status="open", created_at=now))
        for index in range(CARD_RECENT + 2):
            session.add(
                OutboundContact(
                    id=f"oc_{index:03d}",
                    idempotency_key=f"key-{index}",
                    channel="sms" if index % 2 else "email",
                    customer_id=customer_id,
                    template=None if index % 3 else "reminder",
                    status="delivered" if index % 2 else "failed",
                    reason=None if index % 2 else "bounced",
                    error=None if index % 2 else "550 no such user",
                    created_at=now - timedelta(seconds=index // 2),  # pairs tie on time
                    sent_at=now + timedelta(microseconds=index) if index % 2 else None,
                    delivered_at=now + timedelta(seconds=1) if index % 2 else None,
                    updated_at=now,
                )
            )
        for index in range(CARD_RECENT + 2):
            session.add(
                Call(
                    id=f"call_{index:03d}",
                    customer_id=customer_id,
                    direction="inbound" if index % 2 else "outbound",
                    started_at=None if index == 1 else now - timedelta(minutes=index),
                    extension="201" if index % 2 else None,
                    talk_seconds=index * 11 if index % 3 else None,
                    disposition="answered" if index % 2 else "no_answer",
                    topic="billing" if index == 2 else None,
                    created_at=now - timedelta(minutes=index, seconds=30),
                    updated_at=now,
                )
            )
        today = now.date()
        for index, (due, amount, status) in enumerate(
            [
                (today - timedelta(days=1), "5.00", "due"),  # past
                (today + timedelta(days=3), "99.9", "paid"),
                (today + timedelta(days=3), "150.2525", "due"),  # ties with the next on date
                (today + timedelta(days=3), "12", "due"),
                (today + timedelta(days=9), "1.00", "due"),
            ]
        ):
            session.add(
                Payment(
                    id=f"pay_{index}",
                    customer_id=customer_id,
                    contract_id=f"K{9 - index}",
                    due_date=due,
                    amount=Decimal(amount),
                    currency="UAH",
                    status=status,
                    updated_at=now,
                )
            )


async def test_card_lists_keep_their_orders_limits_and_values(
    database: Database, clock: FixedClock
) -> None:
    customer_id = await make_customer(database, clock.now(), "C-1", ["+380501234567"])
    other = await make_customer(database, clock.now(), "C-2", ["+380671234567"])
    await fill(database, clock, customer_id, other)
    async with database.sessions() as session:
        the_card = await card(session, await get_live(session, customer_id), clock.now().date())

    open_tasks = the_card.open_tasks
    assert len(open_tasks) == CARD_OPEN_TASKS and "tsk_done" not in {t.id for t in open_tasks}
    assert open_tasks[0].due_at == "2026-11-02T09:00:00Z"  # due now, the earliest
    assert all(t.due_at is None for t in open_tasks[-2:])  # no due date: last
    assert open_tasks[-1].created_at == "2026-11-02T08:47:59.999916Z"  # microseconds kept
    messages = the_card.last_contacts.messages
    assert [m.id for m in messages] == ["oc_001", "oc_000", "oc_003", "oc_002", "oc_005"]
    assert (messages[0].sent_at, messages[1].error) == (
        "2026-11-02T09:00:00.000001Z",
        "550 no such user",
    )
    calls = the_card.last_contacts.calls
    assert [c.id for c in calls] == ["call_000", "call_001", "call_002", "call_003", "call_004"]
    assert (calls[1].started_at, calls[2].topic, calls[3].talk_seconds) == (None, "billing", None)
    assert the_card.next_payment is not None
    assert the_card.next_payment.model_dump() == {
        "contract_id": "K6",
        "due_date": "2026-11-05",
        "amount": "12.00",
        "currency": "UAH",
        "status": "due",
    }

    # The one statement equals the plain ORM reading, on both databases.
    async with database.sessions() as session:
        for today in (clock.now().date(), date(2026, 11, 10), date(2027, 1, 1)):
            in_one = await card_lists(session, customer_id, today)
            by_orm = await card_lists_by_orm(session, customer_id, today)
            assert in_one == by_orm
        theirs = await card_lists(session, other, clock.now().date())
        assert [t.id for t in theirs[0]] == ["tsk_other"] and theirs[1:] == ([], [], None)
