"""Redis bus: pub/sub across instances, SET NX PX locks, GETDEL single-use values."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections import defaultdict

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.core.bus.base import BusError, BusMessage, JsonObject, Subscription, wire_form

log = logging.getLogger(__name__)

# Release/extend only when the stored token is ours: a lock that expired and was taken
# by another instance must not be released or extended by the late former holder.
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)
_EXTEND = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
)
PREFIX = "switchboard:"


class RedisLock:
    """A lock held as a Redis key with an expiry and a random token."""

    def __init__(self, client: aioredis.Redis, name: str, ttl: float) -> None:
        self._client, self._key, self._ttl = client, f"{PREFIX}lock:{name}", ttl
        self._token = secrets.token_hex(12)

    async def acquire(self) -> bool:
        """SET NX PX: take it if nobody holds it."""
        try:
            return bool(
                await self._client.set(self._key, self._token, nx=True, px=int(self._ttl * 1000))
            )
        except RedisError as exc:
            raise BusError(f"redis lock {self._key}: {exc}") from exc

    async def extend(self, ttl: float) -> bool:
        """Push the expiry out if the key still holds our token."""
        try:
            result = await self._client.eval(_EXTEND, 1, self._key, self._token, int(ttl * 1000))
        except RedisError as exc:
            raise BusError(f"redis lock {self._key}: {exc}") from exc
        return bool(result)

    async def release(self) -> None:
        """Delete the key if it still holds our token."""
        try:
            await self._client.eval(_RELEASE, 1, self._key, self._token)
        except RedisError as exc:
            raise BusError(f"redis lock {self._key}: {exc}") from exc


class RedisBus:
    """One Redis connection pool, one pub/sub connection shared by all local subscribers."""

    kind = "redis"

    def __init__(self, url: str) -> None:
        self._client: aioredis.Redis = aioredis.from_url(url, decode_responses=True)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._subscribers: defaultdict[str, set[Subscription]] = defaultdict(set)
        self._reader: asyncio.Task[None] | None = None
        self._has_channels = asyncio.Event()

    async def start(self) -> None:
        """Start the pub/sub reader, then check the server answers (BusError if not).

        The reader starts first and survives outages: when Redis comes back after a start
        without it, subscriptions deliver again without a restart."""
        self._reader = asyncio.create_task(self._read_forever(), name="redis-bus-reader")
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise BusError(f"redis unreachable: {exc}") from exc

    async def publish(self, channel: str, message: BusMessage | JsonObject) -> None:
        """PUBLISH as JSON."""
        text = json.dumps(wire_form(message), default=str)
        try:
            await self._client.publish(PREFIX + channel, text)
        except RedisError as exc:
            raise BusError(f"redis publish: {exc}") from exc

    async def subscribe(self, channel: str) -> Subscription:
        """SUBSCRIBE on first local interest, then fan out locally."""
        subscription = Subscription(channel, self._unsubscribe)
        first = not self._subscribers[channel]
        self._subscribers[channel].add(subscription)
        if first:
            try:
                await self._pubsub.subscribe(PREFIX + channel)
            except RedisError as exc:
                self._subscribers[channel].discard(subscription)
                raise BusError(f"redis subscribe: {exc}") from exc
            self._has_channels.set()
        return subscription

    async def _unsubscribe(self, subscription: Subscription) -> None:
        subscribers = self._subscribers.get(subscription.channel)
        if subscribers is None:
            return
        subscribers.discard(subscription)
        if not subscribers:
            del self._subscribers[subscription.channel]
            with contextlib.suppress(RedisError):
                await self._pubsub.unsubscribe(PREFIX + subscription.channel)

    async def _read_forever(self) -> None:
        """Dispatch pub/sub messages to local subscribers; survive Redis restarts."""
        while True:
            await self._has_channels.wait()
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (RedisError, OSError) as exc:
                log.warning("redis pub/sub read failed, retrying: %s", exc)
                await asyncio.sleep(1.0)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = str(message["channel"]).removeprefix(PREFIX)
            try:
                payload = json.loads(message["data"])
            except (TypeError, ValueError):
                payload = None
            if not isinstance(payload, dict):
                log.warning("dropping a message that is no JSON object on %s", channel)
                continue
            for subscription in tuple(self._subscribers.get(channel, ())):
                subscription.deliver(payload)

    @property
    def client(self) -> aioredis.Redis:
        """The shared connection pool, for other Redis-backed helpers (rate limits)."""
        return self._client

    def lock(self, name: str, ttl: float) -> RedisLock:
        """A lock for `name`."""
        return RedisLock(self._client, name, ttl)

    async def put_once(self, key: str, value: str, ttl: float) -> None:
        """SET with PX expiry."""
        try:
            await self._client.set(PREFIX + "once:" + key, value, px=int(ttl * 1000))
        except RedisError as exc:
            raise BusError(f"redis set: {exc}") from exc

    async def take(self, key: str) -> str | None:
        """GETDEL: atomic, so a ticket is used once even with two instances racing."""
        try:
            value = await self._client.getdel(PREFIX + "once:" + key)
        except RedisError as exc:
            raise BusError(f"redis getdel: {exc}") from exc
        return None if value is None else str(value)

    async def peek(self, key: str) -> str | None:
        """GET: a plain read, so any number of concurrent readers see the same value."""
        try:
            value = await self._client.get(PREFIX + "once:" + key)
        except RedisError as exc:
            raise BusError(f"redis get: {exc}") from exc
        return None if value is None else str(value)

    async def ping(self) -> bool:
        """PING."""
        try:
            return bool(await self._client.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        """Stop the reader and close connections."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.aclose()
        await self._client.aclose()
