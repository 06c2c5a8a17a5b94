"""Observability of the real app: the send queue and webhook failures in /metrics, and
a request id (and a call id) on every log line written while handling one."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models import Call, OutboundContact
from gateway.core.db.types import new_id
from gateway.core.http.request_context import REQUEST_ID_HEADER, request_id_from
from gateway.core.logs import ContextFilter, JsonFormatter, MaskingFormatter, call_context, mask_pii
from gateway.pbx_simulator import CallSpec, SimulatorServer
from tests.support.auth import ADMIN_TOKEN, bearer
from tests.support.pbx import pbx, pbx_gateway, wait_for

__all__ = ["pbx", "pbx_gateway"]  # fixtures

Client = TestClient[Any, Any]
GENERATED_ID = re.compile(r"[0-9a-f]{32}")


async def scrape(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by (name, sorted labels)."""
    async with client.get("/metrics") as response:
        assert response.status == 200
        text = await response.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def add_contact(
    database: Database,
    channel: str,
    status: str,
    created_at: datetime,
    not_before: datetime | None = None,
) -> None:
    async with database.transaction() as session:
        session.add(
            OutboundContact(
                id=new_id("msg"),
                idempotency_key=new_id("key"),
                channel=channel,
                body="Нагадуємо: платіж 25.11",
                variables={},
                status=status,
                not_before=not_before,
                attempts=0,
                created_at=created_at,
                updated_at=created_at,
            )
        )


async def test_send_queue_depth_and_oldest_due_age_per_channel(
    client: Client, database: Database, clock: FixedClock
) -> None:
    now = clock.now()
    # Due: pending since 10 min, deferred until 2 min ago; email pending since 30 s.
    await add_contact(database, "sms", "pending", now - timedelta(minutes=10))
    await add_contact(
        database, "sms", "deferred", now - timedelta(hours=1), now - timedelta(minutes=2)
    )
    await add_contact(database, "email", "pending", now - timedelta(seconds=30))
    # Not waiting to be sent: scheduled for later, already sent, being sent, failed.
    await add_contact(
        database, "sms", "pending", now - timedelta(days=1), now + timedelta(minutes=5)
    )
    await add_contact(database, "sms", "sent", now - timedelta(days=2))
    await add_contact(database, "email", "sending", now - timedelta(days=2))
    await add_contact(database, "voice", "failed", now - timedelta(days=2))

    samples = await scrape(client)
    depth = "switchboard_send_queue_depth"
    age = "switchboard_send_queue_oldest_due_seconds"
    assert samples[(depth, (("channel", "sms"),))] == 2
    assert samples[(age, (("channel", "sms"),))] == 600
    assert samples[(depth, (("channel", "email"),))] == 1
    assert samples[(age, (("channel", "email"),))] == 30
    assert (depth, (("channel", "voice"),)) not in samples

    # Time passes: the scheduled one falls due, and the figures follow at the next scrape.
    clock.advance(timedelta(minutes=5))
    samples = await scrape(client)
    assert samples[(depth, (("channel", "sms"),))] == 3
    assert samples[(age, (("channel", "sms"),))] == 900


async def test_an_empty_queue_reads_zero_for_every_configured_channel(client: Client) -> None:
    samples = await scrape(client)
    for channel in ("sms", "email"):  # the default send_rates
        assert samples[("switchboard_send_queue_depth", (("channel", channel),))] == 0
        assert samples[("switchboard_send_queue_oldest_due_seconds", (("channel", channel),))] == 0


async def test_webhook_failures_are_counted_by_route_and_reason(client: Client) -> None:
    unsigned = await client.post("/crm/events", json={"event_id": "e1"})
    assert unsigned.status == 401
    not_json = await client.post("/crm/events", data=b"{", headers={"X-Switchboard-Signature": "x"})
    assert not_json.status == 401
    twilio = await client.post("/providers/twilio/status", data={"MessageSid": "SM1"})
    assert twilio.status >= 400
    # Not a webhook: not counted.
    assert (await client.get("/api/customers", headers=bearer("wrong-" + "x" * 20))).status == 401

    samples = await scrape(client)
    failures = {
        dict(labels)["webhook"] + " " + dict(labels)["reason"]: value
        for (name, labels), value in samples.items()
        if name == "switchboard_webhook_failures_total"
    }
    assert failures["/crm/events unauthorized"] == 2
    assert failures["/providers/twilio/status unavailable"] == 1
    assert set(failures) == {"/crm/events unauthorized", "/providers/twilio/status unavailable"}


