"""Every recorded call trace replayed through the tracker: records, pops, durations."""

from __future__ import annotations

import pytest

from gateway.calls import AnswerSource, ChangeKind, Direction, Disposition, RingStopReason
from tests.support.ami_replay import CALL_TRACES, at, find, replay

RINGING, STOPPED, ANSWERED = ChangeKind.RINGING, ChangeKind.RING_STOPPED, ChangeKind.ANSWERED


@pytest.mark.parametrize("name", CALL_TRACES)
def test_every_trace_gives_one_record_and_forgets_the_call(name: str) -> None:
    run = replay(name)
    assert run.changes[0][1].kind is ChangeKind.STARTED
    assert run.changes[-1][1].kind is ChangeKind.ENDED
    record = run.record
    assert run.changes[-1][0] == find(run.msgs, "Hangup", last=True)
    assert record.ended_at == at(find(run.msgs, "Hangup", last=True))
    assert record.started_at == at(find(run.msgs, "Newchannel"))
    assert run.tracker.live_calls == 0
    # No phantom missed call: every extension that rang answered or was told why it stopped.
    answered = {e for _, c in run.of(ANSWERED) for e in c.extensions}
    stopped = {e for _, c in run.of(STOPPED) for e in c.extensions}
    rang = {e for _, c in run.of(RINGING) for e in c.extensions}
    assert rang <= answered | stopped
    assert stopped <= rang
    assert not answered & stopped


@pytest.mark.parametrize("name", CALL_TRACES)
def test_every_event_fed_twice_changes_nothing(name: str) -> None:
    once, twice = replay(name), replay(name, twice=True)
    assert twice.changes == once.changes


@pytest.mark.parametrize(
    ("name", "caller", "callee", "action_id"),
    [
        ("answered_long", "+380501234567", "100", "orig-answered-long-1"),
        ("answered_short", "0501234567", "101", "orig-answered-short-1"),
    ],
)
def test_application_answer_is_answered_without_talk(
    name: str, caller: str, callee: str, action_id: str
) -> None:
    run = replay(name)
    record = run.record
    answer = find(run.msgs, "DialEnd", DialStatus="ANSWER")
    assert (record.disposition, record.answer_source) == (
        Disposition.ANSWERED,
        AnswerSource.APPLICATION,
    )
    assert record.answered_at == at(answer)
    assert record.ring_seconds == answer - find(run.msgs, "Newchannel")
    assert record.talk_seconds == 0
    assert record.extension is None and record.segments == ()
    assert run.of(ANSWERED) == [] and run.of(RINGING) == []
    assert (record.direction, record.caller, record.callee) == (
        Direction.INTERNAL,
        caller,
        callee,
    )
    assert record.originate_action_id == action_id
    assert record.notes == ()


@pytest.mark.parametrize(
    ("name", "disposition", "cause"),
    [("no_answer", Disposition.NO_ANSWER, 19), ("busy", Disposition.BUSY, 17)],
)
def test_unanswered_originate(name: str, disposition: Disposition, cause: int) -> None:
    run = replay(name)
    record = run.record
    assert record.disposition is disposition
    assert record.answered_at is None and record.answer_source is None
    assert record.ring_seconds == find(run.msgs, "Hangup", last=True) - find(run.msgs, "Newchannel")
    assert record.talk_seconds == 0
    assert cause in {leg.hangup_cause for leg in record.legs}
    assert record.notes == ()


@pytest.mark.parametrize(
    ("name", "ext_channel", "talk_ends_with"),
    [
        ("bridged_dial", "Local/201@test", "Local/201@test"),
        ("bridged_long", "Local/201@ops-long", "Local/201@ops-long"),
        ("bridged_long_cdr_linkedid", "Local/201@ops-long", "Local/201@ops-long"),
        ("bridged_caller_hangs_up", "Local/201@ops-callerhup", "Local/caller-11"),
    ],
)
def test_two_leg_bridge_is_answered_by_the_operator(
    name: str, ext_channel: str, talk_ends_with: str
) -> None:
    run = replay(name)
    record = run.record
    msgs = run.msgs
    start = find(msgs, "Newchannel")
    ring = find(msgs, "DialBegin", DestChannel=ext_channel)
    bridged = find(msgs, "BridgeEnter", BridgeNumChannels="2")
    talk_end = find(msgs, "BridgeLeave", Channel=talk_ends_with)
    assert run.kinds()[1:3] == [
        (ring, RINGING, ("201",), None),
        (bridged, ANSWERED, ("201",), None),
    ]
    assert (record.disposition, record.answer_source, record.extension) == (
        Disposition.ANSWERED,
        AnswerSource.BRIDGE,
        "201",
    )
    assert record.direction is Direction.INBOUND
    assert record.caller == "+380501234567"
    assert record.answered_at == at(bridged)
    assert record.ring_seconds == bridged - start
    assert record.talk_seconds == talk_end - bridged
    (segment,) = record.segments
    assert (segment.extension, segment.seconds, segment.with_customer) == (
        "201",
        talk_end - bridged,
        True,
    )
    assert record.rang_extensions == ("201",)
    assert record.notes == ()
    assert record.originate_action_id is not None


