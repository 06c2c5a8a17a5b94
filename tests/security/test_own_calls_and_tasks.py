"""Operators see and act on their own calls and tasks only (as the WebSocket keeps to
their own extensions); supervisors read everything and act on their own; admins and
the CRM read every call. Refused actions change nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiohttp import WSServerHandshakeError
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, update

from gateway.core.appkeys import CLOCK
from gateway.core.db.engine import Database
from gateway.core.db.models import Call, CallLeg, OutboxItem, Task
from tests.support.agents import add_agent
from tests.support.auth import (
    ADMIN_TOKEN,
    CRM_TOKEN,
    OPERATOR_AGENT,
    OPERATOR_TOKEN,
    SUPERVISOR_AGENT,
    SUPERVISOR_TOKEN,
    bearer,
)
from tests.support.factories import make_call, make_customer, make_task

Client = TestClient[Any, Any]
OTHER_AGENT = "agent-202"
OLENA = "+380501234567"


async def people(database: Database, client: Client) -> None:
    now = client.app[CLOCK].now()
    await add_agent(database, now, OPERATOR_AGENT, ["201"])
    await add_agent(database, now, OTHER_AGENT, ["202"])
    await add_agent(database, now, SUPERVISOR_AGENT, ["301"])


async def calls(database: Database, client: Client) -> dict[str, str]:
    """Calls by whose they are: the operator's (by extension, by agent, by a transfer
    leg), the other operator's, and one nobody answered."""
    now = client.app[CLOCK].now()
    made = {
        name: await make_call(
            database, started_at=now, talk_seconds=30, caller=OLENA, callee=extension
        )
        for name, extension in (
            ("mine", "201"),
            ("mine_by_agent", "299"),
            ("transferred_to_me", "202"),
            ("others", "202"),
            ("supervisors", "301"),
        )
    }
    async with database.transaction() as session:
        await session.execute(
            update(Call).where(Call.id == made["mine_by_agent"]).values(agent_id=OPERATOR_AGENT)
        )
        session.add(
            CallLeg(
                uniqueid=f"leg-{made['transferred_to_me']}",
                call_id=made["transferred_to_me"],
                channel="PJSIP/201-1",
                role="operator",
                extension="201",
            )
        )
    return made


async def listed(client: Client, path: str, token: str) -> set[str]:
    response = await client.get(path, headers=bearer(token))
    assert response.status == 200, await response.text()
    return {item["id"] for item in (await response.json())["items"]}


async def test_operators_list_their_own_calls_others_list_all(
    client: Client, database: Database
) -> None:
    await people(database, client)
    made = await calls(database, client)
    mine = {made["mine"], made["mine_by_agent"], made["transferred_to_me"]}
    assert await listed(client, "/api/calls", OPERATOR_TOKEN) == mine
    everyone = set(made.values())
    for token in (SUPERVISOR_TOKEN, ADMIN_TOKEN, CRM_TOKEN):
        assert await listed(client, "/api/calls", token) == everyone


async def test_an_operator_s_pages_hold_every_own_call_once_newest_first(
    client: Client, database: Database
) -> None:
    await people(database, client)
    mine: list[str] = []
    for _ in range(3):  # interleaved with others' calls, each way of being mine
        made = await calls(database, client)
        mine += [made["mine"], made["mine_by_agent"], made["transferred_to_me"]]
    # Two of my legs on one call: still one row.
    async with database.transaction() as session:
        session.add(
            CallLeg(
                uniqueid="leg-twice",
                call_id=mine[-1],
                channel="PJSIP/201-2",
                role="operator",
                extension="201",
            )
        )
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        response = await client.get(f"/api/calls?{query}", headers=bearer(OPERATOR_TOKEN))
        body = await response.json()
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(mine, reverse=True)
    # Filters apply to each way too.
    nobody = await client.get("/api/calls?customer_id=cus_nobody", headers=bearer(OPERATOR_TOKEN))
    assert (await nobody.json())["items"] == []


async def topic(client: Client, call_id: str, token: str) -> int:
    response = await client.put(
        f"/api/calls/{call_id}/topic", json={"topic": "complaint"}, headers=bearer(token)
    )
    return response.status


async def test_wrap_up_only_on_your_own_call_and_a_refusal_changes_nothing(
    client: Client, database: Database
) -> None:
    await people(database, client)
    made = await calls(database, client)
    assert await topic(client, made["others"], OPERATOR_TOKEN) == 403
    assert await topic(client, made["others"], SUPERVISOR_TOKEN) == 403
    async with database.sessions() as session:
        assert (await session.get(Call, made["others"])).topic is None  # type: ignore[union-attr]
    for name in ("mine", "mine_by_agent", "transferred_to_me"):
        assert await topic(client, made[name], OPERATOR_TOKEN) == 200, name
    assert await topic(client, made["supervisors"], SUPERVISOR_TOKEN) == 200
    assert await topic(client, made["others"], ADMIN_TOKEN) == 200
    assert await topic(client, "call_nobody_has", OPERATOR_TOKEN) == 404


