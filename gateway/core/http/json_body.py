"""JSON documents from outside parsed without recursion risk: nesting depth checked first.

json.loads, and everything that walks the parsed value afterwards (the NUL check,
pydantic), recurses once per nesting level, so a body ~1,000 levels deep raised
RecursionError and answered 500. The standard library has no depth option and the
well-kept alternatives (orjson: 1,024 levels) have a fixed limit of their own, so a
scan measures the depth before parsing: strings removed by one regex, every byte but
brackets dropped by bytes.translate, and the running depth summed by numpy. Every pass
runs in C and nothing recurses: a 1 MiB body of brackets costs ~10 ms on an idle core
(~100 ms with itertools.accumulate instead of numpy).
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

# Far deeper than any document of ours (a rule nests at most 12 levels) and far from
# Python's recursion limit.
MAX_JSON_DEPTH = 64

# A string, or an unterminated one up to the end: every quote starts a match that cannot
# fail, so the scan stays linear (a pattern that must find the closing quote is tried
# again from each escaped quote of an unterminated string: quadratic on `"\"\"\"…`).
_STRING = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_STEPS = np.zeros(256, dtype=np.int8)
_STEPS[list(b"[{")] = 1
_STEPS[list(b"]}")] = -1


class TooDeep(ValueError):
    """A JSON document nested deeper than the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"body is nested deeper than {limit} levels (the limit for JSON)")
        self.limit = limit


def json_depth(text: str) -> int:
    """How deep arrays and objects nest in `text` (0 for a scalar); brackets in strings
    do not count. Meant for JSON: for other text the figure is only an estimate."""
    stripped = _STRING.sub("", text).encode("utf-8", "surrogatepass")
    brackets = np.frombuffer(stripped.translate(None, _NOT_BRACKETS), dtype=np.uint8)
    if not brackets.size:
        return 0
    return max(0, int(np.cumsum(_STEPS[brackets], dtype=np.int64).max()))


def loads_bounded(raw: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads after a depth check: TooDeep past `max_depth`, ValueError when invalid."""
    # Decoded as json.loads decodes bytes (UTF-8, -16 or -32): scanning the bytes of a
    # UTF-16 body would take a 0x22 byte inside a character for a quote.
    text = raw if isinstance(raw, str) else raw.decode(json.detect_encoding(raw), "surrogatepass")
    if len(text) > max_depth and json_depth(text) > max_depth:
        raise TooDeep(max_depth)
    return json.loads(text)
