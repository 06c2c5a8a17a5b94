"""The incremental AMI parser against every recorded Asterisk trace and bad input."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.ami.protocol import AmiMessage, AmiParser, encode_action, encode_message

TRACE_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "ami"
ALL_TRACES = {p.stem: p.read_bytes() for p in sorted(TRACE_DIR.glob("*.txt"))}


def naive_parse(data: bytes) -> list[list[tuple[str, str]]]:
    """Reference: split by hand, the obvious slow way."""
    text = data.decode()
    _banner, _, rest = text.partition("\r\n")
    packets = []
    for block in rest.split("\r\n\r\n"):
        if not block:
            continue
        packets.append([tuple(line.split(": ", 1)) for line in block.split("\r\n")])
    return packets  # type: ignore[return-value]


def parse_whole(data: bytes) -> list[AmiMessage]:
    parser = AmiParser()
    messages = parser.feed(data)
    assert parser.buffered == 0
    assert parser.stats.skipped == 0
    return messages


def test_all_twenty_traces_are_present() -> None:
    assert len(ALL_TRACES) == 20


def test_every_trace_parses_like_the_reference(trace: bytes) -> None:
    messages = parse_whole(trace)
    reference = naive_parse(trace)
    assert [m.headers for m in messages] == [list(map(tuple, p)) for p in reference]
    events = [m for m in messages if m.is_event]
    assert len(events) == sum(1 for p in reference if p[0][0] == "Event")


def test_banner_is_reported_and_not_a_message(trace: bytes) -> None:
    parser = AmiParser()
    messages = parser.feed(trace)
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    assert all(m.is_event or m.is_response for m in messages)


def test_byte_by_byte_feed_gives_the_same_messages() -> None:
    data = ALL_TRACES["bridged_dial"]
    parser = AmiParser()
    out: list[AmiMessage] = []
    for i in range(len(data)):
        out.extend(parser.feed(data[i : i + 1]))
    assert out == parse_whole(data)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(sorted(ALL_TRACES)),
    cuts=st.lists(st.integers(min_value=0, max_value=90_000), max_size=40),
)
def test_random_chunk_boundaries_do_not_change_the_result(name: str, cuts: list[int]) -> None:
    data = ALL_TRACES[name]
    points = sorted({c % (len(data) + 1) for c in cuts})
    parser = AmiParser()
    out: list[AmiMessage] = []
    prev = 0
    for p in [*points, len(data)]:
        out.extend(parser.feed(data[prev:p]))
        prev = p
    assert out == parse_whole(data)


def test_counts_per_trace_match_the_readme_for_bridged_dial() -> None:
    events = [m.name for m in parse_whole(ALL_TRACES["bridged_dial"]) if m.is_event]
    assert events.count("VarSet") == 27
    assert events.count("CEL") == 21
    assert events.count("Hangup") == 4
    assert events.count("Cdr") == 3


def test_keys_are_case_insensitive_and_repeatable() -> None:
    msgs = parse_whole(ALL_TRACES["bridged_long_cdr_linkedid"])
    cdr = next(m for m in msgs if m.name == "Cdr")
    assert cdr.get("uniqueid") == cdr.get("UniqueID") == cdr["UNIQUEID"]
    assert cdr.get("linkedid") == cdr.get("LinkedID")
    assert cdr.get("AccountCode") == ""  # "AccountCode: " is an empty value
    msg = AmiParser(expect_banner=False).feed(
        b"Event: VarSet\r\nVariable: A=1\r\nvariable: B=2\r\nVARIABLE: C=3\r\n\r\n"
    )[0]
    assert msg.get("Variable") == "A=1"
    assert msg.get_all("variable") == ["A=1", "B=2", "C=3"]
    assert "variable" in msg and "Nope" not in msg


def test_message_accessors() -> None:
    msgs = parse_whole(ALL_TRACES["click_to_call"])
    resp = msgs[0]
    assert resp.is_response and not resp.is_event and resp.is_success
    assert resp.action_id == "click_to_call-login" and resp.name is None
    orig = next(m for m in msgs if m.name == "OriginateResponse")
    assert orig.action_id == "c2c-1" and orig.get("Reason") == "4"
    assert encode_message(orig).endswith(b"\r\n\r\n")
    assert AmiParser(expect_banner=False).feed(encode_message(orig)) == [orig]


def test_bare_lf_line_ends_are_tolerated() -> None:
    data = ALL_TRACES["ping"].replace(b"\r\n", b"\n")
    assert AmiParser().feed(data) == parse_whole(ALL_TRACES["ping"])


def test_crlf_split_between_chunks() -> None:
    data = b"Response: Success\r\nActionID: 1\r\n\r\n"
    parser = AmiParser(expect_banner=False)
    assert parser.feed(data[:-1]) == []
    assert [m.action_id for m in parser.feed(data[-1:])] == ["1"]


def test_malformed_frame_is_skipped_and_stream_continues() -> None:
    skipped: list[tuple[str, bytes]] = []
    parser = AmiParser(expect_banner=False, on_skip=lambda r, f: skipped.append((r, f)))
    out = parser.feed(
        b"Event: A\r\nthis line has no colon\r\nX: 1\r\n\r\n"
        b"\x00\xffgarbage\r\n\r\n"
        b"Event: B\r\nY: 2\r\n\r\n"
    )
    assert [m.name for m in out] == ["B"]
    assert parser.stats.malformed == 2
    assert [r for r, _ in skipped] == ["malformed", "malformed"]


def test_key_without_space_after_colon_is_accepted() -> None:
    out = AmiParser(expect_banner=False).feed(b"Event: A\r\nKey:value\r\n\r\n")
    assert out[0].get("Key") == "value"


def test_oversized_frame_is_dropped_even_when_it_arrives_in_pieces() -> None:
    parser = AmiParser(expect_banner=False, max_frame=1024)
    big = b"Event: Big\r\n" + b"".join(b"K%d: %s\r\n" % (i, b"v" * 50) for i in range(100))
    out = parser.feed(b"Event: Before\r\n\r\n")
    for i in range(0, len(big), 100):
        out += parser.feed(big[i : i + 100])
        assert parser.buffered <= 1024 + 100
    out += parser.feed(b"\r\nEvent: After\r\nA: 1\r\n\r\n")
    assert [m.name for m in out] == ["Before", "After"]
    assert parser.stats.oversized == 1


def test_oversized_complete_frame_in_one_chunk() -> None:
    parser = AmiParser(expect_banner=False, max_frame=64)
    out = parser.feed(b"Event: X\r\nK: " + b"v" * 100 + b"\r\n\r\nEvent: Y\r\n\r\n")
    assert [m.name for m in out] == ["Y"]
    assert parser.stats.oversized == 1


def test_unwanted_events_are_skipped_without_parsing() -> None:
    parser = AmiParser(wanted=lambda name: name in {"Hangup", "Cdr"})
    out = parser.feed(ALL_TRACES["bridged_dial"])
    names = [m.name for m in out if m.is_event]
    assert set(names) == {"Hangup", "Cdr"}
    assert len(names) == 7
    assert sum(1 for m in out if m.is_response) == 3  # responses always pass
    total_events = sum(1 for p in naive_parse(ALL_TRACES["bridged_dial"]) if p[0][0] == "Event")
    assert parser.stats.skipped_unwanted == total_events - 7


def test_missing_banner_line_is_treated_as_data() -> None:
    parser = AmiParser()
    out = parser.feed(b"Response: Success\r\nActionID: 9\r\n\r\n")
    assert parser.banner is None
    assert [m.action_id for m in out] == ["9"]


def test_encode_action_keeps_repeated_keys() -> None:
    data = encode_action([("Action", "Originate"), ("Variable", "A=1"), ("Variable", "B=2")])
    assert data == b"Action: Originate\r\nVariable: A=1\r\nVariable: B=2\r\n\r\n"


def test_first_occurrence_wins_whatever_the_case_of_the_key_asked_for() -> None:
    msg = AmiParser(expect_banner=False).feed(
        b"Event: VarSet\r\nvariable: A=1\r\nVariable: B=2\r\n\r\n"
    )[0]
    assert msg.get("Variable") == msg.get("VARIABLE") == msg["variable"] == "A=1"
    assert msg.get("Variab") is None and msg.get("Variable: A") is None
    assert msg.get("a:b", "none") == "none" and "Event" in msg


def test_values_with_lone_cr_non_ascii_and_length_changing_case() -> None:
    data = "Event: Newchannel\r\nCallerIDName: José \u0130\r\nNote: a\rb\r\nX: y\r\r\n\r\n"
    msg = AmiParser(expect_banner=False).feed(data.encode())[0]
    assert msg.headers == [
        ("Event", "Newchannel"),
        ("CallerIDName", "José \u0130"),
        ("Note", "a\rb"),
        ("X", "y\r"),
    ]
    assert msg.get("calleridname") == "José \u0130" and msg.get("note") == "a\rb"
    assert msg.get("x") == "y\r" and msg.name == "Newchannel"


FRAME_VARIANTS = [
    b"Event: Hangup\r\nUniqueid: 1.1\r\nCause: 16\r\n\r\n",
    b"Event: Hangup\nUniqueid: 1.2\nCause: 16\n\n",  # bare LF
    b"Event: Cdr\r\nUniqueID: 1.3\nDisposition: ANSWERED\n\r\n",  # mixed, LF CRLF end
    b"Response: Success\r\nActionID: 7\r\nMessage:Pong\r\n\r\n",  # Key:value
    b"Event: A\r\nno colon here\r\n\r\n",  # malformed
    b"\x00\xffgarbage\r\n\r\n",  # malformed
    b"Event: B\r\nKey With Space: v\r\n\r\n\r\n",  # odd key, extra blank line
    b"Event: C\r\nPrivilege: call,all\r\n\r\n",
]


@settings(max_examples=80, deadline=None)
@given(
    picks=st.lists(st.integers(min_value=0, max_value=len(FRAME_VARIANTS) - 1), max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=2_000), max_size=20),
)
def test_mixed_line_ends_and_bad_frames_parse_the_same_for_any_chunking(
    picks: list[int], cuts: list[int]
) -> None:
    data = b"".join(FRAME_VARIANTS[i] for i in picks)
    whole = AmiParser(expect_banner=False)
    expected = whole.feed(data)
    assert len(expected) == sum(1 for i in picks if i not in (4, 5))
    assert whole.stats.malformed == sum(1 for i in picks if i in (4, 5))
    parser = AmiParser(expect_banner=False)
    out: list[AmiMessage] = []
    prev = 0
    for p in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        out.extend(parser.feed(data[prev:p]))
        prev = p
    assert out == expected
    assert [m.headers for m in out] == [m.headers for m in expected]
    assert [m.get("uniqueid") for m in out] == [m.get("UNIQUEID") for m in expected]
    assert parser.stats.malformed == whole.stats.malformed
    assert parser.buffered <= 2  # at most a stray blank line waiting for the next frame
