"""Masking phone numbers and e-mail addresses in log text, in time linear in its length,
and making one log record one physical line.

Why not one regex per kind, as before: a backtracking pattern such as `\\d[\\d\\s-]{5,}\\d`
or `[\\w.]*@` retried from every start position costs O(n²) on a long run that does not
match (4 s on 32 KB of letters, a frozen event loop on a 1 MB attribute logged at DEBUG).
Here every pattern starts only where a token starts (a lookbehind refuses positions
inside one) and consumes its run possessively (`*+`, Python 3.11), so each character is
looked at a bounded number of times; what a run means is then decided in plain Python.
google-re2 would guarantee linear time too, but has no lookarounds to find token starts.
"""

from __future__ import annotations

import re
import string

# What one log line may carry: longer messages are cut (the cut marked) before masking,
# so no single record can cost more than this much work or fill the disk.
MAX_LINE_CHARS = 16_384
MAX_TRACE_CHARS = 65_536

# --- e-mail addresses -------------------------------------------------------------------
# Local part: the usual characters and %XX escapes (URL-encoded text), then `@` or its
# URL encoding `%40`, then labels and a top-level domain of letters. A start is refused
# inside a run (after a run character, or on the hex digits of an escape the run would
# have taken). The labels are possessive, so a failed domain backs off a label at a time.
# What follows the domain in the same run is taken too (`tail`): when it leads to another
# `@` it is the next address's local part (`a@b.comc@d.com`), which no start could reach.
_LOCAL_CHAR = r"(?:[A-Za-z0-9._+\-]|%(?!40)[0-9A-Fa-f]{2})"
_EMAIL = re.compile(
    rf"(?<![A-Za-z0-9._+\-])(?!(?<=%)[0-9A-Fa-f]{{2}})(?P<local>{_LOCAL_CHAR}++)"
    r"(?P<rest>(?:@|%40)(?:[A-Za-z0-9\-]++\.)+[A-Za-z]{2,})"
    rf"(?P<tail>{_LOCAL_CHAR}*+)(?P<next>@|%40)?"
)

# --- phone numbers ----------------------------------------------------------------------
# Seven or more digits with the separators phones are written with (spaces, dashes, dots,
# parentheses, `+`, and their URL encodings), optionally after `+` or `(`. A run may
# start at any digit, also one touching letters or `_` (`id_0501234567`, or
# `\n0501234567` in JSON), but not on the digits of an escape (`%20`). A run with fewer
# digits fails after at most six starts, so the scan stays linear.
_SEP = r"(?:[ \t\u00a0().+\-]|%2[0Bb89])"
# (Each branch opens with a one-character lookahead: most positions fail right there.)
_RUN = rf"(?=[+%(\d])(?:\+|%2[Bb])?\(?(?<!%)(?<!%2)\d(?:{_SEP}*+\d){{6,}}+"
# Our own ids (`cus_` + 24 hex) and request ids (32 hex) carry digit runs by chance:
# left whole so a log stays searchable. Each needs a letter, so no digit string passes.
_ID = (
    r"(?<![0-9A-Za-z_])(?=[a-z0-9])(?:[a-z]{2,8}_(?=[0-9]{0,23}[a-f])[0-9a-f]{24}"
    r"|(?=[0-9]{0,31}[a-f])[0-9a-f]{32})(?![0-9A-Za-z_])"
)
# An Asterisk channel `Tech/resource-0000001a;1`: the resource is masked like any text
# (`Local/0501234567@ctx-…`), the unique suffix kept, since it names the channel.
_CHANNEL = (
    r"(?=[A-Z])(?<![0-9A-Za-z_/])(?P<tech>[A-Z][A-Za-z0-9]{1,15}/)(?P<res>[\w@.+\-;:#*%=~!$&]++)"
    r"(?:(?<=-[0-9a-f]{8})|(?<=-[0-9a-f]{8};[12]))"
)
_PHONES = re.compile(rf"(?P<id>{_ID})|{_CHANNEL}|(?P<run>{_RUN})")
# Digit groups inside a run that are not phone digits: ISO dates, decimals (Asterisk
# Uniqueids, durations) and IPv4 addresses. Octets and decimals have no leading zero, so
# `067.123.45.67` and `0501234567.5` stay phones.
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_NOT_PHONE = re.compile(
    r"(?<![\d\-])(?:19|2[01])\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?![\d\-])"
    rf"|(?<![\d.+]){_OCTET}(?:\.{_OCTET}){{3}}(?!\d|\.\d)"
    r"|(?<![\d.+])(?:0|[1-9]\d*+)\.\d++(?!\d|\.\d)"
)
_ESCAPED_SEP = re.compile(r"%2[0Bb89]")
_NON_DIGITS = re.compile(r"\D++")
_SEP_CHARS = " \t\u00a0().+-"
_MIN_DIGITS = 7


