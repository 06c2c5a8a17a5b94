"""Campaigns API over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.campaigns import store
from gateway.core.clock import FixedClock, parse_time_input
from gateway.core.db.engine import Database
from gateway.core.db.models import Activity
from gateway.core.http.auth import TokenRegistry
from gateway.core.http.endpoints import ENDPOINTS
from gateway.core.rules import catalogue, segment, validate_rule
from gateway.settings import Settings
from tests.support.auth import ADMIN_TOKEN, OPERATOR_TOKEN, bearer
from tests.support.campaigns import BASE, NOW, SEEDS, add_customers, counts

Client = TestClient[web.Request, web.Application]
ADMIN = bearer(ADMIN_TOKEN)


@pytest.fixture
async def api(
    settings: Settings, database: Database, clock: FixedClock, tokens: TokenRegistry
) -> AsyncIterator[Client]:
    """The real app."""
    app = create_app(settings, clock=clock, tokens=tokens, workers=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


def body(**changes: Any) -> dict[str, Any]:
    """A valid definition named `spring`, with top-level keys replaced."""
    data = copy.deepcopy(BASE)
    data.update(changes)
    return data


async def test_put_get_versions_rollback(
    api: Client, database: Database, clock: FixedClock
) -> None:
    response = await api.put("/api/campaigns/spring", json=body(), headers=ADMIN)
    assert response.status == 200
    first = await response.json()
    assert (first["version"], first["new_version"], first["definition"]) == (1, True, body())
    assert first["created_by"].startswith("admin:") and first["created_at"].endswith("Z")

    same = await (await api.put("/api/campaigns/spring", json=body(), headers=ADMIN)).json()
    assert (same["version"], same["new_version"]) == (1, False)

    clock.advance(timedelta(hours=1))
    changed = body(schedule="0 12 * * *")
    second = await (await api.put("/api/campaigns/spring", json=changed, headers=ADMIN)).json()
    assert (second["version"], second["new_version"]) == (2, True)

    current = await (await api.get("/api/campaigns/spring", headers=ADMIN)).json()
    assert current["version"] == 2 and current["definition"] == changed
    assert current["last_run_at"] is None and current["enabled"] is True

    versions = await (await api.get("/api/campaigns/spring/versions", headers=ADMIN)).json()
    assert [(v["version"], v["current"]) for v in versions["items"]] == [(2, True), (1, False)]
    assert versions["items"][1]["definition"] == body()

    rolled = await api.post("/api/campaigns/spring/rollback", json={"version": 1}, headers=ADMIN)
    assert rolled.status == 200
    data = await rolled.json()
    assert (data["version"], data["definition"], data["new_version"]) == (3, body(), True)

    listed = await (await api.get("/api/campaigns", headers=ADMIN)).json()
    assert [(c["name"], c["current_version"], c["schedule"]) for c in listed["items"]] == [
        ("spring", 3, "0 10 * * *")
    ]
    missing = await api.post("/api/campaigns/spring/rollback", json={"version": 7}, headers=ADMIN)
    assert missing.status == 404
    assert (await api.get("/api/campaigns/autumn", headers=ADMIN)).status == 404
    assert (await api.get("/api/campaigns/autumn/versions", headers=ADMIN)).status == 404
    assert await counts(database) == (1, 3)


INVALID: list[tuple[Any, str]] = [
    (body(schedule="every day"), "schedule"),
    (body(audience={"all": [{"field": "nope", "op": "==", "value": 1}]}), "audience.all[0].field"),
    (
        body(
            steps=[
                *BASE["steps"],
                {
                    "id": "b",
                    "type": "branch",
                    "cases": [{"when": {"field": "status"}, "goto": "hello"}],
                },
            ]
        ),
        "steps[1].cases[0].when.op",
    ),
    (body(steps=[{**BASE["steps"][0], "extra": 1}]), "steps[0].extra"),
    (body(name="autumn"), "name"),
    ([1, 2], "campaign"),
]


@pytest.mark.parametrize(("raw", "field"), INVALID)
async def test_invalid_definitions_are_refused_with_their_path(
    api: Client, database: Database, raw: Any, field: str
) -> None:
    await api.put("/api/campaigns/spring", json=body(), headers=ADMIN)
    response = await api.put("/api/campaigns/spring", json=raw, headers=ADMIN)
    assert response.status == 422
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert problem["errors"][0]["field"] == field and problem["errors"][0]["message"]
    assert problem["detail"].startswith(field)
    assert await counts(database) == (1, 1)


async def test_not_json_and_roles(api: Client, database: Database) -> None:
    response = await api.put(
        "/api/campaigns/spring",
        data=b"{nope",
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert response.status == 400
    operator = bearer(OPERATOR_TOKEN)
    assert (await api.put("/api/campaigns/spring", json=body(), headers=operator)).status == 403
    assert (await api.get("/api/campaigns", headers=operator)).status == 403
    assert (await api.get("/api/rules/fields", headers=operator)).status == 403
    assert (await api.get("/api/campaigns")).status == 401
    assert await counts(database) == (0, 0)


async def test_preview_matches_segment_and_writes_nothing(
    api: Client, database: Database, settings: Settings
) -> None:
    await add_customers(database)
    assert (await store.load_directory(database, SEEDS, parse_time_input("2026-11-01", "UTC"))).ok
    before = await counts(database)
    response = await api.post(
        "/api/campaigns/payment-reminder/preview",
        json={"as_of": "2026-11-02T11:00"},
        headers=ADMIN,
    )
    assert response.status == 200
    data = await response.json()
    as_of = parse_time_input("2026-11-02T11:00", settings.timezone)
    async with database.sessions() as session:
        valid = await store.current_valid(session, "payment-reminder")
        expected = set(
            await session.scalars(
                segment(session, valid.audience, as_of, timezone=settings.timezone)
            )
        )
    assert data["count"] == len(expected) > 0 and data["as_of"] == "2026-11-02T09:00:00Z"
    assert data["version"] == 1 and data["currency"] == settings.costs.currency
    [arm] = data["arms"]
    assert arm["arm"] == "default" and arm["customers"] == len(expected)
    [contact] = arm["first_contacts"]
    assert (contact["step"], contact["type"], contact["channel"]) == ("remind", "send", "sms")
    assert contact["cost"] == data["estimated_cost"] and "." in data["estimated_cost"]
    assert {c["id"] for c in data["sample"]} <= expected
    assert await counts(database) == before

    # Without a body: as of the app clock; bad as_of and unknown campaigns refused.
    assert (await api.post("/api/campaigns/recession/preview", headers=ADMIN)).status == 200
    bad = await api.post("/api/campaigns/recession/preview", json={"as_of": "soon"}, headers=ADMIN)
    assert bad.status == 422 and (await bad.json())["errors"][0]["field"] == "as_of"
    assert (await api.post("/api/campaigns/nothing/preview", json={}, headers=ADMIN)).status == 404


async def test_preview_of_a_posted_draft_counts_it_and_saves_nothing(
    api: Client, database: Database, settings: Settings
) -> None:
    await add_customers(database)
    saved = await api.put("/api/campaigns/spring", json=body(), headers=ADMIN)
    assert saved.status == 200
    before = await counts(database)
    as_of = "2026-11-02T11:00"
    draft = body(audience={"field": "status", "op": "in", "value": ["warm", "cold"]})
    response = await api.post(
        "/api/campaigns/spring/preview", json={"as_of": as_of, "definition": draft}, headers=ADMIN
    )
    assert response.status == 200, await response.text()
    data = await response.json()
    at = parse_time_input(as_of, settings.timezone)
    async with database.sessions() as session:
        warm_or_cold = set(
            await session.scalars(
                segment(session, validate_rule(draft["audience"]), at, timezone=settings.timezone)
            )
        )
    assert data["count"] == len(warm_or_cold) == 40
    assert (data["draft"], data["version"]) == (True, None)
    # 40 SMS of one segment (the template is not saved yet) at the configured rate.
    expected = (40 * settings.costs.sms_per_segment).quantize(Decimal("0.01"))
    assert Decimal(data["estimated_cost"]) == expected
    # The saved version still counts the warm customers only.
    current = await (await api.post("/api/campaigns/spring/preview", json={}, headers=ADMIN)).json()
    assert (current["count"], current["draft"], current["version"]) == (20, False, 1)

    # A campaign never saved can be previewed too; still nothing is written.
    fresh = dict(draft, name="summer")
    response = await api.post(
        "/api/campaigns/summer/preview", json={"definition": fresh}, headers=ADMIN
    )
    assert response.status == 200 and (await response.json())["count"] == 40
    assert await counts(database) == before


@pytest.mark.parametrize(
    ("draft", "path"),
    [
        (
            body(audience={"field": "days_since_activity", "op": ">=", "value": "soon"}),
            "definition.audience.value",
        ),
        (body(steps=[{"id": "a", "type": "wait"}]), "definition.steps[0]"),
        (
            body(
                steps=[
                    {
                        "id": "a",
                        "type": "branch",
                        "cases": [{"outcome": "replied", "goto": "a"}],
                        "otherwise": "nowhere",
                    }
                ]
            ),
            "definition.steps[0].otherwise",
        ),
        (body(schedule="soon"), "definition.schedule"),
        (body(name="other"), "definition.name"),
    ],
)
async def test_preview_refuses_an_invalid_draft_naming_the_path(
    api: Client, database: Database, draft: dict[str, Any], path: str
) -> None:
    await api.put("/api/campaigns/spring", json=body(), headers=ADMIN)
    before = await counts(database)
    response = await api.post(
        "/api/campaigns/spring/preview", json={"definition": draft}, headers=ADMIN
    )
    assert response.status == 422
    problem = await response.json()
    assert [error["field"] for error in problem["errors"]] == [path]
    assert problem["detail"].startswith(f"{path}: ")
    assert await counts(database) == before


async def test_rule_fields_and_openapi(api: Client) -> None:
    response = await api.get("/api/rules/fields", headers=ADMIN)
    assert response.status == 200
    assert (await response.json())["items"] == catalogue()
    paths = {spec.path for spec in api.app[ENDPOINTS]}
    assert {"/api/campaigns/{name}/preview", "/api/rules/fields"} <= paths


async def poll_health(api: Client, stop: asyncio.Event) -> list[float]:
    """Seconds each /health took, asked again and again until `stop` is set."""
    latencies: list[float] = []
    while not stop.is_set():
        started = time.monotonic()
        response = await api.get("/health")
        await response.read()
        assert response.status == 200
        latencies.append(time.monotonic() - started)
        await asyncio.sleep(0.02)
    return latencies


async def test_preview_of_thousand_value_lists_while_health_answers(
    api: Client, database: Database
) -> None:
    """1,000-value `in` lists preview correctly (SQLite refused them: expression depth)
    and /health answers within 1 s meanwhile."""
    await add_customers(database)
    async with database.transaction() as session:
        session.add_all(
            Activity(
                id=f"act_{n}",
                customer_id=f"cus_{n:03d}",
                kind="login",
                at=NOW - timedelta(days=n, hours=1),  # n whole days before the preview
            )
            for n in range(60)
        )
    evens = {"field": "days_since_activity", "op": "in", "value": list(range(0, 2000, 2))}
    nowhere = {"field": "region", "op": "in", "value": [f"nowhere-{n}" for n in range(1000)]}
    draft = body(audience={"all": [evens, {"not": nowhere}]})
    stop = asyncio.Event()
    polling = asyncio.create_task(poll_health(api, stop))
    try:
        response = await api.post(
            "/api/campaigns/spring/preview", json={"definition": draft}, headers=ADMIN
        )
        assert response.status == 200, await response.text()
        assert (await response.json())["count"] == 30  # the customers n days idle, n even
    finally:
        stop.set()
        latencies = await polling
    assert latencies and max(latencies) < 1.0, latencies


@pytest.mark.parametrize(
    ("audience", "field", "limit"),
    [
        ({"any": [{"field": "region", "op": "exists"}] * 101}, "audience.any[99]", "100"),
        (
            {"any": [{"field": "region", "op": "in", "value": ["r"] * 1000}] * 6},
            "audience.any[5].value",
            "5000",
        ),
        ({"field": "region", "op": "in", "value": ["r"] * 1001}, "audience.value", "1000"),
    ],
)
async def test_oversized_rules_are_refused_at_save_and_preview(
    api: Client, database: Database, audience: dict[str, Any], field: str, limit: str
) -> None:
    draft = body(audience=audience)
    saved = await api.put("/api/campaigns/spring", json=draft, headers=ADMIN)
    assert saved.status == 422
    problem = await saved.json()
    assert problem["errors"][0]["field"] == field and limit in problem["detail"]
    previewed = await api.post(
        "/api/campaigns/spring/preview", json={"definition": draft}, headers=ADMIN
    )
    assert previewed.status == 422
    assert (await previewed.json())["errors"][0]["field"] == f"definition.{field}"
    assert await counts(database) == (0, 0)
