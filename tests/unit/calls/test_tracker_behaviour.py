"""Tracker behaviour beyond the recordings: PJSIP calls, timestamps, late Cdr, resync, bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.ami.protocol import AmiMessage
from gateway.calls import (
    CallChange,
    CallTracker,
    ChangeKind,
    Direction,
    Disposition,
    RingStopReason,
    Topology,
)
from gateway.calls.settings import PbxTopology
from tests.support.ami_events import EPOCH, TRUNK, chan, ev, queue_call
from tests.support.ami_replay import (
    StepClock,
    at,
    find,
    messages,
    replay,
    trace_topology,
)


def no_clock() -> datetime:
    """A clock that must not be asked."""
    raise AssertionError("the clock was asked")


def feed_all(tracker: CallTracker, events: list[AmiMessage]) -> list[CallChange]:
    """Every change of a list of events."""
    return [change for event in events for change in tracker.feed(event)]


def test_pjsip_queue_call_uses_event_timestamps_and_default_patterns() -> None:
    tracker = CallTracker(Topology.from_settings(PbxTopology()), no_clock)
    changes = feed_all(tracker, queue_call(answered=True))
    assert [(c.kind, c.extensions, c.reason) for c in changes[:-1]] == [
        (ChangeKind.STARTED, (), None),
        (ChangeKind.RINGING, ("201",), None),
        (ChangeKind.RINGING, ("202",), None),
        (ChangeKind.RING_STOPPED, ("201",), RingStopReason.ANSWERED_ELSEWHERE),
        (ChangeKind.ANSWERED, ("202",), None),
    ]
    assert changes[1].caller == "+380441112233"
    record = changes[-1].record
    assert record is not None
    assert record.started_at == datetime.fromtimestamp(EPOCH, UTC)
    assert (record.ring_seconds, record.talk_seconds) == (6, 30)
    assert (record.direction, record.caller, record.callee, record.extension) == (
        Direction.INBOUND,
        "+380441112233",
        "0442000000",
        "202",
    )
    assert record.disposition is Disposition.ANSWERED
    assert {leg.uniqueid: leg.role for leg in record.legs} == {
        "1.1": "trunk",
        "1.2": "operator",
        "1.3": "operator",
    }


def test_abandoned_queue_call_is_no_answer_and_every_pop_is_cancelled() -> None:
    tracker = CallTracker(Topology.from_settings(PbxTopology()), no_clock)
    changes = feed_all(tracker, queue_call(answered=False))
    stops = [(c.extensions, c.reason) for c in changes if c.kind is ChangeKind.RING_STOPPED]
    assert stops == [(("201",), RingStopReason.CANCELLED), (("202",), RingStopReason.CANCELLED)]
    record = changes[-1].record
    assert record is not None
    # The queue answered the trunk, but no operator did: not an answered call.
    assert (record.disposition, record.answered_at, record.extension) == (
        Disposition.NO_ANSWER,
        None,
        None,
    )
    assert record.ring_seconds == 10


def test_unknown_events_cost_nothing_and_never_ask_the_clock() -> None:
    tracker = CallTracker(trace_topology(), no_clock)
    for msg in messages("bridged_dial"):
        if msg.name in {"VarSet", "CEL", "Newexten", "DeviceStateChange"} or msg.name is None:
            assert tracker.feed(msg) == []
    assert tracker.live_calls == 0


@pytest.mark.parametrize(
    "event",
    [
        ev("Newchannel", Channel="PJSIP/201-1"),
        ev("Hangup", Uniqueid="9.9", Linkedid="9.9", Cause="16"),
        ev("BridgeEnter", Uniqueid="9.9", Linkedid="9.9"),
        ev("DialEnd", DestUniqueid="9.9", DestLinkedid="9.9"),
        ev("Cdr", UniqueID="9.9", Disposition="ANSWERED"),
        ev("OriginateResponse", Response="Failure", Uniqueid="<null>"),
    ],
)
def test_incomplete_or_orphan_events_change_nothing(event: AmiMessage) -> None:
    clock = StepClock()
    tracker = CallTracker(trace_topology(), clock)
    assert tracker.feed(event) == []
    assert tracker.live_calls == 0


def test_garbage_channel_state_is_ignored() -> None:
    tracker = CallTracker(Topology.from_settings(PbxTopology()), StepClock())
    tracker.feed(ev("Newchannel", **chan(TRUNK, "1.1", 4)))
    assert tracker.feed(ev("Newstate", **{**chan(TRUNK, "1.1", 4), "ChannelState": "x"})) == []
    assert tracker.live_calls == 1


def late_cdr(disposition: str, dest_channel: str = "") -> AmiMessage:
    """A Cdr for bridged_dial's first leg, as it could arrive after the call ended."""
    first = next(m for m in messages("bridged_dial") if m.name == "Newchannel")
    return ev(
        "Cdr",
        UniqueID=first["Uniqueid"],
        Channel=first["Channel"],
        DestinationChannel=dest_channel,
        Disposition=disposition,
        Duration="13",
    )


