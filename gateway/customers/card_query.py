"""The customer card's lists in one round trip (the screen-pop is on the clock).

The open tasks, the last messages, the last calls and the next payment come in one
statement, each list a JSON array built by a subselect, on PostgreSQL and SQLite alike
(the kernel's `json_row`/`json_rows` spell the JSON functions per dialect). Each row
carries its rank and is put in order after decoding, because SQLite before 3.44 cannot
order inside an aggregate. Times, dates and money travel as text so nothing is rounded
on the way: a JSON number would become a float.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Label,
    Select,
    SQLColumnExpression,
    String,
    bindparam,
    cast,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.db.dialect import json_row, json_rows
from gateway.core.db.models import Call, OutboundContact, Payment, Task
from gateway.core.db.states import PaymentStatus, TaskStatus
from gateway.customers.schemas import CallItem, MessageItem, PaymentItem, TaskItem, iso, money

CARD_RECENT = 5
CARD_OPEN_TASKS = 20

# One column of an item: its name, how to select it, how to read its JSON value back.
Decode = Callable[[Any], object]  # from a value json.loads gave
Field = tuple[str, SQLColumnExpression[object], Decode]


def _same(value: object) -> object:
    return value


def _time(value: str | None) -> str | None:
    """A `timestamp` sent as text (naive UTC, as stored) → the API's ISO form."""
    return None if value is None else iso(datetime.fromisoformat(value).replace(tzinfo=UTC))


def _text(column: SQLColumnExpression[object]) -> ColumnElement[str]:
    return cast(column, String)


def _json_list(
    name: str,
    fields: Sequence[Field],
    where: Sequence[ColumnElement[bool]],
    order: Sequence[SQLColumnExpression[object]],
    limit: int,
) -> Label[str]:
    """A JSON array (as text) of rows, each an array of `fields`, in `order`, at most `limit`."""
    rank = func.row_number().over(order_by=list(order)).label("rank")
    columns: list[Label[object]] = [expression.label(column) for column, expression, _ in fields]
    rows = select(*columns, rank).where(*where).order_by(*order).limit(limit).subquery()
    row = json_row(*(rows.c[column] for column, _, _ in fields), rows.c.rank)
    return select(func.coalesce(json_rows(row), "[]")).scalar_subquery().label(name)


def _decode(text: str, fields: Sequence[Field]) -> list[dict[str, object]]:
    ranked = sorted(json.loads(text), key=lambda row: row[-1])
    return [
        {name: read(value) for (name, _, read), value in zip(fields, row[:-1], strict=True)}
        for row in ranked
    ]


_TASK: list[Field] = [
    ("id", Task.id, _same),
    ("task_id", Task.task_id, _same),
    ("kind", Task.kind, _same),
    ("customer_id", Task.customer_id, _same),
    ("assignee", Task.assignee, _same),
    ("status", Task.status, _same),
    ("min_call_seconds", Task.min_call_seconds, _same),
    ("created_at", _text(Task.created_at), lambda v: _time(v) or ""),
    ("due_at", _text(Task.due_at), _time),
    ("completed_by_call_id", Task.completed_by_call_id, _same),
]
_MESSAGE: list[Field] = [
    ("id", OutboundContact.id, _same),
    ("channel", OutboundContact.channel, _same),
    ("status", OutboundContact.status, _same),
    ("template", OutboundContact.template, _same),
    ("created_at", _text(OutboundContact.created_at), lambda v: _time(v) or ""),
    ("sent_at", _text(OutboundContact.sent_at), _time),
    ("delivered_at", _text(OutboundContact.delivered_at), _time),
    ("reason", OutboundContact.reason, _same),
    ("error", OutboundContact.error, _same),
]
_CALL: list[Field] = [
    ("id", Call.id, _same),
    ("direction", Call.direction, _same),
    ("started_at", _text(Call.started_at), _time),
    ("extension", Call.extension, _same),
    ("talk_seconds", Call.talk_seconds, _same),
    ("disposition", Call.disposition, _same),
    ("topic", Call.topic, _same),
]
_PAYMENT: list[Field] = [
    ("contract_id", Payment.contract_id, _same),
    ("due_date", _text(Payment.due_date), lambda v: date.fromisoformat(v).isoformat()),
    ("amount", _text(Payment.amount), lambda v: money(Decimal(v)) or "0.00"),
    ("currency", Payment.currency, _same),
    ("status", Payment.status, _same),
]


def _card_lists_statement() -> Select[str, str, str, str]:
    """One row: the four lists as JSON text (the orders and limits of `service.card`)."""
    customer_id = bindparam("customer_id", type_=String)
    today = bindparam("today", type_=Date)
    return select(
        _json_list(
            "tasks",
            _TASK,
            [Task.customer_id == customer_id, Task.status == TaskStatus.OPEN],
            [Task.due_at.is_(None), Task.due_at, Task.created_at],
            CARD_OPEN_TASKS,
        ),
        _json_list(
            "messages",
            _MESSAGE,
            [OutboundContact.customer_id == customer_id],
            [OutboundContact.created_at.desc(), OutboundContact.id.desc()],
            CARD_RECENT,
        ),
        _json_list(
            "calls",
            _CALL,
            [Call.customer_id == customer_id],
            [func.coalesce(Call.started_at, Call.created_at).desc(), Call.id.desc()],
            CARD_RECENT,
        ),
        _json_list(
            "payment",
            _PAYMENT,
            [
                Payment.customer_id == customer_id,
                Payment.status == PaymentStatus.DUE,
                Payment.due_date >= today,
            ],
            [Payment.due_date, Payment.contract_id],
            1,
        ),
    )


# Built once: constructing this statement costs more than running it (compiled once too).
_CARD_LISTS = _card_lists_statement()


async def card_lists(
    session: AsyncSession, customer_id: str, today: date
) -> tuple[list[TaskItem], list[MessageItem], list[CallItem], PaymentItem | None]:
    """Open tasks, last messages, last calls and the next payment, in one round trip."""
    params = {"customer_id": customer_id, "today": today}
    row = (await session.execute(_CARD_LISTS, params)).one()
    tasks, messages, calls, payments = (
        _decode(row.tasks, _TASK),
        _decode(row.messages, _MESSAGE),
        _decode(row.calls, _CALL),
        _decode(row.payment, _PAYMENT),
    )
    return (
        [TaskItem(**item) for item in tasks],
        [MessageItem(**item) for item in messages],
        [CallItem(**item) for item in calls],
        PaymentItem(**payments[0]) if payments else None,
    )
