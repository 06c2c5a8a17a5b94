"""Schemas of the CRM's webhook events: the envelope and each type's `data`."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

from gateway.core.clock import as_utc
from gateway.core.http.input_guard import find_nul
from gateway.core.phones import InvalidPhone, normalize_phone

Channel = Literal["sms", "email", "voice"]
Id = Annotated[str, Field(min_length=1, max_length=128)]
Text = Annotated[str, Field(max_length=256)]
# Matches Numeric(14, 4): anything larger would be refused by PostgreSQL as a 500.
Amount = Annotated[Decimal, Field(max_digits=14, decimal_places=4)]
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CURRENCY = r"^[A-Z]{3}$"


class UnknownEventType(ValueError):
    """The envelope's `type` is none the contract lists."""


class ParseContext:
    """What validating `data` needs from settings: phone region and local timezone."""

    def __init__(self, region: str, timezone: str) -> None:
        self.region = region
        self.zone = ZoneInfo(timezone)


def _context(info: ValidationInfo) -> ParseContext:
    context = info.context
    if not isinstance(context, ParseContext):
        raise TypeError("event data must be validated with a ParseContext")
    return context


def _phone(value: str, info: ValidationInfo) -> str:
    try:
        return normalize_phone(value, _context(info).region)
    except InvalidPhone as exc:
        raise ValueError("not a valid phone number") from exc


def _when(value: datetime, info: ValidationInfo) -> datetime:
    # The contract: a time without an offset is in SWITCHBOARD_TIMEZONE.
    if value.tzinfo is None:
        value = value.replace(tzinfo=_context(info).zone)
    return as_utc(value)


def _email(value: str | None) -> str | None:
    if value is not None and not _EMAIL.match(value):
        raise ValueError("not an e-mail address")
    return value


Phone = Annotated[str, Field(max_length=64), AfterValidator(_phone)]
When = Annotated[datetime, AfterValidator(_when)]
Email = Annotated[str | None, Field(default=None, max_length=320), AfterValidator(_email)]