def test_late_cdr_that_disagrees_is_reported_once_and_changes_nothing_else() -> None:
    run = replay("bridged_dial")
    # The trace's own Cdr after the last Hangup agrees: nothing.
    assert run.changes[-1][0] < find(run.msgs, "Cdr", last=True)
    (change,) = run.tracker.feed(late_cdr("NO ANSWER"))
    assert change.kind is ChangeKind.CDR_MISMATCH
    assert change.linkedid == run.record.linkedid and change.note is not None
    assert "NO ANSWER" in change.note.detail and change.direction is Direction.INBOUND
    assert run.tracker.feed(late_cdr("NO ANSWER")) == []
    assert run.tracker.feed(late_cdr("ANSWERED")) == []
    assert run.tracker.live_calls == 0


def test_cdr_with_linkedid_mapping_is_matched_without_uniqueid() -> None:
    first_ended = replay("bridged_long_cdr_linkedid", keep=lambda i, m: m.name != "Cdr")
    linkedid = first_ended.record.linkedid
    note_changes = first_ended.tracker.feed(
        ev("Cdr", UniqueID=linkedid, LinkedID=linkedid, Channel="x", Disposition="BUSY")
    )
    assert [c.kind for c in note_changes] == [ChangeKind.CDR_MISMATCH]


def test_late_duplicates_of_an_ended_call_do_not_resurrect_it() -> None:
    run = replay("ring_group")
    for msg in run.msgs:
        assert run.tracker.feed(msg) == []
    assert run.tracker.live_calls == 0


def test_call_in_progress_is_adopted_from_its_events() -> None:
    msgs = messages("bridged_dial")
    created = find(msgs, "BridgeCreate")
    run = replay("bridged_dial", keep=lambda i, m: i >= created)
    record = run.record
    assert record.adopted and record.started_at == at(find(msgs, "BridgeEnter"))
    assert (record.disposition, record.extension) == (Disposition.ANSWERED, "201")
    assert record.answered_at == at(find(msgs, "BridgeEnter", BridgeNumChannels="2"))


def csc_items() -> list[AmiMessage]:
    """The CoreShowChannel items of the recorded list (a bridged call, 201 talking)."""
    return [m for m in messages("core_show_channels") if m.name == "CoreShowChannel"]


def test_resync_adopts_live_calls_then_ends_them_when_gone() -> None:
    clock = StepClock()
    tracker = CallTracker(trace_topology(), clock)
    clock.tick_to(10)
    adopted = tracker.resync(csc_items())
    assert [(c.kind, c.extensions) for c in adopted] == [
        (ChangeKind.STARTED, ()),
        (ChangeKind.ANSWERED, ("201",)),
    ]
    assert tracker.live_calls == 1
    assert tracker.resync(csc_items()) == []
    clock.tick_to(30)
    (ended,) = tracker.resync([])
    record = ended.record
    assert record is not None and record.adopted
    assert record.started_at == at(10) - timedelta(seconds=6)  # Duration: 00:00:06
    assert (record.answered_at, record.ended_at, record.talk_seconds) == (at(10), at(30), 20)
    assert (record.disposition, record.extension, record.caller) == (
        Disposition.ANSWERED,
        "201",
        "0501234567",
    )
    assert [n.kind for n in record.notes] == ["closed"]
    assert tracker.live_calls == 0


def test_resync_closes_a_tracked_call_and_drops_vanished_legs() -> None:
    msgs = messages("ring_group")
    bridged = find(msgs, "BridgeEnter", BridgeNumChannels="2")
    run = replay("ring_group", keep=lambda i, m: i <= bridged)
    tracker = run.tracker
    linkedid = run.changes[0][1].linkedid
    live = [
        AmiMessage.from_pairs(
            [
                ("Event", "CoreShowChannel"),
                ("Channel", ch),
                ("Uniqueid", uid),
                ("Linkedid", linkedid),
                ("ChannelState", "6"),
                ("BridgeId", bridge),
            ]
        )
        for ch, uid, bridge in [
            (m["Channel"], m["Uniqueid"], m.get("BridgeUniqueid") or "")
            for m in msgs[: bridged + 1]
            if m.name == "BridgeEnter"
        ]
    ]
    assert tracker.resync(live) == []  # still talking; the dead 201 legs are gone anyway
    (ended,) = tracker.resync([])
    record = ended.record
    assert record is not None and not record.adopted
    assert (record.disposition, record.extension) == (Disposition.ANSWERED, "202")
    assert tracker.live_calls == 0


def test_memory_of_ended_calls_is_bounded() -> None:
    tracker = CallTracker(Topology.from_settings(PbxTopology()), no_clock, max_ended=3)
    for n in range(10):
        uid = f"5.{n}"
        tracker.feed(
            ev("Newchannel", 0, Channel=TRUNK, Uniqueid=uid, Linkedid=uid, ChannelState="4")
        )
        (change,) = tracker.feed(
            ev("Hangup", 1, Channel=TRUNK, Uniqueid=uid, Linkedid=uid, ChannelState="4", Cause="16")
        )
        assert change.kind is ChangeKind.ENDED
    assert (tracker.live_calls, tracker.remembered_ended) == (0, 3)


@pytest.mark.parametrize("name", ["ring_group", "attended_transfer", "dial_no_answer"])
def test_subscribing_to_tracked_events_only_gives_the_same_changes(name: str) -> None:
    from gateway.calls import TRACKED_EVENTS

    full = replay(name)
    filtered = replay(name, keep=lambda i, m: m.name in TRACKED_EVENTS)
    assert filtered.changes == full.changes
