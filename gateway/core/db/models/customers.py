"""Customers and what the CRM tells us about them: phones, activity, payments, complaints."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.core.db.models.base import Base, Timestamped
from gateway.core.db.states import CustomerStatus, PaymentStatus
from gateway.core.db.types import JsonDocument, Money, UtcDateTime

CUSTOMER_STATUSES = tuple(status.value for status in CustomerStatus)


class Customer(Timestamped, Base):
    """A customer as mirrored from the CRM, plus what Switchboard derives (status, consent)."""

    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(256), default="")
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    timezone: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(8))
    region: Mapped[str | None] = mapped_column(String(64), index=True)
    products: Mapped[list[str]] = mapped_column(JsonDocument, default=list)
    responsible_agent: Mapped[str | None] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(16), default=CustomerStatus.ACTIVE, index=True)
    status_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    contract_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    contract_ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    bonus_balance: Mapped[Decimal | None] = mapped_column(Money)
    attributes: Mapped[dict[str, object]] = mapped_column(JsonDocument, default=dict)
    last_activity_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    last_order_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_contact_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    next_monitoring_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    sms_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    email_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    voice_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    do_not_contact: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    phones: Mapped[list[CustomerPhone]] = relationship(
        back_populates="customer",
        cascade="all, delete-orphan",
        order_by="CustomerPhone.position",
        lazy="selectin",
    )

    __table_args__ = (Index("ix_customers_name", "name"),)


class CustomerPhone(Base):
    """One of a customer's numbers, E.164. Not unique: a family or office may share one."""

    __tablename__ = "customer_phones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    e164: Mapped[str] = mapped_column(String(20), index=True)
    # The last 9 digits, for numbers that reach us without a country code or with a
    # trunk prefix: 9 covers the national significant number of most countries.
    last_digits: Mapped[str] = mapped_column(String(9), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    invalid: Mapped[bool] = mapped_column(Boolean, default=False)

    customer: Mapped[Customer] = relationship(back_populates="phones")

    __table_args__ = (UniqueConstraint("customer_id", "e164"),)


class Activity(Base):
    """Card use, an order or a login, as the CRM reported it."""

    __tablename__ = "activities"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    amount: Mapped[Decimal | None] = mapped_column(Money)
    source_event_id: Mapped[str | None] = mapped_column(String(128), unique=True)

    __table_args__ = (Index("ix_activities_customer_at", "customer_id", "at"),)


class Payment(Base):
    """A payment due on a contract (loan instalment, subscription)."""

    __tablename__ = "payments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    contract_id: Mapped[str] = mapped_column(String(128))
    due_date: Mapped[date] = mapped_column(Date, index=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default=PaymentStatus.DUE)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (UniqueConstraint("customer_id", "contract_id", "due_date"),)


class Complaint(Base):
    """A complaint (or another topic the customer raised) from the CRM."""

    __tablename__ = "complaints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    topic: Mapped[str] = mapped_column(String(64))
    source_event_id: Mapped[str | None] = mapped_column(String(128), unique=True)


class StatusChange(Base):
    """One move in the customer lifecycle, for the timeline and daily statistics."""

    __tablename__ = "status_changes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    reason: Mapped[str] = mapped_column(String(128), default="")

    __table_args__ = (Index("ix_status_changes_customer_at", "customer_id", "at"),)


class DoNotContact(Base):
    """A number or address nobody may contact, whether or not it belongs to a customer."""

    __tablename__ = "do_not_contact"

    value: Mapped[str] = mapped_column(String(320), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
