"""Structured logging that never writes a full phone number or e-mail address."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from gateway.log_repeats import RepeatFilter

# A phone number in any common written form: 7+ digits with optional +, spaces, dashes,
# dots and parentheses between them. Masked keeping the last two digits, enough for an
# engineer to tell two calls apart in a log without the log becoming a contact list.
_PHONE = re.compile(r"(?<![\w/])\+?\d[\d\s\-().]{5,}\d(?![\w])")
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")


def mask_phone(raw: str) -> str:
    """`+380671234567` → `+38*********67`."""
    digits = [c for c in raw if c.isdigit()]
    if len(digits) < 7:
        return raw
    keep_head = 3 if raw.startswith("+") else 0
    prefix = "+" + "".join(digits[: keep_head - 1]) if keep_head else ""
    hidden = len(digits) - (keep_head - 1 if keep_head else 0) - 2
    return f"{prefix}{'*' * hidden}{''.join(digits[-2:])}"


# Digit runs that look like phones but are not: ISO dates, Asterisk Uniqueids and IPv4
# addresses (clients in auth logs). Octets have no leading zero: "067.123.45.67" is a
# phone written with dots, and stays masked.
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_NOT_A_PHONE = re.compile(rf"\d{{4}}-\d{{2}}-\d{{2}}.*|\d+\.\d+|{_OCTET}(?:\.{_OCTET}){{3}}")


def _mask_phone_match(match: re.Match[str]) -> str:
    text = match.group(0)
    return text if _NOT_A_PHONE.fullmatch(text) else mask_phone(text)


def mask_pii(text: str) -> str:
    """Mask every phone number and e-mail address found in `text`."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(_mask_phone_match, text)


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
    """Plain-text formatter that masks PII in the final line (message, args and extras)."""

    def format(self, record: logging.LogRecord) -> str:
        """Format, append the request/call ids when set, then mask."""
        line = super().format(record)
        ids = [f"{name}={getattr(record, name)}" for name, _ in _CONTEXT if hasattr(record, name)]
        return mask_pii(f"{line} [{' '.join(ids)}]" if ids else line)


_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra fields passed with `extra=` are kept."""

    def format(self, record: logging.LogRecord) -> str:
        """Serialise the record, masking PII in every string value."""
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return mask_pii(json.dumps(payload, default=str, ensure_ascii=False))


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
