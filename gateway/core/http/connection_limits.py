"""What the connection guard (connection_guard.py) counts and says: the caps derived
from the descriptor limit, its metrics, its quiet log, and its answers."""

from __future__ import annotations

import logging
import resource
import time
from collections import Counter as Tally

from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.core.http.problems import ApiProblem

# Descriptors kept for the database pool, Redis, the AMI link, logs and files.
FD_RESERVE = 256
QUIET_LOG_SECONDS = 60.0
# Sent to a connection over a cap before closing it (it has sent nothing we read yet; one
# that already has may see a reset instead, which says the same).
_REFUSAL_BODY = (
    b'{"type":"https://switchboard.dev/problems/unavailable","title":"Service unavailable",'
    b'"status":503,"detail":"too many connections; retry later"}'
)
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n"
    b"Retry-After: 5\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
    % (len(_REFUSAL_BODY), _REFUSAL_BODY)
)


class RequestTimeout(ApiProblem):
    """The request body did not arrive in time."""

    status, type_name, title = 408, "request-timeout", "Request timeout"


class QuietLog:
    """At most one line per kind per interval, saying how many were left out meanwhile.

    Under attack a limit is hit thousands of times a second; one line a minute says so.
    """

    def __init__(self, logger: logging.Logger, interval: float = QUIET_LOG_SECONDS) -> None:
        self._logger, self._interval = logger, interval
        self._last: dict[str, float] = {}
        self._skipped: Tally[str] = Tally()

    def warning(self, kind: str, message: str, *args: object) -> None:
        """Log `message` unless `kind` was logged within the interval (then count it)."""
        now = time.monotonic()
        if now - self._last.get(kind, -self._interval) < self._interval:
            self._skipped[kind] += 1
            return
        skipped = self._skipped.pop(kind, 0)
        self._last[kind] = now
        suffix = f" ({skipped} more in the last {self._interval:.0f} s)" if skipped else ""
        self._logger.warning(message + suffix, *args)


class GuardMetrics:
    """The guard's figures, in the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.open = Gauge(
            "switchboard_http_connections_open", "Open HTTP connections", registry=registry
        )
        self.refused = Counter(
            "switchboard_http_connections_refused",
            "Connections closed at once because a cap was reached",
            ["cap"],
            registry=registry,
        )
        self.timed_out = Counter(
            "switchboard_http_connections_timed_out",
            "Connections closed because a request head or body did not arrive in time",
            ["phase"],
            registry=registry,
        )
        self.evicted = Counter(
            "switchboard_http_connections_evicted",
            "Waiting connections closed to make room for new ones at the total cap",
            registry=registry,
        )


def descriptor_limit() -> int:
    """The process's soft limit on open files (a large number when unlimited)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else soft


def accept_backlog() -> int:
    """The listen backlog: a queue that outlasts a burst of connects (a dropped SYN costs
    the client a 1 s retransmit); asyncio also accepts up to this many sockets at once,
    before any is refused, so it is kept to a quarter of the descriptor limit."""
    return max(128, min(4096, descriptor_limit() // 4))


def descriptor_cap(wanted: int) -> int:
    """`wanted`, lowered so that HTTP connections (and one accept burst) cannot exhaust
    the fd limit."""
    return max(1, min(wanted, descriptor_limit() - FD_RESERVE - accept_backlog()))
