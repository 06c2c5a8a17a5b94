"""Templates that would burn the CPU, through the real app on SQLite and PostgreSQL.

Refused at save (422 naming the bound), refused in preview (never a 500), skipped at send
with `invalid_template` (never left `pending` to be retried), and none of it keeps the
event loop from answering `/health` (issue 14, item 1).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models import Template
from gateway.core.http.auth import TokenRegistry
from gateway.settings import Settings
from tests.support.auth import ADMIN_TOKEN, bearer
from tests.support.crm_webhooks import post_event, upsert
from tests.support.messages import messages

Client = TestClient[Any, Any]
ADMIN = bearer(ADMIN_TOKEN)
# The probe's reproductions: each took seconds, or raised past the sandbox, before.
ATTACKS = {
    "power": "{{ (3**(10**7)) > 1 }}",
    "nested_ranges": "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}"
    "{% endfor %}done",
    "range_over_limit": "{% for i in range(100001) %}{% endfor %}done",
    "huge_number": "{{ 10**5000 }}",
}
HEALTH_BOUND = 1.0  # seconds: generous on a busy 2-core machine; the bench has real figures


@pytest.fixture
async def gateway(
    settings: Settings, database: Database, clock: FixedClock, tokens: TokenRegistry
) -> AsyncIterator[Client]:
    """The whole gateway with its send worker (sandbox channels)."""
    app = create_app(settings, clock=clock, tokens=tokens, workers=True)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def save_raw(database: Database, clock: FixedClock, name: str, body: str) -> None:
    """A template stored as an older version of the gateway would have let it be saved."""
    async with database.transaction() as session:
        session.add(
            Template(
                name=name,
                channel="sms",
                subject={},
                body={"uk": body},
                variables=[],
                version=1,
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )


async def skipped(client: Client, count: int) -> list[dict[str, Any]]:
    """Wait until `count` messages are final; the send worker polls every second."""
    items: list[dict[str, Any]] = []
    for _ in range(300):
        items = await messages(client)
        if len(items) == count and all(item["status"] != "pending" for item in items):
            return items
        await asyncio.sleep(0.05)
    raise AssertionError(f"messages still pending: {items}")


@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_a_template_past_a_bound_is_refused_at_save_and_in_preview(
    gateway: Client, database: Database, clock: FixedClock, attack: str
) -> None:
    template = {"channel": "sms", "body": {"uk": ATTACKS[attack]}}
    response = await gateway.put("/api/templates/attack", json=template, headers=ADMIN)
    problem = await response.json()
    assert response.status == 422, problem
    assert problem["errors"][0]["field"] == "body.uk"
    assert "exceeds a rendering limit" in problem["detail"], problem
    assert (await gateway.get("/api/templates/attack", headers=ADMIN)).status == 404

    await upsert(gateway, clock, "C1")
    (customer,) = (await (await gateway.get("/api/customers", headers=ADMIN)).json())["items"]
    edit = {"customer_id": customer["id"], "template": template}
    response = await gateway.post("/api/templates/attack/preview", json=edit, headers=ADMIN)
    assert response.status == 422, await response.text()

    # Saved before the bounds existed: the preview refuses it as it renders.
    await save_raw(database, clock, "old", ATTACKS[attack])
    response = await gateway.post(
        "/api/templates/old/preview", json={"customer_id": customer["id"]}, headers=ADMIN
    )
    problem = await response.json()
    assert response.status == 422, problem
    assert "exceeds a rendering limit" in problem["detail"], problem


async def test_messages_past_a_bound_are_skipped_as_invalid_templates(
    gateway: Client, database: Database, clock: FixedClock
) -> None:
    await upsert(gateway, clock, "C1")
    for body in ATTACKS.values():
        data = {"external_id": "C1", "channel": "sms", "body": body}
        await post_event(gateway, clock, "contact.requested", data)
    await save_raw(database, clock, "old", ATTACKS["power"])
    data = {"external_id": "C1", "channel": "sms", "template": "old"}
    await post_event(gateway, clock, "contact.requested", data)

    items = await skipped(gateway, len(ATTACKS) + 1)
    assert {(item["status"], item["reason"]) for item in items} == {
        ("skipped", "invalid_template")
    }, items
    assert all("exceeds a rendering limit" in (item["error"] or "") for item in items), items


async def test_health_answers_within_a_second_during_the_attack(
    gateway: Client, clock: FixedClock
) -> None:
    await upsert(gateway, clock, "C1")
    (customer,) = (await (await gateway.get("/api/customers", headers=ADMIN)).json())["items"]
    answers: list[tuple[int, float]] = []
    done = asyncio.Event()

    async def poll_health() -> None:
        while not done.is_set():
            started = time.perf_counter()
            response = await gateway.get("/health")
            await response.read()
            answers.append((response.status, time.perf_counter() - started))
            await asyncio.sleep(0.02)

    poller = asyncio.create_task(poll_health())
    try:
        for body in ATTACKS.values():
            template = {"channel": "sms", "body": {"uk": body}}
            await gateway.put("/api/templates/attack", json=template, headers=ADMIN)
            edit = {"customer_id": customer["id"], "template": template}
            await gateway.post("/api/templates/attack/preview", json=edit, headers=ADMIN)
            data = {"external_id": "C1", "channel": "sms", "body": body}
            await post_event(gateway, clock, "contact.requested", data)
        await skipped(gateway, len(ATTACKS))
    finally:
        done.set()
        await poller
    assert len(answers) >= 5 and {status for status, _ in answers} == {200}
    slowest = max(seconds for _, seconds in answers)
    assert slowest < HEALTH_BOUND, f"/health took {slowest:.2f} s during the attack"
