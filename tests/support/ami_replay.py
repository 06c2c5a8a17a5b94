"""Replay recorded AMI traces through the tracker with a clock of one second per event."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from adapters.ami.protocol import AmiMessage, AmiParser
from gateway.calls import CallChange, CallRecord, CallTracker, ChangeKind, Topology

TRACE_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "ami"
T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
STEP = timedelta(seconds=1)

CALL_TRACES = (
    "answered_long",
    "answered_short",
    "no_answer",
    "busy",
    "bridged_dial",
    "bridged_long",
    "bridged_caller_hangs_up",
    "bridged_long_cdr_linkedid",
    "dial_no_answer",
    "dial_busy",
    "ring_group",
    "blind_transfer",
    "attended_transfer",
    "click_to_call",
)


def trace_topology() -> Topology:
    """The traces' dialplan: callers and customers are trunks, 201-203 are operators."""
    return Topology(
        [r"^Local/200@test-", r"^Local/caller-\d+@gw-inbound-", r"^Local/\d+@customers-"],
        [r"^Local/(?P<ext>20[1-3])@(?:test|ops-)"],
    )


@cache
def _messages(name: str) -> tuple[AmiMessage, ...]:
    return tuple(AmiParser().feed((TRACE_DIR / f"{name}.txt").read_bytes()))


def messages(name: str) -> list[AmiMessage]:
    """Every message of a trace, responses included, in wire order."""
    return list(_messages(name))


def at(index: int) -> datetime:
    """The clock's time while the event at `index` is fed."""
    return T0 + index * STEP


def find(msgs: list[AmiMessage], name: str, last: bool = False, **headers: str) -> int:
    """Index of the first (or last) event `name` whose headers start with the given values."""
    hits = [
        i
        for i, m in enumerate(msgs)
        if m.name == name and all((m.get(k) or "").startswith(v) for k, v in headers.items())
    ]
    assert hits, f"no {name} {headers}"
    return hits[-1] if last else hits[0]


class StepClock:
    """The test drives it: `tick_to(i)` before feeding event i."""

    def __init__(self) -> None:
        self.now = T0
        self.calls = 0

    def tick_to(self, index: int) -> None:
        """Move to the time of event `index`."""
        self.now = at(index)

    def __call__(self) -> datetime:
        self.calls += 1
        return self.now


@dataclass
class Replay:
    """The changes of one replay, each with the index of the event that caused it."""

    msgs: list[AmiMessage]
    tracker: CallTracker
    changes: list[tuple[int, CallChange]] = field(default_factory=list)

    def kinds(self) -> list[tuple[int, ChangeKind, tuple[str, ...], str | None]]:
        """(index, kind, extensions, reason) of every change but ENDED's record."""
        return [(i, c.kind, c.extensions, c.reason) for i, c in self.changes]

    @property
    def records(self) -> list[CallRecord]:
        """The records of the ENDED changes."""
        return [c.record for _, c in self.changes if c.record is not None]

    @property
    def record(self) -> CallRecord:
        """The one record the trace produced."""
        (record,) = self.records
        return record

    def of(self, kind: ChangeKind) -> list[tuple[int, CallChange]]:
        """Changes of one kind."""
        return [(i, c) for i, c in self.changes if c.kind is kind]


def replay(
    name: str,
    *,
    twice: bool = False,
    keep: Callable[[int, AmiMessage], bool] | None = None,
) -> Replay:
    """Feed a trace (each event twice when `twice`) and collect the changes."""
    clock = StepClock()
    msgs = messages(name)
    result = Replay(msgs, CallTracker(trace_topology(), clock))
    for i, msg in enumerate(msgs):
        if keep is not None and not keep(i, msg):
            continue
        clock.tick_to(i)
        result.changes.extend((i, c) for c in result.tracker.feed(msg))
        if twice:
            assert result.tracker.feed(msg) == [], f"duplicate of event {i} changed something"
    return result
