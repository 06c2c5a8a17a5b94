"""Back-pressure between the AMI reader and the call recorder, and the account of what
was shed (issue 14, item 8: 300,000 `Newchannel` events once took 2.1 GB and /health).

The reader feeds the tracker in wire order and hands the recorder its changes; the
recorder's work in flight (changes queued per call shard, plus running row inserts, pops
and warm-ups) is the queue between them, and it is bounded: at BACKLOG_HIGH the reader
stops reading until the work is down to BACKLOG_LOW, so a flood waits in the PBX's TCP
window, not in our memory. The least important work goes first: warm-ups (the caller's
card read ahead of the ring; the pop reads it itself when there is none) once more than
WARM_LIMIT pieces of work are in flight, then raw events beyond RAW_BUFFER_MAX (counted,
since `calls rebuild` cannot replay them). Pops and the records of tracked calls are never
shed: they wait. Calls beyond `pbx.max_live_calls` are refused by the tracker; while it
refuses, the link asks the PBX which channels are live and ends the calls it no longer
has (`CallTracker.prune`), so calls the PBX never had do not hold the room for good.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gateway.core.metrics import Metrics

BACKLOG_HIGH = 256
BACKLOG_LOW = 64
WARM_LIMIT = 8
# The recorder's writes at once (row inserts and shard applies together): on SQLite each
# waits for the one write lock, and SQLite's busy handler is no queue: with a crowd of
# waiters one can lose for its whole busy timeout ("database is locked").
WRITES_AT_ONCE = 4
RAW_BUFFER_MAX = 20_000
# /health says `shedding` this long after the last piece of work was shed or refused.
SHEDDING_HOLD_SECONDS = 60.0
# Each prune lets up to `max_live_calls` new calls in (and their writes), so while the
# refusals go on the pause between prunes doubles up to PRUNE_MAX_SECONDS: a sustained
# flood costs little, and room comes back within that long after it ends.
PRUNE_EVERY_SECONDS = 15.0
PRUNE_MAX_SECONDS = 60.0
_DRAIN_POLL_SECONDS = 0.01


@dataclass(frozen=True)
class ShedCounts:
    """What was dropped or refused so far (totals since start)."""

    warmups: int = 0
    raw_events: int = 0
    calls_refused: int = 0


class FlowControl:
    """Holds the AMI reader while the recorder is behind; counts and reports shedding."""

    def __init__(
        self,
        metrics: Metrics,
        backlog: Callable[[], int],
        counts: Callable[[], ShedCounts],
        live_calls: Callable[[], int],
        max_live_calls: int,
    ) -> None:
        """`backlog`: the recorder's work in flight; `counts`: the shed totals."""
        self._metrics = metrics
        self._backlog, self._counts, self._live_calls = backlog, counts, live_calls
        self._max_live_calls = max_live_calls
        self.raw_events_shed = 0
        self.reader_paused_seconds = 0.0
        self._published = ShedCounts()
        self._published_paused = 0.0
        self._seen = ShedCounts()
        self._last_shed: float | None = None

    def hold_reader(self) -> Awaitable[None] | None:
        """The AMI client's read gate: None to read on, else wait for the recorder."""
        if self._backlog() < BACKLOG_HIGH:
            return None
        return self._drained()

    async def _drained(self) -> None:
        # Polled rather than signalled: only paid while the reader is held, and no
        # bookkeeping is added to the path each change takes.
        started = time.monotonic()
        try:
            while self._backlog() > BACKLOG_LOW:  # noqa: ASYNC110 - see above
                await asyncio.sleep(_DRAIN_POLL_SECONDS)
        finally:
            self.reader_paused_seconds += time.monotonic() - started

    def shedding(self) -> bool:
        """True while something was shed or refused in the last SHEDDING_HOLD_SECONDS."""
        counts = self._counts()
        if counts != self._seen:
            self._seen, self._last_shed = counts, time.monotonic()
        return self._last_shed is not None and (
            time.monotonic() - self._last_shed < SHEDDING_HOLD_SECONDS
        )

    def publish(self) -> None:
        """Move the totals' growth into the Prometheus metrics (called a few times a second)."""
        counts, old, m = self._counts(), self._published, self._metrics
        for work, now, before in (
            ("warmup", counts.warmups, old.warmups),
            ("raw_event", counts.raw_events, old.raw_events),
        ):
            if now > before:
                m.ami_shed.labels(work).inc(now - before)
        if counts.calls_refused > old.calls_refused:
            m.ami_calls_refused.inc(counts.calls_refused - old.calls_refused)
        if self.reader_paused_seconds > self._published_paused:
            m.ami_reader_paused.inc(self.reader_paused_seconds - self._published_paused)
        self._published, self._published_paused = counts, self.reader_paused_seconds
        m.ami_live_calls.set(self._live_calls())
        m.ami_backlog.set(self._backlog())
        self.shedding()

    def health(self) -> dict[str, Any]:
        """The `ami_load` component of /health: informative, never unhealthy by itself."""
        counts = self._counts()
        return {
            "state": "shedding" if self.shedding() else "ok",
            "live_calls": self._live_calls(),
            "max_live_calls": self._max_live_calls,
            "backlog": self._backlog(),
            "warmups_shed": counts.warmups,
            "raw_events_shed": counts.raw_events,
            "calls_refused": counts.calls_refused,
            "reader_paused_seconds": round(self.reader_paused_seconds, 1),
        }
