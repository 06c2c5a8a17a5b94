"""Event data schemas: field paths of errors, local times, partial updates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from crm_sync.events import (
    ContactRequested,
    CustomerUpserted,
    ParseContext,
    UnknownEventType,
    parse_data,
    parse_envelope,
)

CONTEXT = ParseContext("UA", "Europe/Kyiv")


def envelope(
    type_: str, data: dict[str, Any], occurred_at: str = "2026-11-02T09:00:00Z"
) -> dict[str, Any]:
    return {"id": "e1", "type": type_, "occurred_at": occurred_at, "data": data}


def test_time_without_offset_is_in_the_configured_zone() -> None:
    event = parse_envelope(envelope("customer.deleted", {}, "2026-07-01T12:00:00"), CONTEXT)
    assert event.occurred_at == datetime(2026, 7, 1, 9, 0, tzinfo=UTC)  # Kyiv is UTC+3 in summer


def test_unknown_type_is_its_own_error() -> None:
    with pytest.raises(UnknownEventType):
        parse_envelope(envelope("customer.exploded", {}), CONTEXT)


def test_bad_phone_is_located_by_index() -> None:
    event = parse_envelope(
        envelope("customer.upserted", {"external_id": "C1", "phones": ["0671234567", "nope"]}),
        CONTEXT,
    )
    with pytest.raises(ValidationError) as caught:
        parse_data(event, CONTEXT)
    assert [error["loc"] for error in caught.value.errors()] == [("phones", 1)]


def test_upsert_fields_are_only_those_sent() -> None:
    data = CustomerUpserted.model_validate(
        {"external_id": "C1", "region": "Kyiv", "products": None}, context=CONTEXT
    )
    assert data.fields() == {"region": "Kyiv", "products": []}


@pytest.mark.parametrize(
    "data",
    [
        {"external_id": "C1", "channel": "sms"},
        {"external_id": "C1", "channel": "sms", "template": "t", "body": "b"},
        {"external_id": "C1", "channel": "email", "body": "b"},
        {"external_id": "C1", "channel": "fax", "template": "t"},
    ],
)
def test_contact_requested_needs_one_content_and_a_subject_for_inline_email(
    data: dict[str, Any],
) -> None:
    with pytest.raises(ValidationError):
        ContactRequested.model_validate(data, context=CONTEXT)


def test_amount_precision_matches_the_column() -> None:
    event = parse_envelope(
        envelope(
            "payment.scheduled",
            {
                "external_id": "C1",
                "contract_id": "K",
                "due_date": "2026-12-01",
                "amount": "1.00001",
                "currency": "UAH",
            },
        ),
        CONTEXT,
    )
    with pytest.raises(ValidationError) as caught:
        parse_data(event, CONTEXT)
    assert caught.value.errors()[0]["loc"] == ("amount",)
