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

from collections.abc import Callable
from datetime import datetime

from adapters.ami.protocol import AmiMessage
from gateway.calls.finish import check_cdr
from gateway.calls.records import CallChange, CallNote, ChangeKind, DialStatus
from gateway.calls.registry import CallRegistry, number, to_int
from gateway.calls.topology import ChannelRole, Topology

Handler = Callable[[AmiMessage, datetime], None]

TRACKED_EVENTS: frozenset[str] = frozenset(
    {
        "Newchannel",
        "Newstate",
        "NewCallerid",
        "DialBegin",
        "DialState",
        "DialEnd",
        "BridgeEnter",
        "BridgeLeave",
        "Hangup",
        "Cdr",
        "OriginateResponse",
        "BlindTransfer",
        "AttendedTransfer",
    }
)
"""The only events `CallTracker.feed` looks at; a client may subscribe to just these."""


class CallTracker:
    """Feed AMI events one by one; get back what changed. One instance per PBX."""

    def __init__(
        self,
        topology: Topology,
        clock_fn: Callable[[], datetime],
        *,
        max_ended: int = 1024,
        max_live: int | None = None,
    ) -> None:
        """`clock_fn` gives the time of events that carry no ``Timestamp``; see
        `CallRegistry` for `max_live`."""
        self._registry = CallRegistry(topology, clock_fn, max_ended=max_ended, max_live=max_live)
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
        assert set(self._handlers) == TRACKED_EVENTS

    @property
    def live_calls(self) -> int:
        """Calls in progress."""
        return self._registry.live_calls

    @property
    def remembered_ended(self) -> int:
        """Ended calls still remembered for duplicates and late Cdr events."""
        return self._registry.remembered_ended

    def feed(self, event: AmiMessage) -> list[CallChange]:
        """Apply one event; returns the changes it caused (often none)."""
        handler = self._handlers.get(event.name)
        if handler is None:
            return []
        handler(event, self._registry.event_time(event))
        return self._registry.drain()

    def resync(self, channels: list[AmiMessage]) -> list[CallChange]:
        """Adopt the live channels (``CoreShowChannel`` items); end calls no longer there."""
        now = self._registry.now()
        by_call: dict[str, list[AmiMessage]] = {}
        for item in channels:
            uid = item.get("Uniqueid")
            if uid:
                by_call.setdefault(item.get("Linkedid") or uid, []).append(item)
        for call in self._registry.live_list():
            if call.linkedid not in by_call:
                self._registry.finish(call, now, note="resync: gone from the PBX")
        for linkedid, items in by_call.items():
            if self._registry.ended_call(linkedid) is not None:
                continue
            self._registry.adopt_from_list(linkedid, items, now)
        return self._registry.drain()

    @property
    def refused(self) -> int:
        """New calls refused so far because `max_live` calls were tracked."""
        return self._registry.refused

    def live_linkedids(self) -> set[str]:
        """The Linkedids of the calls in progress (a snapshot for `prune`)."""
        return {call.linkedid for call in self._registry.live_list()}

    def prune(self, channels: list[AmiMessage], known: set[str]) -> list[CallChange]:
        """End the calls of `known` that no ``CoreShowChannel`` item names any more.

        Unlike `resync`, nothing is adopted or touched: calls that started (or legs that
        joined) while the list was being gathered are not in `known` or are listed.
        """
        now = self._registry.now()
        listed = {item.get("Linkedid") or item.get("Uniqueid") for item in channels}
        listed |= {item.get("Uniqueid") for item in channels}
        for linkedid in known - listed:
            call = self._registry.live(linkedid)
            if call is not None and not listed.intersection(call.legs):
                self._registry.finish(call, now, note="pruned: gone from the PBX")
        return self._registry.drain()

    # -- handlers --------------------------------------------------------------------------

    def _on_newchannel(self, event: AmiMessage, at: datetime) -> None:
        uid = event.get("Uniqueid")
        if not uid or self._registry.knows_leg(uid):
            return
        linkedid = event.get("Linkedid") or uid
        if self._registry.ended_call(linkedid) is not None:
            return
        call = self._registry.live(linkedid)
        started = call is None
        if call is None:
            call = self._registry.start_call(linkedid, at, adopted=False)
            if call is None:
                return
        leg = self._registry.add_leg(call, uid, event, at)
        self._registry.touch(call, leg, event, at)
        if started:
            call.emit(ChangeKind.STARTED, at)
        self._registry.collect(call)

    def _on_channel(self, event: AmiMessage, at: datetime) -> None:
        found = self._registry.resolve(event, at)
        if found is not None:
            self._registry.collect(found[0])

    def _on_dial_begin(self, event: AmiMessage, at: datetime) -> None:
        dest = self._registry.resolve(event, at, "Dest")
        if dest is None:
            return
        call, leg = dest
        by_channel = self._registry.resolve(event, at) is not None
        if leg.dialed_at is None:
            leg.dialed_at = at
            leg.dialed_by_channel = by_channel
            if leg.cls.role is ChannelRole.TRUNK and by_channel:
                # Outbound: what the caller dialed, as the dialing channel's exten shows it.
                call.callee = number(event.get("Exten")) or call.callee
            call.ring(leg, at)
        self._registry.collect(call)

    def _on_dial_state(self, event: AmiMessage, at: datetime) -> None:
        dest = self._registry.resolve(event, at, "Dest")
        if dest is None:
            return
        call, leg = dest
        if event.get("DialStatus") == "RINGING":
            call.ring(leg, at)
        self._registry.collect(call)

    def _on_dial_end(self, event: AmiMessage, at: datetime) -> None:
        status = (event.get("DialStatus") or "").upper()
        dest = self._registry.resolve(event, at, "Dest") if status else None
        if dest is None:
            return
        call, leg = dest
        if leg.dial_status is None:
            if self._registry.resolve(event, at) is not None:
                leg.dialed_by_channel = True
            leg.dial_status = status
            leg.dial_ended_at = at
            if status == DialStatus.ANSWER:
                call.picked_up(leg)
            elif status != DialStatus.CANCEL:
                # CANCEL waits for the leg's Hangup: its cause tells "answered elsewhere"
                # (26) from "the caller gave up".
                call.stop_ringing(leg, at)
        self._registry.collect(call)

    def _on_bridge_enter(self, event: AmiMessage, at: datetime) -> None:
        bridge_id = event.get("BridgeUniqueid")
        found = self._registry.resolve(event, at) if bridge_id else None
        if found is None or not bridge_id:
            return
        call, leg = found
        if leg.ended_at is None:
            call.enter_bridge(leg, bridge_id, at)
        self._registry.collect(call)

    def _on_bridge_leave(self, event: AmiMessage, at: datetime) -> None:
        found = self._registry.resolve(event, at, adopt=False)
        if found is None:
            return
        call, leg = found
        if leg.bridge is not None and leg.bridge == event.get("BridgeUniqueid"):
            call.leave_bridge(leg, at)
        self._registry.collect(call)

    def _on_hangup(self, event: AmiMessage, at: datetime) -> None:
        found = self._registry.resolve(event, at, adopt=False)
        if found is None:
            return
        call, leg = found
        call.hang_up(leg, at, to_int(event.get("Cause")))
        if call.all_ended:
            self._registry.finish(call, at)
        self._registry.collect(call)

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
        registry = self._registry
        linkedid = (
            event.get("LinkedID") or registry.call_of_leg(uid) or registry.ended_call_of_leg(uid)
        )
        call = registry.live(linkedid)
        if call is not None:
            if key not in call.cdr_keys:
                call.cdr_keys.add(key)
                call.cdrs.append((uid, channel, destination, raw))
            return
        ended = registry.ended_call(linkedid)
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
            registry.emit(
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
        call = self._registry.live(self._registry.call_of_leg(uid))
        if call is not None:
            if call.originate_action_id is None:
                call.originate_action_id = action_id
            return
        if self._registry.ended_call_of_leg(uid) is None:
            # The response may come before the channel's Newchannel (bridged_dial.txt).
            self._registry.remember_originate(uid, action_id)

    def _on_transfer(self, event: AmiMessage, at: datetime) -> None:
        if event.get("Result") != "Success":
            return
        uid = event.get("TransfereeUniqueid") or ""
        call = self._registry.live(self._registry.call_of_leg(uid))
        if call is None:
            return
        kind = "blind_transfer" if event.name == "BlindTransfer" else "attended_transfer"
        by = event.get("TransfererChannel") or event.get("OrigTransfererChannel") or ""
        to = event.get("Extension") or event.get("TransferTargetChannel") or ""
        note = CallNote(kind, uid, f"{by} -> {to}")
        if note not in call.notes:
            call.notes.append(note)
