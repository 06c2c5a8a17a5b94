"""Resync after an AMI gap: an IVR- or queue-answered inbound leg is not an answered call.

`CoreShowChannels` lists the inbound trunk leg as Up while a queue or IVR plays to it
(``Application: Queue``/``Playback``, empty ``BridgeId``); only a bridge with a second
Up party is a conversation. When the call then disappears inside a gap, the tracker never
sees how the ringing ended and must not record the queue's pickup as the answer.
"""

from __future__ import annotations

from adapters.ami.protocol import AmiMessage
from gateway.calls import AnswerSource, CallRecord, CallTracker, ChangeKind, Disposition, Topology
from gateway.calls.settings import PbxTopology
from tests.support.ami_events import chan, ev, queue_call
from tests.support.ami_replay import StepClock

TRUNK, OP1, OP2 = "PJSIP/trunk-00000001", "PJSIP/201-00000002", "PJSIP/202-00000003"


def listed(channel: str, uid: str, state: int, application: str, bridge: str = "") -> AmiMessage:
    """One ``CoreShowChannel`` item of call 7.1 (the fields Asterisk 22 sends)."""
    return AmiMessage.from_pairs(
        [
            ("Event", "CoreShowChannel"),
            ("Channel", channel),
            ("ChannelState", str(state)),
            ("ChannelStateDesc", "Up" if state == 6 else "Ringing"),
            ("CallerIDNum", "+380441112233" if channel == TRUNK else channel[6:9]),
            ("Uniqueid", uid),
            ("Linkedid", "7.1"),
            ("Application", application),
            ("ApplicationData", ""),
            ("Duration", "00:00:12"),
            ("BridgeId", bridge),
        ]
    )


def tracker() -> tuple[CallTracker, StepClock]:
    clock = StepClock()
    return CallTracker(Topology.from_settings(PbxTopology()), clock), clock


def closed_by_resync(tracker: CallTracker, clock: StepClock) -> CallRecord:
    """The record of the one live call once a later resync no longer lists it."""
    clock.tick_to(40)
    (ended,) = [c for c in tracker.resync([]) if c.kind is ChangeKind.ENDED]
    assert ended.record is not None
    return ended.record


def assert_unanswered(record: CallRecord) -> None:
    assert (record.disposition, record.answer_source) == (Disposition.NO_ANSWER, None)
    assert (record.answered_at, record.talk_seconds, record.extension) == (None, 0, None)


def test_adopted_up_leg_in_a_queue_with_ringing_operators_is_not_answered() -> None:
    calls, clock = tracker()
    changes = calls.resync(
        [
            listed(TRUNK, "7.1", 6, "Queue"),
            listed(OP1, "7.2", 5, "AppQueue"),
            listed(OP2, "7.3", 5, "AppQueue"),
        ]
    )
    assert [c.kind for c in changes] == [
        ChangeKind.STARTED,
        ChangeKind.RINGING,
        ChangeKind.RINGING,
    ]
    record = closed_by_resync(calls, clock)
    assert_unanswered(record)
    assert record.adopted and record.rang_extensions == ("201", "202")


def test_adopted_up_leg_alone_in_playback_is_not_answered() -> None:
    calls, clock = tracker()
    assert [c.kind for c in calls.resync([listed(TRUNK, "7.1", 6, "Playback")])] == [
        ChangeKind.STARTED
    ]
    assert_unanswered(closed_by_resync(calls, clock))


def test_adopted_two_up_legs_in_one_bridge_are_answered() -> None:
    calls, clock = tracker()
    changes = calls.resync(
        [listed(TRUNK, "7.1", 6, "Queue", "b7"), listed(OP2, "7.3", 6, "AppQueue", "b7")]
    )
    assert [(c.kind, c.extensions) for c in changes] == [
        (ChangeKind.STARTED, ()),
        (ChangeKind.ANSWERED, ("202",)),
    ]
    record = closed_by_resync(calls, clock)
    # Talk runs from the adoption (the bridge's start is unknown) to the resync that closed it.
    assert (record.disposition, record.extension, record.talk_seconds) == (
        Disposition.ANSWERED,
        "202",
        40,
    )


def test_up_leg_in_a_bridge_without_a_second_party_is_not_answered() -> None:
    calls, clock = tracker()
    calls.resync([listed(TRUNK, "7.1", 6, "Queue", "b7"), listed(OP2, "7.3", 5, "AppQueue")])
    assert_unanswered(closed_by_resync(calls, clock))


def test_queue_call_seen_ringing_then_gone_in_a_gap_is_not_answered() -> None:
    calls, clock = tracker()
    ringing = queue_call(answered=False)[:8]  # trunk Up (queue), 201 and 202 ringing
    for event in ringing:
        calls.feed(event)
    record = closed_by_resync(calls, clock)
    assert_unanswered(record)
    assert not record.adopted and record.rang_extensions == ("201", "202")


def test_queue_call_adopted_from_its_dial_events_then_gone_is_not_answered() -> None:
    calls, clock = tracker()
    for event in queue_call(answered=False)[4:8]:  # joined the call at the DialBegins
        calls.feed(event)
    assert_unanswered(closed_by_resync(calls, clock))


def test_ivr_pickup_seen_to_its_hangup_keeps_its_application_answer() -> None:
    calls, _ = tracker()
    for event in queue_call(answered=False)[:2]:  # Newchannel, Newstate Up (IVR)
        calls.feed(event)
    (ended,) = calls.feed(ev("Hangup", 9, **chan(TRUNK, "1.1", 6), Cause="16"))
    record = ended.record
    assert record is not None
    assert (record.disposition, record.answer_source, record.talk_seconds) == (
        Disposition.ANSWERED,
        AnswerSource.APPLICATION,
        0,
    )
