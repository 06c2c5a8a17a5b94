"""SMS segment counting: GSM-7 and UCS-2 limits, extension characters, surrogate pairs."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.segments import count_segments, encoding_of, split_parts

BASIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .,!?@£$¥èéùìòÇØøÅå\n"
EXTENDED = "^{}\\[~]|€\x0c"
UKRAINIAN = "абвгґдеєжзиіїйклмнопрстуфхцчшщьюяАБВГҐДЕЄЖЗИІЇЙ'"


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", "GSM-7", 0, 1),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),
        ("a" * 159 + "€", "GSM-7", 161, 2),
        ("ї" * 70, "UCS-2", 70, 1),
        ("ї" * 71, "UCS-2", 71, 2),
        ("ї" * 134, "UCS-2", 134, 2),
        ("ї" * 135, "UCS-2", 135, 3),
        ("😀" * 35, "UCS-2", 70, 1),
        ("a" * 69 + "😀", "UCS-2", 71, 2),
        ("Ваш платіж 1200 грн завтра", "UCS-2", 26, 1),
    ],
)
def test_known_counts(text: str, encoding: str, units: int, segments: int) -> None:
    counted = count_segments(text)
    assert (counted.encoding, counted.units, counted.segments) == (encoding, units, segments)


def test_extension_character_is_not_split_across_parts() -> None:
    # 152 basic septets then "€" (2): the euro would straddle parts 1 and 2 at 153.
    encoding, parts = split_parts("a" * 152 + "€" + "b" * 10)
    assert encoding == "GSM-7"
    assert [units for _, units in parts] == [152, 12]
    assert parts[1][0].startswith("€")


def test_surrogate_pair_is_not_split_across_parts() -> None:
    # 66 units then a pair (2): it would straddle parts 1 and 2 at 67.
    encoding, parts = split_parts("a" * 66 + "😀" + "b" * 10)
    assert encoding == "UCS-2"
    assert [units for _, units in parts] == [66, 12]
    assert parts[1][0].startswith("😀")


def test_one_cyrillic_letter_makes_the_whole_text_ucs2() -> None:
    assert encoding_of("a" * 100) == "GSM-7"
    assert encoding_of("a" * 100 + "ї") == "UCS-2"
    assert count_segments("a" * 100 + "ї").segments == 2


@given(st.text(alphabet=BASIC, max_size=1000))
def test_basic_gsm_matches_the_arithmetic(text: str) -> None:
    counted = count_segments(text)
    expected = 1 if len(text) <= 160 else math.ceil(len(text) / 153)
    assert counted.encoding == "GSM-7"
    assert counted.units == len(text)
    assert counted.segments == expected


@given(st.text(alphabet=BASIC + EXTENDED, max_size=800))
def test_gsm_parts_rebuild_the_text_within_limits(text: str) -> None:
    encoding, parts = split_parts(text)
    assert encoding == "GSM-7"
    assert "".join(part for part, _ in parts) == text
    limit = 160 if len(parts) == 1 else 153
    for part, units in parts:
        assert units == len(part.encode("gsm03.38")) <= limit
    # Greedy packing: no part could have taken the next part's first character.
    for (_, units), (following, _) in itertools.pairwise(parts):
        assert units + len(following[0].encode("gsm03.38")) > 153


@given(st.text(alphabet=UKRAINIAN + BASIC + "😀🇺🇦", min_size=1, max_size=600))
def test_text_with_any_ukrainian_letter_is_ucs2_and_fits(text: str) -> None:
    text = text + "ї"
    encoding, parts = split_parts(text)
    assert encoding == "UCS-2"
    assert "".join(part for part, _ in parts) == text
    limit = 70 if len(parts) == 1 else 67
    for part, units in parts:
        assert units == len(part.encode("utf-16-le")) // 2 <= limit
    total = len(text.encode("utf-16-le")) // 2
    assert count_segments(text).units == total
    assert count_segments(text).segments >= (1 if total <= 70 else math.ceil(total / 67))
