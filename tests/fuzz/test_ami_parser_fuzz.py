"""AMI parser under hostile bytes: never raises, never hangs, memory bounded by the frame
limit, and a good frame after any garbage still comes through.

`SWITCHBOARD_FUZZ_SCALE=full` (what `make fuzz` sets) runs many more examples."""

from __future__ import annotations

import itertools
import os
import time
import tracemalloc
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.ami.protocol import AmiMessage, AmiParser

FULL = os.environ.get("SWITCHBOARD_FUZZ_SCALE") == "full"
EXAMPLES = 4000 if FULL else 150
# A hang guard, not a performance figure: a linear parser takes milliseconds here.
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MAX_FRAME = 1024
GOOD = b"Event: Hangup\r\nLinkedid: 1700000000.1\r\nCause: 16\r\n\r\n"

_piece = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [b"\r\n", b"\n", b"\r", b"\r\n\r\n", b"\n\n", b": ", b"Event: ", b"Response: Success"]
    ),
    st.builds(lambda n: b"X" * n, st.integers(0, 3 * MAX_FRAME)),  # over the limit
    st.just(GOOD),
    st.just("Event: Дзвінок\r\nCallerIDName: Олена\r\n\r\n".encode()),
    st.just(b"Event: Bad\r\nno colon here\r\n\r\n"),
)
stream = st.lists(_piece, max_size=30).map(b"".join)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """`data` split at the given offsets (taken modulo its length, sorted)."""
    points = sorted({cut % (len(data) + 1) for cut in cuts}) if data else []
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def feed_all(parser: AmiParser, chunks: list[bytes]) -> list[AmiMessage]:
    """Feed every chunk, checking the buffer bound after each one."""
    out: list[AmiMessage] = []
    for chunk in chunks:
        out += parser.feed(chunk)
        # The limit counts characters with LF line ends, so the raw buffer may also hold
        # each line's CR: a non-blank line has at least one character, hence at most
        # 1.5 times the limit (plus a split CRLF) and never more, whatever the chunk.
        assert parser.buffered <= raw_bound(parser), (parser.buffered, len(chunk))
    return out


def raw_bound(parser: AmiParser) -> int:
    """Most raw bytes a parser may hold between reads."""
    return parser.max_frame * 3 // 2 + 2


def headers(messages: list[AmiMessage]) -> list[list[tuple[str, str]]]:
    """Comparable content of messages."""
    return [message.headers for message in messages]


@FUZZ
@given(data=st.binary(max_size=8 * MAX_FRAME), cuts=st.lists(st.integers(0, 10**6), max_size=40))
def test_random_bytes_in_random_chunks_never_raise(data: bytes, cuts: list[int]) -> None:
    parser = AmiParser(max_frame=MAX_FRAME)
    for message in feed_all(parser, chunked(data, cuts)):
        message.to_dict()  # lazy messages parse on access: that must not raise either
        _ = message.name, message.action_id, message.is_success


@FUZZ
@given(data=stream, cuts=st.lists(st.integers(0, 10**6), max_size=40))
def test_chunking_never_changes_the_messages(data: bytes, cuts: list[int]) -> None:
    whole = AmiParser(max_frame=MAX_FRAME, expect_banner=False)
    pieces = AmiParser(max_frame=MAX_FRAME, expect_banner=False)
    expected = whole.feed(data)
    got = feed_all(pieces, chunked(data, cuts))
    assert headers(got) == headers(expected)
    assert pieces.stats.oversized == whole.stats.oversized


@FUZZ
@given(garbage=stream, cuts=st.lists(st.integers(0, 10**6), max_size=20))
def test_a_good_frame_after_any_garbage_comes_through(garbage: bytes, cuts: list[int]) -> None:
    skipped: list[tuple[str, bytes]] = []
    parser = AmiParser(
        max_frame=MAX_FRAME, expect_banner=False, on_skip=lambda r, f: skipped.append((r, f))
    )
    # A blank line ends whatever the garbage left open; then one good event.
    messages = feed_all(parser, chunked(garbage + b"\r\n\r\n" + GOOD, cuts))
    assert messages and messages[-1].headers == AmiParser(expect_banner=False).feed(GOOD)[0].headers
    assert all(reason in ("oversized", "malformed") and len(f) <= 256 for reason, f in skipped)
    assert parser.stats.skipped == len(skipped)


@FUZZ
@given(
    size=st.integers(MAX_FRAME + 1, 20 * MAX_FRAME),
    chunk=st.integers(1, 4 * MAX_FRAME),
    crlf_every=st.one_of(st.none(), st.integers(1, 80)),
)
def test_frames_over_the_limit_are_dropped_and_counted(
    size: int, chunk: int, crlf_every: int | None
) -> None:
    line = b"A" * (crlf_every or size)
    body = (line + b"\r\n") * (size // len(line) + 1) if crlf_every else line
    data = b"Event: Huge\r\n" + body + b"\r\n\r\n" + GOOD
    parser = AmiParser(max_frame=MAX_FRAME, expect_banner=False)
    messages = feed_all(parser, [data[i : i + chunk] for i in range(0, len(data), chunk)])
    assert [message.name for message in messages] == ["Hangup"]
    assert parser.stats.oversized == 1


@FUZZ
@given(count=st.integers(1, 5000), chunk=st.integers(64, 8192))
def test_huge_numbers_of_headers(count: int, chunk: int) -> None:
    frame = b"Event: Many\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(count)) + b"\r\n"
    limit = 16 * 1024
    parser = AmiParser(max_frame=limit, expect_banner=False)
    data = frame + GOOD
    messages = feed_all(parser, [data[i : i + chunk] for i in range(0, len(data), chunk)])
    fits = len(frame.replace(b"\r\n", b"\n")) - 1 <= limit
    names = [message.name for message in messages]
    assert names == (["Many", "Hangup"] if fits else ["Hangup"])
    if fits:
        assert len(messages[0].headers) == count + 1
        assert messages[0].get(f"H{count - 1}") == "v"


def test_an_endless_line_without_crlf_keeps_memory_bounded() -> None:
    parser = AmiParser(max_frame=64 * 1024)
    chunk = b"Z" * 65_536
    total = 16 * 1024 * 1024 if FULL else 4 * 1024 * 1024
    tracemalloc.start()
    try:
        started = time.monotonic()
        for _ in range(total // len(chunk)):
            assert parser.feed(chunk) == []
            assert parser.buffered <= parser.max_frame + len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A buffer that grew with the stream would peak near `total` (megabytes).
    assert peak < 8 * (parser.max_frame + len(chunk)), peak
    assert parser.stats.oversized == 1  # one endless frame, dropped once
    assert parser.feed(b"\r\n\r\n" + GOOD)[-1].name == "Hangup"
    assert time.monotonic() - started < 60  # a hang guard only


def test_endless_lines_with_line_ends_but_no_blank_line_stay_bounded() -> None:
    parser = AmiParser(max_frame=4096, expect_banner=False)
    line = b"Variable: " + b"v" * 50 + b"\r\n"
    for _ in range(20_000):
        parser.feed(line)
        assert parser.buffered <= raw_bound(parser)
    assert parser.stats.oversized >= 1
    assert parser.feed(b"\r\n" + GOOD)[-1].name == "Hangup"
