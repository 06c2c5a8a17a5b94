"""Template preview over real HTTP, on SQLite and PostgreSQL: a saved template or an unsaved
edit rendered for a real customer by the sender's renderer; refusals name the field and
nothing is written."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models import Payment, Template
from gateway.core.db.types import new_id
from gateway.customers.repository import upsert_customer
from tests.support.auth import ADMIN_TOKEN, OPERATOR_TOKEN, bearer
from tests.support.templates_api import REMINDER, Client, client

ADMIN = bearer(ADMIN_TOKEN)
__all__ = ["client"]  # the templates API's app fixture


async def add_customer(database: Database, clock: FixedClock, name: str, language: str) -> str:
    """A customer with a payment of 1 250.00 UAH due on 5 November 2026."""
    async with database.transaction() as session:
        customer, _ = await upsert_customer(
            session,
            new_id("ext"),
            {"name": name, "language": language},
            ["+380501234567"],
            clock.now(),
        )
        session.add(
            Payment(
                id=new_id("pay"),
                customer_id=customer.id,
                contract_id="K-1",
                due_date=date(2026, 11, 5),
                amount=Decimal("1250.00"),
                currency="UAH",
                status="due",
                updated_at=clock.now(),
            )
        )
        return customer.id


async def preview(client: Client, name: str, body: dict[str, Any]) -> tuple[int, Any]:
    response = await client.post(f"/api/templates/{name}/preview", json=body, headers=ADMIN)
    return response.status, await response.json()


async def template_rows(database: Database) -> int:
    async with database.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Template)) or 0)


async def test_saved_and_edited_templates_render_for_the_customer(
    client: Client, database: Database, clock: FixedClock
) -> None:
    olena = await add_customer(database, clock, "Олена Коваль", "uk")
    john = await add_customer(database, clock, "John <b>Smith</b>", "en")
    saved = await client.put("/api/templates/reminder", json=REMINDER, headers=ADMIN)
    assert saved.status == 200

    status, body = await preview(
        client, "reminder", {"customer_id": olena, "variables": {"link": "https://x.test/p"}}
    )
    assert status == 200, body
    assert body["text"] == "Олена, нагадуємо: 1 250,00 грн до 05.11.2026. https://x.test/p"
    assert (body["language"], body["customer_name"], body["html"]) == ("uk", "Олена Коваль", None)

    # An unsaved edit, in the customer's language; the saved template is unchanged.
    edit = {"channel": "sms", "body": {"en": "Hello {{ name }}, {{ amount }} due."}}
    status, body = await preview(client, "reminder", {"customer_id": john, "template": edit})
    assert status == 200, body
    assert body["text"] == "Hello John <b>Smith</b>, UAH 1,250.00 due."
    stored = await (await client.get("/api/templates/reminder", headers=ADMIN)).json()
    assert stored["body"] == REMINDER["body"] and stored["version"] == 1

    # An HTML e-mail edit: values escaped in the HTML, a text alternative alongside.
    email = {
        "channel": "email",
        "subject": {"en": "For {{ first_name }}"},
        "body": {"en": "<p>Dear {{ name }}</p>"},
    }
    status, body = await preview(client, "new-one", {"customer_id": john, "template": email})
    assert status == 200, body
    assert body["subject"] == "For John"
    assert body["html"] == "<p>Dear John &lt;b&gt;Smith&lt;/b&gt;</p>"
    assert body["text"] == "Dear John <b>Smith</b>"
    assert await template_rows(database) == 1


@pytest.mark.parametrize(
    ("request_body", "field", "message"),
    [
        (
            {"template": {"channel": "sms", "body": {"uk": "Hi {{ name }"}}},
            "template.body.uk",
            "line 1: unexpected '}'",
        ),
        (
            {"template": {"channel": "sms", "body": {"uk": "Hi {{ nickname }}"}}},
            "template.body.uk",
            "line 1: unknown variable 'nickname'",
        ),
        ({}, "variables.link", "variable 'link' has no value"),
        (
            {"template": {"channel": "sms", "body": {"uk": "{{ link }}"}, "variables": ["link"]}},
            "variables.link",
            "variable 'link' has no value",
        ),
    ],
)
async def test_refusals_name_the_field_and_write_nothing(
    client: Client,
    database: Database,
    clock: FixedClock,
    request_body: dict[str, Any],
    field: str,
    message: str,
) -> None:
    customer = await add_customer(database, clock, "Олена Коваль", "uk")
    await client.put("/api/templates/reminder", json=REMINDER, headers=ADMIN)
    status, body = await preview(client, "reminder", {"customer_id": customer, **request_body})
    assert status == 422, body
    assert body["errors"] == [{"field": field, "message": message}]
    assert body["detail"] == f"{field}: {message}"
    assert await template_rows(database) == 1


async def test_unknown_template_or_customer_and_other_roles(
    client: Client, database: Database, clock: FixedClock
) -> None:
    customer = await add_customer(database, clock, "Олена Коваль", "uk")
    status, _ = await preview(client, "nothing", {"customer_id": customer})
    assert status == 404
    await client.put("/api/templates/reminder", json=REMINDER, headers=ADMIN)
    status, _ = await preview(client, "reminder", {"customer_id": "cus_nobody"})
    assert status == 404
    response = await client.post(
        "/api/templates/reminder/preview",
        json={"customer_id": customer},
        headers=bearer(OPERATOR_TOKEN),
    )
    assert response.status == 403