class EventData(BaseModel):
    """Base of every `data` schema: unknown keys are ignored (the CRM may add fields)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class CustomerUpserted(EventData):
    """Create or update a customer; only the keys sent are written."""

    external_id: Id
    name: Text | None = None
    phones: list[Phone] | None = Field(default=None, max_length=20)
    email: Email = None
    timezone: Annotated[str, Field(max_length=64)] | None = None
    language: Annotated[str, Field(max_length=8)] | None = None
    region: Annotated[str, Field(max_length=64)] | None = None
    products: list[Annotated[str, Field(max_length=128)]] | None = None
    responsible_agent: Annotated[str, Field(max_length=128)] | None = None
    contract_started_at: When | None = None
    attributes: dict[str, object] | None = None
    bonus_balance: Amount | None = None

    def fields(self) -> dict[str, object]:
        """The customer columns this event sets (phones and external_id apart)."""
        sent = self.model_fields_set - {"external_id", "phones"}
        values = {name: getattr(self, name) for name in sent}
        # Nulls in list/dict columns would break readers that expect a container.
        for name, empty in (("products", []), ("attributes", {})):
            if name in values and values[name] is None:
                values[name] = empty
        if "name" in values and values["name"] is None:
            values["name"] = ""
        return values


class CustomerDeleted(EventData):
    """The CRM deleted a customer."""

    external_id: Id


class CustomerActivity(EventData):
    """Card use, an order or a login."""

    external_id: Id
    kind: Literal["card_use", "order", "login"]
    at: When
    amount: Amount | None = None


class PaymentScheduled(EventData):
    """A payment due on a contract."""

    external_id: Id
    contract_id: Id
    due_date: date
    amount: Amount = Field(ge=0)
    currency: str = Field(pattern=_CURRENCY)


class PaymentPaid(EventData):
    """A scheduled payment was paid (an extension to the contract): reminders stop.

    The payment is named as `payment.scheduled` names it: customer, contract, due date.
    """

    external_id: Id
    contract_id: Id
    due_date: date


class ComplaintCreated(EventData):
    """A complaint (or another topic the customer raised)."""

    external_id: Id
    at: When
    topic: Annotated[str, Field(min_length=1, max_length=64)]


class ConsentChanged(EventData):
    """The customer opted out of (or back into) a channel."""

    external_id: Id
    channel: Channel
    opted_out: bool = Field(strict=True)


class ContactRequested(EventData):
    """The CRM asks us to contact a customer with a template or an inline body."""

    external_id: Id
    channel: Channel
    template: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    body: Annotated[str, Field(min_length=1, max_length=20_000)] | None = None
    subject: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    send_at: When | None = None
    variables: dict[str, object] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _template_or_body(self) -> ContactRequested:
        if (self.template is None) == (self.body is None):
            raise ValueError("give exactly one of template and body")
        if self.body is not None and self.channel == "email" and self.subject is None:
            raise ValueError("an inline e-mail needs a subject")
        return self


class TaskCreated(EventData):
    """A task for an operator (a call to make, usually)."""

    task_id: Id
    external_id: Id
    kind: Annotated[str, Field(min_length=1, max_length=32)] = "call"
    assignee: Annotated[str, Field(max_length=128)] | None = None
    due_at: When | None = None
    min_call_seconds: int = Field(default=20, ge=0, le=86_400)


class AgentUpserted(EventData):
    """An operator with extensions; an extension belongs to one agent at a time."""

    agent_id: Id
    name: Text = ""
    extensions: list[Annotated[str, Field(pattern=r"^[0-9A-Za-z*#]{1,32}$")]] = Field(
        default_factory=list, max_length=50
    )
    crm_user_id: Annotated[str, Field(max_length=128)] | None = None
    # Allocation terms (extensions to the contract): optional, and a key the CRM leaves
    # out keeps the stored value, so an event with only the contract's fields changes none.
    skills: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=100
    )
    regions: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=100
    )
    capacity_per_day: int | None = Field(default=None, ge=0)
    cost_per_contact: Amount | None = Field(default=None, ge=0)
    currency: str | None = Field(default=None, pattern=_CURRENCY)
    eligibility: dict[str, object] | None = None
    performance: dict[str, object] | None = None
    active: bool | None = None


class PartnerUpserted(EventData):
    """A service partner."""

    partner_id: Id
    name: Text = ""
    capacity: int = Field(default=0, ge=0)
    cost_per_contact: Amount = Field(default=Decimal("0"), ge=0)
    currency: str = Field(default="UAH", pattern=_CURRENCY)
    eligibility: dict[str, object] = Field(default_factory=dict)
    performance: dict[str, object] = Field(default_factory=dict)


EVENT_TYPES: dict[str, type[EventData]] = {
    "customer.upserted": CustomerUpserted,
    "customer.deleted": CustomerDeleted,
    "customer.activity": CustomerActivity,
    "payment.scheduled": PaymentScheduled,
    "payment.paid": PaymentPaid,
    "complaint.created": ComplaintCreated,
    "consent.changed": ConsentChanged,
    "contact.requested": ContactRequested,
    "task.created": TaskCreated,
    "agent.upserted": AgentUpserted,
    "partner.upserted": PartnerUpserted,
}


class Envelope(BaseModel):
    """`{"id", "type", "occurred_at", "data"}` as the CRM posts it."""

    model_config = ConfigDict(extra="ignore")

    id: Id
    type: Annotated[str, Field(min_length=1, max_length=64)]
    occurred_at: When
    data: dict[str, object]


class NulCharacter(ValueError):
    """A string holds U+0000, which PostgreSQL text cannot store: refused everywhere alike."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path}: the NUL character is not allowed in text")
        self.path = path


def parse_envelope(raw: object, context: ParseContext) -> Envelope:
    """Validate the envelope; raises ValidationError, NulCharacter, or UnknownEventType."""
    nul = find_nul(raw)
    if nul is not None:
        raise NulCharacter(nul)
    envelope = Envelope.model_validate(raw, context=context)
    if envelope.type not in EVENT_TYPES:
        raise UnknownEventType(f"unknown event type; expected one of {sorted(EVENT_TYPES)}")
    return envelope


def parse_data(event: Envelope, context: ParseContext) -> EventData:
    """Validate `data` against its type's schema (raises ValidationError)."""
    return EVENT_TYPES[event.type].model_validate(event.data, context=context)
