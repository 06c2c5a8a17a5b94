"""Properties of phone normalisation and the last-digits key the suffix search relies on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.phones import LAST_DIGITS, InvalidPhone, last_digits, lookup_keys, normalize_phone

# Ukrainian mobile operator codes: every 9-digit national number under them is valid.
UA_CODES = ("50", "63", "66", "67", "68", "73", "93", "95", "96", "97", "98", "99")
subscriber = st.text(alphabet="0123456789", min_size=7, max_size=7)
ua_national = st.builds(lambda code, rest: code + rest, st.sampled_from(UA_CODES), subscriber)


def written_forms(national: str) -> list[str]:
    """Ways people write the same Ukrainian number."""
    a, b, c, d = national[:2], national[2:5], national[5:7], national[7:]
    return [
        f"+380{national}",
        f"380{national}",
        f"0{national}",
        f"00380{national}",
        f"+38 (0{a}) {b}-{c}-{d}",
        f"0{a} {b} {c} {d}",
        f"  +380 {a} {b} {c} {d}  ",
    ]


@given(ua_national)
def test_every_written_form_gives_the_same_e164(national: str) -> None:
    results = {normalize_phone(form, "UA") for form in written_forms(national)}
    assert results == {f"+380{national}"}


@given(ua_national)
def test_normalisation_is_idempotent(national: str) -> None:
    e164 = normalize_phone(f"0{national}", "UA")
    assert normalize_phone(e164, "UA") == e164
    assert normalize_phone(e164, "PL") == e164  # an explicit country code wins


@given(ua_national)
def test_trunk_prefixed_and_bare_forms_share_the_last_digits(national: str) -> None:
    key = last_digits(f"+380{national}")
    assert key == national and len(key) == LAST_DIGITS
    for raw in (f"8{'0' + national}", national, f"9 0{national}"):
        assert lookup_keys(raw, "UA")[1] == key


@given(st.text(max_size=40))
def test_last_digits_keeps_only_the_trailing_digits(raw: str) -> None:
    digits = "".join(ch for ch in raw if ch.isdigit())
    assert last_digits(raw) == digits[-LAST_DIGITS:]
    assert len(last_digits(raw)) <= LAST_DIGITS


@given(st.text(alphabet=st.characters(blacklist_categories=["Nd"]), max_size=20))
def test_text_without_digits_is_never_a_phone(raw: str) -> None:
    with pytest.raises(InvalidPhone):
        normalize_phone(raw, "UA")


@pytest.mark.parametrize(
    "raw", ["", "   ", "12", "067 123", "+380 67 123 45 67 89 01", "80671234567"]
)
def test_junk_and_trunk_prefixed_forms_are_invalid(raw: str) -> None:
    with pytest.raises(InvalidPhone):
        normalize_phone(raw, "UA")


def test_lookup_keys_fall_back_to_the_raw_digits() -> None:
    assert lookup_keys("80671234567", "UA") == (None, "671234567")
    assert lookup_keys("067 123 45 67", "UA") == ("+380671234567", "671234567")
