"""Both bus implementations behave alike; the Redis one against the real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.core.bus import Bus, BusError, MemoryBus, RedisBus


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    """A started bus of each kind."""
    instance: Bus
    if request.param == "memory":
        instance = MemoryBus()
    else:
        instance = RedisBus(request.getfixturevalue("redis_url"))
    await instance.start()
    yield instance
    await instance.close()


async def test_publish_reaches_every_subscriber_of_the_channel(bus: Bus) -> None:
    first = await bus.subscribe("agent:201")
    second = await bus.subscribe("agent:201")
    other = await bus.subscribe("agent:202")
    async with first, second, other:
        await bus.publish("agent:201", {"type": "screen_pop", "call_id": "c1"})
        assert (await first.get(2))["call_id"] == "c1"
        assert (await second.get(2))["call_id"] == "c1"
        with pytest.raises(TimeoutError):
            await other.get(0.2)


async def test_lock_is_exclusive_until_released(bus: Bus) -> None:
    holder, rival = bus.lock("tick", 5), bus.lock("tick", 5)
    assert await holder.acquire()
    assert not await rival.acquire()
    await rival.release()  # releasing a lock we don't hold must not free it
    assert not await rival.acquire()
    await holder.release()
    assert await rival.acquire()


async def test_lock_expires_so_a_crashed_holder_does_not_block_forever(bus: Bus) -> None:
    crashed, successor = bus.lock("leader", 0.2), bus.lock("leader", 5)
    assert await crashed.acquire()
    await asyncio.sleep(0.3)
    assert await successor.acquire()
    assert not await crashed.extend(5)


async def test_put_once_value_is_taken_only_once(bus: Bus) -> None:
    await bus.put_once("ticket:abc", "agent-201", 60)
    assert await bus.take("ticket:abc") == "agent-201"
    assert await bus.take("ticket:abc") is None
    await bus.put_once("ticket:old", "x", 0.1)
    await asyncio.sleep(0.2)
    assert await bus.take("ticket:old") is None


async def test_peek_reads_a_value_without_taking_it_until_it_expires(bus: Bus) -> None:
    await bus.put_once("marker:s1", "1", 0.3)
    reads = await asyncio.gather(*(bus.peek("marker:s1") for _ in range(15)))
    assert reads == ["1"] * 15
    assert await bus.peek("marker:none") is None
    await asyncio.sleep(0.4)
    assert await bus.peek("marker:s1") is None


async def test_a_bus_that_is_down_raises_bus_error_on_peek() -> None:
    dead = RedisBus("redis://127.0.0.1:1/0")
    with pytest.raises(BusError):
        await dead.peek("marker:s1")
    await dead.close()


async def test_redis_bus_reaches_a_subscriber_on_another_instance(redis_url: str) -> None:
    sender, receiver = RedisBus(redis_url), RedisBus(redis_url)
    await sender.start()
    await receiver.start()
    try:
        async with await receiver.subscribe("agent:203") as subscription:
            await asyncio.sleep(0.05)  # SUBSCRIBE reaches the server before we publish
            await sender.publish("agent:203", {"n": 1})
            assert await subscription.get(2) == {"n": 1}
    finally:
        await sender.close()
        await receiver.close()


async def test_redis_bus_down_reports_unreachable() -> None:
    dead = RedisBus("redis://127.0.0.1:1/0")
    assert not await dead.ping()
    await dead.close()
