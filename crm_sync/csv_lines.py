"""The lines of a CSV file as the csv module reads them, with runaway quoted fields cut short.

csv.reader asks for another line only while a quoted field is open, so one unterminated
quote makes it swallow every following line into that field (up to the csv module's
128 KiB field limit, or the end of the file) and the rows in between are lost without a
word. This source watches the record being read: when it would take more than
MAX_RECORD_LINES lines or MAX_RECORD_CHARS characters, or the file ends with the quote still
open, the record is a runaway. Its first line is then reported as a bad row and every
line after it is read again as the start of a fresh record, so each good row is kept.

The limits are far above any real customer row (the widest column holds 320 characters)
and bound the re-reading: a line is read again at most MAX_RECORD_LINES times.
"""

from __future__ import annotations

from collections import deque
from typing import BinaryIO, NamedTuple

MAX_RECORD_LINES = 100
MAX_RECORD_CHARS = 65_536
UTF8_BOM = b"\xef\xbb\xbf"


class Line(NamedTuple):  # a tuple: one is made per line of the file, cheaply
    """One physical line: its number (1 is the header), text, and whether it was UTF-8."""

    number: int
    text: str
    undecodable: bool


class RunawayField(Exception):
    """A quoted field that does not close within the limits; the message says which."""


class LineSource:
    """An iterator of decoded lines for csv.reader that remembers the current record's."""

    def __init__(self, file: BinaryIO) -> None:
        self.bytes_read = 0
        self.record: list[Line] = []
        self.record_undecodable = False
        self.ended_open = False
        self._file = file
        self._numbered = 0
        self._replay: deque[Line] = deque()
        self._record_chars = 0

    def __iter__(self) -> LineSource:
        return self

    def __next__(self) -> str:
        # A class, not a generator: raising RunawayField here must leave it usable, and
        # csv.reader resets its own state at every row, so reading simply goes on.
        if self.record:  # csv wants one more line: a quoted field is still open
            if len(self.record) >= MAX_RECORD_LINES:
                raise RunawayField(f"no closing quote within {MAX_RECORD_LINES} lines")
            if self._record_chars > MAX_RECORD_CHARS:
                raise RunawayField(f"no closing quote within {MAX_RECORD_CHARS} characters")
        line = self._replay.popleft() if self._replay else self._read()
        if line is None:
            self.ended_open = bool(self.record)
            raise StopIteration
        self.record.append(line)
        self._record_chars += len(line.text)
        if line.undecodable:
            self.record_undecodable = True
        return line.text

    def start_record(self) -> None:
        """Forget the lines of the previous record."""
        self.record = []
        self._record_chars = 0
        self.record_undecodable = False
        self.ended_open = False

    def reread_after_first(self) -> None:
        """Give the current record's lines but its first to csv again, in order."""
        self._replay.extendleft(reversed(self.record[1:]))

    def _read(self) -> Line | None:
        # Lines are split on bytes (a newline byte never occurs inside a UTF-8 sequence)
        # so that one undecodable line rejects one row instead of the whole file.
        raw = self._file.readline()
        if not raw:
            return None
        self._numbered += 1
        self.bytes_read += len(raw)
        if self._numbered == 1 and raw.startswith(UTF8_BOM):
            raw = raw[len(UTF8_BOM) :]
        try:
            return Line(self._numbered, raw.decode("utf-8"), False)
        except UnicodeDecodeError:
            return Line(self._numbered, raw.decode("utf-8", errors="replace"), True)
