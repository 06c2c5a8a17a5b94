"""AMI wire format: incremental frame parser, message type and action encoder."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import overload

DEFAULT_MAX_FRAME = 64 * 1024
BANNER_PREFIX = b"Asterisk Call Manager/"

_SEP = itemgetter(1)
# A header line as str.partition() returns it: (key, ": ", value).
Header = tuple[str, str, str]


class AmiMessage:
    """One AMI packet: ordered headers with case-insensitive, repeatable keys."""

    __slots__ = ("_headers", "_index", "_name")

    def __init__(self, headers: list[Header], name: str | None = None) -> None:
        """Wrap partitioned header lines; ``name`` is the already-peeked Event."""
        # Keeping the partition() triples avoids building a pair per line on
        # the hot path; the lookup dict is built only when a field is read.
        self._headers = headers
        self._index: dict[str, str] | None = None
        self._name = name

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]] | Mapping[str, str]) -> AmiMessage:
        """Build a message from (key, value) pairs or a mapping."""
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        return cls([(k, ": ", v) for k, v in items])

    def _lookup(self) -> dict[str, str]:
        index = self._index
        if index is None:
            # Reversed so that the first occurrence of a repeated key wins.
            index = {k.lower(): v for k, _, v in reversed(self._headers)}
            self._index = index
        return index

    @overload
    def get(self, key: str) -> str | None: ...

    @overload
    def get(self, key: str, default: str) -> str: ...

    def get(self, key: str, default: str | None = None) -> str | None:
        """First value of ``key`` (any case), or ``default``."""
        return self._lookup().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return self._lookup()[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._lookup()

    def get_all(self, key: str) -> list[str]:
        """Every value of ``key`` (any case) in wire order."""
        wanted = key.lower()
        return [v for k, _, v in self._headers if k.lower() == wanted]

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The (key, value) pairs in wire order, original key case."""
        return [(k, v) for k, _, v in self._headers]

    @property
    def name(self) -> str | None:
        """Event name, or None for responses."""
        if self._name is None:
            self._name = self._lookup().get("event")
        return self._name

    @property
    def is_event(self) -> bool:
        """True when the packet carries an ``Event`` header."""
        return self.name is not None

    @property
    def is_response(self) -> bool:
        """True when the packet carries a ``Response`` header."""
        return "response" in self._lookup()

    @property
    def response(self) -> str | None:
        """``Response`` value (Success, Error, Goodbye, ...) or None."""
        return self._lookup().get("response")

    @property
    def action_id(self) -> str | None:
        """``ActionID`` value or None."""
        return self._lookup().get("actionid")

    @property
    def is_success(self) -> bool:
        """True for ``Response: Success`` (and legacy ``Follows``)."""
        return self.response in ("Success", "Follows", "Goodbye")

    def to_dict(self) -> dict[str, str]:
        """First value per key, original case of the first occurrence."""
        out: dict[str, str] = {}
        for k, _, v in self._headers:
            out.setdefault(k, v)
        return out

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.headers)

    def __len__(self) -> int:
        return len(self._headers)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AmiMessage) and self._headers == other._headers

    def __hash__(self) -> int:
        return hash(tuple(self._headers))

    def __repr__(self) -> str:
        head = self.name or self.response or "?"
        return f"AmiMessage({head!r}, {len(self._headers)} headers)"


@dataclass
class ParserStats:
    """Counters kept by a parser."""

    messages: int = 0
    skipped_unwanted: int = 0
    malformed: int = 0
    oversized: int = 0

    @property
    def skipped(self) -> int:
        """Frames dropped as malformed or oversized."""
        return self.malformed + self.oversized


SkipCallback = Callable[[str, bytes], None]
"""Called with a reason ("malformed"/"oversized") and the (truncated) frame."""


def parse_frame(text: str, name: str | None = None) -> AmiMessage | None:
    """Parse one LF-separated frame body; None when a line has no colon."""
    lines = [line.partition(": ") for line in text.split("\n")]
    if not all(map(_SEP, lines)):
        # Slow path, rare: tolerate "Key:value" without the space.
        lines = [line.partition(":") for line in text.split("\n")]
        if not all(map(_SEP, lines)):
            return None
        lines = [(k, ": ", v.removeprefix(" ")) for k, _, v in lines]
    return AmiMessage(lines, name)


