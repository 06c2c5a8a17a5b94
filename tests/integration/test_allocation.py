"""Allocation on the real app and both databases: API, DB mode, reruns, CLI, CSV import."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models import AllocationRun, Partner, Task
from gateway.core.db.models.crm import OutboxItem
from tests.support.allocation import (
    ADMIN,
    KYIV,
    Client,
    cli_main,
    client,
    import_csv,
    put_kyiv_cheap_and_mobile_pro,
    put_partner,
    seed_tasks,
)
from tests.support.auth import OPERATOR_TOKEN, bearer

__all__ = ["client"]  # the fixture (tests/support), imported for pytest


async def partner_of(database: Database) -> dict[str, str | None]:
    async with database.sessions() as session:
        rows = await session.execute(select(Task.task_id, Task.partner_id))
        partners = {row.id: row.partner_id for row in await session.scalars(select(Partner))}
        return {
            str(task_id): partners.get(partner_id) if partner_id else None
            for task_id, partner_id in rows
        }


async def test_partner_api_validates_and_round_trips(client: Client, database: Database) -> None:
    status, body = await put_partner(
        client, "acme", eligibility={"all": [{"field": "regon", "op": "==", "value": "x"}]}
    )
    assert status == 422 and body["errors"][0]["field"] == "eligibility.all[0].field"
    status, body = await put_partner(client, "acme", performance={"quality_score": "high"})
    assert status == 422 and body["errors"][0]["field"] == "performance.quality_score"
    status, body = await put_partner(client, "acme", cost_per_contact="-1")
    assert status == 422
    async with database.sessions() as session:
        assert await session.scalar(select(func.count(Partner.id))) == 0  # nothing saved
    status, saved = await put_partner(
        client,
        "acme",
        name="Acme Calls",
        capacity_per_day=40,
        cost_per_contact="2.5",
        eligibility=KYIV,
        performance={"quality_score": 0.9, "upsell_rate": "0.12"},
    )
    assert status == 200, saved
    assert saved["partner_id"] == "acme" and saved["id"].startswith("prt_")
    assert saved["cost_per_contact"] == "2.5000" or saved["cost_per_contact"] == "2.5"
    assert saved["performance"] == {"quality_score": "0.9", "upsell_rate": "0.12"}
    assert saved["eligibility"] == KYIV and saved["updated_at"] == "2026-11-02T09:00:00Z"
    by_own_id = await client.get(f"/api/partners/{saved['id']}", headers=ADMIN)
    assert (await by_own_id.json())["partner_id"] == "acme"
    status, again = await put_partner(client, saved["id"], capacity_per_day=5, active=False)
    assert status == 200 and again["id"] == saved["id"] and again["capacity_per_day"] == 5
    assert again["active"] is False and again["eligibility"] == {}
    listing = await (await client.get("/api/partners", headers=ADMIN)).json()
    assert [item["partner_id"] for item in listing["items"]] == ["acme"]
    missing = await client.get("/api/partners/nobody", headers=ADMIN)
    assert missing.status == 404
    forbidden = await client.get("/api/partners", headers=bearer(OPERATOR_TOKEN))
    assert forbidden.status == 403


async def test_agent_api_moves_extensions(client: Client) -> None:
    one = await client.put(
        "/api/agents/ann",
        json={"name": "Ann", "extensions": ["201"], "skills": ["mobile"], "regions": ["kyiv"]},
        headers=ADMIN,
    )
    assert one.status == 200, await one.text()
    two = await client.put(
        "/api/agents/bob",
        json={"name": "Bob", "extensions": ["201", "202"], "capacity_per_day": 30},
        headers=ADMIN,
    )
    assert (await two.json())["extensions"] == ["201", "202"]
    ann = await (await client.get("/api/agents/ann", headers=ADMIN)).json()
    assert ann["extensions"] == [] and ann["skills"] == ["mobile"] and ann["regions"] == ["kyiv"]
    bad = await client.put("/api/agents/cy", json={"extensions": ["2 01"]}, headers=ADMIN)
    assert bad.status == 422
    listing = await (await client.get("/api/agents?limit=1", headers=ADMIN)).json()
    assert len(listing["items"]) == 1 and listing["next_cursor"]
    rest = await client.get(f"/api/agents?limit=5&cursor={listing['next_cursor']}", headers=ADMIN)
    following = (await rest.json())["items"]
    assert following and listing["items"][0]["id"] not in {a["id"] for a in following}


async def test_run_assigns_optimally_and_a_rerun_changes_nothing(
    client: Client, database: Database, clock: FixedClock
) -> None:
    tasks = await seed_tasks(database, clock)
    await put_kyiv_cheap_and_mobile_pro(client)
    await put_partner(client, "anyone", capacity_per_day=1, cost_per_contact="9", eligibility={})
    response = await client.post("/api/allocation/run", json={}, headers=ADMIN)
    assert response.status == 200, await response.text()
    result = await response.json()
    # k-mobile-old could take kyiv-cheap, but then k-tv (Kyiv only) would lose it; the
    # cheapest way to serve four is kyiv-cheap ← k-tv, mobile-pro ← both old mobiles,
    # anyone ← one of the remaining two (the higher priority o-tv).
    assert await partner_of(database) == {
        "crm-k-mobile-old": "mobile-pro",
        "crm-k-tv": "kyiv-cheap",
        "crm-l-mobile-old": "mobile-pro",
        "crm-l-mobile-new": None,
        "crm-o-tv": "anyone",
    }
    assert result["unassigned"] == {tasks["l-mobile-new"]: "capacity_exhausted"}
    assert result["total_cost"] == "16" or result["total_cost"].startswith("16.")
    assert result["summary"]["assigned"] == 4 and result["summary"]["tasks"] == 5
    async with database.sessions() as session:
        items = (await session.scalars(select(OutboxItem).order_by(OutboxItem.event_id))).all()
    assert len(items) == 4 and {item.type for item in items} == {"allocation.assigned"}
    assert all(item.event_id.startswith("allocation.assigned:tsk_") for item in items)
    k_tv = next(item for item in items if item.payload["task_id"] == "crm-k-tv")
    assert k_tv.payload["partner_id"] == "kyiv-cheap" and k_tv.payload["external_id"] == "k-tv"

    again = await (await client.post("/api/allocation/run", json={}, headers=ADMIN)).json()
    assert again["assignments"] == {} and again["summary"]["tasks"] == 1
    assert again["unassigned"] == {tasks["l-mobile-new"]: "capacity_exhausted"}
    async with database.sessions() as session:
        assert await session.scalar(select(func.count(OutboxItem.event_id))) == 4
        assert await session.scalar(select(func.count(AllocationRun.id))) == 2
    # Capacity is per day: the next day `anyone` has its place again.
    clock.advance(timedelta(days=1))
    nextday = await (await client.post("/api/allocation/run", json={}, headers=ADMIN)).json()
    assert nextday["assignments"] == {tasks["l-mobile-new"]: (await partner_id(database, "anyone"))}


async def partner_id(database: Database, crm_id: str) -> str:
    async with database.sessions() as session:
        value = await session.scalar(select(Partner.id).where(Partner.partner_id == crm_id))
    assert value is not None
    return value


async def test_run_refuses_a_bad_as_of_and_ignores_later_tasks(
    client: Client, database: Database, clock: FixedClock
) -> None:
    await seed_tasks(database, clock)
    await put_partner(client, "anyone", capacity_per_day=10, eligibility={})
    bad = await client.post("/api/allocation/run", json={"as_of": "yesterday"}, headers=ADMIN)
    assert bad.status == 422
    early = (clock.now() - timedelta(hours=2)).isoformat()
    body = await (
        await client.post("/api/allocation/run", json={"as_of": early}, headers=ADMIN)
    ).json()
    assert body["summary"]["tasks"] == 0 and body["assignments"] == {}
    assert set((await partner_of(database)).values()) == {None}
    forbidden = await client.post("/api/allocation/run", json={}, headers=bearer(OPERATOR_TOKEN))
    assert forbidden.status == 403


def test_file_mode_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    problem: dict[str, Any] = {
        "contacts": [
            {"id": "c1", "region": "kyiv", "priority": 1},
            {"id": "c2", "region": "kyiv"},
            {"id": "c3", "region": "odesa"},
        ],
        "partners": [
            {"id": "A", "capacity": 1, "cost_per_contact": 1.5, "eligibility": KYIV},
            {"id": "B", "capacity": 1, "cost_per_contact": "4", "eligibility": KYIV},
        ],
    }
    path = tmp_path / "problem.json"
    path.write_text(json.dumps(problem), encoding="utf-8")
    assert cli_main(["allocate", "--input", str(path), "--format", "json"]) == 0
    output = json.loads(capsys.readouterr().out)
    # Both Kyiv contacts are served; which one gets the cheaper A does not change the cost.
    assert sorted(output["assignments"].items(), key=lambda item: item[1]) in (
        [("c1", "A"), ("c2", "B")],
        [("c2", "A"), ("c1", "B")],
    )
    assert output["unassigned"] == {"c3": "no_eligible_partner"}
    assert output["total_cost"] == "5.5"
    with_b = next(c for c, p in output["assignments"].items() if p == "B")
    assert cli_main(["allocate", "--input", str(path), "--explain", with_b]) == 0
    assert "cheaper eligible targets are full: partner A" in capsys.readouterr().out
    problem["partners"][0]["eligibility"] = {"field": "region", "op": ">", "value": "k"}
    path.write_text(json.dumps(problem), encoding="utf-8")
    assert cli_main(["allocate", "--input", str(path)]) == 2
    assert "partners[0].eligibility.op: operator > does not apply" in capsys.readouterr().err
    path.write_text("{not json", encoding="utf-8")
    assert cli_main(["allocate", "--input", str(path)]) == 2
    assert cli_main(["allocate", "--input", str(tmp_path / "missing.json")]) == 2


async def test_partner_csv_import_keeps_good_rows(
    tmp_path: Path,
    database: Database,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    path = tmp_path / "partners.csv"
    status, out = await import_csv(
        "partners",
        path,
        "\ufeffpartner_id,name,capacity,cost_per_contact,products,regions,"
        "min_contract_age_days,max_contract_age_days,quality_score,cancellation_rate\n"
        "north,North,100,2.40,mobile;tv,kyiv;lviv,90,730,0.91,0.03\n"
        "south,South,-5,2.00,,,,,,\n"
        "west,West,20,abc,,,,,,\n"
        "east,East,20,1.10,,,x,,,\n"
        "any,Anyone,10,5,,,,,,\n",
        capsys,
    )
    assert status == 3, out
    assert "line 3: capacity: must not be negative" in out
    assert "line 4: cost_per_contact" in out and "line 5: min_contract_age_days" in out
    async with database.sessions() as session:
        rows = {p.partner_id: p for p in await session.scalars(select(Partner))}
    assert set(rows) == {"north", "any"}
    assert rows["north"].eligibility == {
        "all": [
            {
                "any": [
                    {"field": "products", "op": "contains", "value": "mobile"},
                    {"field": "products", "op": "contains", "value": "tv"},
                ]
            },
            {"field": "region", "op": "in", "value": ["kyiv", "lviv"]},
            {"field": "contract_age_days", "op": ">=", "value": 90},
            {"field": "contract_age_days", "op": "<=", "value": 730},
        ]
    }
    assert rows["north"].performance == {"quality_score": "0.91", "cancellation_rate": "0.03"}
    assert rows["any"].eligibility == {}
    bad = tmp_path / "bad.csv"
    bad.write_text("partner_id,capacity\nx,1\n", encoding="utf-8")
    assert await asyncio.to_thread(cli_main, ["partners", "import", str(bad)]) == 2
