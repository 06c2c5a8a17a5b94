"""A customer's timeline: every source merged newest first, keyset-paged on (at, id)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import SQLColumnExpression, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.db.models import (
    Activity,
    Call,
    Complaint,
    OutboundContact,
    Payment,
    StatusChange,
    Task,
)
from gateway.core.http.endpoints import decode_cursor, encode_cursor
from gateway.core.http.problems import InvalidInput
from gateway.customers.schemas import TimelineItem, TimelineKind, iso, money

Before = tuple[datetime, str]


@dataclass(frozen=True)
class _Source:
    """One table feeding the timeline: its time column and how a row reads."""

    kind: TimelineKind
    model: Any
    at: Callable[[], SQLColumnExpression[datetime]]
    fields: Callable[[Any], dict[str, object]]


def _call(row: Call) -> dict[str, object]:
    return {
        "direction": row.direction,
        "caller": row.caller,
        "callee": row.callee,
        "extension": row.extension,
        "talk_seconds": row.talk_seconds,
        "disposition": row.disposition,
        "topic": row.topic,
    }


def _message(row: OutboundContact) -> dict[str, object]:
    return {
        "channel": row.channel,
        "status": row.status,
        "template": row.template,
        "campaign_id": row.campaign_id,
        "reason": row.reason,
    }


def _task(row: Task) -> dict[str, object]:
    return {
        "task_id": row.task_id,
        "task_kind": row.kind,
        "status": row.status,
        "assignee": row.assignee,
        "due_at": iso(row.due_at),
    }


def _status(row: StatusChange) -> dict[str, object]:
    return {"from": row.from_status, "to": row.to_status, "reason": row.reason}


def _activity(row: Activity) -> dict[str, object]:
    return {"activity": row.kind, "amount": money(row.amount)}


def _complaint(row: Complaint) -> dict[str, object]:
    return {"topic": row.topic}


def _payment(row: Payment) -> dict[str, object]:
    return {
        "contract_id": row.contract_id,
        "due_date": row.due_date.isoformat(),
        "amount": money(row.amount),
        "currency": row.currency,
        "status": row.status,
    }


SOURCES = (
    # A call is placed when it started; one still being set up, when it was recorded.
    _Source("call", Call, lambda: func.coalesce(Call.started_at, Call.created_at), _call),
    _Source("message", OutboundContact, lambda: OutboundContact.created_at, _message),
    _Source("task", Task, lambda: Task.created_at, _task),
    _Source("status_change", StatusChange, lambda: StatusChange.at, _status),
    _Source("activity", Activity, lambda: Activity.at, _activity),
    _Source("complaint", Complaint, lambda: Complaint.at, _complaint),
    # A payment appears when it was scheduled (or last changed), not on its due date:
    # the timeline is what happened, and a due date may lie in the future.
    _Source("payment", Payment, lambda: Payment.updated_at, _payment),
)


def parse_cursor(cursor: str | None) -> Before | None:
    """The (at, id) a cursor points below, or 422 when it is not one of ours."""
    key = decode_cursor(cursor)
    if key is None:
        return None
    at_text, sep, item_id = key.partition("|")
    try:
        at = datetime.fromisoformat(at_text)
    except ValueError:
        at = None
    if not sep or not item_id or at is None or at.tzinfo is None:
        raise InvalidInput("cursor: not a cursor this API gave out")
    return at, item_id


async def _read(
    session: AsyncSession, source: _Source, customer_id: str, before: Before | None, limit: int
) -> list[tuple[datetime, str, dict[str, object]]]:
    at = source.at()
    model = source.model
    statement = select(model, at.label("timeline_at")).where(model.customer_id == customer_id)
    if before is not None:
        before_at, before_id = before
        statement = statement.where(
            or_(at < before_at, and_(at == before_at, model.id < before_id))
        )
    statement = statement.order_by(at.desc(), model.id.desc()).limit(limit)
    rows = await session.execute(statement)
    return [(when, row.id, source.fields(row)) for row, when in rows.all()]


async def timeline(
    session: AsyncSession, customer_id: str, limit: int, cursor: str | None
) -> tuple[list[TimelineItem], str | None]:
    """One page, newest first, and the cursor of the next page (None at the end).

    Each source is read with the same keyset bound and limit+1, so the merge of their
    heads is exactly the page: no source can hide an item that belongs in it.
    """
    before = parse_cursor(cursor)
    merged: list[tuple[datetime, str, TimelineKind, dict[str, object]]] = []
    for source in SOURCES:
        for at, item_id, fields in await _read(session, source, customer_id, before, limit + 1):
            merged.append((at, item_id, source.kind, fields))
    merged.sort(key=lambda item: (item[0], item[1]), reverse=True)
    more = len(merged) > limit
    page = merged[:limit]
    items = [
        TimelineItem.model_validate({"at": iso(at), "kind": kind, "id": item_id, **fields})
        for at, item_id, kind, fields in page
    ]
    next_cursor = None
    if more and page:
        last_at, last_id = page[-1][0], page[-1][1]
        next_cursor = encode_cursor(f"{last_at.isoformat()}|{last_id}")
    return items, next_cursor
