"""The customer's own opt-out beats an older consent event from the CRM."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from channels.email import unsubscribe_token
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models import Customer
from tests.support.auth import WEBHOOK_SECRET
from tests.support.crm_webhooks import post_event, upsert

Client = TestClient[Any, Any]


async def test_an_older_crm_consent_event_does_not_undo_an_unsubscribe(
    client: Client, clock: FixedClock, database: Database
) -> None:
    await upsert(client, clock, "C1", email="ivan@example.com")
    async with database.sessions() as session:
        customer_id = (await session.execute(select(Customer.id))).scalar_one()
    clock.advance(timedelta(minutes=5))
    token = unsubscribe_token(WEBHOOK_SECRET, customer_id)
    response = await client.post(
        f"/unsubscribe/email/{token}", data={"List-Unsubscribe": "One-Click"}
    )
    assert response.status < 300
    answer = await post_event(
        client,
        clock,
        "consent.changed",
        {"external_id": "C1", "channel": "email", "opted_out": False},
        occurred_at=clock.now() - timedelta(minutes=3),  # written in the CRM before the click
    )
    assert answer["status"] == "stale"
    async with database.sessions() as session:
        assert (await session.get(Customer, customer_id)).email_opt_out  # type: ignore[union-attr]
    later = await post_event(
        client,
        clock,
        "consent.changed",
        {"external_id": "C1", "channel": "email", "opted_out": False},
        occurred_at=clock.now() + timedelta(minutes=1),
    )
    assert later["status"] == "applied"
