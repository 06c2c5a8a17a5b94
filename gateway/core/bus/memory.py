"""In-process bus: a single instance's pub/sub and locks, no outside service."""

from __future__ import annotations

import secrets
import time
from collections import defaultdict

from gateway.core.bus.base import BusMessage, JsonObject, Subscription, wire_form


class MemoryLock:
    """A lock in this process's memory with an expiry on the monotonic clock."""

    def __init__(self, bus: MemoryBus, name: str, ttl: float) -> None:
        self._bus, self._name, self._ttl = bus, name, ttl
        self._token = secrets.token_hex(8)

    async def acquire(self) -> bool:
        """Take it if free or expired."""
        holder = self._bus.locks.get(self._name)
        now = time.monotonic()
        if holder is not None and holder[1] > now and holder[0] != self._token:
            return False
        self._bus.locks[self._name] = (self._token, now + self._ttl)
        return True

    async def extend(self, ttl: float) -> bool:
        """Push the expiry out if still ours."""
        holder = self._bus.locks.get(self._name)
        if holder is None or holder[0] != self._token or holder[1] <= time.monotonic():
            return False
        self._bus.locks[self._name] = (self._token, time.monotonic() + ttl)
        return True

    async def release(self) -> None:
        """Give it back if ours."""
        holder = self._bus.locks.get(self._name)
        if holder is not None and holder[0] == self._token:
            del self._bus.locks[self._name]


class MemoryBus:
    """Bus for one process: dicts of subscribers, locks and single-use values."""

    kind = "memory"

    def __init__(self) -> None:
        self.subscribers: defaultdict[str, set[Subscription]] = defaultdict(set)
        self.locks: dict[str, tuple[str, float]] = {}
        self._values: dict[str, tuple[str, float]] = {}

    async def start(self) -> None:
        """Nothing to open."""

    async def publish(self, channel: str, message: BusMessage | JsonObject) -> None:
        """Deliver to every local subscriber."""
        payload = wire_form(message)
        for subscription in tuple(self.subscribers.get(channel, ())):
            subscription.deliver(payload)

    async def subscribe(self, channel: str) -> Subscription:
        """Register a local subscriber."""
        subscription = Subscription(channel, self._unsubscribe)
        self.subscribers[channel].add(subscription)
        return subscription

    async def _unsubscribe(self, subscription: Subscription) -> None:
        subscribers = self.subscribers.get(subscription.channel)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self.subscribers[subscription.channel]

    def lock(self, name: str, ttl: float) -> MemoryLock:
        """A lock for `name`."""
        return MemoryLock(self, name, ttl)

    async def put_once(self, key: str, value: str, ttl: float) -> None:
        """Store `value` under `key` until taken or expired."""
        self._values[key] = (value, time.monotonic() + ttl)

    async def take(self, key: str) -> str | None:
        """Get and delete; None when absent or expired."""
        entry = self._values.pop(key, None)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    async def peek(self, key: str) -> str | None:
        """Get without deleting; None when absent or expired."""
        entry = self._values.get(key)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    async def ping(self) -> bool:
        """Always reachable."""
        return True

    async def close(self) -> None:
        """Drop everything."""
        self.subscribers.clear()
