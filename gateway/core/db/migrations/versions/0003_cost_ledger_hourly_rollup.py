"""cost ledger hourly rollup kept by triggers; a narrow index of inbound calls by topic

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

Why triggers and not application code: the ledger is written from several places (the
send pipeline, the call recorder, Twilio price settlement replacing an estimate, the
retention purge, bulk loads). A trigger sees every one of them, in the writer's own
transaction, so a rollup row can never disagree with the lines it sums. PostgreSQL uses
statement-level triggers with transition tables (one grouped upsert per statement, so a
COPY of millions of lines costs one pass, not one upsert per line); SQLite has only
row-level triggers, which suit its small databases.

The partial index on inbound calls (topic, customer, start, talk time) lets the savings
report count distinct callers and sum handling times without reading the wide call
rows. It is built inside the migration's transaction, which blocks call writes while
it builds; on a large live table build it by hand first with CREATE INDEX CONCURRENTLY
under the same name, and this step then only has to find it there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.core.db.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_KEY = "hour, campaign_key, channel, currency, source"

_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION cost_ledger_hourly_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Rows in key order: two writers upserting several hours lock them in one order.
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM cost_ledger_hourly;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO cost_ledger_hourly AS h ({_KEY}, amount_e4, lines, units)
        SELECT date_trunc('hour', at), coalesce(campaign_id, ''), channel, currency, source,
               -sum(round(amount * 10000)::bigint), -count(*), -sum(units)
        FROM old_lines GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT ({_KEY}) DO UPDATE SET amount_e4 = h.amount_e4 + excluded.amount_e4,
            lines = h.lines + excluded.lines, units = h.units + excluded.units;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO cost_ledger_hourly AS h ({_KEY}, amount_e4, lines, units)
        SELECT date_trunc('hour', at), coalesce(campaign_id, ''), channel, currency, source,
               sum(round(amount * 10000)::bigint), count(*), sum(units)
        FROM new_lines GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT ({_KEY}) DO UPDATE SET amount_e4 = h.amount_e4 + excluded.amount_e4,
            lines = h.lines + excluded.lines, units = h.units + excluded.units;
    END IF;
    RETURN NULL;
END
$$
"""  # noqa: S608 -- constants only, no input

# PostgreSQL allows transition tables only on single-event triggers: three of them.
_PG_TRIGGERS = {
    "insert": "REFERENCING NEW TABLE AS new_lines",
    "update": "REFERENCING OLD TABLE AS old_lines NEW TABLE AS new_lines",
    "delete": "REFERENCING OLD TABLE AS old_lines",
}

_SQLITE_HOUR = "strftime('%Y-%m-%d %H:00:00.000000', {row}.at)"


def _sqlite_upsert(row: str, sign: str) -> str:
    return f"""
        INSERT INTO cost_ledger_hourly ({_KEY}, amount_e4, lines, units)
        VALUES ({_SQLITE_HOUR.format(row=row)}, coalesce({row}.campaign_id, ''), {row}.channel,
            {row}.currency, {row}.source, {sign}CAST(round({row}.amount * 10000) AS INTEGER),
            {sign}1, {sign}{row}.units)
        ON CONFLICT ({_KEY}) DO UPDATE SET amount_e4 = amount_e4 + excluded.amount_e4,
            lines = lines + excluded.lines, units = units + excluded.units;
    """  # noqa: S608 -- `row` and `sign` are constants of this module


_SQLITE_TRIGGERS = {
    "insert": _sqlite_upsert("NEW", ""),
    "update": _sqlite_upsert("OLD", "-") + _sqlite_upsert("NEW", ""),
    "delete": _sqlite_upsert("OLD", "-"),
}


def _backfill(dialect: str) -> str:
    """The lines already in the ledger, summed the way the triggers sum new ones."""
    if dialect == "postgresql":
        hour, amount = "date_trunc('hour', at)", "round(amount * 10000)::bigint"
    else:
        hour = _SQLITE_HOUR.format(row="cost_ledger")
        amount = "CAST(round(amount * 10000) AS INTEGER)"
    return f"""
        INSERT INTO cost_ledger_hourly ({_KEY}, amount_e4, lines, units)
        SELECT {hour}, coalesce(campaign_id, ''), channel, currency, source,
               sum({amount}), count(*), sum(units)
        FROM cost_ledger GROUP BY 1, 2, 3, 4, 5
    """  # noqa: S608 -- constants only


def upgrade() -> None:
    """Apply: table, triggers, then the sums of the lines already there.

    On PostgreSQL CREATE TRIGGER locks out ledger writers until this transaction
    commits, so no line can slip between the backfill and the triggers.
    """
    op.create_table(
        "cost_ledger_hourly",
        sa.Column("hour", gateway.core.db.types.UtcDateTime(), nullable=False),
        sa.Column("campaign_key", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("amount_e4", sa.BigInteger(), nullable=False),
        sa.Column("lines", sa.BigInteger(), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "hour",
            "campaign_key",
            "channel",
            "currency",
            "source",
            name=op.f("pk_cost_ledger_hourly"),
        ),
    )
    # Straight to the driver: text() would read the ':00' of the hour format as a bind.
    run = op.get_bind().exec_driver_sql
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        run(_PG_FUNCTION)
        for event, referencing in _PG_TRIGGERS.items():
            run(
                f"CREATE TRIGGER cost_ledger_hourly_{event} AFTER {event.upper()} ON cost_ledger "
                f"{referencing} FOR EACH STATEMENT EXECUTE FUNCTION cost_ledger_hourly_apply()"
            )
        # TRUNCATE fires no DELETE trigger: an emptied ledger empties its sums too.
        run(
            "CREATE TRIGGER cost_ledger_hourly_truncate AFTER TRUNCATE ON cost_ledger "
            "FOR EACH STATEMENT EXECUTE FUNCTION cost_ledger_hourly_apply()"
        )
    else:
        for event, body in _SQLITE_TRIGGERS.items():
            run(
                f"CREATE TRIGGER cost_ledger_hourly_{event} AFTER {event.upper()} ON cost_ledger "
                f"FOR EACH ROW BEGIN {body} END"
            )
    run(_backfill(dialect))
    inbound = sa.text("direction = 'inbound'")
    op.create_index(
        "ix_calls_inbound_by_topic",
        "calls",
        ["topic", "customer_id", "started_at", "talk_seconds"],
        unique=False,
        if_not_exists=True,
        postgresql_where=inbound,
        sqlite_where=inbound,
    )


def downgrade() -> None:
    """Revert."""
    op.drop_index("ix_calls_inbound_by_topic", table_name="calls")
    postgresql = op.get_bind().dialect.name == "postgresql"
    for event in [*_PG_TRIGGERS, "truncate"]:
        on_table = " ON cost_ledger" if postgresql else ""
        op.execute(f"DROP TRIGGER IF EXISTS cost_ledger_hourly_{event}{on_table}")
    if postgresql:
        op.execute("DROP FUNCTION IF EXISTS cost_ledger_hourly_apply()")
    op.drop_table("cost_ledger_hourly")
