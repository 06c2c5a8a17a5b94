"""A CRM contact request through the running gateway: webhook → pipeline → sandbox/task."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.http.auth import TokenRegistry
from gateway.settings import Settings
from tests.support.auth import OPERATOR_TOKEN, bearer
from tests.support.crm_webhooks import post_event, upsert
from tests.support.messages import messages

Client = TestClient[Any, Any]


@pytest.fixture
async def gateway(
    settings: Settings, database: Database, clock: FixedClock, tokens: TokenRegistry
) -> AsyncIterator[Client]:
    """The whole gateway with its workers (no providers configured: sandbox channels)."""
    app = create_app(settings, clock=clock, tokens=tokens, workers=True)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def settle(client: Client, expected: str, count: int = 1) -> list[dict[str, Any]]:
    for _ in range(200):
        items = await messages(client)
        if len(items) == count and all(item["status"] == expected for item in items):
            return items
        await asyncio.sleep(0.05)
    raise AssertionError(f"messages never reached {expected}: {items}")


async def test_an_sms_request_is_sent_through_the_sandbox_and_costed(
    gateway: Client, clock: FixedClock
) -> None:
    await upsert(gateway, clock, "C1")
    await post_event(
        gateway,
        clock,
        "contact.requested",
        {
            "external_id": "C1",
            "channel": "sms",
            "body": "Платіж {{ code }} завтра",
            "variables": {"code": "A-17"},
        },
    )
    (message,) = await settle(gateway, "delivered")
    assert message["sandbox"] is True and message["segments"] == 1
    assert message["cost"] == "0.30" and message["currency"] == "UAH"


async def test_a_voice_request_becomes_a_call_task(gateway: Client, clock: FixedClock) -> None:
    await upsert(gateway, clock, "C1", responsible_agent="agent-201")
    await post_event(
        gateway,
        clock,
        "contact.requested",
        {"external_id": "C1", "channel": "voice", "body": "Call about the payment"},
    )
    (message,) = await settle(gateway, "sent")
    assert message["channel"] == "voice"
    tasks = await gateway.get("/api/tasks?assignee=agent-201", headers=bearer(OPERATOR_TOKEN))
    (task,) = (await tasks.json())["items"]
    assert task["kind"] == "call" and task["status"] == "open"
    assert task["min_call_seconds"] == 20


async def test_an_opted_out_customer_is_skipped_with_the_reason(
    gateway: Client, clock: FixedClock
) -> None:
    await upsert(gateway, clock, "C1")
    await post_event(
        gateway,
        clock,
        "consent.changed",
        {"external_id": "C1", "channel": "sms", "opted_out": True},
    )
    await post_event(
        gateway,
        clock,
        "contact.requested",
        {"external_id": "C1", "channel": "sms", "body": "Hello"},
    )
    (message,) = await settle(gateway, "skipped")
    assert message["reason"] == "opted_out"


async def test_an_sms_goes_through_twilio_and_its_delivery_comes_back_signed(
    settings: Settings, database: Database, clock: FixedClock, tokens: TokenRegistry
) -> None:
    import socket

    from pydantic import SecretStr
    from sqlalchemy import select

    from gateway.core.db.models import OutboxItem
    from tests.support.twilio_stub import TwilioStub

    stub = TwilioStub("ACflow", "flow-token", clock=clock.now)
    base = await stub.start()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    wired = settings.model_copy(
        update={
            "twilio_account_sid": "ACflow",
            "twilio_auth_token": SecretStr("flow-token"),
            "twilio_from": "+15005550006",
            "twilio_api_base": base,
            "public_url": f"http://127.0.0.1:{port}",
        }
    )
    app = create_app(wired, clock=clock, tokens=tokens, workers=True)
    try:
        async with TestClient(TestServer(app, host="127.0.0.1", port=port)) as client:
            await upsert(client, clock, "C1")
            await post_event(
                client,
                clock,
                "contact.requested",
                {"external_id": "C1", "channel": "sms", "body": "Ваш платіж прийнято"},
            )
            (sent,) = await settle(client, "sent")
            assert sent["sandbox"] is False
            (message,) = stub.messages.values()
            assert message.to == "+380671234567" and message.body == "Ваш платіж прийнято"
            status, _, _ = await stub.deliver(message.sid, "delivered", price="-0.0750")
            assert status < 300
            (delivered,) = await settle(client, "delivered")
            assert delivered["segments"] == 1
    finally:
        await stub.close()
    async with database.sessions() as session:
        pushed = (await session.execute(select(OutboxItem.type))).scalars().all()
    assert "message.delivered" in pushed
