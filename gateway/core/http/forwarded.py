"""The client's address behind trusted reverse proxies (X-Forwarded-For, right to left).

Written here rather than taken from aiohttp-remotes: we need the address for the
auth-failure brake and the logs only, not a rewritten `request.remote` for every
handler, and the rule is a dozen lines.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARDED_FOR = "X-Forwarded-For"


@lru_cache(maxsize=8)
def parse_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """`("10.0.0.0/8", "192.0.2.7")` as networks; a bare address is a /32 (or /128)."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:443"
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(text: str, networks: Sequence[Network]) -> bool:
    address = _address(text)
    return address is not None and any(address in network for network in networks)


def client_from(peer: str, forwarded_for: Iterable[str], networks: Sequence[Network]) -> str:
    """The client: `peer`, unless it is a trusted proxy; then the right-most untrusted hop.

    Each proxy appends the address it received the request from, so only the entries
    our own proxies appended can be believed; anything to their left is what the client
    claimed. An entry that is not an address stops the walk at the proxy that wrote it.
    """
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",") if hop.strip()]
    nearest_trusted = peer
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return nearest_trusted
        if not any(address in network for network in networks):
            return str(address)
        nearest_trusted = str(address)
    # Every hop is one of ours: the left-most is as far as anyone can see.
    return nearest_trusted


def request_client(request: web.Request, trusted_proxies: Sequence[str]) -> str:
    """The client address of `request` given the trusted proxy list from settings."""
    networks = parse_networks(tuple(trusted_proxies))
    forwarded_for = request.headers.getall(FORWARDED_FOR, [])
    return client_from(request.remote or "unknown", forwarded_for, networks)
