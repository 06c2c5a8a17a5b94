"""Header values of outgoing mail: rendered text made inert before the email package sees
it, and the generated header block checked after, whatever the Python version.

Why both: `EmailMessage` parses a value assigned to a header as if it came off the wire,
so `=?utf-8?q?=0D=0AReply-To=3A_x?=` in a customer's name is decoded to a CR/LF, and
the CPython of this project (3.11.7, CVE-2024-6923) writes that back out raw: a real
`Reply-To:` at the SMTP server. Newer CPythons encode it and can refuse such output
(`verify_generated_headers`); we cannot count on which one runs, so the text is
neutralised first and the bytes verified last.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

# Line breaks and other controls (TAB aside) have no place in a header value; a rendered
# value carrying one is refused, as the email package refuses a raw CR or LF.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
# An encoded word opens with `=?`. A WORD JOINER (U+2060, invisible) between the two keeps
# the text the reader sees while no parser can take it for one; being non-ASCII, the word
# is then sent encoded by the email package itself, so it reads back as written.
_ENCODED_WORD_START = "=?"
_INERT_START = "=\u2060?"
_FIELD = re.compile(rb"([!-9;-~]+):")


class HeaderInjection(ValueError):
    """The generated message's header block is not the headers that were set."""


def header_text(value: str) -> str:
    """Rendered text as a header value with no RFC 2047 encoded word in it; ValueError
    for a line break or another control character."""
    control = _CONTROL.search(value)
    if control is not None:
        raise ValueError(f"header value has the control character {control[0]!r}")
    return value.replace(_ENCODED_WORD_START, _INERT_START)


def check_header_block(payload: bytes, expected: Iterable[str]) -> None:
    """Raise HeaderInjection unless the payload's header block (up to the first empty
    line) holds exactly the `expected` header names, every other line a folded
    continuation, and no CR or LF outside a line end."""
    head, blank, _ = payload.partition(b"\r\n\r\n")
    if not blank:
        raise HeaderInjection("the message has no end of headers")
    names: list[str] = []
    for line in head.split(b"\r\n"):
        if b"\r" in line or b"\n" in line:
            raise HeaderInjection("a bare CR or LF in the header block")
        if line[:1] in (b" ", b"\t") and names:
            continue
        field = _FIELD.match(line)
        if field is None:
            raise HeaderInjection(f"not a header line: {line[:40]!r}")
        names.append(field[1].decode("ascii").lower())
    want = Counter(name.lower() for name in expected)
    got = Counter(names)
    if got != want:
        extra = sorted((got - want).elements())
        missing = sorted((want - got).elements())
        raise HeaderInjection(f"header block differs: extra {extra}, missing {missing}")
