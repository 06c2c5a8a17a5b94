"""Per-channel send rate limits: a token bucket here, or in Redis for several instances."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import redis.asyncio as aioredis

# Refill and take atomically on the server; returns seconds to wait (0 = token taken).
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class RateLimiter(Protocol):
    """Waits until one more send is allowed."""

    async def acquire(self) -> None:
        """Block until a token is available, then take it."""
        ...


class Unlimited:
    """No limit configured."""

    async def acquire(self) -> None:
        """Never waits."""


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; one process."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 10)
        self._tokens = self.burst
        self._at = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Take a token, sleeping for the refill when none is left."""
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
                self._at = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)


class RedisTokenBucket:
    """The same bucket kept in Redis, so every instance shares one limit per channel.

    Server time is not used (TIME inside scripts replicates badly); instances' clocks
    only need to agree to within a fraction of a second, which NTP gives.
    """

    def __init__(self, client: aioredis.Redis, key: str, rate: float, burst: float | None = None):
        self._client, self._key, self.rate = client, f"switchboard:rate:{key}", rate
        self.burst = burst if burst is not None else max(1.0, rate / 10)

    async def acquire(self) -> None:
        """Ask Redis for a token; sleep as long as it says and ask again."""
        while True:
            wait = float(
                await self._client.eval(_TAKE, 1, self._key, self.rate, self.burst, time.time())
            )
            if wait <= 0:
                return
            await asyncio.sleep(wait)
