"""CRM webhooks in, over real HTTP on both databases: signature, replay, order, each type."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from crm_sync.signature import sign
from gateway.app import create_app
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models import (
    Activity,
    Agent,
    AgentExtension,
    Complaint,
    Customer,
    EntityVersion,
    OutboundContact,
    Partner,
    Payment,
    ProcessedWebhook,
    StatusChange,
    Task,
    Template,
)
from gateway.core.http.auth import TokenRegistry
from gateway.settings import Settings
from tests.support.auth import OPERATOR_TOKEN, WEBHOOK_SECRET, bearer
from tests.support.crm_webhooks import Client, envelope, post_event, post_raw, upsert


async def rows(database: Database, model: Any) -> int:
    """How many rows a table holds."""
    async with database.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def customer(database: Database, external_id: str = "C1") -> Customer | None:
    """The customer row with its phones."""
    async with database.sessions() as session:
        result = await session.execute(
            select(Customer)
            .where(Customer.external_id == external_id)
            .options(selectinload(Customer.phones))
        )
        return result.scalar_one_or_none()


async def test_customer_upserted_normalises_phones_and_updates_partially(
    client: Client, clock: FixedClock, database: Database
) -> None:
    await upsert(
        client,
        clock,
        phones=["067 123 45 67", "+38 (050) 111-22-33", "00380931112233"],
        email="ivan@example.com",
        products=["card"],
        bonus_balance="12.50",
    )
    row = await customer(database)
    assert row is not None
    assert [p.e164 for p in row.phones] == ["+380671234567", "+380501112233", "+380931112233"]
    assert [p.last_digits for p in row.phones] == ["671234567", "501112233", "931112233"]
    assert row.status == "active" and row.bonus_balance == Decimal("12.5")
    clock.advance(timedelta(seconds=5))
    await post_event(client, clock, "customer.upserted", {"external_id": "C1", "region": "Kyiv"})
    row = await customer(database)
    assert row is not None and row.region == "Kyiv" and row.email == "ivan@example.com"
    assert len(row.phones) == 3  # phones not sent: left alone
    assert await rows(database, StatusChange) == 1  # created once


async def test_bad_signatures_are_refused_and_write_nothing(
    client: Client, clock: FixedClock, database: Database
) -> None:
    body = envelope("customer.upserted", {"external_id": "C1", "name": "X"}, clock.now())
    now = int(clock.now().timestamp())
    cases = {
        "missing": await client.post("/crm/events", data=body),
        "wrong secret": await post_raw(
            client, body, clock, signature=sign("other-secret", body, now)
        ),
        "stale": await post_raw(
            client, body, clock, signature=sign(WEBHOOK_SECRET, body, now - 301)
        ),
        "future": await post_raw(
            client, body, clock, signature=sign(WEBHOOK_SECRET, body, now + 301)
        ),
        "tampered": await post_raw(
            client, body.replace(b'"X"', b'"Y"'), clock, signature=sign(WEBHOOK_SECRET, body, now)
        ),
        "garbage": await post_raw(client, body, clock, signature="v1=abc"),
    }
    for name, response in cases.items():
        assert response.status == 401, name
        assert response.content_type == "application/problem+json", name
    assert await rows(database, Customer) == 0
    assert await rows(database, ProcessedWebhook) == 0
    # Within the tolerance is accepted.
    good = await post_raw(client, body, clock, signature=sign(WEBHOOK_SECRET, body, now - 299))
    assert good.status == 200


async def test_operator_bearer_token_cannot_post_events(
    client: Client, clock: FixedClock, database: Database
) -> None:
    body = envelope("customer.upserted", {"external_id": "C1"}, clock.now())
    response = await client.post("/crm/events", data=body, headers=bearer(OPERATOR_TOKEN))
    assert response.status == 401
    assert await rows(database, Customer) == 0


async def test_missing_secret_is_503(
    settings: Settings, database: Database, clock: FixedClock
) -> None:
    app = create_app(
        settings.model_copy(update={"crm_webhook_secret": None}),
        clock=clock,
        tokens=TokenRegistry(),
        workers=False,
    )
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await post_raw(
            client, envelope("customer.deleted", {"external_id": "C1"}, clock.now()), clock
        )
        assert response.status == 503
        assert (await response.json())["type"].endswith("/unavailable")


async def test_oversized_body_is_413(client: Client, clock: FixedClock, database: Database) -> None:
    data = {"external_id": "C1", "attributes": {"blob": "x" * 70_000}}
    response = await post_raw(client, envelope("customer.upserted", data, clock.now()), clock)
    assert response.status == 413
    assert await rows(database, Customer) == 0


async def test_replay_is_acknowledged_and_changes_nothing(
    client: Client, clock: FixedClock, database: Database
) -> None:
    await post_event(
        client, clock, "customer.upserted", {"external_id": "C1", "name": "A"}, event_id="e-1"
    )
    clock.advance(timedelta(seconds=10))
    answer = await post_event(
        client, clock, "customer.upserted", {"external_id": "C1", "name": "B"}, event_id="e-1"
    )
    assert answer == {"status": "duplicate"}
    row = await customer(database)
    assert row is not None and row.name == "A"


async def test_concurrent_identical_deliveries_apply_once(
    client: Client, clock: FixedClock, database: Database
) -> None:
    body = envelope(
        "complaint.created",
        {"external_id": "C1", "at": "2026-11-01T10:00:00Z", "topic": "fees"},
        clock.now(),
        "e-race",
    )
    await upsert(client, clock)
    responses = await asyncio.gather(*(post_raw(client, body, clock) for _ in range(4)))
    statuses = sorted([(await r.json())["status"] for r in responses])
    assert statuses == ["applied", "duplicate", "duplicate", "duplicate"]
    assert await rows(database, Complaint) == 1


async def test_older_event_does_not_overwrite_newer(
    client: Client, clock: FixedClock, database: Database
) -> None:
    t0 = clock.now()
    await post_event(
        client, clock, "customer.upserted", {"external_id": "C1", "name": "New"}, occurred_at=t0
    )
    answer = await post_event(
        client,
        clock,
        "customer.upserted",
        {"external_id": "C1", "name": "Old"},
        occurred_at=t0 - timedelta(minutes=1),
    )
    assert answer == {"status": "stale"}
    row = await customer(database)
    assert row is not None and row.name == "New"
    # Same for a delete that happened before the last update.
    answer = await post_event(
        client,
        clock,
        "customer.deleted",
        {"external_id": "C1"},
        occurred_at=t0 - timedelta(seconds=1),
    )
    assert answer == {"status": "stale"}
    row = await customer(database)
    assert row is not None and row.deleted_at is None


async def test_invalid_phone_is_422_naming_the_field_and_writes_nothing(
    client: Client, clock: FixedClock, database: Database
) -> None:
    data = {"external_id": "C1", "name": "X", "phones": ["0671234567", "12"]}
    answer = await post_event(client, clock, "customer.upserted", data, expect=422)
    assert answer["errors"][0]["field"] == "data.phones[1]"
    assert answer["detail"].startswith("data.phones[1]")
    assert await customer(database) is None
    assert await rows(database, ProcessedWebhook) == 0


async def test_malformed_events_are_422(
    client: Client, clock: FixedClock, database: Database
) -> None:
    answer = await post_event(client, clock, "customer.exploded", {"external_id": "C1"}, expect=422)
    assert answer["errors"][0]["field"] == "type"
    answer = await post_event(
        client,
        clock,
        "customer.activity",
        {"external_id": "C1", "kind": "order", "at": "2026-11-01T10:00:00Z"},
        expect=422,
    )
    assert answer["errors"][0]["field"] == "data.external_id"
    assert "unknown customer" in answer["detail"]
    await upsert(client, clock)
    answer = await post_event(
        client,
        clock,
        "customer.activity",
        {"external_id": "C1", "kind": "dance", "at": "2026-11-01"},
        expect=422,
    )
    assert answer["errors"][0]["field"] == "data.kind"
    answer = await post_event(
        client,
        clock,
        "payment.scheduled",
        {
            "external_id": "C1",
            "contract_id": "K",
            "due_date": "2026-12-01",
            "amount": 1.5,
            "currency": "uah",
        },
        expect=422,
    )
    assert answer["errors"][0]["field"] == "data.currency"
    answer = await post_event(
        client,
        clock,
        "contact.requested",
        {"external_id": "C1", "channel": "sms", "template": "nope"},
        expect=422,
    )
    assert answer["errors"][0]["field"] == "data.template"
    answer = await post_event(
        client,
        clock,
        "contact.requested",
        {"external_id": "C1", "channel": "email", "body": "Hi"},
        expect=422,
    )
    assert "subject" in answer["detail"]
    response = await post_raw(client, b"{not json", clock)
    assert response.status == 400
    assert await rows(database, Activity) == 0 and await rows(database, Payment) == 0
    assert await rows(database, OutboundContact) == 0
    assert await rows(database, ProcessedWebhook) == 1  # only the upsert


async def test_activity_payment_complaint_consent(
    client: Client, clock: FixedClock, database: Database
) -> None:
    await upsert(client, clock)
    await post_event(
        client,
        clock,
        "customer.activity",
        {"external_id": "C1", "kind": "order", "at": "2026-11-01T10:00:00Z", "amount": "99.90"},
    )
    # Older activity: recorded, but the customer's last times stay on the newest.
    await post_event(
        client,
        clock,
        "customer.activity",
        {"external_id": "C1", "kind": "login", "at": "2026-10-01T10:00:00"},
    )
    await post_event(
        client,
        clock,
        "payment.scheduled",
        {
            "external_id": "C1",
            "contract_id": "K1",
            "due_date": "2026-12-01",
            "amount": "150.00",
            "currency": "UAH",
        },
    )
    clock.advance(timedelta(seconds=1))
    await post_event(
        client,
        clock,
        "payment.scheduled",
        {
            "external_id": "C1",
            "contract_id": "K1",
            "due_date": "2026-12-01",
            "amount": "175.25",
            "currency": "UAH",
        },
    )
    await post_event(
        client,
        clock,
        "complaint.created",
        {"external_id": "C1", "at": "2026-11-01T11:00:00Z", "topic": "fees"},
    )
    await post_event(
        client, clock, "consent.changed", {"external_id": "C1", "channel": "sms", "opted_out": True}
    )
    await post_event(
        client,
        clock,
        "consent.changed",
        {"external_id": "C1", "channel": "email", "opted_out": False},
    )
    row = await customer(database)
    assert row is not None
    assert row.last_activity_at == datetime.fromisoformat("2026-11-01T10:00:00+00:00")
    assert row.last_order_at == row.last_activity_at
    assert row.sms_opt_out is True and row.email_opt_out is False
    async with database.sessions() as session:
        payments = (await session.execute(select(Payment))).scalars().all()
        assert [(p.amount, p.due_date) for p in payments] == [
            (Decimal("175.25"), date(2026, 12, 1))
        ]
        login = (
            await session.execute(select(Activity).where(Activity.kind == "login"))
        ).scalar_one()
        # No offset: read in SWITCHBOARD_TIMEZONE (Kyiv, UTC+3 in October).
        assert login.at == datetime.fromisoformat("2026-10-01T07:00:00+00:00")
    assert await rows(database, Complaint) == 1
    assert await rows(database, EntityVersion) == 4  # customer, payment, two consents


async def test_contact_task_agent_partner(
    client: Client, clock: FixedClock, database: Database
) -> None:
    await upsert(client, clock)
    await post_event(
        client,
        clock,
        "contact.requested",
        {
            "external_id": "C1",
            "channel": "email",
            "body": "Hello {{ name }}",
            "subject": "Hi",
            "send_at": "2026-11-03T10:00:00+02:00",
            "variables": {"x": 1},
        },
        event_id="req-1",
    )
    await post_event(
        client,
        clock,
        "task.created",
        {
            "task_id": "T1",
            "external_id": "C1",
            "assignee": "agent-201",
            "due_at": "2026-11-04T12:00:00Z",
        },
    )
    await post_event(
        client,
        clock,
        "agent.upserted",
        {"agent_id": "A1", "name": "Olena", "extensions": ["201", "202"]},
    )
    await post_event(
        client,
        clock,
        "agent.upserted",
        {"agent_id": "A2", "name": "Taras", "extensions": ["202", "203"]},
    )
    await post_event(
        client,
        clock,
        "partner.upserted",
        {
            "partner_id": "P1",
            "name": "Call Co",
            "capacity": 100,
            "cost_per_contact": "2.50",
            "eligibility": {"field": "region", "op": "==", "value": "Kyiv"},
        },
    )
    async with database.sessions() as session:
        contact = (await session.execute(select(OutboundContact))).scalar_one()
        assert (contact.status, contact.idempotency_key, contact.channel) == (
            "pending",
            "crm:req-1",
            "email",
        )
        assert contact.not_before == datetime.fromisoformat("2026-11-03T08:00:00+00:00")
        assert contact.variables == {"x": 1}
        task = (await session.execute(select(Task))).scalar_one()
        assert (task.task_id, task.status, task.min_call_seconds, task.assignee) == (
            "T1",
            "open",
            20,
            "agent-201",
        )
        owners = dict(
            (extension, agent_id)
            for extension, agent_id in (
                await session.execute(select(AgentExtension.extension, Agent.agent_id).join(Agent))
            ).all()
        )
        assert owners == {"201": "A1", "202": "A2", "203": "A2"}
        agents = {
            a.agent_id: a.extensions for a in (await session.execute(select(Agent))).scalars()
        }
        assert agents == {"A1": ["201"], "A2": ["202", "203"]}
        partner = (await session.execute(select(Partner))).scalar_one()
        assert (partner.capacity_per_day, partner.cost_per_contact) == (100, Decimal("2.5"))


async def test_contact_with_saved_template(
    client: Client, clock: FixedClock, database: Database
) -> None:
    async with database.transaction() as session:
        session.add(
            Template(
                name="reminder",
                channel="sms",
                body={"uk": "Нагадування"},
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
    await upsert(client, clock)
    answer = await post_event(
        client,
        clock,
        "contact.requested",
        {"external_id": "C1", "channel": "email", "template": "reminder"},
        expect=422,
    )
    assert answer["errors"][0]["field"] == "data.template"
    await post_event(
        client,
        clock,
        "contact.requested",
        {"external_id": "C1", "channel": "sms", "template": "reminder"},
    )
    assert await rows(database, OutboundContact) == 1


async def test_customer_deleted_is_soft_and_restorable(
    client: Client, clock: FixedClock, database: Database
) -> None:
    await upsert(client, clock)
    await post_event(client, clock, "task.created", {"task_id": "T1", "external_id": "C1"})
    clock.advance(timedelta(seconds=1))
    await post_event(client, clock, "customer.deleted", {"external_id": "C1"})
    row = await customer(database)
    assert row is not None and row.deleted_at == clock.now() and row.status == "cancelled"
    async with database.sessions() as session:
        assert (await session.execute(select(Task.status))).scalar_one() == "cancelled"
    answer = await post_event(
        client,
        clock,
        "complaint.created",
        {"external_id": "C1", "at": "2026-11-01T11:00:00Z", "topic": "x"},
        expect=422,
    )
    assert answer["errors"][0]["field"] == "data.external_id"
    clock.advance(timedelta(seconds=1))
    await upsert(client, clock)
    row = await customer(database)
    assert row is not None and row.deleted_at is None and row.status == "active"
    async with database.sessions() as session:
        moves = (
            (await session.execute(select(StatusChange.to_status).order_by(StatusChange.id)))
            .scalars()
            .all()
        )
        assert moves == ["active", "cancelled", "active"]


async def test_outcomes_are_counted_in_metrics(client: Client, clock: FixedClock) -> None:
    await post_event(client, clock, "customer.upserted", {"external_id": "C1"}, event_id="m-1")
    await post_event(client, clock, "customer.upserted", {"external_id": "C1"}, event_id="m-1")
    await client.post("/crm/events", data=b"{}")
    text = await (await client.get("/metrics")).text()
    assert 'switchboard_crm_webhooks_total{outcome="applied"} 1.0' in text
    assert 'switchboard_crm_webhooks_total{outcome="duplicate"} 1.0' in text
    assert 'switchboard_crm_webhooks_total{outcome="unauthorized"} 1.0' in text
