"""What the call tracker emits: changes while a call lives and the final call record.

Everything here is immutable; times are aware UTC datetimes; numbers are raw, as the PBX
reported them (normalising to E.164 is the consumer's job).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Direction(StrEnum):
    """Inbound: the first channel is a trunk; outbound: a trunk was dialed; else internal."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class Disposition(StrEnum):
    """How a call ended, from the caller's point of view."""

    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"


class AnswerSource(StrEnum):
    """What answered: a two-party bridge (a conversation) or an application alone."""

    BRIDGE = "bridge"
    APPLICATION = "application"


class ChangeKind(StrEnum):
    """The kinds of `CallChange`."""

    STARTED = "started"
    RINGING = "ringing"
    RING_STOPPED = "ring_stopped"
    ANSWERED = "answered"
    ENDED = "ended"
    CDR_MISMATCH = "cdr_mismatch"


class RingStopReason(StrEnum):
    """Why an extension stopped ringing without answering."""

    ANSWERED_ELSEWHERE = "answered_elsewhere"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class CallNote:
    """Something worth keeping about a call that is not a field (Cdr mismatch, transfer)."""

    kind: str
    uniqueid: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class TalkSegment:
    """One stretch of conversation of one operator leg inside one bridge."""

    extension: str
    uniqueid: str
    bridge_id: str
    started_at: datetime
    ended_at: datetime
    seconds: int
    with_customer: bool


@dataclass(frozen=True, slots=True)
class LegRecord:
    """One channel (Uniqueid) of a call."""

    uniqueid: str
    channel: str
    role: str
    extension: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    talk_seconds: int
    hangup_cause: int | None
    dial_status: str | None


@dataclass(frozen=True, slots=True)
class CallRecord:
    """The final record of one call (keyed by Linkedid), emitted once when it ends."""

    linkedid: str
    direction: Direction
    caller: str | None
    callee: str | None
    extension: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime
    ring_seconds: int
    talk_seconds: int
    disposition: Disposition
    answer_source: AnswerSource | None
    rang_extensions: tuple[str, ...]
    segments: tuple[TalkSegment, ...]
    legs: tuple[LegRecord, ...]
    notes: tuple[CallNote, ...]
    originate_action_id: str | None
    adopted: bool

    def talk_seconds_by_extension(self) -> dict[str, int]:
        """Seconds each operator talked with the customer (consultations excluded)."""
        out: dict[str, int] = {}
        for seg in self.segments:
            if seg.with_customer:
                out[seg.extension] = out.get(seg.extension, 0) + seg.seconds
        return out


@dataclass(frozen=True, slots=True)
class CallChange:
    """One step of a live call, for screen-pops and persistence.

    `extensions`: the extensions that started ringing (RINGING), stopped ringing
    (RING_STOPPED, with `reason`) or answered (ANSWERED; empty when no operator is in the
    conversation). `record` is set on ENDED only; `note` on CDR_MISMATCH only.
    """

    kind: ChangeKind
    linkedid: str
    at: datetime
    caller: str | None
    direction: Direction
    extensions: tuple[str, ...] = ()
    reason: RingStopReason | None = None
    record: CallRecord | None = None
    note: CallNote | None = None


# DialStatus → what it means for the dialed leg (and, without a bridge, for the call).
class DialStatus(StrEnum):
    """Asterisk's DialEnd `DialStatus` values we act on (others are kept as text)."""

    ANSWER = "ANSWER"
    BUSY = "BUSY"
    NOANSWER = "NOANSWER"
    CANCEL = "CANCEL"
    CHANUNAVAIL = "CHANUNAVAIL"
    CONGESTION = "CONGESTION"


DIAL_STATUS_DISPOSITION: dict[str, Disposition] = {
    DialStatus.ANSWER: Disposition.ANSWERED,
    DialStatus.BUSY: Disposition.BUSY,
    DialStatus.NOANSWER: Disposition.NO_ANSWER,
    DialStatus.CANCEL: Disposition.NO_ANSWER,
    DialStatus.CHANUNAVAIL: Disposition.FAILED,
    DialStatus.CONGESTION: Disposition.FAILED,
}

# Cdr Disposition → ours; used only to cross-check, never to decide.
CDR_DISPOSITION: dict[str, Disposition] = {
    "ANSWERED": Disposition.ANSWERED,
    "NO ANSWER": Disposition.NO_ANSWER,
    "BUSY": Disposition.BUSY,
    "FAILED": Disposition.FAILED,
    "CONGESTION": Disposition.FAILED,
}

# Q.850 causes: 0 unknown, 16 normal clearing, 18/19 no answer, 26 answered elsewhere,
# 31 normal unspecified all mean nobody picked up; 17/21 are busy/rejected.
_NO_ANSWER_CAUSES = frozenset({0, 16, 18, 19, 26, 31})
_BUSY_CAUSES = frozenset({17, 21})
ANSWERED_ELSEWHERE_CAUSE = 26


def disposition_from_cause(cause: int | None) -> Disposition:
    """Disposition of an unanswered channel from its hangup cause."""
    if cause is None or cause in _NO_ANSWER_CAUSES:
        return Disposition.NO_ANSWER
    if cause in _BUSY_CAUSES:
        return Disposition.BUSY
    return Disposition.FAILED


def whole_seconds(start: datetime | None, end: datetime | None) -> int:
    """Rounded seconds from `start` to `end`; 0 when either is missing or end < start."""
    if start is None or end is None:
        return 0
    return max(0, round((end - start).total_seconds()))
