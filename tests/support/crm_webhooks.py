"""CRM webhook deliveries for tests: signed event envelopes, posting them, upserting customers."""

from __future__ import annotations

import json
from datetime import datetime
from itertools import count
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from crm_sync.signature import HEADER, sign
from gateway.core.clock import FixedClock, isoformat_z
from tests.support.auth import WEBHOOK_SECRET

Client = TestClient[Any, Any]

_ids = count(1)


def envelope(
    type_: str, data: dict[str, Any], occurred_at: datetime, event_id: str | None = None
) -> bytes:
    """A serialised event."""
    return json.dumps(
        {
            "id": event_id or f"evt-{next(_ids)}",
            "type": type_,
            "occurred_at": isoformat_z(occurred_at),
            "data": data,
        }
    ).encode()


async def post_raw(
    client: Client,
    body: bytes,
    clock: FixedClock,
    *,
    signature: str | None = None,
    headers: dict[str, str] | None = None,
) -> ClientResponse:
    """POST a body signed with the test secret at the clock's time (or a given header)."""
    value = (
        signature
        if signature is not None
        else sign(WEBHOOK_SECRET, body, int(clock.now().timestamp()))
    )
    sent = {HEADER: value, "Content-Type": "application/json", **(headers or {})}
    return await client.post("/crm/events", data=body, headers=sent)


async def post_event(
    client: Client,
    clock: FixedClock,
    type_: str,
    data: dict[str, Any],
    *,
    occurred_at: datetime | None = None,
    event_id: str | None = None,
    expect: int = 200,
) -> dict[str, Any]:
    """Post one signed event, check the status, return the JSON answer."""
    response = await post_raw(
        client, envelope(type_, data, occurred_at or clock.now(), event_id), clock
    )
    answer: dict[str, Any] = await response.json()
    assert response.status == expect, answer
    return answer


async def upsert(client: Client, clock: FixedClock, external_id: str = "C1", **fields: Any) -> None:
    """Create or update a customer through the webhook."""
    data = {
        "external_id": external_id,
        "name": "Іван Петренко",
        "phones": ["067 123 45 67"],
        **fields,
    }
    assert (await post_event(client, clock, "customer.upserted", data))["status"] == "applied"
