"""Allocation helpers: the API client fixture, partners, eligibility rules, seeded tasks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

import gateway.cli
from gateway.app import create_app
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models import Task
from gateway.core.db.types import new_id
from gateway.core.http.auth import TokenRegistry
from gateway.customers.repository import upsert_customer
from gateway.settings import Settings
from tests.support.auth import ADMIN_TOKEN, bearer

Client = TestClient[Any, Any]

ADMIN = bearer(ADMIN_TOKEN)

KYIV = {"field": "region", "op": "==", "value": "kyiv"}


MOBILE_ADULT = {
    "all": [
        {"field": "products", "op": "contains", "value": "mobile"},
        {"field": "contract_age_days", "op": ">=", "value": 365},
    ]
}


@pytest.fixture
async def client(
    settings: Settings, database: Database, clock: FixedClock, tokens: TokenRegistry
) -> AsyncIterator[Client]:
    """The real app."""
    app = create_app(settings, clock=clock, tokens=tokens, workers=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


def cli_main(argv: list[str]) -> int:
    """`switchboard …` through gateway.cli.main."""
    return gateway.cli.main(argv)


async def import_csv(
    kind: str, path: Path, rows: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """Write `rows` to `path`, run `<kind> import` on it; its exit status and output.

    The command runs its own event loop: it runs in a worker thread."""

    def write_and_import() -> int:
        path.write_text(rows, encoding="utf-8")
        return cli_main([kind, "import", str(path)])

    status = await asyncio.to_thread(write_and_import)
    return status, capsys.readouterr().out


async def put_partner(client: Client, key: str, **terms: Any) -> tuple[int, dict[str, Any]]:
    body = {"capacity_per_day": 1, "cost_per_contact": "1.00", **terms}
    response = await client.put(f"/api/partners/{key}", json=body, headers=ADMIN)
    return response.status, await response.json()


async def put_kyiv_cheap_and_mobile_pro(client: Client) -> None:
    """The two partners the run tests share: one cheap for Kyiv only (room for one), one
    dearer for adults with mobile (room for five)."""
    await put_partner(
        client, "kyiv-cheap", capacity_per_day=1, cost_per_contact="1", eligibility=KYIV
    )
    await put_partner(
        client, "mobile-pro", capacity_per_day=5, cost_per_contact="3", eligibility=MOBILE_ADULT
    )


async def seed_tasks(database: Database, clock: FixedClock) -> dict[str, str]:
    """Customers and one open call task each; returns external id → task id."""
    now = clock.now()
    people: dict[str, dict[str, Any]] = {
        "k-mobile-old": {"region": "kyiv", "products": ["mobile"], "years": 2},
        "k-tv": {"region": "kyiv", "products": ["tv"], "years": 3},
        "l-mobile-old": {"region": "lviv", "products": ["mobile"], "years": 5},
        "l-mobile-new": {"region": "lviv", "products": ["mobile"], "years": 0},
        "o-tv": {"region": "odesa", "products": ["tv"], "years": 1},
    }
    tasks: dict[str, str] = {}
    async with database.transaction() as session:
        for priority, (external_id, about) in enumerate(people.items()):
            customer, _ = await upsert_customer(
                session,
                external_id,
                {
                    "name": external_id,
                    "region": about["region"],
                    "products": about["products"],
                    "contract_started_at": now - timedelta(days=365 * about["years"] + 1),
                },
                None,
                now,
            )
            task = Task(
                id=new_id("tsk"),
                task_id=f"crm-{external_id}",
                kind="call",
                customer_id=customer.id,
                priority=priority,
                created_at=now - timedelta(hours=1),
            )
            session.add(task)
            tasks[external_id] = task.id
    return tasks
