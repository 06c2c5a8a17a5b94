"""Outbound contacts (messages and call tasks), templates, tasks and the cost ledger."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.core.db.models.base import Base, Timestamped
from gateway.core.db.states import ContactStatus, TaskStatus
from gateway.core.db.types import JsonDocument, Money, UtcDateTime


class OutboundContact(Timestamped, Base):
    """A message or call to make. Committed (with its idempotency key) before any send."""

    __tablename__ = "outbound_contacts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # source:customer:step:occurrence — a second insert for the same contact collides here.
    idempotency_key: Mapped[str] = mapped_column(String(256), unique=True)
    channel: Mapped[str] = mapped_column(String(8))
    customer_id: Mapped[str | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    campaign_id: Mapped[str | None] = mapped_column(String(40), index=True)
    enrollment_id: Mapped[str | None] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(32), default="crm")
    template: Mapped[str | None] = mapped_column(String(128))
    subject: Mapped[str | None] = mapped_column(String(512))
    body: Mapped[str | None] = mapped_column(Text)
    variables: Mapped[dict[str, object]] = mapped_column(JsonDocument, default=dict)
    to_address: Mapped[str | None] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16), default=ContactStatus.PENDING)
    not_before: Mapped[datetime | None] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    provider_id: Mapped[str | None] = mapped_column(String(128), index=True)
    segments: Mapped[int | None] = mapped_column(Integer)
    cost: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    sandbox: Mapped[bool] = mapped_column(default=False)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    replied_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_outbound_contacts_due", "status", "not_before"),)


class Template(Timestamped, Base):
    """A message template: body (and subject) per language, declared variables."""

    __tablename__ = "templates"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    channel: Mapped[str] = mapped_column(String(8))
    subject: Mapped[dict[str, str]] = mapped_column(JsonDocument, default=dict)
    body: Mapped[dict[str, str]] = mapped_column(JsonDocument, default=dict)
    variables: Mapped[list[str]] = mapped_column(JsonDocument, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)


class Task(Base):
    """Work for an operator or partner; a call task closes only with a verified call."""

    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    task_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(32), default="call")
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    assignee: Mapped[str | None] = mapped_column(String(128), index=True)
    partner_id: Mapped[str | None] = mapped_column(String(40), index=True)
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.OPEN, index=True)
    min_call_seconds: Mapped[int] = mapped_column(Integer, default=20)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    campaign_id: Mapped[str | None] = mapped_column(String(40))
    enrollment_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    completed_by_call_id: Mapped[str | None] = mapped_column(String(40))


class CostEntry(Base):
    """What one SMS, e-mail or call cost, in the currency it was incurred in."""

    __tablename__ = "cost_ledger"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    channel: Mapped[str] = mapped_column(String(8))
    customer_id: Mapped[str | None] = mapped_column(String(40), index=True)
    campaign_id: Mapped[str | None] = mapped_column(String(40), index=True)
    contact_id: Mapped[str | None] = mapped_column(String(40))
    call_id: Mapped[str | None] = mapped_column(String(40))
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    source: Mapped[str] = mapped_column(String(16))
    units: Mapped[int] = mapped_column(Integer, default=1)

    # One ledger line per contact or call: recording a cost twice must be impossible.
    __table_args__ = (
        Index("uq_cost_ledger_contact", "contact_id", unique=True),
        Index("uq_cost_ledger_call", "call_id", unique=True),
    )


class CostLedgerHour(Base):
    """The cost ledger summed per UTC hour, campaign, channel, currency and price source.

    Written only by database triggers on `cost_ledger` (migration 0003): every insert,
    update and delete of a ledger line, by any code path, bulk COPY or hand-made SQL,
    adds or subtracts its line here in the same transaction, so the sums cannot drift
    from the lines. Reports read whole hours from here and only the partial hours at
    the window's edges from the ledger (see gateway/costs/rollup.py). Amounts are whole
    ten-thousandths (the ledger's scale) so SQLite sums them exactly too.
    """

    __tablename__ = "cost_ledger_hourly"

    hour: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    # The ledger's campaign_id, or '' for lines outside any campaign: a NULL in a key
    # would make every such line a row of its own (NULLs never conflict).
    campaign_key: Mapped[str] = mapped_column(String(40), primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    amount_e4: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[int] = mapped_column(BigInteger)
    units: Mapped[int] = mapped_column(BigInteger)
