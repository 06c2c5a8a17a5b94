"""What schemathesis found, pinned on both databases: each case answered 5xx once.

1. U+0000 in a query value (`GET /api/messages?campaign=%00`): PostgreSQL text cannot
   hold it, the query failed, 500. Now every NUL in a path or query parameter, or in a
   JSON body's strings, is a 422 naming the field, and nothing is written.
2. The same in a signed Twilio status callback's form (`MessageSid=SM%00`): 500 on
   PostgreSQL. Form bodies are checked alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from gateway.app import create_app
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models import Template
from gateway.core.http.auth import TokenRegistry
from gateway.settings import Settings
from tests.support.auth import ADMIN_TOKEN, OPERATOR_TOKEN, bearer
from tests.support.twilio_app import twilio_configured, twilio_signed

Client = TestClient[Any, Any]


async def refusal(response: Any) -> list[dict[str, str]]:
    assert response.status == 422, await response.text()
    body = await response.json()
    assert body["type"].endswith("/invalid-input")
    return list(body["errors"])


@pytest.mark.parametrize(
    ("path", "field", "token"),
    [
        ("/api/messages?campaign=%00", "campaign", ADMIN_TOKEN),  # the one found
        ("/api/messages?status=a%00b", "status", OPERATOR_TOKEN),
        ("/api/customers?q=%00", "q", ADMIN_TOKEN),
        ("/api/tasks?assignee=%00", "assignee", OPERATOR_TOKEN),
        ("/api/calls?customer_id=%00", "customer_id", ADMIN_TOKEN),
        ("/api/customers/%00", "id", ADMIN_TOKEN),
        ("/api/customers/cus%00/timeline", "id", OPERATOR_TOKEN),
        ("/api/agents/%00", "id", ADMIN_TOKEN),
    ],
)
async def test_a_nul_in_a_path_or_query_parameter_is_a_422_naming_it(
    client: Client, path: str, field: str, token: str
) -> None:
    response = await client.get(path, headers=bearer(token))
    assert await refusal(response) == [
        {"field": field, "message": "the NUL character is not allowed in text"}
    ]


async def test_a_nul_in_a_json_body_is_a_422_naming_it_and_nothing_is_saved(
    client: Client, database: Database
) -> None:
    body = {"channel": "sms", "body": {"uk": "Платіж\u0000 завтра"}}
    response = await client.put("/api/templates/reminder", json=body, headers=bearer(ADMIN_TOKEN))
    assert [error["field"] for error in await refusal(response)] == ["body.uk"]
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Template)) == 0
    # The same template without the NUL is saved: the refusal was for the NUL alone.
    body["body"] = {"uk": "Платіж завтра"}
    response = await client.put("/api/templates/reminder", json=body, headers=bearer(ADMIN_TOKEN))
    assert response.status == 200, await response.text()


async def test_a_nul_is_refused_only_after_authentication(client: Client) -> None:
    response = await client.get("/api/messages?campaign=%00")
    assert response.status == 401


@pytest.fixture
async def twilio_client(
    settings: Settings, database: Database, clock: FixedClock, tokens: TokenRegistry
) -> AsyncIterator[Client]:
    """The real app with Twilio configured, so that its callbacks check signatures."""
    app = create_app(twilio_configured(settings), clock=clock, tokens=tokens, workers=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def signed_status(client: Client, params: dict[str, str]) -> Any:
    path = "/providers/twilio/status"
    return await client.post(path, data=params, headers=twilio_signed(path, params))


async def test_a_nul_in_a_signed_twilio_callback_is_a_422_naming_the_field(
    twilio_client: Client,
) -> None:
    response = await signed_status(
        twilio_client, {"MessageSid": "SM\x00", "MessageStatus": "delivered"}
    )
    assert [error["field"] for error in await refusal(response)] == ["MessageSid"]
    # The same callback without the NUL is accepted (a sid nobody has: nothing to move).
    response = await signed_status(
        twilio_client, {"MessageSid": "SM0", "MessageStatus": "delivered"}
    )
    assert response.status == 204, await response.text()
