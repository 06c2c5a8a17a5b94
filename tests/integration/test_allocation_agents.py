"""Agents as allocation targets on both databases: API terms, CRM event, runs, CSV."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models import Agent, Task
from gateway.core.db.models.crm import OutboxItem
from tests.support.allocation import (
    ADMIN,
    KYIV,
    Client,
    cli_main,
    client,
    import_csv,
    put_partner,
    seed_tasks,
)
from tests.support.crm_webhooks import post_event

__all__ = ["client"]  # the fixture (tests/support/allocation.py), imported for pytest

TV = {"field": "products", "op": "contains", "value": "tv"}


async def put_agent(client: Client, key: str, **terms: Any) -> tuple[int, dict[str, Any]]:
    response = await client.put(f"/api/agents/{key}", json=terms, headers=ADMIN)
    return response.status, await response.json()


async def holders(database: Database) -> dict[str, tuple[str | None, str | None]]:
    """CRM task id → (partner's CRM id, assignee)."""
    from gateway.core.db.models import Partner

    async with database.sessions() as session:
        partners = {row.id: row.partner_id for row in await session.scalars(select(Partner))}
        rows = await session.execute(select(Task.task_id, Task.partner_id, Task.assignee))
        return {
            str(task_id): (partners.get(partner_id) if partner_id else None, assignee)
            for task_id, partner_id, assignee in rows
        }


async def assigned_events(database: Database) -> list[dict[str, Any]]:
    async with database.sessions() as session:
        items = await session.scalars(
            select(OutboxItem).where(OutboxItem.type == "allocation.assigned")
        )
        return [item.payload for item in items]


async def test_agent_terms_round_trip_and_bad_rule_is_refused(client: Client) -> None:
    status, body = await put_agent(
        client, "ann", eligibility={"field": "regon", "op": "==", "value": "x"}
    )
    assert status == 422 and body["errors"][0]["field"] == "eligibility.field"
    status, body = await put_agent(client, "ann", performance={"quality_score": "good"})
    assert status == 422 and body["errors"][0]["field"] == "performance.quality_score"
    missing = await client.get("/api/agents/ann", headers=ADMIN)
    assert missing.status == 404  # nothing saved by the refusals
    status, saved = await put_agent(
        client,
        "ann",
        name="Ann",
        capacity_per_day=3,
        cost_per_contact="0.75",
        currency="EUR",
        eligibility=KYIV,
        performance={"quality_score": 0.8},
        skills=["tv"],
    )
    assert status == 200, saved
    assert saved["cost_per_contact"] in ("0.75", "0.7500") and saved["currency"] == "EUR"
    assert saved["eligibility"] == KYIV and saved["performance"] == {"quality_score": "0.8"}
    assert saved["capacity_per_day"] == 3 and saved["skills"] == ["tv"]


async def test_contract_agent_event_keeps_allocation_terms(
    client: Client, clock: FixedClock, database: Database
) -> None:
    await post_event(
        client,
        clock,
        "agent.upserted",
        {
            "agent_id": "A1",
            "name": "Olena",
            "extensions": ["201"],
            "skills": ["mobile", "mobile"],
            "regions": ["kyiv"],
            "capacity_per_day": 12,
            "cost_per_contact": "1.20",
            "eligibility": KYIV,
            "performance": {"upsell_rate": "0.1"},
        },
    )
    clock.advance(timedelta(seconds=1))
    # A later event with only the contract's fields: the allocation terms stay.
    await post_event(
        client,
        clock,
        "agent.upserted",
        {"agent_id": "A1", "name": "Olena P.", "extensions": ["202"]},
    )
    async with database.sessions() as session:
        agent = (await session.scalars(select(Agent).where(Agent.agent_id == "A1"))).one()
    assert agent.name == "Olena P." and agent.extensions == ["202"]
    assert agent.skills == ["mobile"] and agent.regions == ["kyiv"]
    assert agent.capacity_per_day == 12 and str(agent.cost_per_contact).startswith("1.2")
    assert agent.eligibility == KYIV and agent.performance == {"upsell_rate": "0.1"}
    clock.advance(timedelta(seconds=1))
    # An explicit null clears: no capacity, no longer a target.
    await post_event(
        client,
        clock,
        "agent.upserted",
        {"agent_id": "A1", "capacity_per_day": None},
    )
    async with database.sessions() as session:
        agent = (await session.scalars(select(Agent).where(Agent.agent_id == "A1"))).one()
    assert agent.capacity_per_day is None and agent.skills == ["mobile"]
    clock.advance(timedelta(seconds=1))
    bad = await post_event(
        client,
        clock,
        "agent.upserted",
        {"agent_id": "A1", "capacity_per_day": -1},
        expect=422,
    )
    assert "capacity_per_day" in str(bad)


async def test_agents_take_tasks_beside_partners_and_are_reassigned_when_inactive(
    client: Client, database: Database, clock: FixedClock
) -> None:
    tasks = await seed_tasks(database, clock)
    async with database.transaction() as session:
        # A task the CRM already gave an operator is theirs: allocation never takes it.
        held = await session.get(Task, tasks["o-tv"])
        assert held is not None
        held.assignee = "somebody"
    await put_partner(
        client, "kyiv-pro", capacity_per_day=5, cost_per_contact="3", eligibility=KYIV
    )
    # Ann: TV skill, Kyiv region, cheaper than the partner, one a day.
    await put_agent(
        client, "ann", capacity_per_day=1, cost_per_contact="0.5", skills=["tv"], regions=["kyiv"]
    )
    # Bob has no capacity_per_day: an operator, not an allocation target.
    await put_agent(client, "bob", cost_per_contact="0")
    response = await client.post("/api/allocation/run", json={}, headers=ADMIN)
    result = await response.json()
    assert response.status == 200, result
    assert await holders(database) == {
        "crm-k-mobile-old": ("kyiv-pro", None),
        "crm-k-tv": (None, "ann"),
        "crm-l-mobile-old": (None, None),
        "crm-l-mobile-new": (None, None),
        "crm-o-tv": (None, "somebody"),
    }
    assert result["summary"]["assigned_to_agents"] == 1 and result["summary"]["tasks"] == 4
    events = {event["task_id"]: event for event in await assigned_events(database)}
    assert events["crm-k-tv"]["target"] == "agent" and events["crm-k-tv"]["agent_id"] == "ann"
    assert events["crm-k-mobile-old"]["partner_id"] == "kyiv-pro"
    assert "detail" not in result["summary"]

    again = await (await client.post("/api/allocation/run", json={}, headers=ADMIN)).json()
    assert again["assignments"] == {} and len(await assigned_events(database)) == 2

    # Ann leaves: her open task goes back to the pool and to the partner; the CRM hears.
    await put_agent(client, "ann", capacity_per_day=1, skills=["tv"], active=False)
    moved = await (await client.post("/api/allocation/run", json={}, headers=ADMIN)).json()
    assert moved["summary"]["released"] == 1
    assert (await holders(database))["crm-k-tv"] == ("kyiv-pro", None)
    kinds = sorted((e["task_id"], e["target"]) for e in await assigned_events(database))
    assert kinds == [
        ("crm-k-mobile-old", "partner"),
        ("crm-k-tv", "agent"),
        ("crm-k-tv", "partner"),
    ]


async def test_agent_capacity_is_per_day(
    client: Client, database: Database, clock: FixedClock
) -> None:
    await seed_tasks(database, clock)
    await put_agent(client, "ann", capacity_per_day=2, cost_per_contact="1")
    first = await (await client.post("/api/allocation/run", json={}, headers=ADMIN)).json()
    assert len(first["assignments"]) == 2
    second = await (await client.post("/api/allocation/run", json={}, headers=ADMIN)).json()
    assert second["assignments"] == {} and set(second["unassigned"].values()) == {
        "capacity_exhausted"
    }
    assert sum(1 for _, who in (await holders(database)).values() if who == "ann") == 2


async def test_agents_csv_import(
    tmp_path: Path,
    database: Database,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    client: Client,
) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    await put_agent(client, "ann", name="Ann", extensions=["201"], crm_user_id="u-ann")
    path = tmp_path / "agents.csv"
    status, out = await import_csv(
        "agents",
        path,
        "agent_id,name,skills,regions,capacity_per_day,cost_per_contact,"
        "min_contract_age_days,quality_score\n"
        "ann,Ann,mobile;tv,kyiv,20,0.80,90,0.9\n"
        "bob,Bob,,,-3,,,\n"
        "cy,Cy,,,5,cheap,,\n"
        "dan,Dan,,,,,,\n",
        capsys,
    )
    assert status == 3, out
    assert "line 3: capacity_per_day: must not be negative" in out
    assert "line 4: cost_per_contact" in out and "agents imported: 2, rejected: 2" in out
    async with database.sessions() as session:
        rows = {a.agent_id: a for a in await session.scalars(select(Agent))}
    assert set(rows) == {"ann", "dan"}
    ann = rows["ann"]
    # Columns the file leaves out keep their values; skills stay skills (not folded in).
    assert ann.extensions == ["201"] and ann.crm_user_id == "u-ann"
    assert ann.skills == ["mobile", "tv"] and ann.regions == ["kyiv"]
    assert ann.capacity_per_day == 20 and ann.performance == {"quality_score": "0.9"}
    assert ann.eligibility == {"field": "contract_age_days", "op": ">=", "value": 90}
    assert rows["dan"].capacity_per_day is None
    bad = tmp_path / "bad.csv"
    bad.write_text("agent,capacity\nx,1\n", encoding="utf-8")
    assert await asyncio.to_thread(cli_main, ["agents", "import", str(bad)]) == 2
