"""Every bearer route, read from the app itself: 401 without a credential, 403 for each
role it does not list, and an allowed role gets past the check. Plus the contract's
role table pinned, and refused writes that change nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from gateway.core.db.engine import Database
from gateway.core.db.models import CampaignVersion, Template
from gateway.core.http.endpoints import EndpointSpec
from tests.support.auth import ADMIN_TOKEN, CRM_TOKEN, OPERATOR_TOKEN, SUPERVISOR_TOKEN, bearer
from tests.support.routes import Client, bearer_routes, call

TOKEN_OF = {
    "admin": ADMIN_TOKEN,
    "crm": CRM_TOKEN,
    "operator": OPERATOR_TOKEN,
    "supervisor": SUPERVISOR_TOKEN,
}
ALL_ROLES = frozenset(TOKEN_OF)

OPERATOR_READ = frozenset({"operator", "supervisor"})  # supervisors: every row
OWN_ACTS = frozenset({"operator", "supervisor"})  # both: on their own calls/tasks only

# The contract's role table (plus the console's own routes and the supervisor role,
# README "Roles"). Admin may call everything. A bearer route missing here fails
# `test_every_route_has_the_roles_the_contract_gives`, so a new route needs a conscious
# decision about who may call it.
CONTRACT_ROLES: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/api/customers"): OPERATOR_READ | {"crm"},
    ("GET", "/api/customers/{id}"): OPERATOR_READ | {"crm"},
    ("GET", "/api/customers/{id}/timeline"): OPERATOR_READ,
    ("GET", "/api/calls"): OPERATOR_READ | {"crm"},
    ("POST", "/api/calls/originate"): OWN_ACTS | {"crm"},
    ("PUT", "/api/calls/{id}/topic"): OWN_ACTS,
    ("POST", "/api/calls/{id}/unknown-caller"): OWN_ACTS,
    ("GET", "/api/tasks"): OPERATOR_READ,
    ("POST", "/api/tasks/{id}/complete"): OWN_ACTS,
    ("POST", "/api/ws-tickets"): OWN_ACTS,
    ("GET", "/api/messages"): OPERATOR_READ,
    ("GET", "/api/me"): OPERATOR_READ | {"crm"},
    ("DELETE", "/api/session"): OPERATOR_READ | {"crm"},
    # Statistics: supervisors read them too.
    ("GET", "/api/reports/savings"): frozenset({"supervisor"}),
    ("GET", "/api/reports/daily"): frozenset({"supervisor"}),
    ("GET", "/api/reports/series"): frozenset({"supervisor"}),
    # The console's template preview renders customers' data: admin only, pinned.
    ("POST", "/api/templates/{name}/preview"): frozenset({"admin"}),
}
# Everything else under /api/ is admin only (templates, campaigns, agents, partners,
# allocation, outbox, rule catalogue): configuration, which a supervisor may not touch.
ADMIN_ONLY = frozenset({"admin"})

# What the CRM's server may reach with its token: search and read customers and calls,
# click-to-call, and the console's who-am-I/sign-out. (Its events come signed, not here.)
CRM_MAY = frozenset(
    {
        ("GET", "/api/customers"),
        ("GET", "/api/customers/{id}"),
        ("GET", "/api/calls"),
        ("POST", "/api/calls/originate"),
        ("GET", "/api/me"),
        ("DELETE", "/api/session"),
    }
)

# A supervisor reads every call, task, customer and statistic and configures nothing;
# what it may do beyond reading is an operator's own-only actions.
SUPERVISOR_MAY = frozenset(key for key, roles in CONTRACT_ROLES.items() if "supervisor" in roles)


def route_id(spec: EndpointSpec) -> str:
    """A readable test id."""
    return f"{spec.method} {spec.path}"


def test_the_app_declares_bearer_routes() -> None:
    # Guards the parametrisation below: an empty list would make every check vacuous.
    assert len(bearer_routes()) >= 20
    assert all(spec.path.startswith("/api/") for spec in bearer_routes())


@pytest.mark.parametrize("spec", bearer_routes(), ids=route_id)
def test_every_route_has_the_roles_the_contract_gives(spec: EndpointSpec) -> None:
    expected = CONTRACT_ROLES.get((spec.method, spec.path), ADMIN_ONLY)
    assert spec.roles | {"admin"} == expected | {"admin"}, route_id(spec)


@pytest.mark.parametrize("spec", bearer_routes(), ids=route_id)
async def test_route_refuses_missing_unknown_and_wrong_role_and_admits_the_right_one(
    client: Client, spec: EndpointSpec
) -> None:
    status, body = await call(client, spec, {})
    assert status == 401, body
    assert json.loads(body)["status"] == 401
    status, body = await call(client, spec, bearer("unknown-token-" + "x" * 20))
    assert status == 401, body
    status, body = await call(client, spec, {"Authorization": "Basic " + ADMIN_TOKEN})
    assert status == 401, body

    allowed = spec.roles | {"admin"}
    for role in sorted(ALL_ROLES - allowed):
        status, body = await call(client, spec, bearer(TOKEN_OF[role]))
        assert status == 403, f"{role}: {status} {body}"
        assert json.loads(body)["status"] == 403

    for role in sorted(allowed):
        status, body = await call(client, spec, bearer(TOKEN_OF[role]))
        # Fake ids and empty bodies make 404/409/422 the usual answers here; what
        # matters is that the role check let the call through and nothing crashed.
        assert status not in (401, 403), f"{role}: {status} {body}"
        assert status < 500 or status == 503, f"{role}: {status} {body}"


async def test_the_crm_token_reaches_only_what_the_contract_allows(client: Client) -> None:
    reached = set()
    for spec in bearer_routes():
        status, _ = await call(client, spec, bearer(CRM_TOKEN))
        if status != 403:
            reached.add((spec.method, spec.path))
    assert reached == CRM_MAY & {(s.method, s.path) for s in bearer_routes()}


async def test_the_supervisor_reaches_reads_and_its_own_actions_only(client: Client) -> None:
    reached = set()
    for spec in bearer_routes():
        status, _ = await call(client, spec, bearer(SUPERVISOR_TOKEN))
        if status != 403:
            reached.add((spec.method, spec.path))
    assert reached == SUPERVISOR_MAY & {(s.method, s.path) for s in bearer_routes()}
    writes = {(m, p) for m, p in reached if m != "GET"}
    assert writes == {
        ("POST", "/api/calls/originate"),
        ("PUT", "/api/calls/{id}/topic"),
        ("POST", "/api/calls/{id}/unknown-caller"),
        ("POST", "/api/tasks/{id}/complete"),
        ("POST", "/api/ws-tickets"),
        ("DELETE", "/api/session"),
    }


def _campaign_definition() -> dict[str, Any]:
    path = Path("config/campaigns/reactivation.yaml")
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return document


async def _versions(database: Database) -> int:
    async with database.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(CampaignVersion)) or 0)


async def test_operator_and_crm_cannot_save_a_campaign_and_nothing_changes(
    client: Client, database: Database
) -> None:
    definition = _campaign_definition()
    path = f"/api/campaigns/{definition['name']}"
    for token in (OPERATOR_TOKEN, CRM_TOKEN, SUPERVISOR_TOKEN):
        response = await client.put(path, json=definition, headers=bearer(token))
        assert response.status == 403, await response.text()
        assert response.content_type == "application/problem+json"
    assert await _versions(database) == 0
    # The same body is a valid definition: the refusal above was the role, not the body.
    response = await client.put(path, json=definition, headers=bearer(ADMIN_TOKEN))
    assert response.status == 200, await response.text()
    assert await _versions(database) == 1


async def test_operator_and_crm_cannot_save_a_template_and_nothing_changes(
    client: Client, database: Database
) -> None:
    body = {"channel": "sms", "body": {"uk": "Вітаємо, {{ name }}!"}, "variables": ["name"]}
    for token in (OPERATOR_TOKEN, CRM_TOKEN, SUPERVISOR_TOKEN):
        response = await client.put("/api/templates/hello", json=body, headers=bearer(token))
        assert response.status == 403, await response.text()
    async with database.transaction() as session:
        assert await session.get(Template, "hello") is None
    response = await client.put("/api/templates/hello", json=body, headers=bearer(ADMIN_TOKEN))
    assert response.status == 200, await response.text()
    tampered = {**body, "body": {"uk": "змінено"}}
    response = await client.put(
        "/api/templates/hello", json=tampered, headers=bearer(OPERATOR_TOKEN)
    )
    assert response.status == 403
    async with database.transaction() as session:
        saved = await session.get(Template, "hello")
        assert saved is not None and saved.body == body["body"]
