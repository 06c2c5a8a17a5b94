"""The live-call cap (`pbx.max_live_calls`, issue 14 item 8): calls beyond it are refused
and counted, tracked calls go on, and `prune` frees the room the PBX no longer uses."""

from __future__ import annotations

from adapters.ami.protocol import AmiMessage
from gateway.calls import CallTracker, ChangeKind, Topology
from gateway.calls.settings import PbxTopology
from tests.support.ami_events import ev
from tests.support.ami_replay import StepClock


def newchannel(linkedid: str, channel: str = "PJSIP/trunk-1", uid: str | None = None) -> AmiMessage:
    return ev(
        "Newchannel",
        Channel=channel,
        Uniqueid=uid or linkedid,
        Linkedid=linkedid,
        ChannelState="4",
        CallerIDNum="+380441112233",
    )


def listed(linkedid: str) -> AmiMessage:
    return AmiMessage.from_pairs(
        [("Event", "CoreShowChannel"), ("Uniqueid", linkedid), ("Linkedid", linkedid)]
    )


def capped(limit: int) -> CallTracker:
    return CallTracker(Topology.from_settings(PbxTopology()), StepClock(), max_live=limit)


def test_calls_beyond_the_cap_are_refused_and_counted_while_tracked_calls_go_on() -> None:
    calls = capped(2)
    for linkedid in ("a", "b"):
        assert [c.kind for c in calls.feed(newchannel(linkedid))] == [ChangeKind.STARTED]
    assert calls.feed(newchannel("c")) == []
    assert calls.feed(ev("Newstate", Uniqueid="c", Linkedid="c", ChannelState="6")) == []
    assert (calls.live_calls, calls.refused) == (2, 2)
    # A tracked call still gains legs and ends with its record.
    calls.feed(newchannel("a", "PJSIP/201-2", uid="a2"))
    for uid in ("a2", "a"):
        changes = calls.feed(ev("Hangup", Uniqueid=uid, Linkedid="a", Cause="16"))
    assert [c.kind for c in changes if c.kind is ChangeKind.ENDED] == [ChangeKind.ENDED]
    assert calls.live_calls == 1
    assert [c.kind for c in calls.feed(newchannel("d"))] == [ChangeKind.STARTED]


def test_prune_ends_only_known_calls_the_pbx_no_longer_lists() -> None:
    calls = capped(3)
    for linkedid in ("a", "b"):
        calls.feed(newchannel(linkedid))
    known = calls.live_linkedids()
    calls.feed(newchannel("late"))  # started while the list was being gathered
    ended = [c for c in calls.prune([listed("b")], known) if c.kind is ChangeKind.ENDED]
    assert [c.linkedid for c in ended] == ["a"]
    assert ended[0].record is not None
    assert calls.live_linkedids() == {"b", "late"}
