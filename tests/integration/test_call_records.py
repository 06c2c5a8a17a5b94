"""Recorded Asterisk traffic → tracker → recorder: rows, pops, CRM activity, idempotent."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from gateway.calls import CallTracker
from gateway.calls.recorder import CallRecorder
from gateway.calls.settings import PbxTopology
from gateway.core.bus import MemoryBus
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models import Call, CallLeg, CostEntry, OutboxItem, Task
from gateway.live.http import agent_channel
from gateway.settings import Settings
from tests.support.ami_replay import StepClock, messages, trace_topology
from tests.support.factories import make_customer, make_task

CALLER = "+380501234567"  # the number the recorded inbound calls come from


async def play(trace: str, recorder: CallRecorder) -> None:
    """Feed a whole trace, one second per event, applying every change."""
    clock = StepClock()
    tracker = CallTracker(trace_topology(), clock)
    for index, message in enumerate(messages(trace)):
        clock.tick_to(index)
        await recorder.apply(tracker.feed(message))


async def drain(bus: MemoryBus, extension: str) -> list[dict[str, Any]]:
    subscription = bus.subscribers[agent_channel(extension)]
    (only,) = subscription
    out = []
    while not only.queue.empty():
        out.append(only.queue.get_nowait())
    return out


async def test_queue_call_pops_every_ringing_operator_and_records_the_answerer(
    database: Database, settings: Settings, clock: FixedClock
) -> None:
    customer = await make_customer(database, clock.now(), "C-9", [CALLER], name="Олена")
    bus = MemoryBus()
    pops = {ext: await bus.subscribe(agent_channel(ext)) for ext in ("201", "202")}
    await play("ring_group", CallRecorder(database, bus, settings, clock))

    seen = {ext: await drain(bus, ext) for ext in pops}
    assert [m["type"] for m in seen["201"]] == ["screen_pop", "call_update", "call_update"]
    assert seen["201"][1]["state"] == "answered_elsewhere"
    assert [m.get("state") for m in seen["202"]] == [None, "answered", "ended"]
    pop = seen["202"][0]
    assert pop["match"] == "exact" and pop["caller"] == CALLER
    assert pop["customer"]["name"] == "Олена" and pop["customer"]["id"] == customer
    assert seen["202"][2]["talk_seconds"] == 21

    async with database.sessions() as session:
        (call,) = (await session.execute(select(Call))).scalars().all()
        assert (call.extension, call.customer_id, call.match) == ("202", customer, "exact")
        assert (call.disposition, call.talk_seconds, call.state) == ("answered", 21, "ended")
        assert call.details["rang_extensions"] == ["201", "202"]
        legs = await session.scalar(select(func.count()).select_from(CallLeg))
        assert legs is not None and legs >= 2
        (pushed,) = (await session.execute(select(OutboxItem))).scalars().all()
    assert pushed.type == "call.completed" and pushed.ordering_key == customer
    assert pushed.payload["talk_seconds"] == 21 and pushed.payload["extension"] == "202"
    for pop_subscription in pops.values():
        await pop_subscription.__aexit__(None, None, None)


async def test_two_instances_seeing_the_same_events_write_everything_once(
    database: Database, settings: Settings, clock: FixedClock
) -> None:
    await make_customer(database, clock.now(), "C-9", [CALLER])
    legs_seen = []
    for _ in range(2):
        await play("bridged_dial", CallRecorder(database, MemoryBus(), settings, clock))
        async with database.sessions() as session:
            legs = (await session.execute(select(CallLeg.uniqueid, CallLeg.role))).all()
        legs_seen.append(sorted(legs))
    assert len(legs_seen[0]) == 4 and legs_seen[1] == legs_seen[0]  # every leg, once
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Call)) == 1
        assert await session.scalar(select(func.count()).select_from(OutboxItem)) == 1


async def test_outbound_click_to_call_is_costed_and_linked_to_the_request(
    database: Database, settings: Settings, clock: FixedClock
) -> None:
    await make_customer(database, clock.now(), "C-1", ["+380501234567"])
    async with database.transaction() as session:
        session.add(
            Call(
                id="call_requested",
                direction="outbound",
                state="originating",
                originate_action_id="c2c-1",
                match="none",
                details={},
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
    await play("click_to_call", CallRecorder(database, MemoryBus(), settings, clock))
    async with database.sessions() as session:
        (call,) = (await session.execute(select(Call))).scalars().all()
        (cost,) = (await session.execute(select(CostEntry))).scalars().all()
    assert call.id == "call_requested" and call.state == "ended"
    assert call.direction == "outbound" and call.match == "exact"  # 0501234567 → +380…
    assert str(cost.amount) == "0.4000" and cost.call_id == "call_requested"  # 16 s × 1.50/min


async def test_a_qualifying_call_closes_open_tasks_when_auto_completion_is_on(
    database: Database, settings: Settings, clock: FixedClock
) -> None:
    # The trace's own clock starts 2026-01-01: the tasks must be older than the call.
    clock.set(clock.now().replace(year=2025))
    customer = await make_customer(database, clock.now(), "C-9", [CALLER])
    long_enough = await make_task(
        database, customer_id=customer, created_at=clock.now(), min_call_seconds=10
    )
    too_demanding = await make_task(
        database, customer_id=customer, created_at=clock.now(), min_call_seconds=60
    )
    pbx = settings.section(PbxTopology).model_copy(update={"auto_complete_tasks": True})
    auto = settings.model_copy(update={"pbx": pbx})
    await play("bridged_dial", CallRecorder(database, MemoryBus(), auto, clock))
    async with database.sessions() as session:
        statuses = dict((await session.execute(select(Call.id, Call.talk_seconds))).all())
        tasks = {t.id: t.status for t in (await session.execute(select(Task))).scalars()}
    assert list(statuses.values()) == [16]
    assert tasks == {long_enough: "done", too_demanding: "open"}


async def test_rebuild_from_raw_events_recreates_the_record_once(
    database: Database, settings: Settings, clock: FixedClock
) -> None:
    from datetime import timedelta

    from gateway.calls.rebuild import rebuild_calls
    from gateway.core.db.models import AmiRawEvent

    start = clock.now()
    async with database.transaction() as session:
        for index, message in enumerate(messages("bridged_dial")):
            if message.is_event:
                session.add(
                    AmiRawEvent(
                        received_at=start + timedelta(seconds=index),
                        linkedid=message.get("Linkedid"),
                        name=message.name or "",
                        fields=dict(message.headers),
                    )
                )
    topology = settings.section(PbxTopology).model_copy(
        update={
            "trunk_patterns": trace_topology_patterns()[0],
            "operator_patterns": trace_topology_patterns()[1],
        }
    )
    replay_settings = settings.model_copy(update={"pbx": topology})
    assert await rebuild_calls(database, replay_settings, clock, start) == 1
    assert await rebuild_calls(database, replay_settings, clock, start) == 1
    async with database.sessions() as session:
        (call,) = (await session.execute(select(Call))).scalars().all()
    assert (call.extension, call.talk_seconds, call.disposition) == ("201", 16, "answered")


def trace_topology_patterns() -> tuple[list[str], list[str]]:
    """The same patterns as tests.support.ami_replay.trace_topology, for settings."""
    return (
        [r"^Local/200@test-", r"^Local/caller-\d+@gw-inbound-", r"^Local/\d+@customers-"],
        [r"^Local/(?P<ext>20[1-3])@(?:test|ops-)"],
    )
