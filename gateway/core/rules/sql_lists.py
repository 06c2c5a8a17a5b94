"""A rule's value lists as one bound parameter each: an array on PostgreSQL, JSON on SQLite.

`in` on a day count used to compile to one OR branch of EXISTS subqueries per value: a
1,000-value list broke SQLite's expression depth (1,000) and took PostgreSQL seconds.
Here a list is one parameter whatever its length: `x = ANY(:array)` on PostgreSQL and
`x IN (SELECT value FROM json_each(:json))` on SQLite (not correlated, so SQLite builds
its lookup once per query), and a day count is computed exactly in SQL so that it can be
looked up in such a list.

Numbers other than whole ones stay one parameter per value on SQLite: SQLite 3.40 reads
JSON numbers with its own text-to-float conversion, which is not promised to round like
Python's, while a bound float is passed exactly (SQLite compares money as floats). An IN
list is flat in SQLite (no expression depth), and the rule size cap keeps it far below
SQLite's 32,766 parameters.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Integer,
    SQLColumnExpression,
    String,
    Time,
    bindparam,
    case,
    cast,
    func,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import TypeEngine

Bool = ColumnElement[bool]


def one_of(
    expression: SQLColumnExpression[object],
    values: Sequence[str | int | date],
    sql_type: TypeEngine[Any],
    *,
    postgres: bool,
) -> Bool:
    """`expression` equals one of `values` (texts, whole numbers or dates); NULL for NULL."""
    if postgres:
        return expression == func.any(bindparam(None, list(values), type_=ARRAY(sql_type)))
    document = json.dumps([v.isoformat() if isinstance(v, date) else v for v in values])
    items = func.json_each(bindparam(None, document, type_=String())).table_valued("value")
    return expression.in_(select(items.c.value))


def whole_days_before(
    as_of: datetime, moment: SQLColumnExpression[datetime | None], *, postgres: bool
) -> ColumnElement[int]:
    """floor((as_of − moment) / 1 day) as the Python facts count it; NULL for NULL.

    The days between the two UTC dates, one less when the moment's time of day is later
    than as_of's: dates and times compared, never a float, so a microsecond counts.
    """
    at = as_of.astimezone(UTC).replace(tzinfo=None)  # stored form (UtcDateTime)
    days: ColumnElement[int]
    if postgres:
        # date - date is a whole number of days in PostgreSQL.
        days = type_coerce(
            bindparam(None, at.date(), type_=Date()) - cast(moment, Date()), Integer()
        )
        later = cast(moment, Time()) > bindparam(None, at.time(), type_=Time())
    else:
        # SQLAlchemy stores SQLite datetimes as `YYYY-MM-DD HH:MM:SS.ffffff` text; the
        # difference of two midnights' Julian days is a whole number, exact in a float.
        midnights = func.julianday(at.date().isoformat()) - func.julianday(
            func.substr(moment, 1, 10)
        )
        days = cast(midnights, Integer())
        later = func.substr(moment, 12) > at.time().isoformat(timespec="microseconds")
    return days - case((later, 1), else_=0)
