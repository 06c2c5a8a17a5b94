"""Templates API on the real app: save with versions, refusals that change nothing, roles."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from gateway.core.clock import FixedClock
from tests.support.auth import ADMIN_TOKEN, CRM_TOKEN, OPERATOR_TOKEN, bearer
from tests.support.templates_api import REMINDER, Client, client

__all__ = ["client"]  # the fixture (tests/support), imported for pytest

ADMIN = bearer(ADMIN_TOKEN)


async def put(client: Client, name: str, body: Any) -> tuple[int, dict[str, Any]]:
    response = await client.put(f"/api/templates/{name}", json=body, headers=ADMIN)
    return response.status, await response.json()


async def get(client: Client, name: str) -> tuple[int, dict[str, Any]]:
    response = await client.get(f"/api/templates/{name}", headers=ADMIN)
    return response.status, await response.json()


async def test_each_save_is_a_new_version(client: Client, clock: FixedClock) -> None:
    status, saved = await put(client, "payment-reminder", REMINDER)
    assert status == 200, saved
    assert saved["version"] == 1 and saved["variables"] == ["link"]
    assert saved["body"] == REMINDER["body"] and saved["subject"] == {}
    assert saved["created_at"] == saved["updated_at"] == "2026-11-02T09:00:00Z"
    clock.advance(timedelta(minutes=5))
    changed = {**REMINDER, "body": {"uk": "Оплатіть {{ amount }}: {{ link }}"}}
    status, saved = await put(client, "payment-reminder", changed)
    assert status == 200 and saved["version"] == 2
    assert saved["created_at"] == "2026-11-02T09:00:00Z"
    assert saved["updated_at"] == "2026-11-02T09:05:00Z"
    status, read = await get(client, "payment-reminder")
    assert status == 200 and read == saved


async def test_an_email_template_keeps_its_subjects(client: Client) -> None:
    template = {
        "channel": "email",
        "subject": {"uk": "Рахунок {{ contract_id }}", "en": "Invoice {{ contract_id }}"},
        "body": {"uk": "<p>{{ name }}</p>", "en": "<p>{{ name }}</p>"},
    }
    status, saved = await put(client, "invoice", template)
    assert status == 200 and saved["subject"] == template["subject"]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {**REMINDER, "body": {"uk": "Привіт!\nБонус: {{ bonus }}"}},
            "body.uk: line 2: unknown variable 'bonus'",
        ),
        ({**REMINDER, "body": {"en": "ok", "ru": "a\n{% if %}"}}, "body.ru: line 2: "),
        ({"channel": "email", "body": {"uk": "x"}}, "subject.uk: an e-mail needs a subject"),
        ({**REMINDER, "body": {"pl": "x"}}, "body.pl: unsupported language"),
        ({**REMINDER, "variables": ["link", "bad name"]}, "variables[1]: 'bad name'"),
        ({**REMINDER, "channel": "fax"}, "channel: "),
        ({**REMINDER, "colour": "red"}, "colour: "),
        ({**REMINDER, "body": {"uk": "x" * 20_001}}, "body.uk: "),
    ],
)
async def test_invalid_saves_are_refused_with_the_path_and_change_nothing(
    client: Client, body: dict[str, Any], detail: str
) -> None:
    status, first = await put(client, "reminder", REMINDER)
    assert status == 200
    status, problem = await put(client, "reminder", body)
    assert status == 422, problem
    assert problem["detail"].startswith(detail), problem
    assert problem["type"].endswith("invalid-input") and problem["errors"]
    status, problem = await put(client, "fresh", body)
    assert status == 422
    assert (await get(client, "reminder")) == (200, first)
    status, _ = await get(client, "fresh")
    assert status == 404


async def test_syntax_error_detail_is_exact(client: Client) -> None:
    status, problem = await put(client, "t", {"channel": "sms", "body": {"uk": "a\n{{ x }"}})
    assert status == 422
    assert problem["detail"] == "body.uk: line 2: unexpected '}'"
    assert problem["errors"] == [{"field": "body.uk", "message": "line 2: unexpected '}'"}]


async def test_a_template_keeps_its_channel(client: Client) -> None:
    await put(client, "reminder", REMINDER)
    status, problem = await put(client, "reminder", {**REMINDER, "channel": "voice"})
    assert status == 409 and "new name" in problem["detail"]
    status, read = await get(client, "reminder")
    assert read["channel"] == "sms" and read["version"] == 1


async def test_bad_names_and_json_are_refused(client: Client) -> None:
    status, problem = await put(client, "-dash", REMINDER)
    assert status == 422 and problem["detail"].startswith("name:")
    response = await client.put("/api/templates/ok", data=b"{nope", headers=ADMIN)
    assert response.status == 400
    status, _ = await get(client, "ok")
    assert status == 404


async def test_list_pages_by_name(client: Client) -> None:
    for name in ("c", "a", "b"):
        assert (await put(client, name, REMINDER))[0] == 200
    response = await client.get("/api/templates?limit=2", headers=ADMIN)
    first = await response.json()
    assert [item["name"] for item in first["items"]] == ["a", "b"]
    assert first["next_cursor"]
    response = await client.get(
        f"/api/templates?limit=2&cursor={first['next_cursor']}", headers=ADMIN
    )
    second = await response.json()
    assert [item["name"] for item in second["items"]] == ["c"]
    assert second["next_cursor"] is None


async def test_only_admins_may_read_or_write(client: Client) -> None:
    for token in (OPERATOR_TOKEN, CRM_TOKEN):
        response = await client.put("/api/templates/x", json=REMINDER, headers=bearer(token))
        assert response.status == 403
        response = await client.get("/api/templates", headers=bearer(token))
        assert response.status == 403
    response = await client.get("/api/templates")
    assert response.status == 401
    status, _ = await get(client, "x")
    assert status == 404


async def test_openapi_describes_the_templates_api(client: Client) -> None:
    response = await client.get("/openapi.json")
    paths = (await response.json())["paths"]
    assert {"get", "put"} <= set(paths["/api/templates/{name}"])
    assert "get" in paths["/api/templates"]
