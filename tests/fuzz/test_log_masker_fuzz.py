"""The log masker under generated text: no phone number or e-mail address of a generated
set survives in any neighbourhood, no formatted record spans two lines, and the time
stays linear in the length.

`SWITCHBOARD_FUZZ_SCALE=full` (what `make fuzz` sets) runs many more examples."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.core.logs import JsonFormatter, MaskingFormatter, mask_pii

FULL = os.environ.get("SWITCHBOARD_FUZZ_SCALE") == "full"
FUZZ = settings(
    max_examples=3000 if FULL else 150,
    deadline=timedelta(seconds=5),  # a hang guard, not a performance figure
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TIMING = settings(
    max_examples=150 if FULL else 12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Filler has no digits and no `@`, so every digit in the output comes from a generated
# number or a context around it; everything else a log line may hold is in it.
_FILLER_CHARS = st.characters(
    blacklist_categories=("Nd", "Cs"), blacklist_characters="@", max_codepoint=0x2FFF
)
filler = st.text(_FILLER_CHARS, max_size=12) | st.sampled_from(
    ["\n", "\r\n", "\u2028", "\x85", " ", "-", ".", "/", "_", "%", "%2", "(", ")", "+", ":"]
)
subscriber = st.from_regex(r"[1-9][0-9]{8}", fullmatch=True)


@st.composite
def phone(draw: st.DrawFn) -> tuple[str, str]:
    """(the number as written, its 9 subscriber digits)."""
    digits = draw(subscriber)
    a, b, c, d = digits[:2], digits[2:5], digits[5:7], digits[7:]
    written = draw(
        st.sampled_from(
            [
                f"+380{digits}",
                f"0{digits}",
                f"380{digits}",
                f"0{a} {b} {c} {d}",
                f"+38 (0{a}) {b}-{c}-{d}",
                f"0{a}-{b}-{c}-{d}",
                f"0{a}.{b}.{c}.{d}",
                f"%2B380{digits}",
                f"0{a}%20{b}%20{c}%20{d}",
                f"0{a}+{b}+{c}+{d}",
            ]
        )
    )
    return written, digits


@st.composite
def address(draw: st.DrawFn) -> tuple[str, str]:
    """(the address as written, its local part)."""
    local = draw(st.from_regex(r"[a-z][a-z0-9._+\-]{2,15}[a-z0-9]", fullmatch=True))
    domain = draw(
        st.from_regex(r"[a-z][a-z0-9\-]{0,10}\.(?:[a-z0-9]{1,8}\.)?[a-z]{2,6}", fullmatch=True)
    )
    at = draw(st.sampled_from(["@", "%40"]))
    return f"{local}{at}{domain}", local


# Where a number stands in real lines: channel names, after dates, touching letters,
# in JSON escapes, in query strings.
BEFORE = [
    "",
    " ",
    "Local/",
    "PJSIP/",
    "SIP/trunk/",
    "id_",
    "tel",
    "\\n",
    "2026-11-23 ",
    "at 2026-11-23T10:00:00 ",
    "uid 1733600051.42 ",
    "from 203.0.113.5 ",
    "phone=",
    "(",
    "sip:",
]
AFTER = [
    "",
    " ",
    "x",
    "_",
    "@from-internal-0000001a;1",
    "-00000012",
    "-0000a3bc;2",
    ".",
    ",",
    "&x=1",
    ")",
    "\n",
    "@sip.example.com",
]
# An address ends where the text around it says so; two written together with nothing
# between (`a@b.coma@b.com`) cannot be told apart from one, and are not generated.
ADDRESS_END = [" ", ",", ";", ">", '"', "\n", "&", "/"]


@st.composite
def log_text(draw: st.DrawFn) -> tuple[str, list[str], list[str]]:
    """Text with numbers and addresses in it: (text, subscriber digits, local parts)."""
    parts: list[str] = []
    phones: list[str] = []
    locals_: list[str] = []
    for _ in range(draw(st.integers(1, 6))):
        parts.append(draw(filler))
        if draw(st.booleans()):
            written, digits = draw(phone())
            phones.append(digits)
            parts += [draw(st.sampled_from(BEFORE)), written, draw(st.sampled_from(AFTER))]
        else:
            written, local = draw(address())
            locals_.append(local)
            before = draw(st.sampled_from(["", " ", "<", "=", "/", '"']))
            parts += [before, written, draw(st.sampled_from(ADDRESS_END))]
        parts.append(draw(filler))
    return "".join(parts), phones, locals_


_RUNS = re.compile(r"[\d \t\u00a0().+\-*%]+")


def assert_masked(output: str, phones: list[str], locals_: list[str]) -> None:
    """No subscriber number shows more than its last two digits; no local part shows."""
    run_digits = ["".join(c for c in run if c.isdigit()) for run in _RUNS.findall(output)]
    for digits in phones:
        hidden = digits[:-2]
        assert not any(hidden in found for found in run_digits), (digits, output)
    for local in locals_:
        # A masked address keeps its first character and its domain: `o***@bank.ua`.
        assert f"{local[1:]}@" not in output and f"{local[1:]}%40" not in output, (local, output)


@FUZZ
@given(case=log_text())
def test_no_generated_number_or_address_survives(case: tuple[str, list[str], list[str]]) -> None:
    text, phones, locals_ = case
    assert_masked(mask_pii(text), phones, locals_)


@FUZZ
@given(case=log_text(), args=st.lists(st.text(max_size=40), max_size=3))
def test_a_record_is_one_masked_line(
    case: tuple[str, list[str], list[str]], args: list[str]
) -> None:
    text, phones, locals_ = case
    record = logging.makeLogRecord(
        {"msg": "%s" + " %r" * len(args), "args": (text, *args), "levelname": "INFO"}
    )
    plain = MaskingFormatter("%(levelname)s %(message)s").format(record)
    assert plain.splitlines() == [plain]
    assert_masked(plain, phones, locals_)
    line = JsonFormatter().format(record)
    assert line.splitlines() == [line]
    payload = json.loads(line)
    assert_masked(payload["msg"], phones, locals_)


def fastest(text: str) -> float:
    """The least CPU time of three maskings of `text` (CPU time: another process taking
    the core preempts a run, which wall time would count)."""
    best = float("inf")
    for _ in range(3):
        started = time.thread_time()
        mask_pii(text)
        best = min(best, time.thread_time() - started)
    return best


@TIMING
@given(unit=st.text(st.sampled_from("0123456789 -.()+%2B0@a_/PJSIx:\n"), min_size=1, max_size=12))
def test_masking_time_is_linear(unit: str) -> None:
    small = unit * (8_000 // len(unit) + 1)
    large = unit * (128_000 // len(unit) + 1)
    # 16 times the text: a linear masker takes about 16 times as long, a quadratic 256.
    assert fastest(large) <= 64 * fastest(small) + 0.05
