"""The field catalogue: every field a rule may name, its type, its operators, what it means.

The rule editor builds its form from this catalogue and the docs print it, so the
descriptions are written for the people who edit rules, not for programmers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from gateway.core.db.models import CUSTOMER_STATUSES

CHANNELS = ("sms", "email", "voice")

ORDERING_OPS = frozenset({"<", "<=", ">", ">="})
EQUALITY_OPS = frozenset({"==", "!=", "in", "not_in"})
ALL_OPS = ("==", "!=", "<", "<=", ">", ">=", "in", "not_in", "contains", "exists")

# Attribute names go into a JSON path (bound as a parameter, but still parsed by the
# database's JSON path syntax), so they are kept to plain identifiers.
ATTRIBUTE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
TOPIC_MAX_LENGTH = 64


class Kind(StrEnum):
    """The type of a field's values, which decides its operators and value checks."""

    ENUM = "enum"
    TEXT = "text"
    TEXT_LIST = "text_list"
    DECIMAL = "decimal"
    INTEGER = "integer"
    JSON = "json"


OPS_BY_KIND: dict[Kind, frozenset[str]] = {
    Kind.ENUM: EQUALITY_OPS | {"exists"},
    Kind.TEXT: EQUALITY_OPS | {"exists"},
    Kind.TEXT_LIST: frozenset({"contains", "exists"}),
    Kind.DECIMAL: EQUALITY_OPS | ORDERING_OPS | {"exists"},
    Kind.INTEGER: EQUALITY_OPS | ORDERING_OPS | {"exists"},
    Kind.JSON: EQUALITY_OPS | ORDERING_OPS | {"exists"},
}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One entry of the catalogue."""

    name: str
    kind: Kind
    description: str
    # Whether the value can be missing (then every comparison is false, `exists` false).
    nullable: bool = True
    choices: tuple[str, ...] = ()
    unit: str | None = None
    # Parameterised fields are written `name.<parameter>` (`topic_calls_30d.billing`).
    parameter: str | None = None
    parameter_choices: tuple[str, ...] = ()

    @property
    def ops(self) -> frozenset[str]:
        """The operators this field accepts."""
        return OPS_BY_KIND[self.kind]

    def as_json(self) -> dict[str, object]:
        """The entry as the editor and the docs read it."""
        return {
            "name": self.name if self.parameter is None else f"{self.name}.<{self.parameter}>",
            "type": self.kind.value,
            "description": self.description,
            "ops": [op for op in ALL_OPS if op in self.ops],
            "nullable": self.nullable,
            "choices": list(self.choices),
            "unit": self.unit,
            "parameter": self.parameter,
            "parameter_choices": list(self.parameter_choices),
        }


_DAYS = "days"
FIELDS: dict[str, FieldSpec] = {
    spec.name: spec
    for spec in (
        FieldSpec(
            "status",
            Kind.ENUM,
            "Lifecycle status of the customer.",
            nullable=False,
            choices=CUSTOMER_STATUSES,
        ),
        FieldSpec("region", Kind.TEXT, "Region as the CRM gives it; missing when unknown."),
        FieldSpec("language", Kind.TEXT, "Preferred language code (e.g. `uk`, `en`)."),
        FieldSpec("timezone", Kind.TEXT, "IANA time zone of the customer (e.g. `Europe/Kyiv`)."),
        FieldSpec("responsible_agent", Kind.TEXT, "The CRM's id of the customer's own agent."),
        FieldSpec(
            "products",
            Kind.TEXT_LIST,
            "Products the customer holds. `contains` tests one product; "
            "`exists` is true when the customer holds at least one.",
            nullable=False,
        ),
        FieldSpec("bonus_balance", Kind.DECIMAL, "Bonus balance; missing when the CRM sent none."),
        FieldSpec(
            "days_since_activity",
            Kind.INTEGER,
            "Whole days since the last activity (card use, order, login) up to now; "
            "missing when the customer never had one.",
            unit=_DAYS,
        ),
        FieldSpec(
            "days_since_order",
            Kind.INTEGER,
            "Whole days since the last order up to now; missing when there was none.",
            unit=_DAYS,
        ),
        FieldSpec(
            "days_until_payment",
            Kind.INTEGER,
            "Calendar days from today to the next unpaid payment's due date "
            "(negative when it is overdue); missing when nothing is due.",
            unit=_DAYS,
        ),
        FieldSpec(
            "payment_amount",
            Kind.DECIMAL,
            "Amount of the next unpaid payment (all payments due that same day added up); "
            "missing when nothing is due.",
        ),
        FieldSpec(
            "orders_last_day",
            Kind.INTEGER,
            "Number of orders in the last 24 hours.",
            nullable=False,
        ),
        FieldSpec(
            "topic_calls_30d",
            Kind.INTEGER,
            "Number of calls in the last 30 days whose wrap-up topic is <topic>.",
            nullable=False,
            parameter="topic",
        ),
        FieldSpec(
            "contract_age_days",
            Kind.INTEGER,
            "Whole days since the contract started; missing when there is no contract.",
            unit=_DAYS,
        ),
        FieldSpec(
            "days_until_monitoring",
            Kind.INTEGER,
            "Whole days until the customer's next monitoring date (0 or less: it has "
            "come); missing when none is planned.",
            unit=_DAYS,
        ),
        FieldSpec(
            "last_contact_days",
            Kind.INTEGER,
            "Whole days since the last sent or delivered message or call on <channel>; "
            "missing when there was none.",
            unit=_DAYS,
            parameter="channel",
            parameter_choices=CHANNELS,
        ),
        FieldSpec(
            "attributes",
            Kind.JSON,
            "A custom attribute from the CRM. Compared as a number when the rule's value is "
            "a number, as text when it is text, as yes/no when it is true/false; an "
            "attribute of another type counts as missing for that condition.",
            parameter="name",
        ),
    )
}


class UnknownField(LookupError):
    """A field name the catalogue does not know, or a bad parameter for a known one."""


def resolve_field(name: str) -> tuple[FieldSpec, str | None]:
    """The catalogue entry for a written field name, and its parameter if it takes one."""
    base, dot, parameter = name.partition(".")
    spec = FIELDS.get(base)
    if spec is None:
        raise UnknownField(f"unknown field {name!r}")
    if spec.parameter is None:
        if dot:
            raise UnknownField(f"unknown field {name!r} ({base} takes no parameter)")
        return spec, None
    if not dot or not parameter:
        raise UnknownField(f"field {base} needs a {spec.parameter}: {base}.<{spec.parameter}>")
    if spec.parameter_choices and parameter not in spec.parameter_choices:
        raise UnknownField(
            f"unknown {spec.parameter} {parameter!r} for {base}; "
            f"expected one of {', '.join(spec.parameter_choices)}"
        )
    if spec.kind is Kind.JSON and not ATTRIBUTE_NAME.fullmatch(parameter):
        raise UnknownField(
            f"attribute name {parameter!r} must be letters, digits and _ (at most 64)"
        )
    if len(parameter) > TOPIC_MAX_LENGTH:
        raise UnknownField(f"{spec.parameter} is longer than {TOPIC_MAX_LENGTH} characters")
    return spec, parameter


def catalogue() -> list[dict[str, object]]:
    """Every field, as the editor and the docs read them."""
    return [spec.as_json() for spec in FIELDS.values()]


def local_today(as_of: datetime, timezone: str) -> date:
    """The calendar date at `as_of` in `timezone`: `days_until_payment` counts from it."""
    return as_of.astimezone(ZoneInfo(timezone)).date()
