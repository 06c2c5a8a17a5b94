"""A CRM contact request through the running gateway: webhook → pipeline → sandbox/task."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.clock import FixedClock
from gateway.db.engine import Database
from gateway.http.auth import TokenRegistry
from gateway.settings import Settings
from tests.conftest import OPERATOR_TOKEN, bearer
from tests.integration.test_crm_webhooks import post_event, upsert

Client = TestClient[Any, Any]


@pytest.fixture
async def gateway(
    settings: Settings, database: Database, clock: FixedClock, tokens: TokenRegistry
) -> AsyncIterator[Client]:
    """The whole gateway with its workers (no providers configured: sandbox channels)."""
    app = create_app(settings, clock=clock, tokens=tokens, workers=True)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def messages(client: Client, **query: str) -> list[dict[str, Any]]:
    response = await client.get("/api/messages", params=query, headers=bearer(OPERATOR_TOKEN))
    assert response.status == 200
    return list((await response.json())["items"])


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
