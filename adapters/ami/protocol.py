"""AMI wire format: incremental frame parser and action encoder."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from adapters.ami.message import AmiMessage, canonical_frame, is_clean, parse_frame

__all__ = [
    "BANNER_PREFIX",
    "DEFAULT_MAX_FRAME",
    "AmiMessage",
    "AmiParser",
    "ParserStats",
    "SkipCallback",
    "encode_action",
    "encode_message",
    "parse_frame",
]

DEFAULT_MAX_FRAME = 64 * 1024
BANNER_PREFIX = b"Asterisk Call Manager/"


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


def _blank_line_end(buf: bytes, last: bool) -> int:
    """Index just past the first (or ``last``) blank line in raw bytes, or -1.

    A blank line is LF followed by LF or by CRLF, so CRLF, bare-LF and mixed
    streams all end frames in the same place.
    """
    if last:
        a, b = buf.rfind(b"\n\n"), buf.rfind(b"\n\r\n")
        return max(a + 2 if a >= 0 else -1, b + 3 if b >= 0 else -1)
    a, b = buf.find(b"\n\n"), buf.find(b"\n\r\n")
    ends = [i + n for i, n in ((a, 2), (b, 3)) if i >= 0]
    return min(ends) if ends else -1


def _lf_length(frame: str) -> int:
    """Length of a fast-path frame as the line-by-line path would see it."""
    return len(frame) - frame.count("\r\n") - frame.endswith("\r")


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
        self._buf = b""  # raw bytes of the frame still incomplete
        self._discarding = False  # inside an oversized frame, waiting for its end

    def feed(self, data: bytes) -> list[AmiMessage]:
        """Consume a chunk of bytes and return the complete messages in it."""
        if not data:
            return []
        buf = self._buf + data if self._buf else data
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
        if self._discarding:
            end = _blank_line_end(buf, last=False)
            if end < 0:
                self._buf = buf[-2:]  # may be the start of the blank line
                return []
            self._discarding = False
            buf = buf[end:]
        out: list[AmiMessage] | None = None
        # Frames end at a CRLF blank line; splitting at LF CRLF (not CRLF
        # CRLF) also takes a bare-LF line before it, and leaves the CR of
        # the last line end on each frame, which readers drop.
        end = buf.rfind(b"\n\r\n")
        if end >= 0:
            # One decode for all complete frames: CR and LF are ASCII and
            # never part of a multi-byte UTF-8 sequence, so the cut is always
            # on a character edge.
            text = buf[:end].decode(self.encoding, "replace")
            if is_clean(text):
                out = self._clean_frames(text)
                buf = buf[end + 3 :]
        if out is None:
            out = self._frames(buf)
        elif b"\n\n" in buf:
            out += self._frames(buf)  # bare-LF frames after the CRLF ones
        else:
            self._buf = buf
            self._check_size()
        self.stats.messages += len(out)
        return out

    def _clean_frames(self, text: str) -> list[AmiMessage]:
        """Split clean CRLF text into lazy messages: no per-header work."""
        out: list[AmiMessage] = []
        append = out.append
        wanted = self.wanted
        max_frame = self.max_frame
        unwanted = 0
        for frame in text.split("\n\r\n"):
            if not frame or frame[0] == "\r":
                frame = frame.lstrip("\r\n")  # blank lines between packets
                if not frame:
                    continue
            # The limit counts characters with LF line ends, as the line path
            # does, so both paths drop the same frames.
            if len(frame) > max_frame and _lf_length(frame) > max_frame:
                self._skip("oversized", frame.encode(self.encoding, "replace"))
                continue
            if frame.startswith("Event: "):
                # Peek at the event name so unwanted events cost one find().
                nl = frame.find("\n")
                if nl < 0:
                    nl = len(frame)  # a one-line frame; it ends with the CR
                name = frame[7 : nl - 1] if frame[nl - 1] == "\r" else frame[7:nl]
                if wanted is not None and not wanted(name):
                    unwanted += 1
                    continue
                append(AmiMessage(frame, name))
            else:
                append(AmiMessage(frame))
        self.stats.skipped_unwanted += unwanted
        return out

    def _frames(self, buf: bytes) -> list[AmiMessage]:
        """Line-by-line path for anything but clean CRLF: bare LF, bad frames."""
        end = _blank_line_end(buf, last=True)
        if end < 0:
            self._buf = buf
            self._check_size()
            return []
        self._buf = buf[end:]  # kept raw so the next read can take the fast path
        out = self._lf_frames(buf[:end].replace(b"\r\n", b"\n").decode(self.encoding, "replace"))
        self._check_size()
        return out

    def _lf_frames(self, text: str) -> list[AmiMessage]:
        """Parse LF-separated frames one header line at a time."""
        out: list[AmiMessage] = []
        wanted = self.wanted
        max_frame = self.max_frame
        for frame in text.split("\n\n"):
            if not frame or frame[0] == "\n":
                frame = frame.lstrip("\n")  # blank lines between packets
                if not frame:
                    continue
            if len(frame) > max_frame:
                self._skip("oversized", frame.encode(self.encoding, "replace"))
                continue
            name: str | None = None
            if frame.startswith("Event: "):
                nl = frame.find("\n")
                name = frame[7:nl] if nl >= 0 else frame[7:]
                if wanted is not None and not wanted(name):
                    self.stats.skipped_unwanted += 1
                    continue
            msg = canonical_frame(frame, name)
            if msg is None:
                self._skip("malformed", frame.encode(self.encoding, "replace"))
                continue
            out.append(msg)
        return out

    def _check_size(self) -> None:
        buf = self._buf
        # Measured with LF line ends, like a complete frame (cheap: only
        # counted once the raw size is over the limit).
        if len(buf) > self.max_frame and len(buf) - buf.count(b"\r\n") > self.max_frame:
            # A frame that grows past the limit is dropped now rather than
            # buffered; the rest of it is discarded up to the next blank line.
            self._skip("oversized", buf)
            self._buf = buf[-2:]
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