async def test_unknown_caller_report_only_for_your_own_call(
    client: Client, database: Database
) -> None:
    await people(database, client)
    made = await calls(database, client)
    path = f"/api/calls/{made['others']}/unknown-caller"
    refused = await client.post(path, headers=bearer(OPERATOR_TOKEN))
    assert refused.status == 403
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxItem)) == 0
    mine = await client.post(
        f"/api/calls/{made['mine']}/unknown-caller", headers=bearer(OPERATOR_TOKEN)
    )
    assert mine.status == 202
    # Still ringing, nobody's yet: every operator it rings may act on the pop.
    async with database.transaction() as session:
        await session.execute(
            update(Call)
            .where(Call.id == made["others"])
            .values(state="ringing", extension=None, ended_at=None)
        )
    ringing = await client.post(path, headers=bearer(OPERATOR_TOKEN))
    assert ringing.status == 202


async def test_operators_list_and_complete_their_own_tasks_only(
    client: Client, database: Database
) -> None:
    await people(database, client)
    made = await calls(database, client)
    now = client.app[CLOCK].now()
    customer = await make_customer(database, now, "C-1", [OLENA])
    async with database.transaction() as session:
        await session.execute(update(Call).values(customer_id=customer))
    earlier = now - timedelta(hours=1)
    mine = await make_task(
        database, customer_id=customer, created_at=earlier, assignee=OPERATOR_AGENT
    )
    others = await make_task(
        database, customer_id=customer, created_at=earlier, assignee=OTHER_AGENT
    )
    nobodys = await make_task(database, customer_id=customer, created_at=earlier)

    assert await listed(client, "/api/tasks", OPERATOR_TOKEN) == {mine}
    assert await listed(client, "/api/tasks?assignee=me", OPERATOR_TOKEN) == {mine}
    response = await client.get(
        f"/api/tasks?assignee={OTHER_AGENT}", headers=bearer(OPERATOR_TOKEN)
    )
    assert response.status == 403
    for token in (SUPERVISOR_TOKEN, ADMIN_TOKEN):
        assert await listed(client, "/api/tasks", token) == {mine, others, nobodys}
    assert await listed(client, f"/api/tasks?assignee={OTHER_AGENT}", SUPERVISOR_TOKEN) == {others}

    async def complete(task: str, call: str, token: str = OPERATOR_TOKEN) -> int:
        response = await client.post(
            f"/api/tasks/{task}/complete", json={"call_id": call}, headers=bearer(token)
        )
        return response.status

    assert await complete(others, made["mine"]) == 403
    assert await complete(nobodys, made["mine"]) == 403
    assert await complete(others, made["others"], SUPERVISOR_TOKEN) == 403
    assert await complete(mine, made["others"]) == 403  # someone else's call: not yours
    async with database.sessions() as session:
        statuses = set((await session.scalars(select(Task.status))).all())
        assert statuses == {"open"}
        assert await session.scalar(select(func.count()).select_from(OutboxItem)) == 0
    assert await complete(mine, made["mine"]) == 200
    assert await complete(others, made["others"], ADMIN_TOKEN) == 200


async def test_supervisors_read_statistics_but_do_not_recompute_them(client: Client) -> None:
    day = client.app[CLOCK].now().date().isoformat()
    for path in (
        f"/api/reports/daily?date={day}",
        f"/api/reports/series?from={day}&to={day}",
        f"/api/reports/savings?from={day}&to={day}",
    ):
        response = await client.get(path, headers=bearer(SUPERVISOR_TOKEN))
        assert response.status == 200, (path, await response.text())
        assert (await client.get(path, headers=bearer(OPERATOR_TOKEN))).status == 403
    recompute = f"/api/reports/daily?date={day}&recompute=true"
    assert (await client.get(recompute, headers=bearer(SUPERVISOR_TOKEN))).status == 403
    assert (await client.get(recompute, headers=bearer(ADMIN_TOKEN))).status == 200


async def test_the_socket_agrees_supervisors_watch_their_own_extensions(
    client: Client, database: Database
) -> None:
    await people(database, client)

    async def ticket() -> str:
        response = await client.post("/api/ws-tickets", headers=bearer(SUPERVISOR_TOKEN))
        assert response.status == 201
        return str((await response.json())["ticket"])

    socket = await client.ws_connect(f"/ws/agents/301?ticket={await ticket()}")
    assert (await socket.receive_json(timeout=5))["type"] == "hello"
    await socket.close()
    with pytest.raises(WSServerHandshakeError) as refused:
        await client.ws_connect(f"/ws/agents/201?ticket={await ticket()}")
    assert refused.value.status == 403
