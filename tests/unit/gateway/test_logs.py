"""Logs never carry a full phone number or e-mail address."""

from __future__ import annotations

import io
import json
import logging

from hypothesis import given
from hypothesis import strategies as st

from gateway.core.logs import JsonFormatter, MaskingFormatter, mask_pii


def test_phone_forms_and_emails_are_masked() -> None:
    line = mask_pii("from +380671234567 or 067 123 45 67 to olena.k@bank.ua")
    assert "380671234567" not in line and "123 45" not in line
    assert "olena.k@" not in line and "@bank.ua" in line
    assert line.count("67") >= 2  # the last two digits stay, to tell calls apart


def test_dates_and_uniqueids_are_left_alone() -> None:
    assert mask_pii("on 2026-11-23 uid 1700000000.123") == "on 2026-11-23 uid 1700000000.123"


@given(st.from_regex(r"\+380[0-9]{9}", fullmatch=True))
def test_no_e164_number_survives(number: str) -> None:
    assert number[1:] not in mask_pii(f"caller {number} rang")


def _emit(formatter: logging.Formatter, *args: object, **extra: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("test.masking")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.warning("call from %s", *args, extra=extra)
    return stream.getvalue()


def test_text_and_json_formatters_mask_arguments_and_extras() -> None:
    text = _emit(MaskingFormatter("%(message)s"), "+380671234567")
    assert "380671234567" not in text
    line = _emit(JsonFormatter(), "+380671234567", email="ivan@example.com")
    record = json.loads(line)
    assert "380671234567" not in record["msg"]
    assert record["email"] == "i***@example.com"
