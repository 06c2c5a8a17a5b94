"""The log masker: linear in its input, bounded per line, no gaps a number hides in, and
one record is one physical line whatever a request put in it."""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

import pytest

from gateway.core.logs import JsonFormatter, MaskingFormatter, mask_pii

PHONE = "0501234567"


@pytest.mark.parametrize(
    ("text", "hidden", "kept"),
    [
        # Channel names: the number after `/` is masked, the channel's own suffix kept.
        (f"Local/{PHONE}@from-internal-00000a3b;1", PHONE, "@from-internal-00000a3b;1"),
        (f"PJSIP/{PHONE}-00000012 answered", PHONE, "-00000012 answered"),
        (f"dial PJSIP/{PHONE}", PHONE, "dial PJSIP/"),
        # After an ISO date (the date is kept).
        (f"on 2026-11-23 {PHONE}", PHONE, "on 2026-11-23 "),
        (f"at 2026-11-23T10:00:00 {PHONE}", PHONE, "at 2026-11-23T10:00:00 "),
        # Touching letters or `_`, or a JSON escape.
        (f"id_{PHONE}", PHONE, "id_"),
        (f"tel{PHONE}x", PHONE, "tel"),
        (f'{{"note": "line\\n{PHONE}"}}', PHONE, '"line\\n'),
        # URL-encoded: e-mails and numbers in a query string.
        ("email=ivan.petrenko%40example.com", "ivan.petrenko", "%40example.com"),
        ("to=ivan%2Bsales%40example.com&x=1", "ivan%2Bsales", "%40example.com&x=1"),
        ("phone=%2B380671234567", "380671234567", "phone="),
        ("phone=067%20123%2045%2067", "123%2045", "phone="),
        ("phone=067+123+45+67", "123+45", "phone="),
    ],
)
def test_numbers_and_addresses_are_masked_wherever_they_stand(
    text: str, hidden: str, kept: str
) -> None:
    masked = mask_pii(text)
    assert hidden not in masked, masked
    assert kept in masked, masked


@pytest.mark.parametrize(
    "text",
    [
        "PJSIP/201-0000001a",
        "Local/201@from-internal-00000a3b;2",
        "uid 1700000000.123 from 203.0.113.5 at 2026-12-07 17:18:17,123",
        '{"ts": "2026-12-07T17:18:17.123456Z"}',
        "message msg_0641a2b3c4d5e6f7a8b9c0d1 request 3f2a9c0b1e2d4f5a6b7c8d9e0f1a2b3c",
        "user@localhost HTTP/1.1",
    ],
)
def test_what_is_not_a_phone_or_address_is_left_alone(text: str) -> None:
    assert mask_pii(text) == text


class Deadline(Exception):
    """The masker used more CPU than a linear one could."""


@contextmanager
def cpu_deadline(seconds: float) -> Iterator[None]:
    """Interrupt the body once the process has used `seconds` of CPU (the regex engine
    checks signals as it runs), so a quadratic masker fails here in seconds instead of
    hanging the run for hours."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise Deadline(f"still masking after {seconds:.1f} s of CPU")

    previous = signal.signal(signal.SIGPROF, expire)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def fastest(work: Callable[[], object], budget: float = 3600.0) -> float:
    """The least CPU time of three runs of `work`. CPU time of this thread, not wall
    time: on a machine busy with other work a run is preempted, not slower."""
    times = []
    for _ in range(3):
        with cpu_deadline(budget):
            started = time.thread_time()
            work()
            times.append(time.thread_time() - started)
    return min(times)


# What made the old patterns quadratic: long runs that almost match.
HOSTILE = ["a", "1-", "a.", "0", "a%2B", "a@", "1 ", "PJSIP/", "%20"]


def hostile(unit: str, size: int) -> str:
    """`unit` repeated to `size` characters."""
    return (unit * (size // len(unit) + 1))[:size]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGPROF")
@pytest.mark.parametrize("unit", HOSTILE)
def test_masking_time_is_linear_in_the_text(unit: str) -> None:
    small, large = hostile(unit, 25_000), hostile(unit, 400_000)
    base = fastest(lambda: mask_pii(small))
    # 16 times the text; a linear masker takes ~16 times as long, a quadratic one 256.
    budget = 64 * base + 0.5
    assert fastest(lambda: mask_pii(large), budget) <= budget


@pytest.mark.skipif(sys.platform == "win32", reason="SIGPROF")
@pytest.mark.parametrize("unit", HOSTILE)
def test_a_log_line_costs_the_same_on_1_mb_as_on_50_kb(unit: str) -> None:
    formatter = MaskingFormatter("%(levelname)s %(name)s: %(message)s")

    def log_line(size: int) -> Callable[[], object]:
        record = logging.makeLogRecord({"msg": "value %s", "args": (hostile(unit, size),)})
        return lambda: formatter.format(record)

    base = fastest(log_line(50_000))
    budget = 20 * base + 0.5
    assert fastest(log_line(1_000_000), budget) <= budget


def test_a_long_message_is_cut_and_a_number_the_cut_splits_is_dropped() -> None:
    for offset in range(12):
        text = "x" * (16_384 - offset) + " +380 67 123 45 67 and more"
        line = MaskingFormatter("%(message)s").format(logging.makeLogRecord({"msg": text}))
        assert len(line) < 16_500
        head, cut, _ = line.partition(" ...[cut: ")
        assert cut, line[-80:]
        assert not any(c.isdigit() for c in head), head[-40:]


FORGED = "2026-12-07 17:18:17,123 ERROR gateway.core.http.auth: admin signed in"


@pytest.mark.parametrize(
    "breaker", ["\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029"]
)
def test_a_message_cannot_write_a_line_of_its_own(breaker: str) -> None:
    record = logging.makeLogRecord(
        {"msg": "refused on GET %s", "args": (f"/x{breaker}{FORGED}",), "levelname": "WARNING"}
    )
    line = MaskingFormatter("%(levelname)s %(message)s").format(record)
    assert line.splitlines() == [line]
    assert line.startswith("WARNING refused on GET /x\\")
    json_line = JsonFormatter().format(record)
    assert json_line.splitlines() == [json_line]
    assert json.loads(json_line)["msg"] == f"refused on GET /x{breaker}{FORGED}"


def test_a_traceback_follows_on_marked_lines_only() -> None:
    try:
        raise ValueError(f"bad path /x\n{FORGED}")
    except ValueError:
        record = logging.makeLogRecord(
            {
                "msg": "unhandled error on GET %s",
                "args": (f"/x\n{FORGED}",),
                "exc_info": sys.exc_info(),
            }
        )
    first, *rest = MaskingFormatter("%(message)s").format(record).split("\n")
    assert first == f"unhandled error on GET /x\\n{FORGED}"
    assert rest and all(line.startswith("  | ") for line in rest)
    assert "  | Traceback (most recent call last):" in rest
    assert f"  | {FORGED}" in rest


def test_json_lines_stay_valid_with_phones_in_numbers() -> None:
    record = logging.makeLogRecord({"msg": "called"})
    record.number = 380671234567
    record.talk_seconds = 42
    payload = json.loads(JsonFormatter().format(record))
    assert payload["number"] == "**********67"
    assert payload["talk_seconds"] == 42
