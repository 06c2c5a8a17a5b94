"""The mutable state of one live call: legs, bridges, ringing, conversations.

Rules (the tracker's docstring has the full list):

* A conversation is a bridge holding at least two channels that are Up. The first one
  sets `answered_at`. An operator leg that is Up in a conversation talks; its time is
  a `TalkSegment`, `with_customer` when some other member is not an operator.
* An extension rings when a leg classified as an operator is dialed (DialBegin), reports
  DialState RINGING, or goes to state Ringing (5) — never the call's first leg (the
  originator, e.g. the operator's own phone in click-to-call). It stops silently when that
  leg answers; otherwise a RING_STOPPED change says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from gateway.calls.records import (
    ANSWERED_ELSEWHERE_CAUSE,
    CallChange,
    CallNote,
    ChangeKind,
    DialStatus,
    Direction,
    Disposition,
    RingStopReason,
    TalkSegment,
    disposition_from_cause,
)
from gateway.calls.topology import ChannelClass, ChannelRole

STATE_RINGING = 5
STATE_UP = 6

_STOP_BY_STATUS: dict[str, RingStopReason] = {
    DialStatus.BUSY: RingStopReason.BUSY,
    DialStatus.NOANSWER: RingStopReason.NO_ANSWER,
    DialStatus.CHANUNAVAIL: RingStopReason.FAILED,
    DialStatus.CONGESTION: RingStopReason.FAILED,
}
_STOP_BY_DISPOSITION = {
    Disposition.BUSY: RingStopReason.BUSY,
    Disposition.FAILED: RingStopReason.FAILED,
}


@dataclass(slots=True)
class Leg:
    """One channel of a live call."""

    uniqueid: str
    channel: str
    cls: ChannelClass
    started_at: datetime
    state: int | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    cause: int | None = None
    dial_status: str | None = None
    dialed_at: datetime | None = None
    dialed_by_channel: bool = False
    dial_ended_at: datetime | None = None
    ringing: bool = False
    bridge: str | None = None
    talk_since: datetime | None = None
    talk_with_customer: bool = False
    talk_seconds: int = 0

    @property
    def extension(self) -> str | None:
        """The operator extension, if this leg is an operator's."""
        return self.cls.extension if self.cls.role is ChannelRole.OPERATOR else None

    @property
    def up(self) -> bool:
        """Answered and not hung up."""
        return self.state == STATE_UP and self.ended_at is None


