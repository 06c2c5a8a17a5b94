"""Failed authentications are braked per client address: past the limit, guesses get
429 with Retry-After until the sliding window lets the oldest failure age out, while a
valid credential from the same address always passes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.core.appkeys import CLOCK
from gateway.core.clock import FixedClock
from gateway.core.http.auth import (
    FAILURE_LIMIT,
    FAILURE_WINDOW,
    TOKENS,
    FailureBrake,
    TokenRegistry,
    auth_middleware,
    failed_authentication,
)
from gateway.core.http.problems import (
    PROBLEM_BASE,
    PROBLEM_CONTENT_TYPE,
    Unauthorized,
    problem_middleware,
)
from gateway.core.http.session import SESSION_COOKIE
from tests.support.auth import ADMIN_TOKEN, CRM_TOKEN, OPERATOR_TOKEN, bearer

Client = TestClient[Any, Any]
WRONG = bearer("wrong-token-" + "x" * 20)
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


async def status_of(client: Client, headers: dict[str, str]) -> int:
    response = await client.get("/api/customers", headers=headers)
    await response.read()
    return response.status


async def fail_up_to_the_limit(client: Client, clock: FixedClock | None = None) -> None:
    for _ in range(FAILURE_LIMIT):
        assert await status_of(client, WRONG) == 401
        if clock is not None:
            clock.advance(timedelta(seconds=1))


async def test_past_the_limit_guesses_get_429_with_retry_after(client: Client) -> None:
    await fail_up_to_the_limit(client)
    response = await client.get("/api/customers", headers=WRONG)
    assert response.status == 429
    assert response.content_type == PROBLEM_CONTENT_TYPE
    body = await response.json()
    assert body["type"] == PROBLEM_BASE + "too-many-requests"
    assert body["status"] == 429
    assert body["retry_after"] == int(FAILURE_WINDOW.total_seconds())
    assert response.headers["Retry-After"] == str(int(FAILURE_WINDOW.total_seconds()))


async def test_a_valid_credential_always_passes_from_a_braked_address(client: Client) -> None:
    # One stale tab behind an office NAT failing over and over must not lock the office
    # out: every role's token, a session cookie, sign-in and the socket still work.
    for _ in range(FAILURE_LIMIT + 5):
        await status_of(client, WRONG)
    assert await status_of(client, WRONG) == 429
    for token in (ADMIN_TOKEN, OPERATOR_TOKEN, CRM_TOKEN):
        assert await status_of(client, bearer(token)) == 200, token
    signed_in = await client.post("/api/session", json={"token": OPERATOR_TOKEN})
    assert signed_in.status == 201, await signed_in.text()
    cookie = signed_in.cookies[SESSION_COOKIE].value
    client.session.cookie_jar.clear()
    assert await status_of(client, {"Cookie": f"{SESSION_COOKIE}={cookie}"}) == 200
    socket = await client.ws_connect("/ws/agents/201", headers=bearer(ADMIN_TOKEN))
    assert (await socket.receive_json(timeout=5))["type"] == "hello"
    await socket.close()
    # ... while every kind of guess from there is still refused with 429.
    guess = await client.post("/api/session", json={"token": "guess-" + "z" * 20})
    assert guess.status == 429
    forged = {"Cookie": f"{SESSION_COOKIE}=forged.cookie.value.x"}
    assert await status_of(client, forged) == 429
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws/agents/201", headers=WRONG)
    assert refused.value.status == 429


async def test_braked_guesses_are_not_logged_one_by_one(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    await fail_up_to_the_limit(client)
    refused = [r for r in caplog.records if "refused an unknown token" in r.getMessage()]
    assert len(refused) == FAILURE_LIMIT
    for _ in range(50):
        assert await status_of(client, WRONG) == 429
    refused = [r for r in caplog.records if "refused an unknown token" in r.getMessage()]
    assert len(refused) == FAILURE_LIMIT


async def test_guesses_stay_braked_while_they_keep_coming(
    client: Client, clock: FixedClock
) -> None:
    await fail_up_to_the_limit(client, clock)  # failures at t=0 … t=19 s; now t=20 s
    response = await client.get("/api/customers", headers=WRONG)
    assert response.status == 429
    # That refused guess counts too: the window slides on, from the failure at t=1 s.
    assert response.headers["Retry-After"] == "41"
    clock.advance(timedelta(seconds=41))  # t=61 s: only the guess at t=20 s is left
    assert await status_of(client, WRONG) == 401
    assert await status_of(client, bearer(ADMIN_TOKEN)) == 200


async def test_after_the_window_passes_a_guess_is_answered_401_again(
    client: Client, clock: FixedClock
) -> None:
    await fail_up_to_the_limit(client)
    assert await status_of(client, WRONG) == 429
    clock.advance(FAILURE_WINDOW)
    assert await status_of(client, WRONG) == 401
    # And it has a whole new allowance.
    for _ in range(FAILURE_LIMIT - 1):
        assert await status_of(client, WRONG) == 401
    assert await status_of(client, WRONG) == 429


async def test_forged_session_cookies_count_as_failures(client: Client) -> None:
    forged = {"Cookie": f"{SESSION_COOKIE}=forged.cookie.value"}
    for _ in range(FAILURE_LIMIT):
        assert await status_of(client, forged) == 401
    assert await status_of(client, forged) == 429
    assert await status_of(client, WRONG) == 429
    assert await status_of(client, bearer(ADMIN_TOKEN)) == 200


async def test_missing_credentials_and_successes_do_not_count(client: Client) -> None:
    for _ in range(FAILURE_LIMIT * 2):
        assert await status_of(client, {}) == 401
    for _ in range(FAILURE_LIMIT - 1):
        assert await status_of(client, WRONG) == 401
        assert await status_of(client, bearer(ADMIN_TOKEN)) == 200
    assert await status_of(client, WRONG) == 401  # the limit-th failure still answered
    assert await status_of(client, WRONG) == 429
    assert await status_of(client, {}) == 401  # no credential is no guess


async def test_unauthenticated_routes_are_not_braked(client: Client) -> None:
    await fail_up_to_the_limit(client)
    response = await client.get("/health")
    assert response.status == 200


async def test_another_address_is_not_braked(client: Client) -> None:
    await fail_up_to_the_limit(client)
    assert await status_of(client, WRONG) == 429
    # 127.0.0.2 is loopback too on Linux: a second real client address.
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as other:
        url = client.make_url("/api/customers")
        async with other.get(url, headers=bearer(ADMIN_TOKEN)) as response:
            assert response.status == 200
        async with other.get(url, headers=WRONG) as response:
            assert response.status == 401


def test_brake_counts_per_client_and_forgets_old_failures() -> None:
    brake = FailureBrake(limit=3, window=timedelta(seconds=10))
    for second in range(3):
        assert brake.retry_after("a", T0 + timedelta(seconds=second)) is None
        brake.record_failure("a", T0 + timedelta(seconds=second))
    assert brake.retry_after("a", T0 + timedelta(seconds=2)) == 8
    assert brake.retry_after("a", T0 + timedelta(seconds=9, milliseconds=500)) == 1
    assert brake.retry_after("b", T0) is None
    assert brake.retry_after("a", T0 + timedelta(seconds=10)) is None
    assert brake.retry_after("a", T0 + timedelta(seconds=30)) is None
    assert brake.tracked() == 0  # expired addresses are dropped, not kept forever


def test_a_failure_on_a_braked_address_says_how_long_and_keeps_it_braked() -> None:
    brake = FailureBrake(limit=2, window=timedelta(seconds=10))
    assert brake.record_failure("a", T0) is None
    assert brake.record_failure("a", T0 + timedelta(seconds=1)) is None  # the limit-th
    assert brake.record_failure("a", T0 + timedelta(seconds=2)) == 9  # from the one at 1 s
    assert brake.retry_after("a", T0 + timedelta(seconds=10, milliseconds=500)) == 1
    assert brake.retry_after("a", T0 + timedelta(seconds=11)) is None


def test_brake_memory_is_bounded_by_evicting_the_stalest_address() -> None:
    brake = FailureBrake(limit=1, window=timedelta(minutes=1), max_clients=2)
    brake.record_failure("a", T0)
    brake.record_failure("b", T0)
    brake.record_failure("a", T0)  # "a" is now the most recent
    brake.record_failure("c", T0)
    assert brake.tracked() == 2
    assert brake.retry_after("b", T0) is None
    assert brake.retry_after("a", T0) == 60
    assert brake.retry_after("c", T0) == 60


@pytest.mark.parametrize(
    "limit, window, max_clients",
    [(0, timedelta(minutes=1), 10), (5, timedelta(0), 10), (5, timedelta(minutes=1), 0)],
)
def test_brake_refuses_a_meaningless_configuration(
    limit: int, window: timedelta, max_clients: int
) -> None:
    with pytest.raises(ValueError, match="positive"):
        FailureBrake(limit=limit, window=window, max_clients=max_clients)


def token_checking_app(clock: FixedClock) -> web.Application:
    """A bare app whose one handler takes a token itself, as sign-in does."""
    registry = TokenRegistry()
    registry.add(ADMIN_TOKEN, "admin")

    async def sign_in(request: web.Request) -> web.Response:
        if request.app[TOKENS].authenticate((await request.json())["token"]) is None:
            raise failed_authentication(request, Unauthorized("unknown token"))
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[problem_middleware, auth_middleware])
    app[TOKENS] = registry
    app[CLOCK] = clock
    app.router.add_post("/sign-in", sign_in)
    return app


async def test_handlers_checking_tokens_themselves_share_the_brake(clock: FixedClock) -> None:
    async with TestClient(TestServer(token_checking_app(clock), host="127.0.0.1")) as client:
        for _ in range(FAILURE_LIMIT):
            response = await client.post("/sign-in", json={"token": "guess-" + "y" * 20})
            assert response.status == 401
        response = await client.post("/sign-in", json={"token": "guess-" + "z" * 20})
        assert response.status == 429
        assert response.headers["Retry-After"] == "60"
        assert (await response.json())["type"] == PROBLEM_BASE + "too-many-requests"
        response = await client.post("/sign-in", json={"token": ADMIN_TOKEN})
        assert response.status == 200
        clock.advance(FAILURE_WINDOW * 2)
        response = await client.post("/sign-in", json={"token": "guess-" + "z" * 20})
        assert response.status == 401
