"""The console's session cookie: sign-in, CSRF on every change, expiry, sign-out,
tampering, several instances — and the bearer header still first."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from aiohttp import WSServerHandshakeError
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from gateway.core.appkeys import CLOCK
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models.crm import OutboxItem
from gateway.core.http.auth import TokenRegistry
from gateway.core.http.session import SESSION_COOKIE, SESSION_SECONDS
from gateway.settings import Settings
from tests.support.agents import add_agent
from tests.support.auth import (
    ADMIN_TOKEN,
    CRM_TOKEN,
    OPERATOR_AGENT,
    OPERATOR_TOKEN,
    bearer,
    role_tokens,
)
from tests.support.console_wiring import console_app
from tests.support.factories import make_call, make_customer
from tests.support.serve_process import free_port

Client = TestClient[Any, Any]


@pytest.fixture
async def console(
    settings: Settings, database: Database, clock: FixedClock, tokens: TokenRegistry
) -> AsyncIterator[Client]:
    """The app with the console routes, over HTTP on loopback."""
    app = console_app(settings, workers=False, clock=clock, tokens=tokens)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def sign_in(client: Client, token: str = OPERATOR_TOKEN) -> tuple[str, str]:
    """Open a session; returns (cookie value, csrf token) and empties the client's jar."""
    response = await client.post("/api/session", json={"token": token})
    assert response.status == 201, await response.text()
    body = await response.json()
    cookie = response.cookies[SESSION_COOKIE].value
    client.session.cookie_jar.clear()
    return cookie, body["csrf_token"]


def with_cookie(cookie: str, csrf: str | None = None) -> dict[str, str]:
    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    return headers


async def test_sign_in_sets_a_strict_httponly_cookie_and_me_describes_the_operator(
    console: Client, database: Database
) -> None:
    await add_agent(database, console.app[CLOCK].now(), OPERATOR_AGENT, ["202", "201"])
    response = await console.post("/api/session", json={"token": OPERATOR_TOKEN})
    assert response.status == 201
    morsel = response.cookies[SESSION_COOKIE]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
    assert not morsel["secure"]  # public_url is http here
    assert morsel["path"] == "/"
    assert OPERATOR_TOKEN not in morsel.value
    body = await response.json()
    assert body["role"] == "operator" and body["agent_id"] == OPERATOR_AGENT
    console.session.cookie_jar.clear()

    me = await console.get("/api/me", headers=with_cookie(morsel.value))
    assert me.status == 200
    data = await me.json()
    assert data["role"] == "operator" and data["agent_id"] == OPERATOR_AGENT
    assert data["extensions"] == ["201", "202"]
    assert "complaint" in data["call_topics"]
    assert data["csrf_token"] == body["csrf_token"]
    bare = await console.get("/api/me", headers=bearer(OPERATOR_TOKEN))
    assert (await bare.json())["csrf_token"] is None


async def test_cookie_is_secure_when_the_public_url_is_https(
    settings: Settings, database: Database, clock: FixedClock, tokens: TokenRegistry
) -> None:
    https = settings.model_copy(update={"public_url": "https://switchboard.example"})
    app = console_app(https, workers=False, clock=clock, tokens=tokens)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.post("/api/session", json={"token": OPERATOR_TOKEN})
        assert response.cookies[SESSION_COOKIE]["secure"] is True


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"token": "not-a-known-token-at-all"}, 401),
        ({"token": CRM_TOKEN}, 403),
        ({"token": ""}, 422),
        ({}, 422),
    ],
)
async def test_bad_sign_ins_set_no_cookie(
    console: Client, body: dict[str, str], status: int
) -> None:
    response = await console.post("/api/session", json=body)
    assert response.status == status
    assert response.content_type == "application/problem+json"
    assert SESSION_COOKIE not in response.cookies


