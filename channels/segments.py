"""How many SMS parts a text costs: GSM-7 when every character fits, else UCS-2.

GSM-7: 160 septets in one part, 153 per part once split (the rest carries the
concatenation header); extension characters (`^{}\\[~]|€`, form feed) take two septets,
an escape and the character, and a part never ends between the two. UCS-2: 70 units,
67 per part; a character outside the Basic Multilingual Plane is a surrogate pair,
two units that are never split. One non-GSM character (any Cyrillic letter) makes the
whole message UCS-2. Septet counts come from the `gsm0338` codec, not a table of ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)

Encoding = Literal["GSM-7", "UCS-2"]

GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67
_CODEC = "gsm03.38"


@dataclass(frozen=True)
class SegmentCount:
    """The encoding, the total units (septets or UTF-16 units) and the number of parts."""

    encoding: Encoding
    units: int
    segments: int


def _gsm_costs(text: str) -> list[int] | None:
    """Septets per character, or None when a character is not in GSM 03.38."""
    try:
        return [len(char.encode(_CODEC)) for char in text]
    except UnicodeEncodeError:
        return None


def _ucs2_costs(text: str) -> list[int]:
    return [2 if ord(char) > 0xFFFF else 1 for char in text]


def _pack(text: str, costs: list[int], part_size: int) -> list[tuple[str, int]]:
    """Greedy split into parts of at most `part_size` units, never splitting a character.

    Greedy is optimal here: parts are consecutive, so filling each one as far as it
    goes can only leave fewer characters for the later parts.
    """
    parts: list[tuple[str, int]] = []
    start = used = 0
    for index, cost in enumerate(costs):
        if used + cost > part_size:
            parts.append((text[start:index], used))
            start, used = index, 0
        used += cost
    parts.append((text[start:], used))
    return parts


def encoding_of(text: str) -> Encoding:
    """GSM-7 when every character is in the GSM 03.38 alphabet, else UCS-2."""
    return "GSM-7" if _gsm_costs(text) is not None else "UCS-2"


def split_parts(text: str) -> tuple[Encoding, list[tuple[str, int]]]:
    """The encoding and each part as (its text, its units), as a handset receives them."""
    gsm = _gsm_costs(text)
    if gsm is not None:
        encoding: Encoding = "GSM-7"
        costs, single, part = gsm, GSM_SINGLE, GSM_PART
    else:
        encoding, costs, single, part = "UCS-2", _ucs2_costs(text), UCS2_SINGLE, UCS2_PART
    total = sum(costs)
    if total <= single:
        return encoding, [(text, total)]
    return encoding, _pack(text, costs, part)


def count_segments(text: str) -> SegmentCount:
    """Parts billed for `text`; an empty text is still one (empty) part."""
    encoding, parts = split_parts(text)
    return SegmentCount(encoding, sum(units for _, units in parts), len(parts))
