"""What reaches the logs: never a token, never a full phone number or e-mail address.

Logs are captured at DEBUG from every logger (SQL statements with their parameters
included, as an operator chasing a problem would turn on) while real requests run, and
the lines are formatted with the gateway's own formatters."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from crm_sync.signature import HEADER, sign
from gateway.core.clock import FixedClock, isoformat_z
from gateway.core.db.engine import Database
from gateway.core.logs import JsonFormatter, MaskingFormatter
from tests.support.auth import ADMIN_TOKEN, CRM_TOKEN, OPERATOR_TOKEN, WEBHOOK_SECRET, bearer
from tests.support.factories import make_call, make_customer
from tests.support.routes import bearer_routes, call

Client = TestClient[Any, Any]

UNKNOWN_TOKEN = "never-issued-token-0123456789"
PHONE = "+380671234567"
PHONE_FORMS = ("380671234567", "0671234567", "67 123 45 67", "067-123-45-67")
EMAIL = "ivan.petrenko@example.com"
CALLER = "+380501112233"


def formatted(records: list[logging.LogRecord]) -> list[str]:
    """Every record through both of the gateway's formatters, exceptions included."""
    plain = MaskingFormatter("%(levelname)s %(name)s %(message)s")
    lines = []
    for record in records:
        lines.append(plain.format(record))
        lines.append(JsonFormatter().format(record))
    return lines


def raw(records: list[logging.LogRecord]) -> str:
    """The unmasked messages: what a careless handler would write."""
    return "\n".join(record.getMessage() for record in records)


async def test_tokens_never_reach_the_logs(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for spec in bearer_routes():
        for token in (ADMIN_TOKEN, CRM_TOKEN, OPERATOR_TOKEN, UNKNOWN_TOKEN):
            await call(client, spec, bearer(token))
    # Sign-in carries the token in the body; a wrong one is logged as refused.
    await client.post("/api/session", json={"token": OPERATOR_TOKEN})
    await client.post("/api/session", json={"token": UNKNOWN_TOKEN})
    await client.get("/api/customers", headers={"Authorization": f"Token {ADMIN_TOKEN}"})

    records = caplog.records
    assert any("unknown" in record.getMessage() for record in records)  # refusals logged
    text = raw(records) + "\n".join(formatted(records)) + caplog.text
    for token in (ADMIN_TOKEN, CRM_TOKEN, OPERATOR_TOKEN, UNKNOWN_TOKEN):
        assert token not in text


def _signed(body: dict[str, Any], clock: FixedClock) -> tuple[bytes, dict[str, str]]:
    raw_body = json.dumps(body).encode()
    signature = sign(WEBHOOK_SECRET, raw_body, int(clock.now().timestamp()))
    return raw_body, {HEADER: signature, "Content-Type": "application/json"}


async def test_phones_and_emails_are_masked_in_logs_of_real_requests(
    client: Client, database: Database, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # SQLAlchemy keeps its own loggers at WARNING unless asked: ask, as an operator
    # chasing a problem would, so statements with their parameters and rows are logged.
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    occurred = isoformat_z(clock.now() - timedelta(minutes=1))
    data: dict[str, Any] = {
        "external_id": "C-PII",
        "name": "Іван",
        "phones": [PHONE],
        "email": EMAIL,
    }
    upsert = {"id": "evt-pii-1", "type": "customer.upserted", "occurred_at": occurred, "data": data}
    body, headers = _signed(upsert, clock)
    assert (await client.post("/crm/events", data=body, headers=headers)).status == 200
    bad_phone = {**upsert, "id": "evt-pii-2", "data": {**data, "phones": ["067-12"]}}
    body, headers = _signed(bad_phone, clock)
    assert (await client.post("/crm/events", data=body, headers=headers)).status == 422
    # A refused signature on a body full of personal data.
    await client.post("/crm/events", data=body, headers={HEADER: "t=1,v1=00"})

    customer_id = await make_customer(database, clock.now(), "C-CALLER", [CALLER])
    call_id = await make_call(
        database, started_at=clock.now(), talk_seconds=40, caller=CALLER, customer_id=customer_id
    )
    response = await client.get("/api/calls", headers=bearer(OPERATOR_TOKEN))
    assert response.status == 200
    await client.post(f"/api/calls/{call_id}/unknown-caller", headers=bearer(OPERATOR_TOKEN))
    response = await client.post(
        "/api/calls/originate",
        json={"agent_extension": "201", "number": PHONE},
        headers=bearer(OPERATOR_TOKEN),
    )
    assert response.status != 500

    records = caplog.records
    # The SQL log carries the parameters: the masking below is doing real work.
    assert PHONE in raw(records) and EMAIL in raw(records)
    for line in formatted(records):
        for value in (EMAIL, CALLER, CALLER[1:], *PHONE_FORMS):
            assert value not in line, line
