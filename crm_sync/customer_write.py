"""A customer's upsert in Core statements: its row, status change and phones.

On PostgreSQL everything is one statement of CTEs (optionally behind a guard, so the
replay and ordering checks ride in the same statement); SQLite runs the same writes one
statement at a time (no data-modifying CTEs there, and its single writer is serial).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    Table,
    all_,
    bindparam,
    case,
    delete,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import Insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import ReturningInsert

from gateway.core.db.dialect import InsertOf, is_postgres
from gateway.core.db.models import Customer, CustomerPhone, StatusChange
from gateway.core.db.types import UtcDateTime, new_id
from gateway.core.phones import last_digits

# Fields the CRM owns and an upsert overwrites (phones are handled separately).
CRM_FIELDS = (
    "name",
    "email",
    "timezone",
    "language",
    "region",
    "products",
    "responsible_agent",
    "contract_started_at",
    "attributes",
    "bonus_balance",
)
# What a new row holds in the columns an upsert does not send.
_NEW_ROW: dict[str, Any] = {
    **dict.fromkeys(CRM_FIELDS),
    "name": "",
    "products": [],
    "attributes": {},
}
_CUSTOMERS = cast(Table, Customer.__table__)
_PHONES = cast(Table, CustomerPhone.__table__)
_CHANGES = cast(Table, StatusChange.__table__)
_TEXTS = postgresql.ARRAY(String())
_CHANGE_COLUMNS = ["id", "customer_id", "from_status", "to_status", "at", "reason"]

# Builds (condition the writes need, extra result columns); its CTEs come along.
Guard = Callable[[], tuple[ColumnElement[bool], tuple[ColumnElement[Any], ...]]]


@dataclass(frozen=True)
class CustomerWrite:
    """What an upsert did: the row's id and whether it was new."""

    id: str
    created: bool


@dataclass(frozen=True)
class WritePlan:
    """One upsert's parameters and the shape its statement is built (and cached) for."""

    sent: tuple[str, ...]
    params: dict[str, Any]
    phones: list[str] | None
    record_status: bool


def plan_write(
    external_id: str,
    fields: dict[str, Any],
    phones: list[str] | None,
    now: datetime,
    *,
    record_status: bool,
) -> WritePlan:
    """Bind values for an upsert: only keys in `fields` overwrite; phones deduplicated."""
    sent = tuple(name for name in CRM_FIELDS if name in fields)
    params: dict[str, Any] = {
        **_NEW_ROW,
        **{name: fields[name] for name in sent},
        "new_id": new_id("cus"),
        "external_id": external_id,
        "now": now,
        "status_changed_at": now if record_status else None,
        "change_id": new_id("stc"),
    }
    unique = list(dict.fromkeys(phones)) if phones is not None else None
    if unique is not None:
        params["e164s"] = unique
        params["tails"] = [last_digits(e164) for e164 in unique]
        params["positions"] = list(range(len(unique)))
    return WritePlan(sent, params, unique, record_status)


async def write_customer(
    conn: AsyncConnection,
    external_id: str,
    fields: dict[str, Any],
    phones: list[str] | None,
    now: datetime,
    *,
    record_status: bool = False,
) -> CustomerWrite:
    """Create or update by external id in the connection's transaction.

    With `record_status`, a new customer gets its `created` status change and a deleted
    one that comes back is made active again with a `crm: restored` change.
    """
    plan = plan_write(external_id, fields, phones, now, record_status=record_status)
    if is_postgres(conn):
        statement = pg_write_statement(plan.sent, plan.phones is not None, record_status)
        row = (await conn.execute(statement, plan.params)).one()
        return CustomerWrite(row.id, row.created)
    return await _sqlite_write(conn, plan)


