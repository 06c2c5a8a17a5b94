"""The one place that knows which database it talks to (PostgreSQL or SQLite).

Features write one statement for both; where the two dialects spell a thing differently
the difference lives here: INSERT … ON CONFLICT, row locks and advisory locks (SQLite
serialises writers with BEGIN IMMEDIATE, so neither is needed there), case-insensitive
substring search, JSON row aggregation, and exact decimal sums.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeAlias, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    SQLColumnExpression,
    Table,
    any_,
    bindparam,
    extract,
    func,
    or_,
    text,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import GenericFunction
from sqlalchemy.types import String

from gateway.core.db.engine import Database
from gateway.core.db.models.base import Base

RowT = TypeVar("RowT")
# What INSERT goes into: a mapped class or a Core table.
Target: TypeAlias = type[Base] | Table
InsertOf: TypeAlias = Callable[[Target], postgresql.Insert]
# SQLAlchemy hands compile hooks an untyped compiler and keywords.
Compiler: TypeAlias = SQLCompiler
T = TypeVar("T")
TEN_THOUSANDTHS = Decimal("0.0001")
SECONDS_PER_DAY = 86_400


def is_postgres(session: AsyncSession | AsyncConnection) -> bool:
    """Whether `session` (or a connection) talks to PostgreSQL (else SQLite)."""
    return dialect_of(session) == "postgresql"


def insert_for(session: AsyncSession) -> InsertOf:
    """`insert()` of the session's dialect: INSERT with `on_conflict_do_nothing/_do_update`.

    Both dialects' Insert constructs take the same `index_elements`, `set_`, `where` and
    `excluded`; typed as PostgreSQL's so callers get one signature.
    """
    if is_postgres(session):
        return postgresql.insert
    return cast(InsertOf, sqlite.insert)


def by_dialect(build: Callable[[InsertOf], T]) -> dict[str, T]:
    """A statement built once per dialect from its `insert` (building one costs more than
    running it); index the result with `dialect_of(session)`."""
    sqlite_insert = cast(InsertOf, sqlite.insert)
    return {"postgresql": build(postgresql.insert), "sqlite": build(sqlite_insert)}


def dialect_of(session: AsyncSession | AsyncConnection) -> str:
    """`postgresql` or `sqlite`."""
    bind = session if isinstance(session, AsyncConnection) else session.get_bind()
    return str(bind.dialect.name)


def insert(session: AsyncSession, model: Target) -> postgresql.Insert:
    """`INSERT INTO model` in the session's dialect (see `insert_for`)."""
    return insert_for(session)(model)


async def insert_ignoring_repeats(
    session: AsyncSession,
    model: Target,
    rows: Mapping[str, object] | Sequence[Mapping[str, object]],
    index_elements: Sequence[str | ColumnElement[object]] | None = None,
) -> None:
    """INSERT … ON CONFLICT DO NOTHING: a repeat (a replay, a second instance) is a no-op
    that never aborts the caller's transaction. A list of rows is one executemany."""
    statement = insert(session, model).on_conflict_do_nothing(index_elements=index_elements)
    if isinstance(rows, Mapping):
        await session.execute(statement.values(**rows))
    else:
        await session.execute(statement, list(rows))


def lock_rows(
    statement: Select[RowT],
    where: Database | AsyncSession,
    *,
    skip_locked: bool = False,
    of: type[Base] | None = None,
) -> Select[RowT]:
    """`FOR UPDATE [SKIP LOCKED] [OF …]` on PostgreSQL; SQLite's BEGIN IMMEDIATE already
    holds the database's one write lock for the whole transaction."""
    sqlite_db = where.is_sqlite if isinstance(where, Database) else not is_postgres(where)
    if sqlite_db:
        return statement
    return statement.with_for_update(skip_locked=skip_locked, of=of)


