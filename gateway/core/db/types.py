"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

from sqlalchemy import JSON, DateTime, Dialect, Numeric
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

# JSONB on PostgreSQL (indexable, compact), plain JSON text elsewhere.
JsonDocument = JSON().with_variant(JSONB(), "postgresql")

# Money and rates: exact decimals, 4 places (provider prices come with up to 4).
Money = Numeric(14, 4, asdecimal=True)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; stored naive-UTC so SQLite round-trips exactly."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: object, dialect: Dialect) -> datetime | None:
        """Refuse naive values (ambiguous), store as naive UTC."""
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"UtcDateTime needs an aware datetime, got {value!r}")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: object, dialect: Dialect) -> datetime | None:
        """Give back an aware UTC datetime."""
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


def new_id(prefix: str) -> str:
    """Opaque id that sorts by creation time: `cus_0193a1b2c3d4e5f6a7b8c9d0`.

    Time-ordered ids let cursors page by id alone and keep B-tree inserts at the end.
    """
    return f"{prefix}_{time.time_ns() // 1000:014x}{secrets.token_hex(5)}"
