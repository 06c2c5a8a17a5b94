"""Customer API over real HTTP on both databases: search, phone matching, card, timeline."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models import Call
from gateway.customers.service import find_by_phone
from tests.support.auth import CRM_TOKEN, OPERATOR_TOKEN, bearer
from tests.support.crm_webhooks import post_event

Client = TestClient[Any, Any]
OPERATOR = bearer(OPERATOR_TOKEN)


async def add_customer(
    client: Client, clock: FixedClock, external_id: str, name: str, *phones: str, **extra: Any
) -> str:
    """Create a customer through the CRM webhook; returns our id."""
    data = {"external_id": external_id, "name": name, "phones": list(phones), **extra}
    await post_event(client, clock, "customer.upserted", data)
    found = await get(client, "/api/customers", external_id=external_id)
    return str(found["items"][0]["id"])


async def get(
    client: Client,
    path: str,
    expect: int = 200,
    headers: dict[str, str] | None = None,
    **query: Any,
) -> dict[str, Any]:
    """GET as the operator (by default) and check the status."""
    response = await client.get(
        path, params=query, headers=OPERATOR if headers is None else headers
    )
    body: dict[str, Any] = await response.json()
    assert response.status == expect, body
    return body


async def test_roles(client: Client, clock: FixedClock) -> None:
    cid = await add_customer(client, clock, "C1", "Іван Петренко", "0671234567")
    await get(client, "/api/customers", expect=401, headers={})
    assert (await get(client, "/api/customers", headers=bearer(CRM_TOKEN), phone="0671234567"))[
        "items"
    ][0]["id"] == cid
    await get(client, f"/api/customers/{cid}", headers=bearer(CRM_TOKEN))
    await get(client, f"/api/customers/{cid}/timeline", expect=403, headers=bearer(CRM_TOKEN))
    await get(client, f"/api/customers/{cid}/timeline")


async def test_phone_search_exact_suffix_ambiguous_none(
    client: Client, clock: FixedClock, database: Database
) -> None:
    ivan = await add_customer(client, clock, "C1", "Іван", "+380 67 123 45 67")
    olha = await add_customer(client, clock, "C2", "Ольга", "050 111 22 33")
    petro = await add_customer(client, clock, "C3", "Петро", "0931112233", "+380501112233")

    exact = await get(client, "/api/customers", phone="(067) 123-45-67")
    assert [(i["id"], i["match"]) for i in exact["items"]] == [(ivan, "exact")]
    assert exact["items"][0]["phones"] == ["+380671234567"]
    # A trunk prefix makes the number invalid as written: matched on its last 9 digits.
    suffix = await get(client, "/api/customers", phone="80671234567")
    assert [(i["id"], i["match"]) for i in suffix["items"]] == [(ivan, "suffix")]
    shared = await get(client, "/api/customers", phone="+380501112233")
    assert sorted((i["id"], i["match"]) for i in shared["items"]) == sorted(
        [(olha, "ambiguous"), (petro, "ambiguous")]
    )
    assert (await get(client, "/api/customers", phone="0441234567"))["items"] == []
    assert (await get(client, "/api/customers", phone="12"))["items"] == []
    # Combined with a name filter.
    only = await get(client, "/api/customers", phone="0501112233", q="петро")
    assert [i["id"] for i in only["items"]] == [petro]

    async with database.sessions() as session:
        assert (await find_by_phone(session, "0671234567", "UA")).match == "exact"
        assert (await find_by_phone(session, "8 067 123 45 67", "UA")).match == "suffix"
        ambiguous = await find_by_phone(session, "0501112233", "UA")
        assert ambiguous.match == "ambiguous" and {c.id for c in ambiguous.customers} == {
            olha,
            petro,
        }
        assert [p.e164 for p in ambiguous.customers[0].phones]  # phones come loaded
        none = await find_by_phone(session, "0661234567", "UA")
        assert none.match == "none" and none.customers == []


async def test_name_and_external_id_search_and_paging(client: Client, clock: FixedClock) -> None:
    ids = [
        await add_customer(client, clock, f"C{i}", f"Іван Петренко {i}", f"06712345{i:02d}")
        for i in range(3)
    ]
    await add_customer(client, clock, "X", "Olga 100%", "0501112233")
    first = await get(client, "/api/customers", q="петренко", limit=2)
    assert [i["id"] for i in first["items"]] == ids[:2] and first["next_cursor"]
    second = await get(client, "/api/customers", q="ПЕТРЕНКО", limit=2, cursor=first["next_cursor"])
    assert [i["id"] for i in second["items"]] == ids[2:] and second["next_cursor"] is None
    assert [i["external_id"] for i in (await get(client, "/api/customers", q="OLGA"))["items"]] == [
        "X"
    ]
    assert (await get(client, "/api/customers", q="%"))["items"][0]["external_id"] == "X"
    assert (await get(client, "/api/customers", q="_"))["items"] == []  # wildcards are literal
    assert [i["id"] for i in (await get(client, "/api/customers", external_id="C1"))["items"]] == [
        ids[1]
    ]
    bad = await get(client, "/api/customers", expect=422, limit=0)
    assert bad["errors"][0]["field"] == "limit"


async def test_deleted_customers_are_not_served(client: Client, clock: FixedClock) -> None:
    cid = await add_customer(client, clock, "C1", "Іван", "0671234567")
    clock.advance(timedelta(seconds=1))
    await post_event(client, clock, "customer.deleted", {"external_id": "C1"})
    assert (await get(client, "/api/customers", phone="0671234567"))["items"] == []
    assert (await get(client, "/api/customers", q="іван"))["items"] == []
    await get(client, f"/api/customers/{cid}", expect=404)


async def test_card(client: Client, clock: FixedClock, database: Database) -> None:
    cid = await add_customer(
        client,
        clock,
        "C1",
        "Іван",
        "0671234567",
        "0501112233",
        email="i@example.com",
        products=["card"],
        bonus_balance="12.5",
        attributes={"tier": "gold"},
        responsible_agent="agent-201",
    )
    for due, amount in (("2026-10-01", "10"), ("2026-12-01", "150.25"), ("2026-11-20", "99.9")):
        await post_event(
            client,
            clock,
            "payment.scheduled",
            {
                "external_id": "C1",
                "contract_id": "K",
                "due_date": due,
                "amount": amount,
                "currency": "UAH",
            },
        )
    await post_event(
        client,
        clock,
        "task.created",
        {
            "task_id": "T1",
            "external_id": "C1",
            "due_at": "2026-11-05T10:00:00Z",
            "min_call_seconds": 30,
        },
    )
    await post_event(
        client,
        clock,
        "contact.requested",
        {"external_id": "C1", "channel": "sms", "body": "Привіт"},
    )
    async with database.transaction() as session:
        session.add(
            Call(
                id="call-1",
                customer_id=cid,
                direction="inbound",
                started_at=clock.now(),
                talk_seconds=42,
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
    card = await get(client, f"/api/customers/{cid}")
    assert card["phones"] == ["+380671234567", "+380501112233"]
    assert (card["external_id"], card["email"], card["status"], card["responsible_agent"]) == (
        "C1",
        "i@example.com",
        "active",
        "agent-201",
    )
    assert (
        card["bonus_balance"] == "12.50"
        and card["attributes"] == {"tier": "gold"}
        and card["products"] == ["card"]
    )
    assert card["next_payment"] == {
        "contract_id": "K",
        "due_date": "2026-11-20",
        "amount": "99.90",
        "currency": "UAH",
        "status": "due",
    }
    assert [(t["task_id"], t["min_call_seconds"], t["due_at"]) for t in card["open_tasks"]] == [
        ("T1", 30, "2026-11-05T10:00:00Z")
    ]
    assert [(m["channel"], m["status"]) for m in card["last_contacts"]["messages"]] == [
        ("sms", "pending")
    ]
    assert [(c["id"], c["talk_seconds"]) for c in card["last_contacts"]["calls"]] == [
        ("call-1", 42)
    ]
    missing = await get(client, "/api/customers/cus_nope", expect=404)
    assert missing["type"].endswith("/not-found")


async def test_timeline_is_newest_first_and_pages(
    client: Client, clock: FixedClock, database: Database
) -> None:
    cid = await add_customer(client, clock, "C1", "Іван", "0671234567")  # status_change at T0
    step = timedelta(minutes=1)
    clock.advance(step)
    await post_event(client, clock, "task.created", {"task_id": "T1", "external_id": "C1"})
    await post_event(
        client,
        clock,
        "customer.activity",
        {"external_id": "C1", "kind": "order", "at": "2026-11-02T10:00:00Z", "amount": "5"},
    )
    await post_event(
        client,
        clock,
        "complaint.created",
        {"external_id": "C1", "at": "2026-11-02T08:00:00Z", "topic": "fees"},
    )
    clock.advance(step)
    await post_event(
        client,
        clock,
        "payment.scheduled",
        {
            "external_id": "C1",
            "contract_id": "K",
            "due_date": "2026-12-01",
            "amount": "1",
            "currency": "UAH",
        },
    )
    clock.advance(step)
    await post_event(
        client, clock, "contact.requested", {"external_id": "C1", "channel": "sms", "body": "x"}
    )
    async with database.transaction() as session:
        session.add(
            Call(
                id="call-1",
                customer_id=cid,
                started_at=clock.now() + step,
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
    body = await get(client, f"/api/customers/{cid}/timeline")
    kinds = [item["kind"] for item in body["items"]]
    assert kinds == ["activity", "call", "message", "payment", "task", "status_change", "complaint"]
    ats = [item["at"] for item in body["items"]]
    assert ats == sorted(ats, reverse=True) and all(at.endswith("Z") for at in ats)
    assert body["items"][0]["amount"] == "5.00" and body["items"][5]["to"] == "active"
    assert body["next_cursor"] is None
    seen: list[str] = []
    cursor = None
    while True:
        page = await get(
            client,
            f"/api/customers/{cid}/timeline",
            limit=2,
            **({"cursor": cursor} if cursor else {}),
        )
        seen += [item["kind"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == kinds
    await get(client, f"/api/customers/{cid}/timeline", expect=422, cursor="garbage")
    await get(client, "/api/customers/cus_nope/timeline", expect=404)


async def test_openapi_documents_customer_schemas(client: Client) -> None:
    document = await get(client, "/openapi.json", headers={})
    assert {
        "/api/customers",
        "/api/customers/{id}",
        "/api/customers/{id}/timeline",
        "/crm/events",
    } <= set(document["paths"])
    schemas = document["components"]["schemas"]
    assert {"CustomerCard", "CustomerPage", "TimelinePage", "Envelope", "WebhookAck"} <= set(
        schemas
    )
    assert "phone" in [p["name"] for p in document["paths"]["/api/customers"]["get"]["parameters"]]
