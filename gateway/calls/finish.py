"""Turn a finished `LiveCall` into a `CallRecord`, and cross-check Cdr events against it.

Disposition rule, in order:

1. A conversation happened (a bridge with two Up channels): ``answered``, answer source
   ``bridge``, `answered_at` = the first such bridge, `talk_seconds` = from then to the end
   of the last conversation (or the hangup), hold and consultation included.
2. Otherwise look at the dials placed *by a channel of the call* (DialEnd with a
   ``Channel``: Dial, Queue, a ring group); when there are none, at the dials without a
   calling channel (Originate). Any ANSWER → ``answered`` by an ``application``
   (`answered_at` = that DialEnd, `talk_seconds` = 0: an IVR, voicemail or Wait() is no
   conversation). Else NOANSWER/CANCEL → ``no_answer``, then BUSY → ``busy``, then
   CHANUNAVAIL/CONGESTION → ``failed``.
3. No dial outcome at all: the first channel was seen going Up and no operator rang →
   ``answered`` by an ``application`` (an IVR or voicemail alone); otherwise its hangup
   cause decides (17/21 busy; 0/16/18/19/26/31 no_answer; else failed). A call that rang
   operators is answered only by one of them: when how their ringing ended was never
   seen (the call vanished in an AMI gap and a resync closed it), the queue's or IVR's
   pickup of the inbound leg is no answer. Neither is an Up leg the tracker only found
   Up (adopted mid-call or from ``CoreShowChannels``): `first_up_at` stays unset.

`extension` is the first operator who answered in a conversation (for ring groups and
queues the one who picked up, never the others); every extension that rang is in
`rang_extensions`. Cdr events never change any of this: a Cdr of the first leg that
disagrees (with the dial it describes, or with the call when it names no destination)
becomes a ``cdr_mismatch`` note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from gateway.calls.records import (
    CDR_DISPOSITION,
    DIAL_STATUS_DISPOSITION,
    AnswerSource,
    CallNote,
    CallRecord,
    DialStatus,
    Direction,
    Disposition,
    LegRecord,
    disposition_from_cause,
    whole_seconds,
)
from gateway.calls.state import Leg, LiveCall

_UNANSWERED_ORDER = (Disposition.NO_ANSWER, Disposition.BUSY, Disposition.FAILED)


@dataclass(slots=True)
class EndedCall:
    """What is kept of an emitted call so late Cdr events and duplicates can be judged."""

    linkedid: str
    first_uid: str | None
    caller: str | None
    direction: Direction
    disposition: Disposition
    outcomes: dict[str, Disposition]
    uids: tuple[str, ...]
    cdr_keys: set[tuple[str, ...]] = field(default_factory=set)


def decide(call: LiveCall) -> tuple[Disposition, AnswerSource | None, datetime | None]:
    """Disposition, answer source and answer time of a call, by the module's rule."""
    if call.answered_at is not None:
        return Disposition.ANSWERED, AnswerSource.BRIDGE, call.answered_at
    legs = list(call.legs.values())
    group = [leg for leg in legs if leg.dialed_by_channel and leg.dial_status]
    if not group:
        group = [leg for leg in legs if not leg.dialed_by_channel and leg.dial_status]
    if group:
        answers = [
            leg.dial_ended_at
            for leg in group
            if leg.dial_status == DialStatus.ANSWER and leg.dial_ended_at is not None
        ]
        if answers:
            return Disposition.ANSWERED, AnswerSource.APPLICATION, min(answers)
        found = {
            DIAL_STATUS_DISPOSITION.get(leg.dial_status or "", Disposition.FAILED) for leg in group
        }
        for disposition in _UNANSWERED_ORDER:
            if disposition in found:
                return disposition, None, None
    if call.first_up_at is not None and not call.rang:
        return Disposition.ANSWERED, AnswerSource.APPLICATION, call.first_up_at
    first = call.first_leg
    return disposition_from_cause(first.cause if first else None), None, None


def dial_outcomes(call: LiveCall) -> dict[str, Disposition]:
    """Outcome of each dialed channel, by channel name (what a Cdr's destination names)."""
    return {
        leg.channel: DIAL_STATUS_DISPOSITION.get(leg.dial_status, Disposition.FAILED)
        for leg in call.legs.values()
        if leg.dial_status
    }


def check_cdr(
    *,
    uniqueid: str,
    channel: str,
    destination: str,
    raw: str,
    first_uid: str | None,
    disposition: Disposition,
    outcomes: dict[str, Disposition],
) -> CallNote | None:
    """A `cdr_mismatch` note when a first-leg Cdr disagrees with the tracker, else None."""
    if uniqueid != first_uid:
        return None
    theirs = CDR_DISPOSITION.get(raw.upper())
    ours = outcomes.get(destination, disposition) if destination else disposition
    if theirs is None or theirs == ours:
        return None
    target = destination or "-"
    return CallNote(
        "cdr_mismatch", uniqueid, f"Cdr {channel} -> {target} says {raw}; tracker says {ours.value}"
    )


def _leg_record(leg: Leg) -> LegRecord:
    return LegRecord(
        uniqueid=leg.uniqueid,
        channel=leg.channel,
        role=leg.cls.role.value,
        extension=leg.extension,
        started_at=leg.started_at,
        answered_at=leg.answered_at,
        ended_at=leg.ended_at,
        talk_seconds=leg.talk_seconds,
        hangup_cause=leg.cause,
        dial_status=leg.dial_status,
    )


def build_record(call: LiveCall, ended_at: datetime) -> tuple[CallRecord, EndedCall]:
    """The final record (all legs must have hung up) and the tombstone to keep."""
    disposition, source, answered_at = decide(call)
    outcomes = dial_outcomes(call)
    notes = list(call.notes)
    for uid, channel, destination, raw in call.cdrs:
        note = check_cdr(
            uniqueid=uid,
            channel=channel,
            destination=destination,
            raw=raw,
            first_uid=call.first_uid,
            disposition=disposition,
            outcomes=outcomes,
        )
        if note is not None and note not in notes:
            notes.append(note)
    if source is AnswerSource.BRIDGE:
        talk = whole_seconds(answered_at, call.talk_end or ended_at)
    else:
        talk = 0
    record = CallRecord(
        linkedid=call.linkedid,
        direction=call.direction,
        caller=call.caller,
        callee=call.callee,
        extension=call.answered_exts[0] if call.answered_exts else None,
        started_at=call.started_at,
        answered_at=answered_at,
        ended_at=ended_at,
        ring_seconds=whole_seconds(call.started_at, answered_at or ended_at),
        talk_seconds=talk,
        disposition=disposition,
        answer_source=source,
        rang_extensions=tuple(call.rang),
        segments=tuple(call.segments),
        legs=tuple(_leg_record(leg) for leg in call.legs.values()),
        notes=tuple(notes),
        originate_action_id=call.originate_action_id,
        adopted=call.adopted,
    )
    tomb = EndedCall(
        call.linkedid,
        call.first_uid,
        call.caller,
        record.direction,
        disposition,
        outcomes,
        tuple(call.legs),
        set(call.cdr_keys),
    )
    return record, tomb
