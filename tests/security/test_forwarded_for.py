"""X-Forwarded-For is believed only from trusted proxies (settings.trusted_proxies): a
client cannot dodge the auth-failure brake by inventing addresses, and behind a trusted
proxy the real client — not the proxy — is the one braked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError

from gateway.app import create_app
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.http.auth import FAILURE_LIMIT, TokenRegistry
from gateway.core.http.forwarded import client_from, parse_networks
from gateway.settings import Settings
from tests.support.auth import ADMIN_TOKEN, bearer

Client = TestClient[Any, Any]
PROXIES = parse_networks(("10.0.0.0/8", "192.0.2.7", "2001:db8::/32"))
WRONG = "wrong-token-" + "x" * 20


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        # An untrusted peer's header is ignored, whatever it claims.
        ("198.51.100.9", ["203.0.113.1"], "198.51.100.9"),
        ("198.51.100.9", [], "198.51.100.9"),
        # Behind our proxy: the right-most hop that is not ours; the client's own claim
        # (left of it) is ignored.
        ("10.1.2.3", ["1.1.1.1, 203.0.113.5"], "203.0.113.5"),
        ("10.1.2.3", ["1.1.1.1, 203.0.113.5, 192.0.2.7"], "203.0.113.5"),
        ("10.1.2.3", ["1.1.1.1", "203.0.113.5, 10.9.9.9"], "203.0.113.5"),
        # Ports and IPv6 forms proxies write.
        ("10.1.2.3", ["203.0.113.5:51234"], "203.0.113.5"),
        ("2001:db8::1", ["[2001:db9::5]:443"], "2001:db9::5"),
        # Every hop ours: the left-most is the furthest anyone can see.
        ("10.1.2.3", ["10.4.4.4, 192.0.2.7"], "10.4.4.4"),
        ("10.1.2.3", [], "10.1.2.3"),
        # Garbage stops the walk at the proxy that wrote it.
        ("10.1.2.3", ["203.0.113.5, not-an-ip, 10.4.4.4"], "10.4.4.4"),
    ],
)
def test_the_client_is_the_right_most_untrusted_hop(
    peer: str, forwarded_for: list[str], client: str
) -> None:
    assert client_from(peer, forwarded_for, PROXIES) == client


def test_with_no_trusted_proxy_the_header_is_never_read() -> None:
    assert client_from("10.1.2.3", ["203.0.113.5"], ()) == "10.1.2.3"


def test_trusted_proxies_come_comma_separated_and_bad_entries_are_refused() -> None:
    assert Settings(trusted_proxies="10.0.0.0/8, 192.0.2.7").trusted_proxies == [
        "10.0.0.0/8",
        "192.0.2.7",
    ]
    assert Settings().trusted_proxies == []
    with pytest.raises(ValidationError, match="not an address or CIDR"):
        Settings(trusted_proxies="10.0.0.0/8,proxy.example")


@pytest.fixture
async def app_client(
    request: pytest.FixtureRequest,
    settings: Settings,
    database: Database,
    clock: FixedClock,
    tokens: TokenRegistry,
) -> AsyncIterator[Client]:
    """The real app with `trusted_proxies` from the test's parameter."""
    configured = settings.model_copy(update={"trusted_proxies": request.param})
    app = create_app(configured, clock=clock, tokens=tokens, workers=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def status(client: Client, token: str, forwarded_for: str | None = None) -> int:
    headers = bearer(token)
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    async with client.get("/api/customers", headers=headers) as response:
        return response.status


@pytest.mark.parametrize("app_client", [[]], indirect=True)
async def test_spoofed_addresses_from_an_untrusted_peer_do_not_dodge_the_brake(
    app_client: Client,
) -> None:
    for n in range(FAILURE_LIMIT):
        assert await status(app_client, WRONG, f"203.0.113.{n}") == 401
    # A fresh invented address changes nothing: the peer is braked (for guesses only).
    assert await status(app_client, WRONG, "203.0.113.250") == 429
    assert await status(app_client, WRONG) == 429
    assert await status(app_client, ADMIN_TOKEN, "203.0.113.250") == 200


@pytest.mark.parametrize("app_client", [["127.0.0.0/8"]], indirect=True)
async def test_behind_a_trusted_proxy_the_real_client_is_braked_not_the_proxy(
    app_client: Client,
) -> None:
    for n in range(FAILURE_LIMIT):
        # The guesser varies what it claims; the proxy appends its real address.
        assert await status(app_client, WRONG, f"198.51.100.{n}, 203.0.113.5") == 401
    assert await status(app_client, WRONG, "203.0.113.5") == 429
    assert await status(app_client, WRONG, "198.51.100.77, 203.0.113.5") == 429
    # Other clients behind the same proxy are not punished for it.
    assert await status(app_client, WRONG, "203.0.113.6") == 401
    assert await status(app_client, WRONG) == 401
