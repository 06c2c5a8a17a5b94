"""The open live WebSockets of this instance: a per-user cap, and closing them all when
the gateway stops.

A socket is a request that never ends by itself, so at SIGTERM aiohttp would wait its
whole shutdown timeout for each one; closing them (1001, going away) in on_shutdown lets
the handlers return at once and the browser reconnect to another instance.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterator

from aiohttp import WSCloseCode, web

from gateway.core.http.auth import Principal

# How long a close waits for the browser's close frame (aiohttp's default is 10 s).
CLOSE_TIMEOUT_S = 2.0


def user_key(principal: Principal) -> str:
    """Who a socket counts against: the agent, else the token, else the role."""
    return principal.agent_id or principal.token_id or principal.role


class LiveSockets:
    """Open sockets by user, at most `per_user` each."""

    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._open: defaultdict[str, set[web.WebSocketResponse]] = defaultdict(set)

    def full(self, principal: Principal) -> bool:
        """True when the user already holds their allowance of sockets."""
        return len(self._open.get(user_key(principal), ())) >= self.per_user

    def refusal(self) -> bytes:
        """The close reason sent to a socket over the cap (at most 123 bytes)."""
        return (
            f"too many live connections for this user (limit {self.per_user}); "
            "close another console tab"
        ).encode()

    @contextlib.contextmanager
    def hold(self, principal: Principal, socket: web.WebSocketResponse) -> Iterator[None]:
        """Count `socket` for its user while the block runs."""
        key = user_key(principal)
        self._open[key].add(socket)
        try:
            yield
        finally:
            self._open[key].discard(socket)
            if not self._open[key]:
                del self._open[key]

    async def close_all(self, app: web.Application) -> None:
        """on_shutdown: close every socket (1001) so its handler returns now."""
        sockets = [socket for held in self._open.values() for socket in held]
        if sockets:
            await asyncio.gather(
                *(
                    socket.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
                    for socket in sockets
                ),
                return_exceptions=True,
            )