async def test_state_changes_with_the_cookie_need_the_csrf_token(console: Client) -> None:
    cookie, csrf = await sign_in(console)
    missing = await console.post("/api/ws-tickets", headers=with_cookie(cookie))
    assert missing.status == 403
    assert "X-CSRF-Token" in (await missing.json())["detail"]
    wrong = await console.post("/api/ws-tickets", headers=with_cookie(cookie, "0" * 64))
    assert wrong.status == 403
    other_cookie, other_csrf = await sign_in(console)
    crossed = await console.post("/api/ws-tickets", headers=with_cookie(cookie, other_csrf))
    assert crossed.status == 403
    ok = await console.post("/api/ws-tickets", headers=with_cookie(cookie, csrf))
    assert ok.status == 201 and (await ok.json())["ticket"]
    # Reads need no CSRF token.
    assert (await console.get("/api/tasks", headers=with_cookie(cookie))).status == 200
    assert other_cookie != cookie


async def test_a_refused_change_changes_nothing(console: Client, database: Database) -> None:
    now = console.app[CLOCK].now()
    call = await make_call(database, started_at=now, talk_seconds=5, caller="+380671112233")
    cookie, _ = await sign_in(console)
    refused = await console.post(f"/api/calls/{call}/unknown-caller", headers=with_cookie(cookie))
    assert refused.status == 403
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxItem)) == 0


@pytest.mark.parametrize("mangle", ["signature", "token_id", "expiry", "garbage"])
async def test_tampered_cookies_are_refused(console: Client, mangle: str) -> None:
    cookie, _ = await sign_in(console)
    sid, token_id, expires, mac = cookie.split(".")
    forged = {
        "signature": f"{sid}.{token_id}.{expires}.{'0' * len(mac)}",
        "token_id": f"{sid}.{'a' * len(token_id)}.{expires}.{mac}",
        "expiry": f"{sid}.{token_id}.{int(expires) + 3600}.{mac}",
        "garbage": "not-a-session",
    }[mangle]
    response = await console.get("/api/me", headers=with_cookie(forged))
    assert response.status == 401


async def test_sessions_expire_after_the_shift(console: Client, clock: FixedClock) -> None:
    cookie, _ = await sign_in(console)
    clock.advance(timedelta(hours=11, minutes=59))
    assert (await console.get("/api/me", headers=with_cookie(cookie))).status == 200
    clock.advance(timedelta(minutes=2))
    expired = await console.get("/api/me", headers=with_cookie(cookie))
    assert expired.status == 401 and "expired" in (await expired.json())["detail"]


async def test_sign_out_clears_the_cookie_and_a_kept_copy_stops_working(
    console: Client,
) -> None:
    cookie, csrf = await sign_in(console)
    keep_other, _ = await sign_in(console)
    refused = await console.delete("/api/session", headers=with_cookie(cookie))
    assert refused.status == 403  # signing out is a change too: CSRF required
    out = await console.delete("/api/session", headers=with_cookie(cookie, csrf))
    assert out.status == 204
    assert out.cookies[SESSION_COOKIE].value == ""
    console.session.cookie_jar.clear()
    replay = await console.get("/api/me", headers=with_cookie(cookie))
    assert replay.status == 401 and "signed out" in (await replay.json())["detail"]
    # Twice in a row: the revocation holds (the marker is read, never taken).
    assert (await console.get("/api/me", headers=with_cookie(cookie))).status == 401
    assert (await console.get("/api/me", headers=with_cookie(keep_other))).status == 200


async def test_a_session_dies_with_its_token(
    settings: Settings, database: Database, clock: FixedClock
) -> None:
    first = TokenRegistry()
    first.add(OPERATOR_TOKEN, "operator", OPERATOR_AGENT)
    first.add(ADMIN_TOKEN, "admin")
    app = console_app(settings, workers=False, clock=clock, tokens=first)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        cookie, _ = await sign_in(client)
    revoked = TokenRegistry()
    revoked.add(ADMIN_TOKEN, "admin")
    app = console_app(settings, workers=False, clock=clock, tokens=revoked)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        assert (await client.get("/api/me", headers=with_cookie(cookie))).status == 401