@dataclass(slots=True)
class LiveCall:
    """A call in progress, keyed by Linkedid; changes queue up in `out`."""

    linkedid: str
    started_at: datetime
    adopted: bool = False
    first_uid: str | None = None
    legs: dict[str, Leg] = field(default_factory=dict)
    bridges: dict[str, set[str]] = field(default_factory=dict)
    caller: str | None = None
    callee: str | None = None
    originate_action_id: str | None = None
    answered_at: datetime | None = None
    first_up_at: datetime | None = None
    talk_end: datetime | None = None
    conversations: set[str] = field(default_factory=set)
    answered_exts: list[str] = field(default_factory=list)
    rang: list[str] = field(default_factory=list)
    segments: list[TalkSegment] = field(default_factory=list)
    notes: list[CallNote] = field(default_factory=list)
    cdrs: list[tuple[str, str, str, str]] = field(default_factory=list)
    cdr_keys: set[tuple[str, ...]] = field(default_factory=set)
    out: list[CallChange] = field(default_factory=list)

    # -- helpers -------------------------------------------------------------------------

    @property
    def first_leg(self) -> Leg | None:
        """The originating channel (Uniqueid == Linkedid when we saw it start)."""
        return self.legs.get(self.first_uid) if self.first_uid else None

    @property
    def direction(self) -> Direction:
        """Inbound from a trunk, outbound to a trunk, or internal."""
        first = self.first_leg
        if first is not None and first.cls.role is ChannelRole.TRUNK:
            return Direction.INBOUND
        if any(leg.cls.role is ChannelRole.TRUNK for leg in self.legs.values()):
            return Direction.OUTBOUND
        return Direction.INTERNAL

    @property
    def all_ended(self) -> bool:
        """True when every known leg has hung up."""
        return all(leg.ended_at is not None for leg in self.legs.values())

    def emit(
        self,
        kind: ChangeKind,
        at: datetime,
        extensions: tuple[str, ...] = (),
        reason: RingStopReason | None = None,
    ) -> None:
        """Queue a change for the tracker to return."""
        self.out.append(
            CallChange(kind, self.linkedid, at, self.caller, self.direction, extensions, reason)
        )

    def _someone_else_answered(self, leg: Leg) -> bool:
        if self.answered_at is not None:
            return True
        return any(
            other is not leg and other.dialed_by_channel and other.dial_status == DialStatus.ANSWER
            for other in self.legs.values()
        )

    # -- ringing -------------------------------------------------------------------------

    def ring(self, leg: Leg, at: datetime) -> None:
        """Mark an operator leg as ringing; the first ringing leg of an extension pops."""
        ext = leg.extension
        if (
            ext is None
            or leg.ringing
            or leg.uniqueid == self.first_uid
            or leg.ended_at is not None
            or leg.dial_status is not None
            or leg.state == STATE_UP
        ):
            return
        already = self._ext_ringing(ext)
        leg.ringing = True
        if ext not in self.rang:
            self.rang.append(ext)
        if not already:
            self.emit(ChangeKind.RINGING, at, (ext,))

    def _ext_ringing(self, ext: str) -> bool:
        return any(leg.ringing and leg.extension == ext for leg in self.legs.values())

    def picked_up(self, leg: Leg) -> None:
        """The leg answered: it stops ringing without a RING_STOPPED change."""
        leg.ringing = False

    def stop_ringing(self, leg: Leg, at: datetime) -> None:
        """The leg will not answer: say why, once per extension."""
        if not leg.ringing:
            return
        leg.ringing = False
        ext = leg.extension
        if ext is not None and not self._ext_ringing(ext):
            self.emit(ChangeKind.RING_STOPPED, at, (ext,), self._stop_reason(leg))

    def _stop_reason(self, leg: Leg) -> RingStopReason:
        if leg.cause == ANSWERED_ELSEWHERE_CAUSE:
            return RingStopReason.ANSWERED_ELSEWHERE
        by_status = _STOP_BY_STATUS.get(leg.dial_status or "")
        if by_status is not None:
            return by_status
        if self._someone_else_answered(leg):
            return RingStopReason.ANSWERED_ELSEWHERE
        if leg.dial_status is None and leg.cause is not None:
            by_cause = _STOP_BY_DISPOSITION.get(disposition_from_cause(leg.cause))
            if by_cause is not None:
                return by_cause
        return RingStopReason.CANCELLED

    # -- bridges and conversations -------------------------------------------------------

    def enter_bridge(self, leg: Leg, bridge_id: str, at: datetime) -> None:
        """Put `leg` into `bridge_id` (leaving any other bridge first)."""
        if leg.bridge == bridge_id:
            return
        if leg.bridge is not None:
            self.leave_bridge(leg, at)
        leg.bridge = bridge_id
        self.bridges.setdefault(bridge_id, set()).add(leg.uniqueid)
        self.evaluate_bridge(bridge_id, at)

    def leave_bridge(self, leg: Leg, at: datetime) -> None:
        """Take `leg` out of its bridge, if any."""
        bridge_id = leg.bridge
        if bridge_id is None:
            return
        self._close_talk(leg, at)
        leg.bridge = None
        members = self.bridges.get(bridge_id)
        if members is not None:
            members.discard(leg.uniqueid)
        self.evaluate_bridge(bridge_id, at)
        if not members:
            self.bridges.pop(bridge_id, None)

    def evaluate_bridge(self, bridge_id: str, at: datetime) -> None:
        """Open/close talk for the members of a bridge after any change to it."""
        members = [self.legs[uid] for uid in self.bridges.get(bridge_id, ()) if uid in self.legs]
        up = [leg for leg in members if leg.up]
        talking = len(up) >= 2
        if not talking:
            for leg in members:
                self._close_talk(leg, at)
            if bridge_id in self.conversations:
                self.conversations.discard(bridge_id)
                if not self.conversations:
                    self.talk_end = at
            return
        first_conversation = self.answered_at is None
        if first_conversation:
            self.answered_at = at
        self.conversations.add(bridge_id)
        self.talk_end = None
        operators = [leg for leg in up if leg.extension is not None]
        for leg in up:
            others = [o for o in up if o is not leg]
            with_customer = any(o.extension is None for o in others)
            if leg.talk_since is not None and leg.talk_with_customer != with_customer:
                self._close_talk(leg, at)
            if leg.talk_since is None:
                leg.talk_since = at
                leg.talk_with_customer = with_customer
            self.picked_up(leg)
        new = [
            leg.extension
            for leg in operators
            if leg.extension not in self.answered_exts
            and not (leg.uniqueid == self.first_uid and len(operators) > 1)
        ]
        fresh = tuple(dict.fromkeys(ext for ext in new if ext is not None))
        self.answered_exts.extend(fresh)
        if fresh or first_conversation:
            self.emit(ChangeKind.ANSWERED, at, fresh)

    def _close_talk(self, leg: Leg, at: datetime) -> None:
        since = leg.talk_since
        if since is None:
            return
        leg.talk_since = None
        seconds = max(0, round((at - since).total_seconds()))
        leg.talk_seconds += seconds
        ext = leg.extension
        if ext is not None:
            self.segments.append(
                TalkSegment(
                    ext, leg.uniqueid, leg.bridge or "", since, at, seconds, leg.talk_with_customer
                )
            )

    def hang_up(self, leg: Leg, at: datetime, cause: int | None) -> None:
        """The leg is gone: leave its bridge, stop its ringing."""
        if leg.ended_at is not None:
            return
        leg.ended_at = at
        leg.cause = cause
        self.leave_bridge(leg, at)
        self.stop_ringing(leg, at)