@pytest.mark.parametrize(
    ("name", "ext", "status", "reason", "disposition"),
    [
        ("dial_no_answer", "202", "NOANSWER", RingStopReason.NO_ANSWER, Disposition.NO_ANSWER),
        ("dial_busy", "203", "BUSY", RingStopReason.BUSY, Disposition.BUSY),
    ],
)
def test_dial_without_answer_keeps_its_disposition_despite_local_cdr(
    name: str, ext: str, status: str, reason: RingStopReason, disposition: Disposition
) -> None:
    run = replay(name)
    record = run.record
    msgs = run.msgs
    assert run.kinds()[1:3] == [
        (find(msgs, "DialBegin", DestChannel=f"Local/{ext}@test"), RINGING, (ext,), None),
        (find(msgs, "DialEnd", DialStatus=status), STOPPED, (ext,), reason),
    ]
    # The first leg's Local Cdr says ANSWERED: a note, never the disposition.
    assert "ANSWERED" in {m.get("Disposition") for m in msgs if m.name == "Cdr"}
    assert record.disposition is disposition
    assert record.answered_at is None and record.extension is None
    assert record.talk_seconds == 0
    (note,) = record.notes
    assert note.kind == "cdr_mismatch" and "ANSWERED" in note.detail
    assert note.uniqueid == record.linkedid


def test_ring_group_pops_everyone_and_credits_only_the_answerer() -> None:
    run = replay("ring_group")
    msgs = run.msgs
    bridged = find(msgs, "BridgeEnter", BridgeNumChannels="2")
    assert run.kinds()[1:-1] == [
        (find(msgs, "DialBegin", DestChannel="Local/201@ops-ring"), RINGING, ("201",), None),
        (
            find(msgs, "Newstate", Channel="Local/202@ops-ring", ChannelState="5"),
            RINGING,
            ("202",),
            None,
        ),
        (
            find(msgs, "Hangup", Channel="Local/201@ops-ring", Cause="26"),
            STOPPED,
            ("201",),
            RingStopReason.ANSWERED_ELSEWHERE,
        ),
        (bridged, ANSWERED, ("202",), None),
    ]
    record = run.record
    assert (record.disposition, record.extension) == (Disposition.ANSWERED, "202")
    assert record.rang_extensions == ("201", "202")
    talk = find(msgs, "BridgeLeave", Channel="Local/202@ops-ring") - bridged
    assert record.talk_seconds == talk
    assert record.talk_seconds_by_extension() == {"202": talk}
    # The Dial record to 201 says NO ANSWER, which is what happened to that dial.
    assert record.notes == ()


def test_blind_transfer_splits_talk_between_operators() -> None:
    run = replay("blind_transfer")
    msgs = run.msgs
    first = find(msgs, "BridgeEnter", BridgeNumChannels="2")
    second = find(msgs, "BridgeEnter", BridgeNumChannels="2", last=True)
    caller_leaves = find(msgs, "BridgeLeave", Channel="Local/caller-60")
    op2_leaves = find(msgs, "BridgeLeave", Channel="Local/202@ops-xfer")
    assert [(k, e) for _, k, e, _ in run.kinds()[1:-1]] == [
        (RINGING, ("201",)),
        (ANSWERED, ("201",)),
        (RINGING, ("202",)),
        (ANSWERED, ("202",)),
    ]
    record = run.record
    assert record.extension == "201"
    assert [(s.extension, s.started_at, s.ended_at) for s in record.segments] == [
        ("201", at(first), at(caller_leaves)),
        ("202", at(second), at(op2_leaves)),
    ]
    assert record.talk_seconds_by_extension() == {
        "201": caller_leaves - first,
        "202": op2_leaves - second,
    }
    assert record.talk_seconds == op2_leaves - first
    assert [n.kind for n in record.notes] == ["blind_transfer"]


def test_attended_transfer_credits_each_operator_and_marks_the_consultation() -> None:
    run = replay("attended_transfer")
    msgs = run.msgs
    bridged = find(msgs, "BridgeEnter", BridgeNumChannels="2")
    on_hold = find(msgs, "BridgeLeave", Channel="Local/201@ops-atxfer")
    target_up = find(msgs, "Newstate", Channel="Local/202@ops-atxfer-0000000f;1", ChannelState="6")
    consult_end = find(msgs, "BridgeLeave", Channel="Local/201@ops-atxfer", last=True)
    merged = find(msgs, "BridgeEnter", Channel="Local/202@ops-atxfer", last=True)
    done = find(msgs, "BridgeLeave", Channel="Local/202@ops-atxfer", last=True)
    record = run.record
    assert [(s.extension, s.started_at, s.ended_at, s.with_customer) for s in record.segments] == [
        ("201", at(bridged), at(on_hold), True),
        ("201", at(target_up), at(consult_end), False),
        ("202", at(target_up), at(consult_end), False),
        ("202", at(merged), at(done), True),
    ]
    assert record.talk_seconds_by_extension() == {"201": on_hold - bridged, "202": done - merged}
    assert record.talk_seconds == done - bridged
    assert (record.extension, record.rang_extensions) == ("201", ("201", "202"))
    assert [n.kind for n in record.notes] == ["attended_transfer"]


def test_click_to_call_is_outbound_from_the_operator_without_a_pop_on_his_own_phone() -> None:
    run = replay("click_to_call")
    msgs = run.msgs
    bridged = find(msgs, "BridgeEnter", BridgeNumChannels="2")
    assert run.of(RINGING) == []
    assert [(i, c.extensions) for i, c in run.of(ANSWERED)] == [(bridged, ("201",))]
    record = run.record
    assert (record.direction, record.caller, record.callee, record.extension) == (
        Direction.OUTBOUND,
        "201",
        "0501234567",
        "201",
    )
    assert record.originate_action_id == "c2c-1"
    assert record.talk_seconds == find(msgs, "BridgeLeave") - bridged
    assert record.notes == ()
