"""The call state machine: AMI events in, `CallChange`s and final `CallRecord`s out.

Pure: no I/O, no database, no network; time comes from the event's ``Timestamp`` header
when present, else from the injected ``clock_fn()`` (called at most once per event).

Rules:

* A call is keyed by ``Linkedid``, a leg by ``Uniqueid``; a leg stays in the call it
  started in. The call starts at its first ``Newchannel`` and ends when every leg it knows
  has hung up; the ENDED change carries the record and the call is dropped. CEL events
  are ignored: Asterisk sends them ahead of the manager events (busy.txt has
  ``LINKEDID_END`` before the DialEnd and both Hangups), so they cannot end a call.
  A small bounded memory of ended calls makes late duplicates no-ops and lets late Cdr
  events be cross-checked.
* Answered = the first bridge holding two Up channels (`gateway.calls.state`); dispositions,
  the answerer and Cdr cross-checks are described in `gateway.calls.finish`.
* Calls already in progress: any channel event (except ``Hangup`` and ``Cdr``) for an
  unknown call adopts it (`adopted=True`, started now); `resync()` adopts the live channels
  of ``CoreShowChannels`` and ends the calls the PBX no longer has.
* Idempotent: every handler checks the state it would change, so feeding an event twice
  changes nothing. Events without a handler cost one dict lookup.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from adapters.ami.protocol import AmiMessage
from gateway.calls.finish import EndedCall, build_record, check_cdr
from gateway.calls.records import CallChange, CallNote, ChangeKind
from gateway.calls.state import STATE_RINGING, STATE_UP, Leg, LiveCall
from gateway.calls.topology import ChannelRole, Topology
from gateway.clock import as_utc

Handler = Callable[[AmiMessage, datetime], None]

_UNKNOWN_NUMBERS = frozenset({"", "<unknown>", "unknown"})
_MAX_PENDING_ORIGINATES = 256


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _number(value: str | None) -> str | None:
    return None if value is None or value.strip().lower() in _UNKNOWN_NUMBERS else value


def _duration(value: str | None) -> timedelta:
    """``Duration`` of CoreShowChannel: ``HH:MM:SS`` (or plain seconds)."""
    total = 0
    for part in (value or "").split(":"):
        if not part.isdigit():
            return timedelta()
        total = total * 60 + int(part)
    return timedelta(seconds=total)


class CallTracker:
    """Feed AMI events one by one; get back what changed. One instance per PBX."""

    def __init__(
        self,
        topology: Topology,
        clock_fn: Callable[[], datetime],
        *,
        max_ended: int = 1024,
    ) -> None:
        """`clock_fn` gives the time of events that carry no ``Timestamp``."""
        self._topology = topology
        self._clock_fn = clock_fn
        self._max_ended = max_ended
        self._calls: dict[str, LiveCall] = {}
        self._leg_call: dict[str, str] = {}
        self._ended: OrderedDict[str, EndedCall] = OrderedDict()
        self._ended_uids: dict[str, str] = {}
        self._originates: OrderedDict[str, str] = OrderedDict()
        self._out: list[CallChange] = []
        self._handlers: dict[str | None, Handler] = {
            "Newchannel": self._on_newchannel,
            "Newstate": self._on_channel,
            "NewCallerid": self._on_channel,
            "DialBegin": self._on_dial_begin,
            "DialState": self._on_dial_state,
            "DialEnd": self._on_dial_end,
            "BridgeEnter": self._on_bridge_enter,
            "BridgeLeave": self._on_bridge_leave,
            "Hangup": self._on_hangup,
            "Cdr": self._on_cdr,
            "OriginateResponse": self._on_originate_response,
            "BlindTransfer": self._on_transfer,
            "AttendedTransfer": self._on_transfer,
        }

    # -- public ----------------------------------------------------------------------------

    @property
    def live_calls(self) -> int:
        """Calls in progress."""
        return len(self._calls)

    @property
    def remembered_ended(self) -> int:
        """Ended calls still remembered for duplicates and late Cdr events."""
        return len(self._ended)

    def feed(self, event: AmiMessage) -> list[CallChange]:
        """Apply one event; returns the changes it caused (often none)."""
        handler = self._handlers.get(event.name)
        if handler is None:
            return []
        handler(event, self._event_time(event))
        return self._drain()

    def resync(self, channels: list[AmiMessage]) -> list[CallChange]:
        """Adopt the live channels (``CoreShowChannel`` items); end calls no longer there."""
        now = self._now()
        by_call: dict[str, list[AmiMessage]] = {}
        for item in channels:
            uid = item.get("Uniqueid")
            if uid:
                by_call.setdefault(item.get("Linkedid") or uid, []).append(item)
        for linkedid in list(self._calls):
            if linkedid not in by_call:
                self._finish(self._calls[linkedid], now, note="resync: gone from the PBX")
        for linkedid, items in by_call.items():
            if linkedid in self._ended:
                continue
            self._adopt_from_list(linkedid, items, now)
        return self._drain()

    # -- plumbing --------------------------------------------------------------------------

    def _now(self) -> datetime:
        return as_utc(self._clock_fn())

    def _event_time(self, event: AmiMessage) -> datetime:
        stamp = event.get("Timestamp")
        if stamp:
            try:
                return datetime.fromtimestamp(float(stamp), UTC)
            except (ValueError, OverflowError, OSError):
                pass
        return self._now()

    def _drain(self) -> list[CallChange]:
        out, self._out = self._out, []
        return out

    def _collect(self, call: LiveCall) -> None:
        if call.out:
            self._out.extend(call.out)
            call.out.clear()

    def _start_call(self, linkedid: str, at: datetime, *, adopted: bool) -> LiveCall:
        call = LiveCall(linkedid, at, adopted=adopted)
        self._calls[linkedid] = call
        return call

    def _add_leg(
        self, call: LiveCall, uid: str, event: AmiMessage, at: datetime, prefix: str = ""
    ) -> Leg:
        channel = event.get(prefix + "Channel") or ""
        exten = event.get(prefix + "Exten")
        cid = event.get(prefix + "CallerIDNum")
        cls = self._topology.classify(channel, exten=exten, caller_id_num=_number(cid))
        leg = Leg(uid, channel, cls, at)
        call.legs[uid] = leg
        self._leg_call[uid] = call.linkedid
        if uid == call.linkedid or (call.first_uid is None and not call.adopted):
            call.first_uid = uid
            if call.callee is None:
                call.callee = _number(exten)
        action_id = self._originates.pop(uid, None)
        if action_id is not None and call.originate_action_id is None:
            call.originate_action_id = action_id
        return leg

    def _resolve(
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
        if call is None:
            if not adopt:
                return None
            call = self._start_call(linkedid, at, adopted=True)
            leg = self._add_leg(call, uid, event, at, prefix)
            self._note_caller(call, leg, event, prefix)
            call.emit(ChangeKind.STARTED, at)
        else:
            found = call.legs.get(uid)
            if found is None:
                if not adopt:
                    return None
                found = self._add_leg(call, uid, event, at, prefix)
            leg = found
        self._touch(call, leg, event, at, prefix)
        return call, leg

    @staticmethod
    def _note_caller(call: LiveCall, leg: Leg, event: AmiMessage, prefix: str = "") -> None:
        """The caller is the first leg's number as first seen (an operator's: its extension)."""
        if leg.uniqueid == call.first_uid and call.caller is None:
            if leg.extension is not None:
                call.caller = leg.extension
            else:
                call.caller = _number(event.get(prefix + "CallerIDNum"))

    def _touch(
        self, call: LiveCall, leg: Leg, event: AmiMessage, at: datetime, prefix: str = ""
    ) -> None:
        """Apply what any channel event says about its channel: caller number and state."""
        self._note_caller(call, leg, event, prefix)
        state = _int(event.get(prefix + "ChannelState"))
        if state is None or state == leg.state or leg.ended_at is not None:
            return
        leg.state = state
        if state == STATE_UP:
            if leg.answered_at is None:
                leg.answered_at = at
            if leg.uniqueid == call.first_uid and call.first_up_at is None:
                call.first_up_at = at
            call.picked_up(leg)
            if leg.bridge is not None:
                call.evaluate_bridge(leg.bridge, at)
        elif state == STATE_RINGING:
            call.ring(leg, at)

    # -- handlers --------------------------------------------------------------------------

    def _on_newchannel(self, event: AmiMessage, at: datetime) -> None:
        uid = event.get("Uniqueid")
        if not uid or uid in self._leg_call or uid in self._ended_uids:
            return
        linkedid = event.get("Linkedid") or uid
        if linkedid in self._ended:
            return
        call = self._calls.get(linkedid)
        started = call is None
        if call is None:
            call = self._start_call(linkedid, at, adopted=False)
        leg = self._add_leg(call, uid, event, at)
        self._touch(call, leg, event, at)
        if started:
            call.emit(ChangeKind.STARTED, at)
        self._collect(call)

    def _on_channel(self, event: AmiMessage, at: datetime) -> None:
        found = self._resolve(event, at)
        if found is not None:
            self._collect(found[0])

    def _on_dial_begin(self, event: AmiMessage, at: datetime) -> None:
        dest = self._resolve(event, at, "Dest")
        if dest is None:
            return
        call, leg = dest
        by_channel = self._resolve(event, at) is not None
        if leg.dialed_at is None:
            leg.dialed_at = at
            leg.dialed_by_channel = by_channel
            if leg.cls.role is ChannelRole.TRUNK and by_channel:
                # Outbound: what the caller dialed, as the dialing channel's exten shows it.
                call.callee = _number(event.get("Exten")) or call.callee
            call.ring(leg, at)
        self._collect(call)

    def _on_dial_state(self, event: AmiMessage, at: datetime) -> None:
        dest = self._resolve(event, at, "Dest")
        if dest is None:
            return
        call, leg = dest
        if event.get("DialStatus") == "RINGING":
            call.ring(leg, at)
        self._collect(call)

    def _on_dial_end(self, event: AmiMessage, at: datetime) -> None:
        dest = self._resolve(event, at, "Dest")
        status = (event.get("DialStatus") or "").upper()
        if dest is None or not status:
            return
        call, leg = dest
        if leg.dial_status is None:
            if self._resolve(event, at) is not None:
                leg.dialed_by_channel = True
            leg.dial_status = status
            leg.dial_ended_at = at
            if status == "ANSWER":
                call.picked_up(leg)
            elif status != "CANCEL":
                # CANCEL waits for the leg's Hangup: its cause tells "answered elsewhere"
                # (26) from "the caller gave up".
                call.stop_ringing(leg, at)
        self._collect(call)

    def _on_bridge_enter(self, event: AmiMessage, at: datetime) -> None:
        found = self._resolve(event, at)
        bridge_id = event.get("BridgeUniqueid")
        if found is None or not bridge_id:
            return
        call, leg = found
        if leg.ended_at is None:
            call.enter_bridge(leg, bridge_id, at)
        self._collect(call)

    def _on_bridge_leave(self, event: AmiMessage, at: datetime) -> None:
        found = self._resolve(event, at, adopt=False)
        if found is None:
            return
        call, leg = found
        if leg.bridge is not None and leg.bridge == event.get("BridgeUniqueid"):
            call.leave_bridge(leg, at)
        self._collect(call)

    def _on_hangup(self, event: AmiMessage, at: datetime) -> None:
        found = self._resolve(event, at, adopt=False)
        if found is None:
            return
        call, leg = found
        call.hang_up(leg, at, _int(event.get("Cause")))
        if call.all_ended:
            self._finish(call, at)
        self._collect(call)

    def _on_cdr(self, event: AmiMessage, at: datetime) -> None:
        uid = event.get("UniqueID") or ""
        key = (
            uid,
            event.get("Channel") or "",
            event.get("DestinationChannel") or "",
            event.get("Disposition") or "",
            event.get("Duration") or "",
            event.get("BillableSeconds") or "",
            event.get("AnswerTime") or "",
        )
        _, channel, destination, raw = key[:4]
        linkedid = event.get("LinkedID") or self._leg_call.get(uid) or self._ended_uids.get(uid)
        call = self._calls.get(linkedid) if linkedid else None
        if call is not None:
            if key not in call.cdr_keys:
                call.cdr_keys.add(key)
                call.cdrs.append((uid, channel, destination, raw))
            return
        ended = self._ended.get(linkedid) if linkedid else None
        if ended is None or key in ended.cdr_keys:
            return
        ended.cdr_keys.add(key)
        note = check_cdr(
            uniqueid=uid,
            channel=channel,
            destination=destination,
            raw=raw,
            first_uid=ended.first_uid,
            disposition=ended.disposition,
            outcomes=ended.outcomes,
        )
        if note is not None:
            self._out.append(
                CallChange(
                    ChangeKind.CDR_MISMATCH,
                    ended.linkedid,
                    at,
                    ended.caller,
                    ended.direction,
                    note=note,
                )
            )

    def _on_originate_response(self, event: AmiMessage, at: datetime) -> None:
        uid = event.get("Uniqueid")
        action_id = event.action_id
        if not uid or not action_id or event.get("Response") != "Success":
            return
        linkedid = self._leg_call.get(uid)
        if linkedid is not None:
            call = self._calls[linkedid]
            if call.originate_action_id is None:
                call.originate_action_id = action_id
            return
        if uid not in self._ended_uids:
            # The response may come before the channel's Newchannel (bridged_dial.txt).
            self._originates[uid] = action_id
            while len(self._originates) > _MAX_PENDING_ORIGINATES:
                self._originates.popitem(last=False)

    def _on_transfer(self, event: AmiMessage, at: datetime) -> None:
        if event.get("Result") != "Success":
            return
        uid = event.get("TransfereeUniqueid") or ""
        linkedid = self._leg_call.get(uid)
        call = self._calls.get(linkedid) if linkedid else None
        if call is None:
            return
        kind = "blind_transfer" if event.name == "BlindTransfer" else "attended_transfer"
        by = event.get("TransfererChannel") or event.get("OrigTransfererChannel") or ""
        to = event.get("Extension") or event.get("TransferTargetChannel") or ""
        note = CallNote(kind, uid, f"{by} -> {to}")
        if note not in call.notes:
            call.notes.append(note)

    # -- ending ----------------------------------------------------------------------------

    def _finish(self, call: LiveCall, at: datetime, note: str | None = None) -> None:
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
        self._collect(call)
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

    def _adopt_from_list(self, linkedid: str, items: list[AmiMessage], now: datetime) -> None:
        call = self._calls.get(linkedid)
        if call is None:
            oldest = max((_duration(item.get("Duration")) for item in items), default=timedelta())
            call = self._start_call(linkedid, now - oldest, adopted=True)
            # The originating channel first, so that it becomes the first leg.
            items = sorted(items, key=lambda item: item.get("Uniqueid") != linkedid)
            first = items[0]
            leg = self._add_leg(
                call, first["Uniqueid"], first, now - _duration(first.get("Duration"))
            )
            self._note_caller(call, leg, first)
            call.emit(ChangeKind.STARTED, now)
        listed: set[str] = set()
        for item in items:
            uid = item.get("Uniqueid") or ""
            listed.add(uid)
            known = call.legs.get(uid)
            if known is None:
                known = self._add_leg(call, uid, item, now - _duration(item.get("Duration")))
            leg = known
            self._touch(call, leg, item, now)
            bridge_id = item.get("BridgeId") or ""
            if leg.ended_at is None and bridge_id:
                call.enter_bridge(leg, bridge_id, now)
            elif leg.bridge is not None:
                call.leave_bridge(leg, now)
        for leg in list(call.legs.values()):
            if leg.uniqueid not in listed:
                call.hang_up(leg, now, None)
        self._collect(call)
