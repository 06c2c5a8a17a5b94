"""The outbox's enqueue API: a feature writes a CRM activity in its own transaction.

The row exists iff the domain change that caused it committed; crm_sync's worker
delivers it later (at-least-once, ordered per `ordering_key`). Living in the kernel, it
lets every feature and boundary report to the CRM without importing the CRM boundary.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.clock import as_utc, isoformat_z
from gateway.core.db.dialect import insert_for
from gateway.core.db.models.crm import OutboxItem
from gateway.core.db.states import OutboxState
from gateway.core.db.types import new_id


class InvalidOutboxItem(ValueError):
    """enqueue() was given something that cannot become a CRM activity."""


def _jsonable(value: object) -> str | None:
    if isinstance(value, Decimal):
        return str(value)  # money travels as decimal strings, never floats
    if isinstance(value, datetime):
        return isoformat_z(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _check_text(name: str, value: object, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise InvalidOutboxItem(f"{name}: must be a non-empty string of at most {limit} chars")
    return value


async def enqueue(
    session: AsyncSession,
    *,
    type: str,
    data: dict[str, object],
    ordering_key: str,
    occurred_at: datetime,
    event_id: str | None = None,
    now: datetime | None = None,
) -> OutboxItem:
    """Add an activity inside the caller's transaction; a repeated event_id is a no-op.

    `now` (the caller's clock) stamps creation and first due time; without it the
    activity is due from `occurred_at`.
    """
    values = _row(type, data, ordering_key, occurred_at, event_id, now)
    await _insert_ignoring_repeats(session, [values])
    item = await session.scalar(select(OutboxItem).where(OutboxItem.event_id == values["event_id"]))
    assert item is not None
    return item


@dataclass(frozen=True)
class Activity:
    """One activity for `enqueue_many` (the same fields `enqueue` takes)."""

    type: str
    data: dict[str, object]
    ordering_key: str
    occurred_at: datetime
    event_id: str | None = None


async def enqueue_many(
    session: AsyncSession, activities: Sequence[Activity], now: datetime | None = None
) -> None:
    """`enqueue` for a batch, in one INSERT (executemany): a daily job moving thousands of
    customers must not pay a round trip per activity. Repeated event ids are no-ops."""
    rows = [
        _row(a.type, a.data, a.ordering_key, a.occurred_at, a.event_id, now) for a in activities
    ]
    if rows:
        await _insert_ignoring_repeats(session, rows)


def _row(
    type: str,
    data: dict[str, object],
    ordering_key: str,
    occurred_at: datetime,
    event_id: str | None,
    now: datetime | None,
) -> dict[str, object]:
    """The outbox row for one activity, validated (InvalidOutboxItem names the field)."""
    _check_text("type", type, 64)
    _check_text("ordering_key", ordering_key, 128)
    event_id = _check_text("event_id", event_id or new_id("evt"), 128)
    if not isinstance(occurred_at, datetime) or occurred_at.tzinfo is None:
        raise InvalidOutboxItem("occurred_at: must be a timezone-aware datetime")
    if not isinstance(data, dict):
        raise InvalidOutboxItem("data: must be a JSON object")
    try:
        payload = json.loads(json.dumps(data, default=_jsonable, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidOutboxItem(f"data: {exc}") from exc
    stamp = as_utc(now or occurred_at)
    return {
        "event_id": event_id,
        "type": type,
        "ordering_key": ordering_key,
        "payload": payload,
        "occurred_at": as_utc(occurred_at),
        "state": OutboxState.PENDING,
        "attempts": 0,
        "next_attempt_at": stamp,
        "created_at": stamp,
    }


async def _insert_ignoring_repeats(session: AsyncSession, rows: list[dict[str, object]]) -> None:
    # ON CONFLICT DO NOTHING: the same event enqueued twice (two instances seeing one
    # call, a replayed webhook) must not abort the caller's transaction.
    insert = insert_for(session)
    await session.execute(
        insert(OutboxItem).on_conflict_do_nothing(index_elements=["event_id"]), rows
    )