def mask_phone(raw: str) -> str:
    """`+380671234567` → `+38*********67`."""
    digits = _NON_DIGITS.sub("", raw)
    if len(digits) < _MIN_DIGITS:
        return raw
    if raw.startswith("+"):
        return f"+{digits[:2]}{'*' * (len(digits) - 4)}{digits[-2:]}"
    return f"{'*' * (len(digits) - 2)}{digits[-2:]}"


def _mask_email(match: re.Match[str]) -> str:
    tail, after = match["tail"], match["next"]
    if tail and after:
        tail = f"{tail[0]}***"
    return f"{match['local'][0]}***{match['rest']}{tail}{after or ''}"


def _mask_stretch(text: str) -> str:
    """Separators and digits between two non-phone groups: masked if 7+ digits."""
    core_start = len(text) - len(text.lstrip(_SEP_CHARS))
    core_end = len(text.rstrip(_SEP_CHARS))
    digits = _NON_DIGITS.sub("", text[core_start:core_end])
    if len(digits) < _MIN_DIGITS:
        return text
    lead = text[:core_start].rstrip("(")
    plus = lead.endswith("+")
    masked = mask_phone("+" + digits if plus else digits)
    return f"{lead.removesuffix('+')}{masked}{text[core_end:]}"


def _mask_run(run: str, after_clock: bool) -> str:
    """Mask the phone digits of a run, keeping dates, decimals and addresses in it."""
    if "%" in run:
        run = _ESCAPED_SEP.sub(lambda m: chr(int(m[0][1:], 16)), run)
    out: list[str] = []
    done = 0
    if after_clock and run[:2].isdigit() and not run[2:3].isdigit():
        out.append(run[:2])  # the seconds of `10:00:00 0501234567`
        done = 2
    if "-" in run or "." in run:  # what a date, a decimal or an address needs
        for unit in _NOT_PHONE.finditer(run, done):
            out += (_mask_stretch(run[done : unit.start()]), unit[0])
            done = unit.end()
    out.append(_mask_stretch(run[done:]))
    return "".join(out)


def _mask_phones(match: re.Match[str]) -> str:
    if match["id"] is not None:
        return match[0]
    if match["run"] is not None:
        start, text = match.start(), match.string
        return _mask_run(
            match[0], start > 1 and text[start - 1] == ":" and text[start - 2].isdigit()
        )
    resource, _, suffix = match["res"].rpartition("-")
    return f"{match['tech']}{_PHONES.sub(_mask_phones, resource)}-{suffix}"


def mask_pii(text: str) -> str:
    """Mask every phone number and e-mail address found in `text` (linear time)."""
    if "@" in text or "%40" in text:
        text = _EMAIL.sub(_mask_email, text)
    return _PHONES.sub(_mask_phones, text)


def bounded(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """`text` cut to `limit` characters, the cut said; a number or address the cut split
    is dropped whole, so no part of it too short to be recognised is left unmasked."""
    if len(text) <= limit:
        return text
    head = text[:limit].rstrip(_WORD_CHARS).rstrip(_RUN_CHARS)
    return f"{head} ...[cut: {len(text) - len(head)} more characters]"


# What a number or an address can be made of, for dropping one a cut split.
_WORD_CHARS = string.ascii_letters + string.digits + "._%+-@"
_RUN_CHARS = string.digits + " \t\u00a0().+-%"

# Characters that end or rewrite a line in a file, a terminal or a log viewer: C0
# controls but TAB, DEL, C1 (NEL), and the Unicode line and paragraph separators.
_BREAKERS = [*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029]
_TEXT_ESCAPES = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in _BREAKERS}
_TEXT_ESCAPES.update({0x0A: "\\n", 0x0D: "\\r"})
# In JSON output C0 is already escaped by json.dumps; the rest gets JSON's own escape.
_JSON_ESCAPES = {c: f"\\u{c:04x}" for c in _BREAKERS if c >= 0x7F}


def escape_line(text: str) -> str:
    """`text` with CR, LF and every other line-breaking character written as an escape."""
    return text.translate(_TEXT_ESCAPES)


def escape_json_line(text: str) -> str:
    """A serialised JSON line with the separators json.dumps leaves raw escaped."""
    return text.translate(_JSON_ESCAPES)


def safe_line(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """What a log line may carry of `text`: bounded, masked, one physical line."""
    return escape_line(mask_pii(bounded(text, limit)))
