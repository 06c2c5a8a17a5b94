"""Where the tracker keeps its calls: live calls and legs, ended-call memory, adoption.

`CallRegistry` is the tracker's bookkeeping (resolve an event to its call and leg, apply
what a channel event says, end a call, adopt channels from a CoreShowChannels list);
`gateway.calls.tracker.CallTracker` holds one and routes each event to it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from adapters.ami.protocol import AmiMessage
from gateway.calls.finish import EndedCall, build_record
from gateway.calls.records import CallChange, CallNote, ChangeKind
from gateway.calls.state import STATE_RINGING, STATE_UP, Leg, LiveCall
from gateway.calls.topology import Topology
from gateway.core.clock import as_utc

_UNKNOWN_NUMBERS = frozenset({"", "<unknown>", "unknown"})
MAX_PENDING_ORIGINATES = 256


def to_int(value: str | None) -> int | None:
    """An integer header value, or None."""
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def number(value: str | None) -> str | None:
    """A caller-id number, or None for empty and ``<unknown>``."""
    return None if value is None or value.strip().lower() in _UNKNOWN_NUMBERS else value


def duration(value: str | None) -> timedelta:
    """``Duration`` of CoreShowChannel: ``HH:MM:SS`` (or plain seconds)."""
    total = 0
    for part in (value or "").split(":"):
        if not part.isdigit():
            return timedelta()
        total = total * 60 + int(part)
    return timedelta(seconds=total)


class CallRegistry:
    """Live calls by Linkedid, legs by Uniqueid, and a bounded memory of ended calls."""

    def __init__(
        self,
        topology: Topology,
        clock_fn: Callable[[], datetime],
        *,
        max_ended: int = 1024,
        max_live: int | None = None,
    ) -> None:
        """`clock_fn` gives the time of events that carry no ``Timestamp``; beyond
        `max_live` calls in progress, new ones are refused (counted in `refused`)."""
        self._topology = topology
        self._clock_fn = clock_fn
        self._max_ended = max_ended
        self._max_live = max_live
        self.refused = 0
        self._calls: dict[str, LiveCall] = {}
        self._leg_call: dict[str, str] = {}
        self._ended: OrderedDict[str, EndedCall] = OrderedDict()
        self._ended_uids: dict[str, str] = {}
        self._originates: OrderedDict[str, str] = OrderedDict()
        self._out: list[CallChange] = []

    @property
    def live_calls(self) -> int:
        """Calls in progress."""
        return len(self._calls)

    @property
    def remembered_ended(self) -> int:
        """Ended calls still remembered for duplicates and late Cdr events."""
        return len(self._ended)

    # -- lookups ---------------------------------------------------------------------------

    def live(self, linkedid: str | None) -> LiveCall | None:
        """The call in progress keyed `linkedid`, if any."""
        return self._calls.get(linkedid) if linkedid else None

    def live_list(self) -> list[LiveCall]:
        """Every call in progress (a copy: ending one while iterating is fine)."""
        return list(self._calls.values())

    def call_of_leg(self, uid: str) -> str | None:
        """The Linkedid of the live call leg `uid` belongs to."""
        return self._leg_call.get(uid)

    def ended_call_of_leg(self, uid: str) -> str | None:
        """The Linkedid of the remembered ended call leg `uid` belonged to."""
        return self._ended_uids.get(uid)

    def knows_leg(self, uid: str) -> bool:
        """Whether `uid` is a leg of a live or a remembered ended call."""
        return uid in self._leg_call or uid in self._ended_uids

    def ended_call(self, linkedid: str | None) -> EndedCall | None:
        """What is remembered of the ended call keyed `linkedid`."""
        return self._ended.get(linkedid) if linkedid else None

    def remember_originate(self, uid: str, action_id: str) -> None:
        """An OriginateResponse came before its channel: pair them when it appears."""
        self._originates[uid] = action_id
        while len(self._originates) > MAX_PENDING_ORIGINATES:
            self._originates.popitem(last=False)

    def emit(self, change: CallChange) -> None:
        """Queue a change that belongs to no live call (a late Cdr's mismatch)."""
        self._out.append(change)

    # -- plumbing --------------------------------------------------------------------------

    def now(self) -> datetime:
        """The injected clock's time, in UTC."""
        return as_utc(self._clock_fn())

    def event_time(self, event: AmiMessage) -> datetime:
        """The event's ``Timestamp``, else now."""
        stamp = event.get("Timestamp")
        if stamp:
            try:
                return datetime.fromtimestamp(float(stamp), UTC)
            except (ValueError, OverflowError, OSError):
                pass
        return self.now()

    def drain(self) -> list[CallChange]:
        """The changes queued since the last drain."""
        out, self._out = self._out, []
        return out

    def collect(self, call: LiveCall) -> None:
        """Queue what `call` emitted."""
        if call.out:
            self._out.extend(call.out)
            call.out.clear()

    def start_call(self, linkedid: str, at: datetime, *, adopted: bool) -> LiveCall | None:
        """A new live call, or None when `max_live` calls are already tracked.

        Every event of a refused call is refused (and counted) again, so a refused call
        is adopted by its next event once there is room.
        """
        if self._max_live is not None and len(self._calls) >= self._max_live:
            self.refused += 1
            return None
        call = LiveCall(linkedid, at, adopted=adopted)
        self._calls[linkedid] = call
        return call

    def add_leg(
        self, call: LiveCall, uid: str, event: AmiMessage, at: datetime, prefix: str = ""
    ) -> Leg:
        """Add the leg an event (or its ``Dest*`` side) names to `call`."""
        channel = event.get(prefix + "Channel") or ""
        exten = event.get(prefix + "Exten")
        cid = event.get(prefix + "CallerIDNum")
        cls = self._topology.classify(channel, exten=exten, caller_id_num=number(cid))
        leg = Leg(uid, channel, cls, at)
        call.legs[uid] = leg
        self._leg_call[uid] = call.linkedid
        if uid == call.linkedid or (call.first_uid is None and not call.adopted):
            call.first_uid = uid
            if call.callee is None:
                call.callee = number(exten)
        action_id = self._originates.pop(uid, None)
        if action_id is not None and call.originate_action_id is None:
            call.originate_action_id = action_id
        return leg

    def resolve(
        self, event: AmiMessage, at: datetime, prefix: str = "", *, adopt: bool = True
    ) -> tuple[LiveCall, Leg] | None:
        """The call and leg an event (or its ``Dest*`` side) is about, adopting if allowed."""
        uid = event.get(prefix + "Uniqueid")
        if not uid or uid in self._ended_uids:
            return None
        linkedid = self._leg_call.get(uid) or event.get(prefix + "Linkedid") or uid
        if linkedid in self._ended:
            return None
        call = self._calls.get(linkedid)
        joined = False
        if call is None:
            if not adopt:
                return None
            call = self.start_call(linkedid, at, adopted=True)
            if call is None:
                return None
            leg = self.add_leg(call, uid, event, at, prefix)
            self._note_caller(call, leg, event, prefix)
            call.emit(ChangeKind.STARTED, at)
            joined = True
        else:
            found = call.legs.get(uid)
            if found is None:
                if not adopt:
                    return None
                found = self.add_leg(call, uid, event, at, prefix)
                joined = True
            leg = found
        self.touch(call, leg, event, at, prefix, adopting=joined)
        return call, leg

    @staticmethod
    def _note_caller(call: LiveCall, leg: Leg, event: AmiMessage, prefix: str = "") -> None:
        """The caller is the first leg's number as first seen (an operator's: its extension)."""
        if leg.uniqueid == call.first_uid and call.caller is None:
            if leg.extension is not None:
                call.caller = leg.extension
            else:
                call.caller = number(event.get(prefix + "CallerIDNum"))

    def touch(
        self,
        call: LiveCall,
        leg: Leg,
        event: AmiMessage,
        at: datetime,
        prefix: str = "",
        *,
        adopting: bool = False,
    ) -> None:
        """Apply what any channel event says about its channel: caller number and state.

        `adopting`: the leg is only found Up (a channel we join mid-call, or a
        CoreShowChannels item), not seen answering. An inbound leg a queue or IVR holds is
        Up too, so that Up is no application answer of the call; only a bridge is.
        """
        self._note_caller(call, leg, event, prefix)
        state = to_int(event.get(prefix + "ChannelState"))
        if state is None or state == leg.state or leg.ended_at is not None:
            return
        leg.state = state
        if state == STATE_UP:
            if leg.answered_at is None:
                leg.answered_at = at
            if leg.uniqueid == call.first_uid and call.first_up_at is None and not adopting:
                call.first_up_at = at
            call.picked_up(leg)
            if leg.bridge is not None:
                call.evaluate_bridge(leg.bridge, at)
        elif state == STATE_RINGING:
            call.ring(leg, at)

    # -- ending ----------------------------------------------------------------------------

    def finish(self, call: LiveCall, at: datetime, note: str | None = None) -> None:
        """Hang up what is left, emit the ENDED change and remember the call as ended."""
        for leg in call.legs.values():
            call.hang_up(leg, at, None)
        if note is not None:
            call.notes.append(CallNote("closed", None, note))
        record, tomb = build_record(call, at)
        call.out.append(
            CallChange(
                ChangeKind.ENDED, call.linkedid, at, call.caller, call.direction, (), None, record
            )
        )
        self.collect(call)
        del self._calls[call.linkedid]
        for uid in call.legs:
            self._leg_call.pop(uid, None)
            self._ended_uids[uid] = call.linkedid
        self._ended[call.linkedid] = tomb
        while len(self._ended) > self._max_ended:
            _, old = self._ended.popitem(last=False)
            for uid in old.uids:
                self._ended_uids.pop(uid, None)

    # -- resync ----------------------------------------------------------------------------

    def adopt_from_list(self, linkedid: str, items: list[AmiMessage], now: datetime) -> None:
        """Make call `linkedid` match a CoreShowChannels list of its channels."""
        call = self._calls.get(linkedid)
        if call is None:
            oldest = max((duration(item.get("Duration")) for item in items), default=timedelta())
            call = self.start_call(linkedid, now - oldest, adopted=True)
            if call is None:
                return
            # The originating channel first, so that it becomes the first leg.
            items = sorted(items, key=lambda item: item.get("Uniqueid") != linkedid)
            first = items[0]
            leg = self.add_leg(
                call, first["Uniqueid"], first, now - duration(first.get("Duration"))
            )
            self._note_caller(call, leg, first)
            call.emit(ChangeKind.STARTED, now)
        listed: set[str] = set()
        for item in items:
            uid = item.get("Uniqueid") or ""
            listed.add(uid)
            known = call.legs.get(uid)
            if known is None:
                known = self.add_leg(call, uid, item, now - duration(item.get("Duration")))
            leg = known
            self.touch(call, leg, item, now, adopting=True)
            bridge_id = item.get("BridgeId") or ""
            if leg.ended_at is None and bridge_id:
                call.enter_bridge(leg, bridge_id, now)
            elif leg.bridge is not None:
                call.leave_bridge(leg, now)
        for leg in list(call.legs.values()):
            if leg.uniqueid not in listed:
                call.hang_up(leg, now, None)
        self.collect(call)