def _upsert(
    insert: InsertOf,
    sent: tuple[str, ...],
    record_status: bool,
    condition: ColumnElement[bool] | None = None,
) -> Insert:
    """INSERT the full new row; on a known external id overwrite only the sent fields."""
    columns = _CUSTOMERS.c
    now = bindparam("now", type_=UtcDateTime())
    values: dict[str, Any] = {
        "id": bindparam("new_id", type_=String()),
        "external_id": bindparam("external_id", type_=String()),
        **{name: bindparam(name, type_=columns[name].type) for name in CRM_FIELDS},
        "status": literal("active"),
        "status_changed_at": bindparam("status_changed_at", type_=UtcDateTime()),
        "sms_opt_out": false(),
        "email_opt_out": false(),
        "voice_opt_out": false(),
        "do_not_contact": false(),
        "created_at": now,
        "updated_at": now,
    }
    if condition is None:
        statement = insert(_CUSTOMERS).values(values)
    else:
        source = select(*values.values()).where(condition)
        statement = insert(_CUSTOMERS).from_select(list(values), source)
    updates: dict[str, Any] = {name: statement.excluded[name] for name in sent}
    updates.update(deleted_at=None, updated_at=statement.excluded.updated_at)
    if record_status:
        # Evaluated on the row as it is when locked, so a restore is seen exactly once.
        deleted = columns.deleted_at.is_not(None)
        updates["status"] = case((deleted, "active"), else_=columns.status)
        updates["status_changed_at"] = case(
            (deleted, statement.excluded.updated_at), else_=columns.status_changed_at
        )
    return statement.on_conflict_do_update(index_elements=[columns.external_id], set_=updates)


# PostgreSQL's one statement pays for itself. Measured 2026-12-07 on a shared 2-core Xeon
# (load average 5.5-7.7), PostgreSQL 15.20, asyncpg 0.32, SQLAlchemy 2.1.9, as signed
# `customer.upserted` webhooks/s, medians of three rounds alternating the variants, in a
# transaction after `claim_and_advance` (no `ingest_fast` pool): 264/s with this
# statement against 138/s with `_sqlite_write` run on PostgreSQL (1.9x); the portable
# path throughout (two-statement guard and `_sqlite_write`) 130/s against 317/s for
# `ingest_fast`'s one statement (which is this one behind `pg_guard`). Reproduce:
#   python bench/bench_webhook_ingest.py --seconds 5 --rounds 3 --variant fast
#       --variant no-pool --variant portable-guard --variant portable-write --variant portable
@lru_cache(maxsize=128)
def pg_write_statement(
    sent: tuple[str, ...], with_phones: bool, record_status: bool, guard: Guard | None = None
) -> Select[Any]:
    """The whole upsert as one statement of CTEs, built once per shape of event.

    Columns: `id` and `created` (NULL when the guard held the writes back), then the
    guard's. Without a guard, the caller's transaction already holds the entity's version
    row, so this statement's snapshot is the latest; with one, the caller runs it in a
    REPEATABLE READ transaction of its own, where any row changed since the snapshot
    fails the statement instead of being read stale. Sub-statements touch disjoint rows
    (PostgreSQL runs them on one snapshot, in no defined order).
    """
    columns = _CUSTOMERS.c
    condition, extra = guard() if guard is not None else (None, ())
    old = (
        select(columns.id, columns.status, columns.deleted_at)
        .where(columns.external_id == bindparam("external_id", type_=String()))
        .cte("old")
    )
    upsert = _upsert(postgresql.insert, sent, record_status, condition)
    up = upsert.returning(columns.id).cte("up")
    created = up.c.id == bindparam("new_id", type_=String())
    dml: list[Any] = []
    if record_status:
        source = (
            select(
                bindparam("change_id", type_=String()),
                up.c.id,
                case((created, None), else_=old.c.status),
                literal("active"),
                bindparam("now", type_=UtcDateTime()),
                case((created, "created"), else_="crm: restored"),
            )
            .select_from(up.outerjoin(old, true()))
            .where(or_(created, old.c.deleted_at.is_not(None)))
        )
        dml.append(_CHANGES.insert().from_select(_CHANGE_COLUMNS, source).cte("change"))
    if with_phones:
        dml.extend(_pg_phones(old, up))
    written = select(up.c.id).scalar_subquery()
    bound_new_id = bindparam("new_id", type_=String())
    return select(written.label("id"), (written == bound_new_id).label("created"), *extra).add_cte(
        *dml
    )


