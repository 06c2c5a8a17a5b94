"""One AMI packet, kept as its wire text and read lazily."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Mapping
from operator import itemgetter
from typing import Final, overload

Pair = tuple[str, str]

# A "clean" text is what the parser's fast path accepts and what a lazy
# message holds: frames separated by blank CRLF lines, every
# other line "Key: value" ending in CRLF (a lone LF still ends a line, as it
# always did), keys made of [A-Za-z0-9_.()/-]. Checked once per read with
# one search for a bad line start, which costs far less than splitting and
# partitioning every header line; anything unusual (bare-LF blank lines,
# "Key:value", other key characters, garbage) takes the line-by-line path.
# The key class is deliberately narrow: sre tests a small ASCII class as a
# bitmap, several times faster than a negated one.
_KEY = r"[A-Za-z0-9_.()/-]*+"
_BAD_FIRST = re.compile(rf"(?!\r\n){_KEY}(?!: )")
_BAD_LINE = re.compile(rf"\n(?!\r\n){_KEY}(?!: )")


def is_clean(text: str) -> bool:
    """True when ``text`` (frames, blank CRLF lines between them) can be read lazily."""
    return _BAD_FIRST.match(text) is None and _BAD_LINE.search(text) is None


_SEP = itemgetter(1)


class _Unset(enum.Enum):
    TOKEN = 0


UNSET: Final = _Unset.TOKEN
"""``name`` not peeked by the parser yet: look it up on first use."""


def _needle(key: str) -> str:
    """``"\\n" + key.lower() + ":"``, or a needle that no clean text contains."""
    low = key.lower()
    # The trailing ": " is left out: every clean key is followed by it, and a
    # needle ending in the rarer ":" is found faster. A key holding ":" is
    # no clean line's key (and would match one ending inside a value): it
    # gets LF LF, which clean text never contains.
    needle = "\n\n" if ":" in low else "\n" + low + ":"
    if len(_NEEDLES) >= 1024:
        _NEEDLES.clear()  # keys come from callers, a few dozen in practice
    _NEEDLES[key] = needle
    return needle


# Memo of _needle(): get() is the hottest call after the parser's loop.
_NEEDLES: dict[str, str] = {}


class AmiMessage:
    """One AMI packet: ordered headers with case-insensitive, repeatable keys.

    A parsed packet keeps its frame as clean text (see ``is_clean``:
    ``Key: value`` lines, the CR of the last CRLF kept) and answers
    ``get`` with a find() on the lower-cased text; the header list and the
    lookup dict are built only when something needs them.
    """

    __slots__ = ("_index", "_low", "_name", "_pairs", "_text")

    def __init__(self, text: str, name: str | _Unset | None = UNSET) -> None:
        """Wrap one clean frame; ``name`` is the already-peeked Event."""
        self._text: str | None = text
        self._name = name
        self._low: str | None = None
        self._pairs: list[Pair] | None = None
        self._index: dict[str, str] | None = None

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]] | Mapping[str, str]) -> AmiMessage:
        """Build a message from (key, value) pairs or a mapping."""
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        msg = cls("")
        msg._text = None
        msg._pairs = [(k, v) for k, v in items]
        return msg

    # -- representations ------------------------------------------------------
    def _dict_get(self, key: str, default: str | None) -> str | None:
        if self._text is not None:
            # U+0130 lower-cases to two characters, so offsets in the lowered
            # text would not point into the text: use the dict from now on.
            self._split()
            self._text = None
        return self._lookup().get(key.lower(), default)

    def _split(self) -> list[Pair]:
        pairs = self._pairs
        if pairs is None:
            assert self._text is not None
            text = self._text
            if text.endswith("\r"):
                text = text[:-1]  # the CR of the last line's CRLF
            lines = text.replace("\r\n", "\n").split("\n")
            pairs = [(k, v) for k, _, v in (ln.partition(": ") for ln in lines)]
            self._pairs = pairs
        return pairs

    def _lookup(self) -> dict[str, str]:
        index = self._index
        if index is None:
            # Reversed so that the first occurrence of a repeated key wins.
            index = {k.lower(): v for k, v in reversed(self._split())}
            self._index = index
        return index

    # -- mapping-like access ------------------------------------------------
    @overload
    def get(self, key: str) -> str | None: ...

    @overload
    def get(self, key: str, default: str) -> str: ...

    def get(self, key: str, default: str | None = None) -> str | None:
        """First value of ``key`` (any case), or ``default``."""
        # The hot path of every handler, hence inlined rather than shared.
        text = self._text
        low = self._low
        if low is None:
            if text is not None:
                # The leading LF lets one find() cover the first line too.
                low = "\n" + text.lower()
            if low is None or len(low) != len(text) + 1:  # type: ignore[arg-type]
                return self._dict_get(key, default)
            self._low = low
        start = low.find(needle := _NEEDLES.get(key) or _needle(key))
        if start < 0:
            return default
        # ``low`` has one more character in front, the needle lacks the space.
        start += len(needle)
        assert text is not None  # set whenever _low is
        end = text.find("\n", start)
        if end < 0:
            end = len(text)  # the last line, which keeps the CR of its CRLF
        # A CRLF line end; a lone LF (tolerated) ends the line just the same.
        return text[start : end - 1] if text[end - 1] == "\r" else text[start:end]

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key.lower())
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def get_all(self, key: str) -> list[str]:
        """Every value of ``key`` (any case) in wire order."""
        wanted = key.lower()
        return [v for k, v in self._split() if k.lower() == wanted]

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The (key, value) pairs in wire order, original key case."""
        return list(self._split())

    @property
    def name(self) -> str | None:
        """Event name, or None for responses."""
        name = self._name
        if name is UNSET:
            name = self._name = self.get("Event")
        return name

    @property
    def is_event(self) -> bool:
        """True when the packet carries an ``Event`` header."""
        return self.name is not None

    @property
    def is_response(self) -> bool:
        """True when the packet carries a ``Response`` header."""
        return self.get("Response") is not None

    @property
    def response(self) -> str | None:
        """``Response`` value (Success, Error, Goodbye, ...) or None."""
        return self.get("Response")

    @property
    def action_id(self) -> str | None:
        """``ActionID`` value or None."""
        return self.get("ActionID")

    @property
    def is_success(self) -> bool:
        """True for ``Response: Success`` (and legacy ``Follows``)."""
        return self.response in ("Success", "Follows", "Goodbye")

    def to_dict(self) -> dict[str, str]:
        """First value per key, original case of the first occurrence."""
        out: dict[str, str] = {}
        for k, v in self._split():
            out.setdefault(k, v)
        return out

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.headers)

    def __len__(self) -> int:
        return len(self._split())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AmiMessage):
            return False
        return self._split() == other._split()

    def __hash__(self) -> int:
        return hash(tuple(self._split()))

    def __repr__(self) -> str:
        head = self.name or self.response or "?"
        return f"AmiMessage({head!r}, {len(self)} headers)"


def parse_frame(text: str, name: str | None = None) -> AmiMessage | None:
    """Parse one LF-separated frame body; None when a line has no colon."""
    lines = [line.partition(": ") for line in text.split("\n")]
    if not all(map(_SEP, lines)):
        # Slow path, rare: tolerate "Key:value" without the space.
        lines = [line.partition(":") for line in text.split("\n")]
        if not all(map(_SEP, lines)):
            return None
        lines = [(k, ": ", v.removeprefix(" ")) for k, _, v in lines]
    msg = AmiMessage.from_pairs([(k, v) for k, _, v in lines])
    if name is not None:
        msg._name = name  # already peeked by the parser
    return msg


def canonical_frame(frame: str, name: str | None) -> AmiMessage | None:
    """Parse an LF frame; when it can be rewritten as clean CRLF text, keep it lazy."""
    msg = parse_frame(frame, name)
    if msg is None:
        return None
    pairs = msg.headers
    text = "".join(f"{k}: {v}\r\n" for k, v in pairs)[:-1]  # as the fast path cuts it
    if is_clean(text):
        return AmiMessage(text, msg.name)
    return msg
