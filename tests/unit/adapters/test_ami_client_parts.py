"""Pure parts of the AMI client: backoff with jitter and event dispatch."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from adapters.ami.client import backoff_delay
from adapters.ami.dispatch import EventDispatcher
from adapters.ami.protocol import AmiMessage


def event(name: str, **fields: str) -> AmiMessage:
    return AmiMessage.from_pairs([("Event", name), *fields.items()])


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    rng = random.Random(7)
    for attempt in range(12):
        bound = min(10.0, 0.5 * 2**attempt)
        delays = [backoff_delay(attempt, 0.5, 10.0, rng) for _ in range(200)]
        assert all(0.0 <= d <= bound for d in delays)
        assert max(delays) > bound * 0.8  # jitter covers the whole range
        assert min(delays) < bound * 0.2


def test_backoff_survives_huge_attempt_numbers() -> None:
    assert 0.0 <= backoff_delay(10_000, 1.0, 30.0, random.Random(1)) <= 30.0


def test_sync_handlers_by_name_and_wildcard() -> None:
    d = EventDispatcher()
    seen: list[str] = []
    d.on("Hangup", lambda m: seen.append(f"h:{m.get('Channel')}"))
    d.on("*", lambda m: seen.append(f"*:{m.name}"))
    d.dispatch(event("Hangup", Channel="PJSIP/201-1"))
    d.dispatch(event("Newchannel"))
    assert seen == ["h:PJSIP/201-1", "*:Hangup", "*:Newchannel"]
    assert d.wants("hangup") and d.wants("Anything")


def test_wants_is_false_without_subscribers_and_unsubscribe_works() -> None:
    d = EventDispatcher()
    seen: list[AmiMessage] = []
    off = d.on("Cdr", seen.append)
    assert d.wants("Cdr") and not d.wants("VarSet")
    off()
    assert not d.wants("Cdr")
    d.dispatch(event("Cdr"))
    assert seen == []


def test_failing_sync_handler_is_logged_and_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    d = EventDispatcher()
    seen: list[str] = []

    def boom(_: AmiMessage) -> None:
        raise RuntimeError("handler bug")

    d.on("Hangup", boom)
    d.on("Hangup", lambda m: seen.append("ok"))
    with caplog.at_level(logging.ERROR):
        d.dispatch(event("Hangup"))
    assert seen == ["ok"]
    assert "handler bug" in caplog.text


async def test_async_handlers_run_in_order_without_blocking_dispatch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    d = EventDispatcher()
    seen: list[str] = []
    gate = asyncio.Event()

    async def slow(m: AmiMessage) -> None:
        await gate.wait()
        if m.get("N") == "2":
            raise RuntimeError("async handler bug")
        seen.append(m.get("N") or "")

    d.on("E", slow)
    for n in range(5):
        d.dispatch(event("E", N=str(n)))  # returns at once although the handler waits
    assert seen == []
    gate.set()
    with caplog.at_level(logging.ERROR):
        for _ in range(20):
            await asyncio.sleep(0)
    assert seen == ["0", "1", "3", "4"]
    assert "async handler bug" in caplog.text
    d.close()