def test_request_ids_from_callers_are_kept_only_when_sane() -> None:
    assert request_id_from("req-42.a:b_c") == "req-42.a:b_c"
    for insane in (None, "", "has space", "line\nbreak", "x" * 129, "-leading", "ід"):
        generated = request_id_from(insane)
        assert GENERATED_ID.fullmatch(generated), insane
    assert request_id_from(None) != request_id_from(None)


async def test_every_response_echoes_the_request_id(client: Client) -> None:
    kept = await client.get(
        "/api/customers", headers={**bearer(ADMIN_TOKEN), "X-Request-ID": "abc-1"}
    )
    assert kept.status == 200 and kept.headers[REQUEST_ID_HEADER] == "abc-1"
    # Refusals and unknown routes carry one too, generated when none (or a bad one) came.
    refused = await client.get("/api/customers", headers={"X-Request-ID": "bad id"})
    assert refused.status == 401
    assert GENERATED_ID.fullmatch(refused.headers[REQUEST_ID_HEADER])
    missing = await client.get("/no/such/route")
    assert missing.status == 404
    assert GENERATED_ID.fullmatch(missing.headers[REQUEST_ID_HEADER])
    assert missing.headers[REQUEST_ID_HEADER] != refused.headers[REQUEST_ID_HEADER]


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The gateway's JSON log lines (context filter included) from every logger."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_log_lines_of_a_request_carry_its_id_and_client(
    client: Client, json_log: io.StringIO
) -> None:
    response = await client.get(
        "/api/customers", headers={**bearer("wrong-" + "x" * 20), "X-Request-ID": "trace-7"}
    )
    assert response.status == 401
    refusals = [line for line in lines(json_log) if "refused an unknown token" in line["msg"]]
    assert len(refusals) == 1
    assert refusals[0]["request_id"] == "trace-7"
    assert refusals[0]["client"] == "127.0.0.1"
    # Outside a request, no id is invented.
    logging.getLogger("test.outside").warning("between requests")
    assert "request_id" not in lines(json_log)[-1]


def test_log_lines_written_while_handling_a_call_carry_its_id(json_log: io.StringIO) -> None:
    log = logging.getLogger("test.calls")
    with call_context("1700000000.42"):
        log.warning("bridged")
    log.warning("after")
    inside, after = lines(json_log)[-2:]
    assert inside["call_id"] == "1700000000.42"
    assert "call_id" not in after

    record = logging.makeLogRecord({"msg": "bridged", "levelname": "INFO"})
    with call_context("1700000000.42"):
        ContextFilter().filter(record)
    assert MaskingFormatter("%(message)s").format(record) == "bridged [call_id=1700000000.42]"


def test_client_addresses_survive_masking_but_dotted_phones_do_not() -> None:
    assert mask_pii("from 203.0.113.5") == "from 203.0.113.5"
    assert "123.45" not in mask_pii("call 067.123.45.67")


async def test_what_the_gateway_logs_while_handling_a_call_carries_the_calls_id(
    gateway: Client, database: Database, pbx: SimulatorServer, json_log: io.StringIO
) -> None:
    # SQL statements are what every call's handling logs (at INFO, when asked for).
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    try:
        pbx.start_call(CallSpec(caller="+380501234567", extensions=("201",), talk_seconds=2))

        async def ended() -> int:
            async with database.sessions() as session:
                return len(
                    (
                        await session.scalars(
                            select(Call.pbx_linkedid).where(Call.state == "ended")
                        )
                    ).all()
                )

        await wait_for(ended, 1)
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    async with database.sessions() as session:
        linkedid = await session.scalar(select(Call.pbx_linkedid))
    logged = lines(json_log)
    for_the_call = [line for line in logged if line.get("call_id") == linkedid]
    assert any("INSERT INTO calls" in line["msg"] for line in for_the_call)
    assert any("UPDATE calls" in line["msg"] for line in for_the_call)
    # No other call id was made up, and AMI work is not mistaken for a request's.
    assert {line["call_id"] for line in logged if "call_id" in line} == {linkedid}
    assert not any("request_id" in line for line in for_the_call)


async def test_refusals_and_unknown_routes_are_counted_with_their_status(client: Client) -> None:
    assert (await client.get("/api/customers")).status == 401
    assert (await client.get("/api/customers", headers=bearer(ADMIN_TOKEN))).status == 200
    samples = await scrape(client)
    requests = "switchboard_http_requests_total"
    route = ("route", "/api/customers")
    assert samples[(requests, (("method", "GET"), route, ("status", "401")))] == 1
    assert samples[(requests, (("method", "GET"), route, ("status", "200")))] == 1
