"""Connection caps and request read deadlines in front of aiohttp's protocol.

aiohttp bounds neither how long a request head may take to arrive nor its body: its only
timer is `keepalive_timeout` (3630 s under an AppRunner), so a client that sends half a
request line holds a socket, a parser and a task for an hour, and enough of them exhaust
the process's file descriptors. The seam, from aiohttp's web_runner / web_protocol:

- `loop.create_server()` calls a protocol factory per accepted socket; aiohttp's is
  `web.Server.__call__`, returning a `RequestHandler`. We pass our own factory instead:
  `GuardedConnection` counts the socket against the caps (a refused one never gets a
  parser or a task) and wraps a `web.RequestHandler` (see http_server.py), forwarding
  the transport's callbacks to it unchanged.
- `RequestHandler.start()` calls `Server.request_factory` once per parsed request head,
  just before the handler runs: our wrapper of it (`request_factory`) ends the head
  deadline and, while the body has not all arrived, starts the body deadline.
- `RequestHandler.finish_response()` runs after each response is written: the handler
  subclass reports it, and the next bytes on the connection start the next head deadline.

Idle keep-alive connections stay aiohttp's (`keepalive_timeout`, set from settings).
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import logging
from collections import Counter as Tally
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_parser import RawRequestMessage
from prometheus_client import CollectorRegistry

from gateway.core.http.connection_limits import (
    REFUSAL,
    GuardMetrics,
    QuietLog,
    RequestTimeout,
    descriptor_cap,
)
from gateway.core.http.forwarded import parse_networks
from gateway.core.settings import HttpLimits

log = logging.getLogger("gateway.core.http.connections")
# Expired connections closed per pass of the event loop: thousands of deadlines that
# pass together (an attack opened them together) would otherwise be closed in one pass,
# and every request waiting behind that pass with them.
CLOSES_PER_PASS = 64
# A first request head longer than this goes to aiohttp before it is complete (aiohttp
# enforces its own line and header limits).
HEAD_BUFFER = 16_384


class Phase(enum.Enum):
    """Where a connection is in its current request."""

    HEAD = "head"  # bytes of a request head are due (deadline running)
    BODY = "body"  # head parsed, body still arriving (deadline running)
    BUSY = "busy"  # the handler is working; nothing is due from the client
    IDLE = "idle"  # between requests: aiohttp's keep-alive timer applies
    UPGRADED = "upgraded"  # a WebSocket: its own heartbeat applies
    CLOSING = "closing"  # closed by the guard


class ConnectionGuard:
    """Caps connections in total and per client address; times out slow requests."""

    def __init__(
        self,
        limits: HttpLimits,
        make_handler: Callable[[GuardedConnection], web.RequestHandler],
        registry: CollectorRegistry,
        trusted_proxies: list[str],
    ) -> None:
        self.limits = limits
        self.max_total = descriptor_cap(limits.max_connections)
        if self.max_total < limits.max_connections:
            log.warning(
                "http: at most %d connections (the file-descriptor limit leaves no room for %d)",
                self.max_total,
                limits.max_connections,
            )
        self.metrics = GuardMetrics(registry)
        self.quiet = QuietLog(log)
        self.open_total = 0
        self._per_client: Tally[str] = Tally()
        self._connections: set[GuardedConnection] = set()
        self._waiting: dict[GuardedConnection, None] = {}  # insertion-ordered
        self._expired: deque[tuple[GuardedConnection, Phase]] = deque()
        self._draining = False
        self.make_handler = make_handler
        self._proxies = parse_networks(tuple(trusted_proxies))

    def __call__(self) -> asyncio.Protocol:
        """The protocol factory for `loop.create_server`."""
        return GuardedConnection(self)

    def request_factory(self, inner: Any) -> Any:
        """Wrap `web.Server.request_factory`: a request head has been parsed."""

        def factory(
            message: RawRequestMessage, payload: Any, protocol: Any, *rest: Any
        ) -> web.BaseRequest:
            connection = getattr(protocol, "connection", None)
            if isinstance(connection, GuardedConnection):
                connection.request_started(message, payload)
            return inner(message, payload, protocol, *rest)  # type: ignore[no-any-return]

        return factory

    def close_waiting(self) -> None:
        """At shutdown: close connections still sending a request (nothing was done for
        them yet), so the shutdown grace is left to requests being handled."""
        for connection in list(self._connections):
            connection.close_if_waiting()

    def admit(self, client: str) -> str | None:
        """None when `client` may open one more connection, else the cap it hit.

        At the total cap the connection that has waited longest without a request in
        progress (half-sent head, idle keep-alive) makes room: a real request's head
        arrives in milliseconds, so under a slowloris that is an attacker's, and a new
        client (an operator, a load balancer's /health) still gets in.
        """
        full = self._per_client[client] >= self.limits.max_connections_per_client
        if full and not self._is_proxy(client):
            return "per_client"
        if self.open_total >= self.max_total and not self._evict_longest_waiting():
            return "total"
        self.open_total += 1
        self._per_client[client] += 1
        self.metrics.open.set(self.open_total)
        return None

    def waiting(self, connection: GuardedConnection, waits: bool) -> None:
        """Note whether `connection` now waits for a client's request (newest last)."""
        self._waiting.pop(connection, None)
        if waits:
            self._waiting[connection] = None

    def _evict_longest_waiting(self) -> bool:
        if not self._waiting:
            return False
        victim = next(iter(self._waiting))
        victim.evict()
        self.metrics.evicted.inc()
        self.quiet.warning(
            "evicted",
            "http: connection limit reached (total: %d); closing the longest-waiting idle "
            "connections to let new ones in, last from %s",
            self.max_total,
            victim.client,
        )
        return True

    def track(self, connection: GuardedConnection) -> None:
        """Remember an admitted connection (for close_waiting)."""
        self._connections.add(connection)

    def release(self, client: str, connection: GuardedConnection) -> None:
        """A connection admitted for `client` closed."""
        self._connections.discard(connection)
        self._waiting.pop(connection, None)
        self.open_total -= 1
        self._per_client[client] -= 1
        if self._per_client[client] <= 0:
            del self._per_client[client]
        self.metrics.open.set(self.open_total)

    def refused(self, client: str, cap: str) -> None:
        """Count and (quietly) log a refusal."""
        self.metrics.refused.labels(cap).inc()
        limit = self.max_total if cap == "total" else self.limits.max_connections_per_client
        self.quiet.warning(
            f"refused-{cap}",
            "http: connection limit reached (%s: %d); refusing connections, last from %s",
            cap,
            limit,
            client,
        )

    def expire(self, connection: GuardedConnection, phase: Phase) -> None:
        """Queue a connection whose `phase` deadline passed; see CLOSES_PER_PASS."""
        self._expired.append((connection, phase))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().call_soon(self._close_expired)

    def _close_expired(self) -> None:
        for _ in range(min(CLOSES_PER_PASS, len(self._expired))):
            connection, phase = self._expired.popleft()
            connection.close_expired(phase)
        if self._expired:
            asyncio.get_running_loop().call_soon(self._close_expired)
        else:
            self._draining = False

    def timed_out(self, client: str, phase: Phase) -> None:
        """Count and (quietly) log a connection closed for a slow request."""
        self.metrics.timed_out.labels(phase.value).inc()
        seconds = (
            self.limits.header_timeout_seconds
            if phase is Phase.HEAD
            else self.limits.body_timeout_seconds
        )
        self.quiet.warning(
            f"timeout-{phase.value}",
            "http: closed a connection whose request %s did not arrive within %.0f s (from %s)",
            phase.value,
            seconds,
            client,
        )

    def _is_proxy(self, client: str) -> bool:
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(address in network for network in self._proxies)


class GuardedConnection(asyncio.Protocol):
    """One accepted socket: counted, timed, and handed to aiohttp's handler.

    The handler (a parser and a task) is only made once the first request head is
    complete: a connection that never sends one costs a socket and this object, which is
    what makes thousands of them cheap to accept and to close.
    """

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._transport: asyncio.BaseTransport | None = None
        self._handler: web.RequestHandler | None = None
        self._head = bytearray()  # the first request's bytes, until its head is complete
        self._client = ""
        self._phase = Phase.HEAD
        self._timer: asyncio.TimerHandle | None = None
        self._payload: Any = None
        self._pending = False  # bytes of a next request arrived while busy

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Admit (or refuse) the socket, then start the head deadline."""
        peer = transport.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        cap = self._guard.admit(client)
        if cap is not None:
            self._guard.refused(client, cap)
            if isinstance(transport, asyncio.WriteTransport):
                transport.write(REFUSAL)
            transport.close()
            return
        self._client = client
        self._transport = transport
        self._guard.track(self)
        self._arm(Phase.HEAD)

    def data_received(self, data: bytes) -> None:
        """Forward to aiohttp; the first byte of a request starts its head deadline."""
        handler = self._handler
        if handler is None:
            handler = self._first_head(data)
            if handler is None:
                return
        else:
            handler.data_received(data)
        if self._phase is Phase.IDLE:
            self._arm(Phase.HEAD)
        elif self._phase is Phase.BODY and self._payload.is_eof():
            self._disarm(Phase.BUSY)
        elif self._phase is Phase.BUSY:
            self._pending = True

    def _first_head(self, data: bytes) -> web.RequestHandler | None:
        """Buffer until the first head is complete (or too long to wait for), then make
        aiohttp's handler and give it everything."""
        if self._transport is None:
            return None
        seen = len(self._head)
        self._head += data
        ends = self._head.find(b"\r\n\r\n", max(0, seen - 3)) >= 0
        ends = ends or self._head.find(b"\n\n", max(0, seen - 1)) >= 0
        if not ends and len(self._head) < HEAD_BUFFER:
            return None
        handler = self._handler = self._guard.make_handler(self)
        handler.connection_made(self._transport)
        buffered, self._head = bytes(self._head), bytearray()
        handler.data_received(buffered)
        return handler

    def eof_received(self) -> None:
        """Forward (aiohttp closes the transport on EOF; so does asyncio without it)."""
        if self._handler is not None:
            self._handler.eof_received()

    def pause_writing(self) -> None:
        """Forward (flow control)."""
        if self._handler is not None:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        """Forward (flow control)."""
        if self._handler is not None:
            self._handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        """Release the socket's place and let aiohttp clean up."""
        if self._transport is None:
            return  # refused
        self._transport = None
        self._disarm(Phase.CLOSING)
        self._guard.release(self._client, self)
        handler, self._handler = self._handler, None
        if handler is not None:
            handler.connection_lost(exc)

    def _close(self) -> None:
        if self._handler is not None:
            self._handler.force_close()
        elif self._transport is not None:
            self._transport.close()

    def request_started(self, message: RawRequestMessage, payload: Any) -> None:
        """A head was parsed: its deadline ends; the body's starts if it is still due."""
        if message.upgrade:
            self._disarm(Phase.UPGRADED)
        elif not payload.is_eof():
            self._payload = payload
            self._arm(Phase.BODY)
        else:
            self._disarm(Phase.BUSY)

    def bad_request(self, reason: str) -> None:
        """aiohttp could not parse a request on this connection (logged quietly)."""
        self._guard.quiet.warning(
            "bad-request", "http: unparseable request from %s (%s)", self._client, reason
        )

    def response_finished(self, switched: bool) -> None:
        """The response went out: the next request's bytes start its head deadline (a
        declined upgrade leaves the connection speaking HTTP)."""
        if self._phase is Phase.UPGRADED and switched:
            return
        self._disarm(Phase.IDLE)
        self._payload = None
        if self._pending:
            self._pending = False
            self._arm(Phase.HEAD)

    def close_if_waiting(self) -> None:
        """Close now if a request head or body is still arriving."""
        if self._transport is None or self._phase not in (Phase.HEAD, Phase.BODY):
            return
        if self._phase is Phase.BODY:
            self._payload.set_exception(RequestTimeout("the gateway is stopping"))
        self._disarm(Phase.CLOSING)
        self._close()

    @property
    def client(self) -> str:
        """The peer address."""
        return self._client

    def evict(self) -> None:
        """Close to make room (the guard chose this connection)."""
        self._disarm(Phase.CLOSING)
        self._close()

    def _arm(self, phase: Phase) -> None:
        if self._timer is not None:
            self._timer.cancel()
        limits = self._guard.limits
        delay = (
            limits.header_timeout_seconds if phase is Phase.HEAD else limits.body_timeout_seconds
        )
        self._set_phase(phase)
        self._timer = asyncio.get_running_loop().call_later(delay, self._expired, phase)

    def _disarm(self, phase: Phase) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._set_phase(phase)

    def _set_phase(self, phase: Phase) -> None:
        if phase is not self._phase or phase is Phase.HEAD:
            self._guard.waiting(self, phase in (Phase.HEAD, Phase.IDLE))
        self._phase = phase

    def _expired(self, phase: Phase) -> None:
        self._timer = None
        if self._transport is not None and self._phase is phase:
            self._guard.expire(self, phase)

    def close_expired(self, phase: Phase) -> None:
        """Close for a passed deadline, unless the request arrived meanwhile."""
        if self._transport is None or self._phase is not phase or self._timer is not None:
            return  # closed, moved on, or a new deadline runs
        if phase is Phase.BODY:
            if self._payload.is_eof():
                self._set_phase(Phase.BUSY)
                return
            # The handler waiting on the body gets a problem, not a connection-reset
            # traceback; the connection is closed under it either way.
            self._payload.set_exception(RequestTimeout("the request body did not arrive in time"))
        self._guard.timed_out(self._client, phase)
        self._disarm(Phase.CLOSING)
        self._close()
