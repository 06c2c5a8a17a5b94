"""Structured logging that never writes a full phone number or e-mail address."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from gateway.core.log_masking import (
    MAX_LINE_CHARS,
    MAX_TRACE_CHARS,
    bounded,
    escape_json_line,
    escape_line,
)
from gateway.core.log_masking import mask_phone as mask_phone  # re-exported: callers use logs
from gateway.core.log_masking import mask_pii as mask_pii
from gateway.core.log_repeats import RepeatFilter

# Lines of a traceback after a record's first line start with this, so that a line a
# message or an exception text forged can never pass for a record of its own.
CONTINUATION = "  | "


# What the code is working for right now; asyncio tasks copy the context they start in,
# so whatever a request or a call's handling logs, directly or in tasks, carries its ids.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
CALL_ID: ContextVar[str | None] = ContextVar("call_id", default=None)
CLIENT: ContextVar[str | None] = ContextVar("client", default=None)
_CONTEXT = (("request_id", REQUEST_ID), ("call_id", CALL_ID), ("client", CLIENT))


@contextmanager
def call_context(call_id: str) -> Iterator[None]:
    """Log lines written inside carry `call_id` (the PBX's Linkedid, or our call's id)."""
    token = CALL_ID.set(call_id)
    try:
        yield
    finally:
        CALL_ID.reset(token)


class ContextFilter(logging.Filter):
    """Copy the current request/call ids onto each record (as `extra=` would)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the ids that are set; never drops a record."""
        for name, variable in _CONTEXT:
            value = variable.get()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        return True


class MaskingFormatter(logging.Formatter):
    """Plain-text formatter: each record is one line, bounded, PII masked, CR/LF and other
    line breaks escaped (a traceback follows on lines marked as its continuation)."""

    def format(self, record: logging.LogRecord) -> str:
        """Format the (bounded) message, append the request/call ids, mask, escape."""
        record.message = bounded(record.getMessage(), MAX_LINE_CHARS)
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        ids = [f"{name}={getattr(record, name)}" for name, _ in _CONTEXT if hasattr(record, name)]
        lines = [escape_line(mask_pii(f"{line} [{' '.join(ids)}]" if ids else line))]
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        trace = "\n".join(
            text
            for text in (record.exc_text, record.stack_info and self.formatStack(record.stack_info))
            if text
        )
        lines += (
            CONTINUATION + escape_line(mask_pii(part))
            for part in bounded(trace, MAX_TRACE_CHARS).splitlines()
        )
        return "\n".join(lines)


_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra fields passed with `extra=` are kept."""

    def format(self, record: logging.LogRecord) -> str:
        """Serialise the record, every string value bounded and masked."""
        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": mask_pii(bounded(record.getMessage(), MAX_LINE_CHARS)),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[mask_pii(key)] = _masked(value)
        if record.exc_info:
            exc = self.formatException(record.exc_info)
            payload["exc"] = mask_pii(bounded(exc, MAX_TRACE_CHARS))
        # Masked value by value, not on the serialised line: masking a number in the line
        # (`"talk": 1234567`) would leave invalid JSON.
        return escape_json_line(json.dumps(payload, ensure_ascii=False))


def _masked(value: object, depth: int = 0) -> object:
    """`value` with every string (and any number that is a phone) bounded and masked."""
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        masked = mask_pii(str(value))
        return value if masked == str(value) else masked
    if isinstance(value, dict) and depth < 8:
        return {mask_pii(bounded(str(k), 256)): _masked(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple) and depth < 8:
        return [_masked(item, depth + 1) for item in value]
    return mask_pii(bounded(value if isinstance(value, str) else str(value), MAX_LINE_CHARS))


def configure_logging(level: str = "INFO", json_lines: bool = False) -> None:
    """Install one stderr handler on the root logger with the masking formatter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.addFilter(RepeatFilter())
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # The Twilio SDK logs every request and its headers at INFO: noise, and the message
    # URLs name customers' numbers.
    logging.getLogger("twilio").setLevel(logging.WARNING)
