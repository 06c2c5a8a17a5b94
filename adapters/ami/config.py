"""AMI client settings, health types and the reconnect backoff."""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from adapters.ami.protocol import DEFAULT_MAX_FRAME


class AmiState(enum.StrEnum):
    """Connection state as reported to health checks."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


@dataclass(frozen=True)
class AmiConfig:
    """Where and how to connect; times are in seconds."""

    host: str
    port: int = 5038
    username: str = ""
    secret: str = ""
    auth: str = "md5"  # "md5" (challenge) or "plain"
    plain_fallback: bool = True  # md5 refused by the server -> plain login
    events: bool = True
    connect_timeout: float = 5.0
    action_timeout: float = 10.0
    ping_interval: float = 20.0  # 0 disables the keepalive
    ping_timeout: float = 5.0
    reconnect: bool = True
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    max_frame: int = DEFAULT_MAX_FRAME
    read_chunk: int = 64 * 1024


@dataclass
class AmiStats:
    """Counters for metrics and health."""

    events_received: int = 0
    events_filtered: int = 0  # events nobody subscribed to, skipped unparsed
    frames_skipped: int = 0
    reconnects: int = 0
    last_event_at: float | None = None  # time.monotonic() of the last event


def backoff_delay(attempt: int, initial: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform(0, min(cap, initial * 2**attempt))."""
    return rng.uniform(0.0, min(cap, initial * (2 ** min(attempt, 32))))