async def test_the_bearer_header_wins_over_the_cookie(console: Client) -> None:
    cookie, _ = await sign_in(console)
    headers = {**with_cookie(cookie), "Authorization": "Bearer unknown-token-0123456789"}
    assert (await console.get("/api/me", headers=headers)).status == 401
    # A bearer-authenticated change needs no CSRF token even when a cookie rides along.
    headers = {**with_cookie(cookie), **bearer(OPERATOR_TOKEN)}
    assert (await console.post("/api/ws-tickets", headers=headers)).status == 201
    assert (await console.get("/api/me")).status == 401


async def test_with_redis_a_session_and_its_sign_out_hold_on_every_instance(
    settings: Settings, database: Database, tokens: TokenRegistry, redis_url: str
) -> None:
    shared = settings.model_copy(update={"redis_url": redis_url})
    apps = [console_app(shared, workers=False, tokens=tokens) for _ in range(2)]
    async with (
        TestClient(TestServer(apps[0], host="127.0.0.1")) as first,
        TestClient(TestServer(apps[1], host="127.0.0.1")) as second,
    ):
        cookie, csrf = await sign_in(first)
        assert (await second.get("/api/me", headers=with_cookie(cookie))).status == 200
        out = await first.delete("/api/session", headers=with_cookie(cookie, csrf))
        assert out.status == 204
        second.session.cookie_jar.clear()
        assert (await second.get("/api/me", headers=with_cookie(cookie))).status == 401


async def test_with_redis_concurrent_requests_with_a_signed_out_cookie_are_all_refused(
    settings: Settings, database: Database, redis_url: str
) -> None:
    # The revocation check once took the marker (GETDEL) and put it back: requests in
    # between found no marker and passed (11-13 of 15 in the probe).
    shared = settings.model_copy(update={"redis_url": redis_url})
    # Two instances, each with its own registry (and failure brake), as in production.
    apps = [console_app(shared, workers=False, tokens=role_tokens()) for _ in range(2)]
    async with (
        TestClient(TestServer(apps[0], host="127.0.0.1")) as first,
        TestClient(TestServer(apps[1], host="127.0.0.1")) as second,
    ):
        cookie, csrf = await sign_in(first)
        out = await first.delete("/api/session", headers=with_cookie(cookie, csrf))
        assert out.status == 204
        for client in (first, second):
            client.session.cookie_jar.clear()

        async def status(client: Client) -> int:
            async with client.get("/api/me", headers=with_cookie(cookie)) as response:
                await response.read()
                return response.status

        # 15 at once on each instance (under each instance's brake of 20 per address).
        for client in (second, first):
            statuses = await asyncio.gather(*(status(client) for _ in range(15)))
            assert statuses == [401] * 15
    # The marker is only read, never taken: it is still there, expiring with the cookie.
    with redis.Redis.from_url(redis_url) as plain:
        (key,) = plain.keys("*session-revoked*")
        assert 0 < plain.pttl(key) <= SESSION_SECONDS * 1000


async def test_with_redis_down_sign_out_says_it_did_not_happen(
    settings: Settings, database: Database, tokens: TokenRegistry
) -> None:
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    app = console_app(down, workers=False, tokens=tokens)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        cookie, csrf = await sign_in(client)
        out = await client.delete("/api/session", headers=with_cookie(cookie, csrf))
        assert out.status == 503, await out.text()
        # Authenticated otherwise, the sign-out itself meets the store that is down.
        headers = {**with_cookie(cookie), **bearer(OPERATOR_TOKEN)}
        out = await client.delete("/api/session", headers=headers)
        assert out.status == 503, await out.text()
        assert "not signed out" in (await out.json())["detail"]
        assert SESSION_COOKIE not in out.cookies  # not cleared: the sign-out did not happen


