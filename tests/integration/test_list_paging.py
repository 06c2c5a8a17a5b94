"""Cursor paging of the call and task lists (both through `keyset_page`): following
`next_cursor` gives every row once, in the list's order, on both databases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.core.appkeys import CLOCK
from gateway.core.db.engine import Database
from tests.support.auth import ADMIN_TOKEN, OPERATOR_AGENT, OPERATOR_TOKEN, bearer
from tests.support.factories import make_call, make_customer, make_task

Client = TestClient[Any, Any]


async def walk(client: Client, path: str, token: str) -> tuple[list[str], int]:
    """Every id the list gives by following its cursors, and how many pages it took."""
    ids: list[str] = []
    pages, cursor = 0, None
    while True:
        url = f"{path}?limit=2" + (f"&cursor={cursor}" if cursor else "")
        response = await client.get(url, headers=bearer(token))
        assert response.status == 200, await response.text()
        body = await response.json()
        ids += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return ids, pages


async def test_calls_page_newest_first(client: Client, database: Database) -> None:
    now = client.app[CLOCK].now()
    made = [
        await make_call(
            database, started_at=now - timedelta(minutes=n), talk_seconds=30, caller="+380501112233"
        )
        for n in range(5)
    ]
    ids, pages = await walk(client, "/api/calls", ADMIN_TOKEN)
    assert ids == sorted(made, reverse=True) and pages == 3


async def test_tasks_page_in_creation_order(client: Client, database: Database) -> None:
    now = client.app[CLOCK].now()
    customer = await make_customer(database, now, "C-1", ["+380501112233"])
    made = [
        await make_task(database, customer_id=customer, created_at=now, assignee=OPERATOR_AGENT)
        for _ in range(5)
    ]
    ids, pages = await walk(client, "/api/tasks", OPERATOR_TOKEN)
    assert ids == sorted(made) and pages == 3


async def test_a_forged_cursor_is_refused(client: Client) -> None:
    # "gA" decodes to a byte that is not UTF-8: no cursor this API gave out.
    for path, token in (("/api/calls", ADMIN_TOKEN), ("/api/tasks", OPERATOR_TOKEN)):
        response = await client.get(f"{path}?cursor=gA", headers=bearer(token))
        assert response.status == 422, path
