"""Request and response models of the customer API (they also feed /openapi.json)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.core.clock import isoformat_z
from gateway.core.http.endpoints import PageQuery

Match = Literal["exact", "suffix", "ambiguous", "none"]
TimelineKind = Literal[
    "call", "message", "task", "status_change", "activity", "complaint", "payment"
]

_CENTS = Decimal("0.01")


def money(value: Decimal | None) -> str | None:
    """A decimal string with at least two places (`"3.45"`, `"0.0125"`), never a float."""
    if value is None:
        return None
    exact = value.normalize()
    return str(value.quantize(_CENTS) if exact == exact.quantize(_CENTS) else exact)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC with Z, or None."""
    return isoformat_z(value)


class CustomerSearchQuery(PageQuery):
    """Filters: phone (any written form), name substring, CRM id; combined with AND."""

    phone: str | None = Field(default=None, max_length=64, description="any written form")
    q: str | None = Field(default=None, min_length=1, max_length=128, description="name substring")
    external_id: str | None = Field(default=None, max_length=128, description="CRM id")


class CustomerSummary(BaseModel):
    """One search hit."""

    id: str
    external_id: str
    name: str
    phones: list[str]
    email: str | None
    status: str
    region: str | None
    responsible_agent: str | None
    match: Match | None = Field(
        default=None, description="for phone searches: how the number matched"
    )


class CustomerPage(BaseModel):
    """A page of search hits."""

    items: list[CustomerSummary]
    next_cursor: str | None


class TaskItem(BaseModel):
    """An operator task as the card shows it."""

    id: str
    task_id: str | None
    kind: str
    customer_id: str
    assignee: str | None
    status: str
    min_call_seconds: int
    created_at: str
    due_at: str | None
    completed_by_call_id: str | None


class MessageItem(BaseModel):
    """A recent outbound contact."""

    id: str
    channel: str
    status: str
    template: str | None
    created_at: str
    sent_at: str | None
    delivered_at: str | None
    reason: str | None
    error: str | None


class CallItem(BaseModel):
    """A recent call."""

    id: str
    direction: str
    started_at: str | None
    extension: str | None
    talk_seconds: int | None
    disposition: str | None
    topic: str | None


class LastContacts(BaseModel):
    """The latest few messages and calls, newest first."""

    messages: list[MessageItem]
    calls: list[CallItem]


class PaymentItem(BaseModel):
    """A payment due."""

    contract_id: str
    due_date: str
    amount: str = Field(description="decimal string")
    currency: str
    status: str


class Consent(BaseModel):
    """Per-channel opt-outs."""

    sms_opt_out: bool
    email_opt_out: bool
    voice_opt_out: bool
    do_not_contact: bool


class CustomerCard(BaseModel):
    """Everything an operator needs at a glance (also the screen-pop's `customer`)."""

    id: str
    external_id: str
    name: str
    phones: list[str]
    email: str | None
    timezone: str | None
    language: str | None
    status: str
    status_changed_at: str | None
    responsible_agent: str | None
    region: str | None
    products: list[str]
    bonus_balance: str | None = Field(description="decimal string")
    attributes: dict[str, object]
    consent: Consent
    contract_started_at: str | None
    last_activity_at: str | None
    last_order_at: str | None
    open_tasks: list[TaskItem]
    last_contacts: LastContacts
    next_payment: PaymentItem | None


class TimelineItem(BaseModel):
    """One entry: `at`, `kind`, `id`, and the fields of that kind."""

    model_config = ConfigDict(extra="allow")

    at: str
    kind: TimelineKind
    id: str


class TimelinePage(BaseModel):
    """A page of the timeline, newest first."""

    items: list[TimelineItem]
    next_cursor: str | None
