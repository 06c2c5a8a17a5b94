"""Bench-only switch: run the portable (SQLite-shaped) statements on PostgreSQL.

The product picks its PostgreSQL-specific statements with `is_postgres`; to measure what
they buy, these patches make the CSV import's batch writer, the customer write and the
webhook guards take their portable path on PostgreSQL instead: the same statements,
built with PostgreSQL's `insert` (SQLite's ON CONFLICT construct does not compile there).
Imported and applied by the benches only; the product never reads it.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy.dialects import postgresql

_PATCH = pytest.MonkeyPatch()
_AS_SQLITE = SimpleNamespace(insert=postgresql.insert)


def _not_postgres(_conn: object) -> bool:
    return False


def portable_csv_write() -> None:
    """`crm_sync.csv_write`: executemany of INSERT … ON CONFLICT instead of UNNEST."""
    from crm_sync import csv_write

    _PATCH.setattr(csv_write, "is_postgres", _not_postgres)
    _PATCH.setattr(csv_write, "sqlite", _AS_SQLITE)


def portable_customer_write() -> None:
    """`crm_sync.customer_write`: `_sqlite_write`, one statement at a time."""
    from crm_sync import customer_write

    _PATCH.setattr(customer_write, "is_postgres", _not_postgres)
    _PATCH.setattr(customer_write, "sqlite", _AS_SQLITE)
    customer_write._sqlite_upsert.cache_clear()
    upsert = postgresql.insert(customer_write._PHONES)
    upsert = upsert.on_conflict_do_update(
        index_elements=[customer_write._PHONES.c.customer_id, customer_write._PHONES.c.e164],
        set_={"position": upsert.excluded.position},
    )
    _PATCH.setattr(customer_write, "_PHONE_UPSERT", upsert)


def portable_guards() -> None:
    """Now the product's own path (claim, then version: two statements); kept so the figures
    in `claim_and_advance` reproduce."""
    from crm_sync import ingest_guards

    _PATCH.setitem(ingest_guards._CLAIM, "sqlite", ingest_guards._CLAIM["postgresql"])
    _PATCH.setitem(ingest_guards._VERSION, "sqlite", ingest_guards._VERSION["postgresql"])


def no_fast_pool() -> None:
    """`crm_sync.webhooks_http`: never take the one-statement pool (`FAST_INGEST`)."""
    from aiohttp import web

    from crm_sync import webhooks_http
    from crm_sync.ingest_fast import FastIngest

    _PATCH.setattr(webhooks_http, "FAST_INGEST", web.AppKey("bench_unset", FastIngest))
