"""Deeply nested JSON is refused at parse with a 400 naming the limit, never a 500.

Found by a probe: ~990 levels raised RecursionError on every JSON endpoint, the
unauthenticated `POST /api/session` included. Real HTTP on loopback, both databases.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from crm_sync.signature import HEADER, sign
from gateway.core.clock import FixedClock
from gateway.core.http.json_body import MAX_JSON_DEPTH, TooDeep, json_depth, loads_bounded
from gateway.core.http.problems import PROBLEM_CONTENT_TYPE
from tests.support.auth import ADMIN_TOKEN, WEBHOOK_SECRET, bearer

Client = TestClient[web.Request, web.Application]


def nested(levels: int, inner: str = "1") -> bytes:
    """`levels` arrays and objects inside each other (alternating), around `inner`."""
    opening = "".join('{"k":' if level % 2 else "[" for level in range(levels))
    closing = "".join("}" if level % 2 else "]" for level in reversed(range(levels)))
    return f"{opening}{inner}{closing}".encode()


async def refused_for_depth(response: Any) -> None:
    assert response.status == 400, await response.text()
    assert response.content_type == PROBLEM_CONTENT_TYPE
    problem = await response.json()
    assert f"deeper than {MAX_JSON_DEPTH} levels" in problem["detail"]
    assert problem["limit"] == MAX_JSON_DEPTH


@pytest.mark.parametrize("levels", [990, 30_000])
async def test_deep_sign_in_body_is_a_400_naming_the_limit(client: Client, levels: int) -> None:
    body = b'{"token": ' + b"[" * levels + b"]" * levels + b"}"
    response = await client.post(
        "/api/session", data=body, headers={"Content-Type": "application/json"}
    )
    await refused_for_depth(response)


async def test_deep_api_body_is_a_400_and_saves_nothing(client: Client) -> None:
    body = b'{"channel": "sms", "body": {"uk": "x"}, "variables": ' + nested(2_000) + b"}"
    headers = {**bearer(ADMIN_TOKEN), "Content-Type": "application/json"}
    response = await client.put("/api/templates/deep", data=body, headers=headers)
    await refused_for_depth(response)
    assert (await client.get("/api/templates/deep", headers=bearer(ADMIN_TOKEN))).status == 404


async def test_deep_signed_webhook_is_a_400(client: Client, clock: FixedClock) -> None:
    body = b'{"id": "evt-deep", "data": ' + nested(990) + b"}"
    signature = sign(WEBHOOK_SECRET, body, int(clock.now().timestamp()))
    headers = {HEADER: signature, "Content-Type": "application/json"}
    await refused_for_depth(await client.post("/crm/events", data=body, headers=headers))


async def test_nesting_within_the_limit_reaches_validation(client: Client) -> None:
    """At the limit the body parses; brackets inside strings do not count."""
    body = b'{"token": ' + b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1) + b"}"
    response = await client.post(
        "/api/session", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == 422 and (await response.json())["errors"][0]["field"] == "token"
    text = json.dumps({"token": "[{" * 40 + '\\"]'})
    response = await client.post(
        "/api/session", data=text, headers={"Content-Type": "application/json"}
    )
    assert response.status == 401


@pytest.mark.parametrize(
    ("document", "depth"),
    [
        ("1", 0),
        ("[]", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('["[[[[", "\\"[[[", {"x": "]]]]]"}]', 2),
        ('"\\\\" ', 0),
        ('[["\\\\"], "[["]', 2),
    ],
)
def test_depth_scan_skips_strings(document: str, depth: int) -> None:
    assert json_depth(document) == depth
    assert json.loads(document) == loads_bounded(document.encode("utf-16"))


def test_utf16_body_cannot_hide_its_nesting() -> None:
    """Bytes of another encoding are decoded first: a 0x22 byte inside a character is no
    quote that could hide brackets from the scan."""
    document = '["Ģ",' + "[" * 100 + "]" * 100 + ',"Ģ"]'
    with pytest.raises(TooDeep):
        loads_bounded(document.encode("utf-16-le"))


@pytest.mark.parametrize(
    "document", ['"' + '\\"' * 200_000, '["' * 300_000, '"a\\\\" ' * 100_000 + '"\\']
)
def test_scan_of_a_hostile_string_stays_linear(document: str) -> None:
    """Unterminated strings full of escaped quotes once made the scan quadratic (minutes);
    a generous bound that a busy machine still meets."""
    started = time.monotonic()
    with pytest.raises(ValueError):
        loads_bounded(document.encode())
    assert time.monotonic() - started < 2.0
