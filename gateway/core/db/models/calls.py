"""Call records built from AMI events, their legs, and the raw events kept for rebuilds."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.core.db.models.base import Base, Timestamped
from gateway.core.db.states import CallState
from gateway.core.db.types import JsonDocument, Money, UtcDateTime


class Call(Timestamped, Base):
    """One call, keyed by the PBX's Linkedid; upserted idempotently as events arrive."""

    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    pbx_linkedid: Mapped[str | None] = mapped_column(String(64), unique=True)
    direction: Mapped[str] = mapped_column(String(16), default="inbound")
    state: Mapped[str] = mapped_column(String(16), default=CallState.RINGING)
    caller: Mapped[str | None] = mapped_column(String(32))
    callee: Mapped[str | None] = mapped_column(String(32))
    extension: Mapped[str | None] = mapped_column(String(32), index=True)
    agent_id: Mapped[str | None] = mapped_column(String(40), index=True)  # own calls, 0004
    customer_id: Mapped[str | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    match: Mapped[str] = mapped_column(String(16), default="none")
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ring_seconds: Mapped[int | None] = mapped_column(Integer)
    talk_seconds: Mapped[int | None] = mapped_column(Integer)
    disposition: Mapped[str | None] = mapped_column(String(16))
    topic: Mapped[str | None] = mapped_column(String(64), index=True)
    cost: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    originate_action_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    details: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)

    # The savings report counts distinct inbound callers per topic and sums their talk
    # time from this narrow index alone (index-only scans, not the wide rows); see
    # gateway/costs/callers.py. Migration 0003.
    __table_args__ = (
        Index(
            "ix_calls_inbound_by_topic",
            "topic",
            "customer_id",
            "started_at",
            "talk_seconds",
            postgresql_where=text("direction = 'inbound'"),
            sqlite_where=text("direction = 'inbound'"),
        ),
    )


class CallLeg(Base):
    """One channel of a call (Uniqueid), with the operator it reached, if any."""

    __tablename__ = "call_legs"

    uniqueid: Mapped[str] = mapped_column(String(64), primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16), default="other")
    extension: Mapped[str | None] = mapped_column(String(32), index=True)  # own calls, 0004
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    talk_seconds: Mapped[int | None] = mapped_column(Integer)
    hangup_cause: Mapped[int | None] = mapped_column(Integer)


class AmiRawEvent(Base):
    """An AMI event as received, kept for a configurable time so records can be rebuilt."""

    __tablename__ = "ami_raw_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    linkedid: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    fields: Mapped[dict[str, Any]] = mapped_column(JsonDocument)

    __table_args__ = (Index("ix_ami_raw_events_linkedid", "linkedid"),)
