"""Collapse a log line repeated in a burst into a few lines and a count (issue 14, item 8:
an AMI flood once wrote 675 MB of the same few lines in 8 minutes)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

# Our own rather than `log-rate-limit` (PyPI): that one keys streams by the formatted text
# or an id each call site must pass, and a dependency on every log line's path is a lot
# for forty lines; this keys by call site and template, so `%s` arguments that differ per
# call (a call id, a task's repr) still count as one kind of line.


class RepeatFilter(logging.Filter):
    """Let `burst` records of one kind through per `window` seconds and drop the rest;
    the first one after the window says how many were dropped."""

    def __init__(
        self,
        burst: int = 5,
        window: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_kinds: int = 4096,
    ) -> None:
        """A kind is the logger, level, call site and the template's first line."""
        super().__init__()
        self.burst, self.window, self.max_kinds = burst, window, max_kinds
        self._clock = clock
        # kind -> [window start, let through in it, dropped in it]
        self._kinds: dict[tuple[str, int, str, int, str], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """False to drop a repeat; the record after a dropped run carries the count."""
        if record.levelno < logging.INFO:
            # DEBUG is asked for to see every step (each SQL statement is one call site):
            # collapsing it would hide what was asked for. Floods repeat INFO and above.
            return True
        template = record.msg if isinstance(record.msg, str) else str(record.msg)
        # asyncio writes the task's repr after the first line of its message.
        kind = (
            record.name,
            record.levelno,
            record.pathname,
            record.lineno,
            template.partition("\n")[0],
        )
        now = self._clock()
        seen = self._kinds.get(kind)
        if seen is None or now - seen[0] >= self.window:
            if seen is None and len(self._kinds) >= self.max_kinds:
                self._kinds.clear()  # kinds come from code, not data: rarely reached
            dropped = int(seen[2]) if seen is not None else 0
            self._kinds[kind] = [now, 1, 0]
            if dropped:
                record.msg = f"{template} [{dropped} more like this in the last {self.window:g} s]"
            return True
        if seen[1] < self.burst:
            seen[1] += 1
            return True
        seen[2] += 1
        return False
