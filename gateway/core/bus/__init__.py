"""Events to connected clients and locks with expiry, in-process or through Redis.

Pub/sub here is at-most-once (a screen-pop may be lost, work never is: work lives in the
database). Pick the implementation with `make_bus(redis_url)`.
"""

from gateway.core.bus.base import (
    Bus,
    BusError,
    BusMessage,
    JsonObject,
    JsonValue,
    Lock,
    Subscription,
)
from gateway.core.bus.memory import MemoryBus
from gateway.core.bus.redis import RedisBus


def make_bus(redis_url: str | None) -> Bus:
    """Redis when a URL is configured (several instances), else in-process."""
    return RedisBus(redis_url) if redis_url else MemoryBus()


__all__ = [
    "Bus",
    "BusError",
    "BusMessage",
    "JsonObject",
    "JsonValue",
    "Lock",
    "MemoryBus",
    "RedisBus",
    "Subscription",
    "make_bus",
]
