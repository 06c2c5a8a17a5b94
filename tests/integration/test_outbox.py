"""CRM push-back outbox against a real HTTP CRM on loopback, on both databases."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import func, select

from crm_sync.outbox import OutboxWorker
from crm_sync.settings import OutboxPolicy
from gateway.app import create_app
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models.crm import OutboxItem
from gateway.core.http.auth import TokenRegistry
from gateway.core.metrics import Metrics
from gateway.core.outbox import InvalidOutboxItem, enqueue
from gateway.settings import Settings
from tests.support.auth import ADMIN_TOKEN, OPERATOR_TOKEN, WEBHOOK_SECRET, bearer
from tests.support.cli_process import run_cli
from tests.support.crm_server import CrmServer

Client = TestClient[Any, Any]
CRM_API_TOKEN = "crm-api-token-for-tests-0001"


@pytest.fixture
async def crm(clock: FixedClock) -> AsyncIterator[CrmServer]:
    """The fake CRM, verifying signatures against the test clock."""
    async with CrmServer(WEBHOOK_SECRET, now=lambda: clock.now().timestamp()) as server:
        yield server


def crm_settings(settings: Settings, crm: CrmServer, **policy: Any) -> Settings:
    """The test settings pointed at the fake CRM, with a fast retry policy."""
    values: dict[str, Any] = {
        "max_attempts": 50,
        "base_delay_seconds": 1.0,
        "max_delay_seconds": 60.0,
        "request_timeout_seconds": 0.3,
        **policy,
    }
    return settings.model_copy(
        update={
            "crm_api_url": crm.url,
            "crm_api_token": SecretStr(CRM_API_TOKEN),
            "outbox": OutboxPolicy(**values),
        }
    )


def make_worker(database: Database, settings: Settings, clock: FixedClock) -> OutboxWorker:
    """A worker with deterministic jitter."""
    return OutboxWorker(database, settings, clock, Metrics(), rng=random.Random(3))


async def add(
    database: Database, clock: FixedClock, event_id: str, customer: str, **data: Any
) -> OutboxItem:
    """Enqueue one activity in its own transaction."""
    async with database.transaction() as session:
        return await enqueue(
            session,
            type="call.completed",
            data={"customer_id": customer, **data},
            ordering_key=customer,
            occurred_at=clock.now(),
            event_id=event_id,
            now=clock.now(),
        )


async def items(database: Database) -> dict[str, OutboxItem]:
    """Every outbox item by event id."""
    async with database.transaction() as session:
        return {i.event_id: i for i in await session.scalars(select(OutboxItem))}


async def drain(worker: OutboxWorker, clock: FixedClock, database: Database) -> None:
    """Run passes, moving the clock past any backoff, until nothing is pending."""
    for _ in range(400):
        if await worker.run_once():
            continue
        if all(i.state != "pending" for i in (await items(database)).values()):
            return
        clock.advance(timedelta(seconds=worker.policy.max_delay_seconds))
    raise AssertionError("the outbox never drained")


def collapse(ids: list[str]) -> list[str]:
    """Drop repeats of the id just before: at-least-once may resend, never reorder."""
    return [value for n, value in enumerate(ids) if n == 0 or ids[n - 1] != value]


async def test_delivers_signed_envelope_with_idempotency_key(
    database: Database, settings: Settings, clock: FixedClock, crm: CrmServer
) -> None:
    worker = make_worker(database, crm_settings(settings, crm), clock)
    await add(database, clock, "evt-1", "cus_1", amount=Decimal("3.45"), at=clock.now())
    try:
        assert await worker.run_once() == 1
        assert await worker.run_once() == 0
    finally:
        await worker.close()
    [request] = crm.received
    assert request.signature_ok and request.answered == 201
    assert request.idempotency_key == "evt-1" and request.event_id == "evt-1"
    assert request.authorization == f"Bearer {CRM_API_TOKEN}"
    assert request.type == "call.completed"
    assert request.data == {"customer_id": "cus_1", "amount": "3.45", "at": "2026-11-02T09:00:00Z"}
    item = (await items(database))["evt-1"]
    assert (item.state, item.attempts, item.last_status) == ("delivered", 1, 201)
    assert item.delivered_at == clock.now() and item.locked_until is None


async def test_order_per_customer_kept_when_half_the_requests_fail(
    database: Database, settings: Settings, clock: FixedClock, crm: CrmServer
) -> None:
    crm.fail_share, crm.failures = 0.5, ("500", "timeout", "late")
    worker = make_worker(database, crm_settings(settings, crm), clock)
    expected = {f"cus_{c}": [f"evt-{c}-{n}" for n in range(5)] for c in range(3)}
    for n in range(5):  # interleaved across customers, as real traffic is
        for customer, ids in expected.items():
            await add(database, clock, ids[n], customer)
    try:
        await drain(worker, clock, database)
    finally:
        await worker.close()
    assert {i.state for i in (await items(database)).values()} == {"delivered"}
    assert any(r.answered != 201 for r in crm.received), "the CRM never failed"
    for customer, ids in expected.items():
        assert collapse(crm.applied_ids("customer_id", customer)) == ids


async def test_permanent_4xx_is_dead_at_once_and_later_items_go_on(
    database: Database, settings: Settings, clock: FixedClock, crm: CrmServer
) -> None:
    crm.permanent = {"evt-bad": 422}
    worker = make_worker(database, crm_settings(settings, crm), clock)
    await add(database, clock, "evt-bad", "cus_1")
    await add(database, clock, "evt-next", "cus_1")
    try:
        await drain(worker, clock, database)
    finally:
        await worker.close()
    stored = await items(database)
    bad = stored["evt-bad"]
    assert (bad.state, bad.attempts, bad.last_status) == ("dead", 1, 422)
    assert "422" in (bad.last_error or "")
    assert stored["evt-next"].state == "delivered"
    assert [r.event_id for r in crm.received] == ["evt-bad", "evt-next"]
    assert worker.metrics.outbox_dead._value.get() == 1


async def test_retryable_failures_back_off_on_the_clock_then_die(
    database: Database, settings: Settings, clock: FixedClock, crm: CrmServer
) -> None:
    crm.fail_share = 1.0
    worker = make_worker(database, crm_settings(settings, crm, max_attempts=3), clock)
    await add(database, clock, "evt-1", "cus_1")
    try:
        for attempt in (1, 2):
            assert await worker.run_once() == 1
            item = (await items(database))["evt-1"]
            assert (item.state, item.attempts, item.last_status) == ("pending", attempt, 500)
            wait = item.next_attempt_at - clock.now()
            assert timedelta(0) < wait <= timedelta(seconds=2 ** (attempt - 1))
            assert await worker.run_once() == 0  # not due until the clock moves
            clock.set(item.next_attempt_at)
        assert await worker.run_once() == 1
    finally:
        await worker.close()
    item = (await items(database))["evt-1"]
    assert (item.state, item.attempts) == ("dead", 3)
    assert len(crm.received) == 3


async def test_timeouts_are_retried_and_lost_answers_resent_with_the_same_key(
    database: Database, settings: Settings, clock: FixedClock, crm: CrmServer
) -> None:
    crm.fail_share, crm.failures = 1.0, ("late",)
    worker = make_worker(database, crm_settings(settings, crm), clock)
    await add(database, clock, "evt-1", "cus_1")
    try:
        assert await worker.run_once() == 1
        item = (await items(database))["evt-1"]
        assert item.state == "pending" and item.last_status is None
        assert "in time" in (item.last_error or "")
        crm.fail_share = 0.0
        await drain(worker, clock, database)
    finally:
        await worker.close()
    assert [r.idempotency_key for r in crm.received] == ["evt-1", "evt-1"]
    assert crm.applied_ids() == ["evt-1", "evt-1"]  # the CRM dedupes by key


async def test_a_crashed_workers_lease_runs_out_and_the_item_comes_back(
    database: Database, settings: Settings, clock: FixedClock, crm: CrmServer
) -> None:
    config = crm_settings(settings, crm)
    crashed, survivor = make_worker(database, config, clock), make_worker(database, config, clock)
    await add(database, clock, "evt-1", "cus_1")
    await add(database, clock, "evt-2", "cus_1")
    try:
        assert [i.event_id for i in await crashed.claim()] == ["evt-1"]
        assert await survivor.run_once() == 0  # leased, and evt-2 waits behind it
        clock.advance(timedelta(seconds=config.section(OutboxPolicy).request_timeout_seconds + 31))
        await drain(survivor, clock, database)
    finally:
        await crashed.close()
        await survivor.close()
    assert crm.applied_ids() == ["evt-1", "evt-2"]


async def test_two_workers_never_send_one_item_twice_and_keep_order(
    database: Database, database_url: str, settings: Settings, clock: FixedClock, crm: CrmServer
) -> None:
    crm.delay_seconds = 0.005
    config = crm_settings(settings, crm, batch_size=4)
    expected = {f"cus_{c}": [f"evt-{c}-{n}" for n in range(6)] for c in range(5)}
    for n in range(6):
        for customer, ids in expected.items():
            await add(database, clock, ids[n], customer)
    databases = [Database(database_url), Database(database_url)]  # as two processes
    workers = [make_worker(db, config, clock) for db in databases]

    async def run(worker: OutboxWorker) -> int:
        passes = 0
        for _ in range(500):
            if await worker.run_once():
                passes += 1
            else:
                async with worker.database.transaction() as session:
                    left = await session.scalar(
                        select(func.count()).where(OutboxItem.state == "pending")
                    )
                if not left:
                    return passes
                await asyncio.sleep(0.002)
        raise AssertionError("workers never drained the outbox")

    try:
        passes = await asyncio.gather(*(run(worker) for worker in workers))
    finally:
        for worker, db in zip(workers, databases, strict=True):
            await worker.close()
            await db.dispose()
    assert all(passes), "one worker did all the work; nothing ran concurrently"
    assert max(crm.max_parallel.values()) == 1
    assert sorted(crm.applied_ids()) == sorted(i for ids in expected.values() for i in ids)
    for customer, ids in expected.items():
        assert crm.applied_ids("customer_id", customer) == ids


async def test_enqueue_refuses_bad_input_and_writes_nothing(
    database: Database, clock: FixedClock
) -> None:
    bad_calls: list[dict[str, Any]] = [
        {"type": "", "data": {}, "ordering_key": "cus_1", "occurred_at": clock.now()},
        {"type": "x.y", "data": {}, "ordering_key": "", "occurred_at": clock.now()},
        {"type": "x.y", "data": {}, "ordering_key": "k" * 129, "occurred_at": clock.now()},
        {"type": "x.y", "data": {}, "ordering_key": "g", "occurred_at": datetime(2026, 1, 1)},
        {"type": "x.y", "data": {"v": object()}, "ordering_key": "g", "occurred_at": clock.now()},
        {
            "type": "x.y",
            "data": {"v": float("nan")},
            "ordering_key": "g",
            "occurred_at": clock.now(),
        },
    ]
    for call in bad_calls:
        with pytest.raises(InvalidOutboxItem):
            async with database.transaction() as session:
                await enqueue(session, **call)
    assert await items(database) == {}


async def test_enqueue_is_durable_only_with_its_transaction_and_idempotent(
    database: Database, clock: FixedClock
) -> None:
    class DomainFailure(Exception):
        pass

    with pytest.raises(DomainFailure):
        async with database.transaction() as session:
            await enqueue(
                session,
                type="x.y",
                data={},
                ordering_key="g",
                occurred_at=clock.now(),
                event_id="evt-rolled-back",
            )
            raise DomainFailure
    first = await add(database, clock, "evt-1", "cus_1", n=1)
    again = await add(database, clock, "evt-1", "cus_1", n=2)
    stored = await items(database)
    assert list(stored) == ["evt-1"]
    assert again.seq == first.seq and stored["evt-1"].payload["n"] == 1


async def make_dead_letter(
    database: Database, settings: Settings, clock: FixedClock, crm: CrmServer
) -> OutboxItem:
    """Turn one item into a dead letter through the real worker."""
    crm.permanent = {"evt-dead": 400}
    worker = make_worker(database, crm_settings(settings, crm), clock)
    item = await add(database, clock, "evt-dead", "cus_1")
    try:
        await drain(worker, clock, database)
    finally:
        await worker.close()
    return item


async def test_api_lists_dead_letters_health_degrades_and_retry_requeues(
    client: Client, database: Database, settings: Settings, clock: FixedClock, crm: CrmServer
) -> None:
    health = await (await client.get("/health")).json()
    assert health["status"] == "ok"
    assert health["components"]["outbox"] == {"backlog": 0, "dead": 0, "oldest_pending_seconds": 0}
    dead = await make_dead_letter(database, settings, clock, crm)
    await add(database, clock, "evt-waiting", "cus_2")
    clock.advance(timedelta(seconds=90))

    response = await client.get("/api/outbox?state=dead", headers=bearer(ADMIN_TOKEN))
    assert response.status == 200
    body = await response.json()
    assert [i["event_id"] for i in body["items"]] == ["evt-dead"] and body["next_cursor"] is None
    assert body["items"][0]["last_status"] == 400 and body["items"][0]["attempts"] == 1
    health = await (await client.get("/health")).json()
    assert health["status"] == "degraded"
    assert health["components"]["outbox"] == {"backlog": 1, "dead": 1, "oldest_pending_seconds": 90}
    metrics = await (await client.get("/metrics")).text()
    assert "switchboard_outbox_dead_letters 1.0" in metrics

    retried = await client.post(f"/api/outbox/{dead.seq}/retry", headers=bearer(ADMIN_TOKEN))
    assert retried.status == 200
    assert (await retried.json())["state"] == "pending"
    again = await client.post(f"/api/outbox/{dead.seq}/retry", headers=bearer(ADMIN_TOKEN))
    assert again.status == 409
    item = (await items(database))["evt-dead"]
    assert (item.state, item.attempts, item.next_attempt_at) == ("pending", 0, clock.now())

    crm.permanent = {}
    worker = make_worker(database, crm_settings(settings, crm), clock)
    try:
        await drain(worker, clock, database)
    finally:
        await worker.close()
    assert (await items(database))["evt-dead"].state == "delivered"
    assert (await (await client.get("/health")).json())["status"] == "ok"


async def test_api_refuses_bad_requests_and_changes_nothing(
    client: Client, database: Database, clock: FixedClock
) -> None:
    pending = await add(database, clock, "evt-1", "cus_1")
    admin = bearer(ADMIN_TOKEN)
    cases = [
        (client.get("/api/outbox?state=lost", headers=admin), 422),
        (client.get("/api/outbox?limit=0", headers=admin), 422),
        (client.get("/api/outbox?cursor=%%%", headers=admin), 422),
        (client.get("/api/outbox", headers=bearer(OPERATOR_TOKEN)), 403),
        (client.get("/api/outbox"), 401),
        (client.post(f"/api/outbox/{pending.seq}/retry", headers=admin), 409),
        (client.post("/api/outbox/999999/retry", headers=admin), 404),
        (client.post("/api/outbox/abc/retry", headers=admin), 422),
        (client.post(f"/api/outbox/{pending.seq}/retry", headers=bearer(OPERATOR_TOKEN)), 403),
    ]
    for request, status in cases:
        response = await request
        assert response.status == status, await response.text()
        assert response.content_type == "application/problem+json"
    item = (await items(database))["evt-1"]
    assert (item.state, item.attempts) == ("pending", 0)


async def test_api_pages_by_cursor(client: Client, database: Database, clock: FixedClock) -> None:
    for n in range(5):
        await add(database, clock, f"evt-{n}", f"cus_{n}")
    seen: list[str] = []
    url: str | None = "/api/outbox?limit=2"
    while url:
        body = await (await client.get(url, headers=bearer(ADMIN_TOKEN))).json()
        assert len(body["items"]) <= 2
        seen += [i["event_id"] for i in body["items"]]
        url = f"/api/outbox?limit=2&cursor={body['next_cursor']}" if body["next_cursor"] else None
    assert seen == [f"evt-{n}" for n in range(5)]


async def cli(database_url: str, *args: str) -> tuple[int, str, str]:
    """Run the real `switchboard` CLI in a subprocess."""
    return await run_cli(database_url, *args)


async def test_cli_lists_and_retries_dead_letters(
    database: Database, database_url: str, settings: Settings, clock: FixedClock, crm: CrmServer
) -> None:
    dead = await make_dead_letter(database, settings, clock, crm)
    await add(database, clock, "evt-pending", "cus_2")

    code, out, _ = await cli(database_url, "outbox", "list", "--state", "dead")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["seq", "state", "attempts"]
    assert len(lines) == 2 and "evt-dead" in lines[1] and " dead " in lines[1]

    code, _, err = await cli(database_url, "outbox", "retry", "999999")
    assert code == 2 and "no dead outbox item 999999" in err
    code, _, err = await cli(database_url, "outbox", "list", "--limit", "0")
    assert code == 2 and "--limit" in err
    code, out, _ = await cli(database_url, "outbox", "retry", str(dead.seq))
    assert code == 0 and "evt-dead" in out
    assert (await items(database))["evt-dead"].state == "pending"
    code, _, _ = await cli(database_url, "outbox", "retry", str(dead.seq))
    assert code == 2  # no longer dead


async def test_app_runs_the_worker_only_with_a_crm_url_and_stops_it_cleanly(
    database: Database, settings: Settings, clock: FixedClock, crm: CrmServer, tokens: TokenRegistry
) -> None:
    await add(database, clock, "evt-1", "cus_1")
    idle = create_app(settings, clock=clock, tokens=tokens, workers=True)  # no CRM URL
    async with TestClient(TestServer(idle, host="127.0.0.1")) as client:
        health = await (await client.get("/health")).json()
        assert health["components"]["outbox"]["backlog"] == 1
    assert crm.received == [] and (await items(database))["evt-1"].state == "pending"

    config = crm_settings(settings, crm, poll_seconds=0.02)
    app = create_app(config, clock=clock, tokens=tokens, workers=True)
    async with TestClient(TestServer(app, host="127.0.0.1")):
        worker_task = next(t for t in asyncio.all_tasks() if t.get_name() == "crm-outbox-worker")
        for _ in range(250):  # the worker polls on its own; wait for its delivery
            if crm.applied_ids():
                break
            await asyncio.sleep(0.02)
    assert worker_task.done() and not worker_task.cancelled()
    assert crm.applied_ids() == ["evt-1"]
    assert (await items(database))["evt-1"].state == "delivered"
