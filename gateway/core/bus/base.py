"""The small interface both bus implementations share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Protocol, TypeAlias

QUEUE_LIMIT = 1000

# What crosses the bus: a JSON object (Redis carries its text; the memory bus the object).
JsonValue: TypeAlias = str | int | float | bool | list["JsonValue"] | dict[str, "JsonValue"] | None
JsonObject: TypeAlias = dict[str, JsonValue]


class BusMessage(Protocol):
    """A typed message; the bus sends what `to_json` gives, byte for byte the contract."""

    def to_json(self) -> JsonObject:
        """The message as the wire (and the browser) sees it."""
        ...


def wire_form(message: BusMessage | JsonObject) -> JsonObject:
    """The JSON object a published message travels as."""
    return message if isinstance(message, dict) else message.to_json()


class BusError(RuntimeError):
    """The bus backend (Redis) could not be reached or refused an operation."""


class Lock(Protocol):
    """A named lock with an expiry, so a crashed holder's lock comes back by itself."""

    async def acquire(self) -> bool:
        """Take it if free; never waits."""
        ...

    async def extend(self, ttl: float) -> bool:
        """Push the expiry out; False when we no longer hold it."""
        ...

    async def release(self) -> None:
        """Give it back if we still hold it."""
        ...


class Subscription:
    """Messages of one channel for one local consumer; iterate with `async for`."""

    def __init__(self, channel: str, on_close: Callable[[Subscription], Awaitable[None]]) -> None:
        self.channel = channel
        self.queue: asyncio.Queue[JsonObject] = asyncio.Queue(QUEUE_LIMIT)
        self._on_close = on_close

    def deliver(self, message: JsonObject) -> None:
        """Hand a message to this consumer; a consumer that stopped reading loses the oldest."""
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(message)

    async def get(self, timeout: float | None = None) -> JsonObject:
        """Next message (raises TimeoutError after `timeout` seconds)."""
        return await asyncio.wait_for(self.queue.get(), timeout)

    def __aiter__(self) -> AsyncIterator[JsonObject]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[JsonObject]:
        while True:
            yield await self.queue.get()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._on_close(self)


class Bus(Protocol):
    """Pub/sub fan-out, expiring locks and single-use keys."""

    kind: str

    async def start(self) -> None:
        """Open connections."""
        ...

    async def publish(self, channel: str, message: BusMessage | JsonObject) -> None:
        """Send `message` to every subscriber of `channel`, on every instance."""
        ...

    async def subscribe(self, channel: str) -> Subscription:
        """Start receiving `channel`; use the result as an async context manager."""
        ...

    def lock(self, name: str, ttl: float) -> Lock:
        """A lock object for `name` expiring `ttl` seconds after it is taken."""
        ...

    async def put_once(self, key: str, value: str, ttl: float) -> None:
        """Store a value that can be taken once, within `ttl` seconds."""
        ...

    async def take(self, key: str) -> str | None:
        """Take (get and delete, atomically) a value stored with put_once."""
        ...

    async def peek(self, key: str) -> str | None:
        """Read a value stored with put_once without taking it (a marker that only expires)."""
        ...

    async def ping(self) -> bool:
        """Whether the backend answers."""
        ...

    async def close(self) -> None:
        """Close connections and stop background readers."""
        ...