async def test_create_in_crm_for_an_unknown_caller_queues_one_activity(
    console: Client, database: Database
) -> None:
    now = console.app[CLOCK].now()
    await add_agent(database, now, OPERATOR_AGENT, ["201"])  # the calls ring 201
    unknown = await make_call(database, started_at=now, talk_seconds=5, caller="+380671112233")
    cookie, csrf = await sign_in(console)
    for _ in range(2):
        response = await console.post(
            f"/api/calls/{unknown}/unknown-caller", headers=with_cookie(cookie, csrf)
        )
        assert response.status == 202
        assert (await response.json())["phone"] == "+380671112233"
    async with database.sessions() as session:
        items = (await session.scalars(select(OutboxItem))).all()
    assert [item.type for item in items] == ["customer.unknown_caller"]
    assert items[0].payload["requested_by"] == OPERATOR_AGENT

    customer = await make_customer(database, now, "C-1", ["+380501234567"])
    known = await make_call(
        database, started_at=now, talk_seconds=5, caller="+380501234567", customer_id=customer
    )
    conflict = await console.post(
        f"/api/calls/{known}/unknown-caller", headers=with_cookie(cookie, csrf)
    )
    assert conflict.status == 409
    missing = await console.post(
        "/api/calls/call_nope/unknown-caller", headers=with_cookie(cookie, csrf)
    )
    assert missing.status == 404


async def test_the_socket_accepts_the_cookie_only_from_our_own_origin(
    console: Client, database: Database
) -> None:
    await add_agent(database, console.app[CLOCK].now(), OPERATOR_AGENT, ["201"])
    cookie, _ = await sign_in(console)
    own = str(console.make_url("/")).rstrip("/")
    socket = await console.ws_connect(
        "/ws/agents/201", headers={**with_cookie(cookie), "Origin": own}
    )
    assert (await socket.receive_json(timeout=5))["type"] == "hello"
    await socket.close()
    with pytest.raises(WSServerHandshakeError) as foreign:
        await console.ws_connect(
            "/ws/agents/201", headers={**with_cookie(cookie), "Origin": "https://evil.example"}
        )
    assert foreign.value.status == 403
    with pytest.raises(WSServerHandshakeError) as not_mine:
        await console.ws_connect("/ws/agents/202", headers=with_cookie(cookie))
    assert not_mine.value.status == 403
    out_cookie, csrf = await sign_in(console)
    await console.delete("/api/session", headers=with_cookie(out_cookie, csrf))
    console.session.cookie_jar.clear()
    with pytest.raises(WSServerHandshakeError) as signed_out:
        await console.ws_connect("/ws/agents/201", headers=with_cookie(out_cookie))
    assert signed_out.value.status == 401


JSON_SIGN_IN = json.dumps({"token": OPERATOR_TOKEN}).encode()
MULTIPART_SIGN_IN = (
    b'--x\r\nContent-Disposition: form-data; name="token"\r\n\r\n'
    + OPERATOR_TOKEN.encode()
    + b"\r\n--x--\r\n"
)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", JSON_SIGN_IN),
        ("application/x-www-form-urlencoded", f"token={OPERATOR_TOKEN}".encode()),
        ("multipart/form-data; boundary=x", MULTIPART_SIGN_IN),
        (None, JSON_SIGN_IN),
    ],
    ids=["text-plain", "urlencoded", "multipart", "none"],
)
async def test_sign_in_refuses_anything_but_json_and_changes_nothing(
    console: Client, content_type: str | None, body: bytes
) -> None:
    # A cross-site <form enctype="text/plain"> posts a JSON-looking body without a CORS
    # preflight: it would sign the victim's browser into the attacker's session.
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = await console.post("/api/session", data=body, headers=headers)
    assert response.status == 415, await response.text()
    assert response.content_type == "application/problem+json"
    assert "application/json" in (await response.json())["detail"]
    assert SESSION_COOKIE not in response.cookies
    ok = await console.post(
        "/api/session",
        data=JSON_SIGN_IN,
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert ok.status == 201
