"""Calls: AMI events → live call changes (screen-pops) and final call records."""

from gateway.calls.records import (
    AnswerSource,
    CallChange,
    CallNote,
    CallRecord,
    ChangeKind,
    Direction,
    Disposition,
    LegRecord,
    RingStopReason,
    TalkSegment,
)
from gateway.calls.topology import ChannelClass, ChannelRole, Topology, TopologyError
from gateway.calls.tracker import TRACKED_EVENTS, CallTracker

__all__ = [
    "TRACKED_EVENTS",
    "AnswerSource",
    "CallChange",
    "CallNote",
    "CallRecord",
    "CallTracker",
    "ChangeKind",
    "ChannelClass",
    "ChannelRole",
    "Direction",
    "Disposition",
    "LegRecord",
    "RingStopReason",
    "TalkSegment",
    "Topology",
    "TopologyError",
]
