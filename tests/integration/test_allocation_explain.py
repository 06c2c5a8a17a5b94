"""GET /api/allocation/explain/{id} on both databases: why a stored run chose what it did."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from tests.support.allocation import (
    ADMIN,
    Client,
    client,
    put_kyiv_cheap_and_mobile_pro,
    put_partner,
    seed_tasks,
)
from tests.support.auth import OPERATOR_TOKEN, bearer

__all__ = ["client"]  # the fixture (tests/support/allocation.py), imported for pytest


async def explain(client: Client, key: str, **query: str) -> tuple[int, dict[str, Any]]:
    response = await client.get(f"/api/allocation/explain/{key}", params=query, headers=ADMIN)
    return response.status, await response.json()


async def test_explain_names_target_kind_eligible_set_costs_and_binding_capacity(
    client: Client, database: Database, clock: FixedClock
) -> None:
    tasks = await seed_tasks(database, clock)
    await put_kyiv_cheap_and_mobile_pro(client)
    agent = await client.put(
        "/api/agents/ann",
        json={
            "capacity_per_day": 1,
            "cost_per_contact": "0.5",
            "regions": ["odesa"],
            "performance": {"quality_score": "0.5"},
        },
        headers=ADMIN,
    )
    assert agent.status == 200, await agent.text()
    first = await (await client.post("/api/allocation/run", json={}, headers=ADMIN)).json()
    assert len(first["assignments"]) == 4

    # By the CRM's task id: Kyiv's cheap partner is eligible but full (k-tv had only it).
    status, body = await explain(client, "crm-k-mobile-old")
    assert status == 200, body
    assert body["run_id"] == first["run_id"] and body["weights"]["quality_score"] == "1"
    (item,) = body["items"]
    assert item["task_id"] == tasks["k-mobile-old"] and item["crm_task_id"] == "crm-k-mobile-old"
    assert item["kind"] == "partner" and item["reason"] is None
    eligible = {option["external_id"]: option for option in item["eligible"]}
    assert set(eligible) == {"kyiv-cheap", "mobile-pro"}
    assert item["partner_id"] == eligible["mobile-pro"]["partner_id"]
    assert eligible["kyiv-cheap"]["full"] and eligible["kyiv-cheap"]["used"] == 1
    assert item["binding"] == [eligible["kyiv-cheap"]["partner_id"]]
    assert "partner mobile-pro" in item["text"] and "partner kyiv-cheap" in item["text"]

    # By the customer's external id; an agent, with its performance value in the net cost.
    status, body = await explain(client, "o-tv")
    (item,) = body["items"]
    assert item["kind"] == "agent" and "agent ann" in item["text"]
    (option,) = item["eligible"]
    assert option["kind"] == "agent" and option["external_id"] == "ann"
    assert Decimal(option["performance_value"]) == Decimal("0.5")
    assert Decimal(option["net_cost"]) == 0 and Decimal(option["cost_per_contact"]) == Decimal(
        "0.5"
    )
    assert item["binding"] == []

    status, body = await explain(client, "crm-l-mobile-new")
    (item,) = body["items"]
    assert item["reason"] == "no_eligible_partner" and item["eligible"] == []

    # A rerun considers only what is left; explanations of earlier choices still answer.
    second = await (await client.post("/api/allocation/run", json={}, headers=ADMIN)).json()
    assert second["summary"]["tasks"] == 1
    status, body = await explain(client, "crm-k-mobile-old")
    assert status == 200 and body["run_id"] == first["run_id"]
    status, body = await explain(client, "crm-l-mobile-new")
    assert body["run_id"] == second["run_id"]
    status, body = await explain(client, "crm-k-mobile-old", run_id=second["run_id"])
    assert status == 404 and "not considered" in body["detail"]


async def test_explain_refusals(client: Client, database: Database, clock: FixedClock) -> None:
    await seed_tasks(database, clock)
    status, _ = await explain(client, "crm-k-tv")
    assert status == 404  # no run yet
    await put_partner(client, "anyone", capacity_per_day=10, eligibility={})
    await client.post("/api/allocation/run", json={}, headers=ADMIN)
    assert (await explain(client, "crm-k-tv"))[0] == 200
    assert (await explain(client, "nobody"))[0] == 404
    assert (await explain(client, "crm-k-tv", run_id="alr_none"))[0] == 404
    assert (await explain(client, "crm-k-tv", colour="red"))[0] == 422
    forbidden = await client.get("/api/allocation/explain/crm-k-tv", headers=bearer(OPERATOR_TOKEN))
    assert forbidden.status == 403
