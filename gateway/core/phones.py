"""Phone numbers to E.164 with `phonenumbers`, and the keys we match them by."""

from __future__ import annotations

import phonenumbers

LAST_DIGITS = 9


class InvalidPhone(ValueError):
    """A string that is not a valid phone number for the region it was read in."""


def normalize_phone(raw: str, region: str) -> str:
    """Any common written form (`067 123 45 67`, `+38 (067) …`, `00380…`) → `+380671234567`.

    Raises InvalidPhone for junk: phonenumbers formats even short junk, so validity is
    checked explicitly.
    """
    text = raw.strip()
    if not text:
        raise InvalidPhone("empty phone number")
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"{raw!r} is not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(f"{raw!r} is not a valid phone number for region {region}")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def last_digits(raw: str) -> str:
    """The last 9 digits: the fallback key for numbers without country code or trunk prefix."""
    digits = "".join(ch for ch in raw if ch.isdigit())
    return digits[-LAST_DIGITS:]


def lookup_keys(raw: str, region: str) -> tuple[str | None, str]:
    """(E.164 if the input is valid, last digits) — what a search tries, in order."""
    try:
        e164: str | None = normalize_phone(raw, region)
    except InvalidPhone:
        e164 = None
    return e164, last_digits(e164 or raw)