async def advisory_lock(session: AsyncSession, key: int) -> None:
    """A transaction-scoped lock across instances on PostgreSQL (SQLite: one writer)."""
    if is_postgres(session):
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def contains_ignoring_case(
    session: AsyncSession, column: SQLColumnExpression[str], needle: str
) -> ColumnElement[bool]:
    """Case-insensitive substring match that folds Cyrillic on both databases.

    PostgreSQL's lower() folds every alphabet; SQLite's only folds ASCII, so there the
    usual spellings (as typed, lower, upper, capitalised, title) are matched instead.
    """
    if is_postgres(session):
        return func.lower(column).contains(needle.lower(), autoescape=True)
    variants = dict.fromkeys(
        (needle, needle.lower(), needle.upper(), needle.capitalize(), needle.title())
    )
    return or_(*(column.contains(v, autoescape=True) for v in variants))


def exact_sum(
    session: AsyncSession, column: SQLColumnExpression[Decimal]
) -> ColumnElement[Decimal | int]:
    """SUM of a money column without binary rounding (read it back with `read_sum`).

    SQLite keeps NUMERIC as REAL: summing in ten-thousandths as integers keeps 0.1 + 0.2
    exact; PostgreSQL's NUMERIC sum already is.
    """
    if is_postgres(session):
        return func.sum(column)
    return func.sum(sql_cast(func.round(column * 10000), Integer))


def read_sum(session: AsyncSession, raw: Decimal | int | None) -> Decimal:
    """The Decimal of an `exact_sum` result (0 for an empty sum)."""
    if raw is None:
        return Decimal(0)
    if is_postgres(session):
        return Decimal(raw)
    return Decimal(int(raw)) * TEN_THOUSANDTHS


class json_row(GenericFunction[Any]):
    """A JSON array of the given values (PostgreSQL json_build_array, SQLite json_array)."""

    type = String()
    inherit_cache = True


class json_rows(GenericFunction[Any]):
    """The JSON array of a group's `json_row`s, unordered (PostgreSQL json_agg, SQLite
    json_group_array): put a rank in each row and order after decoding."""

    type = String()
    inherit_cache = True


@compiles(json_row, "postgresql")
def _json_row_pg(element: json_row, compiler: Compiler, **kw: object) -> str:
    return f"json_build_array({compiler.process(element.clauses, **kw)})"


@compiles(json_row, "sqlite")
def _json_row_sqlite(element: json_row, compiler: Compiler, **kw: object) -> str:
    return f"json_array({compiler.process(element.clauses, **kw)})"


@compiles(json_rows, "postgresql")
def _json_rows_pg(element: json_rows, compiler: Compiler, **kw: object) -> str:
    return f"CAST(json_agg({compiler.process(element.clauses, **kw)}) AS TEXT)"


@compiles(json_rows, "sqlite")
def _json_rows_sqlite(element: json_rows, compiler: Compiler, **kw: object) -> str:
    return f"json_group_array(json({compiler.process(element.clauses, **kw)}))"


def is_in(
    where: AsyncSession | AsyncConnection, column: SQLColumnExpression[str], values: list[str]
) -> ColumnElement[bool]:
    """`column IN values`; on PostgreSQL one text-array parameter, planned once whatever
    the list's length (SQLite binds one parameter per value)."""
    if is_postgres(where):
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(String())))
    return column.in_(values)


def seconds_between(
    session: AsyncSession,
    later: SQLColumnExpression[datetime],
    earlier: SQLColumnExpression[datetime],
) -> ColumnElement[float]:
    """`later - earlier` in seconds, in each dialect's own date arithmetic."""
    if is_postgres(session):
        return cast(ColumnElement[float], extract("epoch", later - earlier))
    return cast(
        ColumnElement[float], (func.julianday(later) - func.julianday(earlier)) * SECONDS_PER_DAY
    )


def bit_or(session: AsyncSession, bits: SQLColumnExpression[int]) -> ColumnElement[int]:
    """OR of powers of two over a group: PostgreSQL's BIT_OR; SQLite has none, but the
    SUM of the distinct powers of two is the same number."""
    if is_postgres(session):
        return func.bit_or(bits)
    return func.sum(bits.distinct())