def _pg_phones(old: Any, up: Any) -> list[Any]:
    """Numbers no longer listed go; listed ones stay (their row and `invalid` flag kept)
    and move only when their position changed: an unchanged list writes nothing."""
    e164s = bindparam("e164s", type_=_TEXTS)
    gone = (
        delete(_PHONES)
        .where(
            _PHONES.c.customer_id == select(old.c.id).scalar_subquery(),
            _PHONES.c.e164 != all_(e164s),
            exists(select(up.c.id)),
        )
        .cte("gone")
    )
    listed = (
        func.unnest(
            e164s,
            bindparam("tails", type_=_TEXTS),
            bindparam("positions", type_=postgresql.ARRAY(Integer())),
        )
        .table_valued("e164", "last_digits", "position")
        .render_derived("listed")
    )
    insert = postgresql.insert(_PHONES).from_select(
        ["customer_id", "e164", "last_digits", "position", "invalid"],
        select(up.c.id, listed.c.e164, listed.c.last_digits, listed.c.position, false())
        .select_from(up)
        .join(listed, true()),
    )
    kept = insert.on_conflict_do_update(
        index_elements=[_PHONES.c.customer_id, _PHONES.c.e164],
        set_={"position": insert.excluded.position},
        where=_PHONES.c.position != insert.excluded.position,
    ).cte("kept")
    return [gone, kept]


@lru_cache(maxsize=64)
def _sqlite_upsert(sent: tuple[str, ...], record_status: bool) -> ReturningInsert[str]:
    """The customer row's upsert on SQLite."""
    return _upsert(cast(InsertOf, sqlite.insert), sent, record_status).returning(_CUSTOMERS.c.id)


_OLD = select(_CUSTOMERS.c.status, _CUSTOMERS.c.deleted_at).where(
    _CUSTOMERS.c.external_id == bindparam("external_id")
)
_PHONE_LIST = (
    select(_PHONES.c.e164)
    .where(_PHONES.c.customer_id == bindparam("customer_id"))
    .order_by(_PHONES.c.position)
)
_PHONE_UPSERT = sqlite.insert(_PHONES)
_PHONE_UPSERT = _PHONE_UPSERT.on_conflict_do_update(
    index_elements=[_PHONES.c.customer_id, _PHONES.c.e164],
    set_={"position": _PHONE_UPSERT.excluded.position},
)


async def _sqlite_write(conn: AsyncConnection, plan: WritePlan) -> CustomerWrite:
    """The same writes one statement at a time."""
    params, phones = plan.params, plan.phones
    old = (await conn.execute(_OLD, params)).one_or_none()
    upsert = _sqlite_upsert(plan.sent, plan.record_status)
    customer_id = (await conn.execute(upsert, params)).scalar_one()
    created = customer_id == params["new_id"]
    if plan.record_status and (created or (old is not None and old.deleted_at is not None)):
        change = {
            "id": params["change_id"],
            "customer_id": customer_id,
            "from_status": None if created or old is None else old.status,
            "to_status": "active",
            "at": params["now"],
            "reason": "created" if created else "crm: restored",
        }
        await conn.execute(_CHANGES.insert(), change)
    if phones is not None:
        listed = {"customer_id": customer_id}
        if list((await conn.execute(_PHONE_LIST, listed)).scalars()) != phones:
            await conn.execute(
                delete(_PHONES).where(
                    _PHONES.c.customer_id == customer_id, _PHONES.c.e164.not_in(phones)
                )
            )
            rows = [
                {
                    "customer_id": customer_id,
                    "e164": e164,
                    "last_digits": last_digits(e164),
                    "position": position,
                    "invalid": False,
                }
                for position, e164 in enumerate(phones)
            ]
            if rows:
                await conn.execute(_PHONE_UPSERT, rows)
    return CustomerWrite(customer_id, created)