class AmiParser:
    """Incremental AMI parser: feed bytes, get messages; never raises on bad input."""

    def __init__(
        self,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        wanted: Callable[[str], bool] | None = None,
        on_skip: SkipCallback | None = None,
        expect_banner: bool = True,
        encoding: str = "utf-8",
    ) -> None:
        """Configure limits, the event filter and the skip callback."""
        self.max_frame = max_frame
        self.wanted = wanted
        self.on_skip = on_skip
        self.encoding = encoding
        self.banner: str | None = None
        self.stats = ParserStats()
        self._expect_banner = expect_banner
        self._buf = b""
        self._discarding = False  # inside an oversized frame, waiting for its end

    def feed(self, data: bytes) -> list[AmiMessage]:
        """Consume a chunk of bytes and return the complete messages in it."""
        if not data:
            return []
        buf = self._buf + data
        if b"\r" in buf:
            # Normalise CRLF to LF once per chunk (C speed); a CR at the very end
            # may be half of a CRLF split across chunks, so keep it for later.
            tail = b""
            if buf.endswith(b"\r"):
                buf, tail = buf[:-1], b"\r"
            buf = buf.replace(b"\r\n", b"\n") + tail
        if self._expect_banner:
            nl = buf.find(b"\n")
            if nl < 0:
                self._buf = buf
                self._check_size()
                return []
            self._expect_banner = False
            if buf.startswith(BANNER_PREFIX):
                self.banner = buf[:nl].decode(self.encoding, "replace").rstrip("\r")
                buf = buf[nl + 1 :]
        return self._frames(buf)

    def _frames(self, buf: bytes) -> list[AmiMessage]:
        out: list[AmiMessage] = []
        if self._discarding:
            end = buf.find(b"\n\n")
            if end < 0:
                self._buf = buf[-1:]  # keep a possible first LF of the separator
                return out
            self._discarding = False
            buf = buf[end + 2 :]
        end = buf.rfind(b"\n\n")
        if end < 0:
            self._buf = buf
            self._check_size()
            return out
        self._buf = buf[end + 2 :]
        # One decode for all complete frames: LF is ASCII and never part of a
        # multi-byte UTF-8 sequence, so the cut is always on a character edge.
        text = buf[:end].decode(self.encoding, "replace")
        wanted = self.wanted
        max_frame = self.max_frame
        stats = self.stats
        for frame in text.split("\n\n"):
            if not frame:
                continue  # stray blank lines between packets
            if frame[0] == "\n":  # extra blank line glued to this frame
                frame = frame.lstrip("\n")
                if not frame:
                    continue
            if len(frame) > max_frame:
                self._skip("oversized", frame.encode(self.encoding, "replace"))
                continue
            name: str | None = None
            if frame.startswith("Event: "):
                # Peek at the event name so unwanted events cost one find().
                nl = frame.find("\n")
                name = frame[7:nl] if nl >= 0 else frame[7:]
                if wanted is not None and not wanted(name):
                    stats.skipped_unwanted += 1
                    continue
            msg = parse_frame(frame, name)
            if msg is None:
                self._skip("malformed", frame.encode(self.encoding, "replace"))
                continue
            stats.messages += 1
            out.append(msg)
        self._check_size()
        return out

    def _check_size(self) -> None:
        if len(self._buf) > self.max_frame:
            # A frame that grows past the limit is dropped now rather than
            # buffered; the rest of it is discarded up to the next blank line.
            self._skip("oversized", self._buf)
            self._buf = self._buf[-1:] if self._buf.endswith(b"\n") else b""
            self._discarding = True
            self._expect_banner = False

    def _skip(self, reason: str, frame: bytes) -> None:
        if reason == "oversized":
            self.stats.oversized += 1
        else:
            self.stats.malformed += 1
        if self.on_skip is not None:
            self.on_skip(reason, frame[:256])

    @property
    def expecting_banner(self) -> bool:
        """True until the first line has been seen (banner or not)."""
        return self._expect_banner

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the end of a frame."""
        return len(self._buf)


def encode_action(fields: Mapping[str, str] | list[tuple[str, str]]) -> bytes:
    """Serialise an action (keys may repeat when given as pairs) to CRLF bytes."""
    items = fields.items() if isinstance(fields, Mapping) else fields
    parts = [f"{k}: {v}\r\n" for k, v in items]
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")


def encode_message(msg: AmiMessage) -> bytes:
    """Serialise a message back to its wire form."""
    return encode_action(msg.headers)
