"""A call task closes only with a real call: right customer, after the task, long enough."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from gateway.core.appkeys import CLOCK
from gateway.core.db.engine import Database
from gateway.core.db.models import OutboxItem, Task
from tests.support.agents import add_agent
from tests.support.auth import CRM_TOKEN, OPERATOR_AGENT, OPERATOR_TOKEN, bearer
from tests.support.factories import make_call, make_customer, make_task

Client = TestClient[Any, Any]
OLENA, FAMILY, IVAN = "+380671234567", "+380442223344", "+380501112233"


async def complete(client: Client, task_id: str, call_id: str) -> tuple[int, dict[str, Any]]:
    response = await client.post(
        f"/api/tasks/{task_id}/complete", json={"call_id": call_id}, headers=bearer(OPERATOR_TOKEN)
    )
    return response.status, await response.json()


async def test_short_foreign_and_early_calls_are_refused_and_a_real_one_closes_it(
    client: Client, database: Database
) -> None:
    now = client.app[CLOCK].now()
    await add_agent(database, now, OPERATOR_AGENT, ["201"])  # the calls ring 201
    olena = await make_customer(database, now, "C-1", [OLENA, FAMILY])
    ivan = await make_customer(database, now, "C-2", [IVAN])
    task = await make_task(
        database, customer_id=olena, created_at=now, task_id="crm-77", assignee=OPERATOR_AGENT
    )
    later = now + timedelta(hours=1)

    early = await make_call(
        database,
        started_at=now - timedelta(minutes=5),
        talk_seconds=60,
        caller=OLENA,
        customer_id=olena,
    )
    foreign = await make_call(
        database, started_at=later, talk_seconds=60, caller=IVAN, customer_id=ivan
    )
    short = await make_call(
        database, started_at=later, talk_seconds=10, caller=OLENA, customer_id=olena
    )
    exactly_minimum = await make_call(
        database, started_at=later, talk_seconds=20, caller=OLENA, customer_id=olena
    )
    for call_id, expected in (
        (early, "call-before-task"),
        (foreign, "call-not-matching"),
        (short, "call-too-short"),
        (exactly_minimum, "call-too-short"),
    ):
        status, problem = await complete(client, task, call_id)
        assert status == 409 and problem["type"].endswith(expected), (expected, problem)

    async with database.sessions() as session:
        assert (await session.get(Task, task)).status == "open"  # type: ignore[union-attr]
        assert (await session.execute(select(OutboxItem))).first() is None

    # Shared family number, matched as ambiguous (no customer_id): still her call.
    real = await make_call(database, started_at=later, talk_seconds=25, caller="0442223344")
    status, body = await complete(client, task, real)
    assert status == 200
    assert body["status"] == "done" and body["completed_by_call_id"] == real
    assert body["task_id"] == "crm-77"

    async with database.sessions() as session:
        pushed = (await session.execute(select(OutboxItem))).scalars().all()
    assert [item.type for item in pushed] == ["task.completed"]
    assert pushed[0].payload["task_id"] == "crm-77" and pushed[0].ordering_key == olena

    status, problem = await complete(client, task, real)
    assert status == 409 and problem["type"].endswith("task-not-open")


async def test_unknown_task_or_call_is_404_and_bad_body_is_422(
    client: Client, database: Database
) -> None:
    now = client.app[CLOCK].now()
    olena = await make_customer(database, now, "C-1", [OLENA])
    task = await make_task(database, customer_id=olena, created_at=now, assignee=OPERATOR_AGENT)
    assert (await complete(client, "tsk_nope", "call_nope"))[0] == 404
    assert (await complete(client, task, "call_nope"))[0] == 404
    response = await client.post(
        f"/api/tasks/{task}/complete", json={"call": "x"}, headers=bearer(OPERATOR_TOKEN)
    )
    assert response.status == 422
    assert (await response.json())["errors"][0]["field"] == "call_id"


async def test_listing_filters_by_me_and_status_and_needs_the_operator_role(
    client: Client, database: Database
) -> None:
    now = client.app[CLOCK].now()
    olena = await make_customer(database, now, "C-1", [OLENA])
    mine = await make_task(database, customer_id=olena, created_at=now, assignee=OPERATOR_AGENT)
    await make_task(database, customer_id=olena, created_at=now, assignee="agent-999")
    done = await make_task(database, customer_id=olena, created_at=now, assignee=OPERATOR_AGENT)
    async with database.transaction() as session:
        await session.execute(update(Task).where(Task.id == done).values(status="done"))
    response = await client.get(
        "/api/tasks?assignee=me&status=open", headers=bearer(OPERATOR_TOKEN)
    )
    body = await response.json()
    assert [item["id"] for item in body["items"]] == [mine] and body["next_cursor"] is None
    paged = await client.get("/api/tasks?limit=1", headers=bearer(OPERATOR_TOKEN))
    assert (await paged.json())["next_cursor"] is not None
    assert (await client.get("/api/tasks", headers=bearer(CRM_TOKEN))).status == 403
