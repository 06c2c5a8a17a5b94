"""The allocation problem and plan, and reading the contract's file-mode input."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, TypeVar

from gateway.core.db.models import CUSTOMER_STATUSES
from gateway.core.rules import CustomerFacts, Rule, RuleError, validate_rule

NO_ELIGIBLE = "no_eligible_partner"
CAPACITY_EXHAUSTED = "capacity_exhausted"
MAX_CAPACITY = 10_000_000
MAX_PRIORITY = 1_000_000

_TEXT_FACTS = ("region", "language", "timezone", "responsible_agent")
_INT_FACTS = ("days_since_activity", "days_since_order", "days_until_payment", "contract_age_days")
_DECIMAL_FACTS = ("bonus_balance", "payment_amount")
_COUNT_MAPS = ("topic_calls_30d", "last_contact_days")
CONTACT_KEYS = frozenset(
    {"id", "priority", "status", "products", "attributes", "orders_last_day"}
    | set(_TEXT_FACTS + _INT_FACTS + _DECIMAL_FACTS + _COUNT_MAPS)
)
PARTNER_KEYS = frozenset(
    {"id", "name", "capacity", "cost_per_contact", "eligibility", "performance"}
)


_T = TypeVar("_T", "Contact", "PartnerTerms")


class AllocationInputError(ValueError):
    """Input that cannot be allocated, with the path of the offending part."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class Contact:
    """One open contact (call task) to give to a partner."""

    id: str
    facts: CustomerFacts
    # Higher goes first: no lower-priority contact is assigned at the cost of a higher one.
    priority: int = 0


@dataclass(frozen=True, slots=True)
class PartnerTerms:
    """What the plan needs to know of one partner."""

    id: str
    capacity: int
    cost_per_contact: Decimal
    rule: Rule | None = None  # None: every contact is eligible
    performance: Mapping[str, Decimal] = field(default_factory=dict)
    # Database mode: agents are targets too; `external_id` is the CRM's partner_id/agent_id.
    kind: Literal["partner", "agent"] = "partner"
    external_id: str = ""

    def value(self, weights: Mapping[str, Decimal]) -> Decimal:
        """Weighted performance value per contact (figures without a weight count 0)."""
        return sum(
            (weight * self.performance.get(name, Decimal(0)) for name, weight in weights.items()),
            Decimal(0),
        )

    def net_cost(self, weights: Mapping[str, Decimal]) -> Decimal:
        """Cost minus weighted performance value: what the plan minimises per contact."""
        return self.cost_per_contact - self.value(weights)


@dataclass(frozen=True, slots=True)
class Problem:
    """Contacts, partners and the performance weights."""

    contacts: tuple[Contact, ...]
    partners: tuple[PartnerTerms, ...]
    weights: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Plan:
    """An optimal plan: who got what, what is left and why, and what it costs."""

    assignments: dict[str, str]
    unassigned: dict[str, str]
    total_cost: Decimal
    # Σ (cost − weighted value) of the assignments, exact, and the solver's own optimum.
    objective: Decimal
    solver_objective: float
    used: dict[str, int]
    assigned_by_priority: dict[int, int]
    classes: int = 0

    def as_json(self) -> dict[str, object]:
        """The contract's file-mode output."""
        return {
            "assignments": dict(self.assignments),
            "unassigned": dict(self.unassigned),
            "total_cost": str(self.total_cost),
        }


def parse_problem(raw: object, default_weights: Mapping[str, Decimal]) -> Problem:
    """Read `{"contacts", "partners", "weights"?}`; raises AllocationInputError with a path."""
    if not isinstance(raw, Mapping):
        raise AllocationInputError("$", "expected an object with `contacts` and `partners`")
    for key in raw:
        if key not in ("contacts", "partners", "weights"):
            raise AllocationInputError(
                str(key), "unknown key (expected contacts, partners, weights)"
            )
    contacts = _list(raw, "contacts")
    partners = _list(raw, "partners")
    weights = dict(default_weights)
    if "weights" in raw:
        given = raw["weights"]
        if not isinstance(given, Mapping):
            raise AllocationInputError("weights", "expected an object of figure → number")
        weights = {str(k): decimal(v, f"weights.{k}") for k, v in given.items()}
    return Problem(
        contacts=_unique(
            tuple(parse_contact(item, f"contacts[{i}]") for i, item in enumerate(contacts)),
            "contacts",
        ),
        partners=_unique(
            tuple(parse_partner(item, f"partners[{i}]") for i, item in enumerate(partners)),
            "partners",
        ),
        weights=weights,
    )


def _list(raw: Mapping[str, object], key: str) -> list[object]:
    value = raw.get(key)
    if not isinstance(value, list):
        raise AllocationInputError(key, "expected a list")
    return value


def _unique(items: tuple[_T, ...], path: str) -> tuple[_T, ...]:
    seen: set[str] = set()
    for index, item in enumerate(items):
        if item.id in seen:
            raise AllocationInputError(f"{path}[{index}].id", f"repeated id {item.id!r}")
        seen.add(item.id)
    return items


def parse_contact(raw: object, path: str) -> Contact:
    """One contact: `id`, `priority`, and customer facts named as in the rule catalogue."""
    if not isinstance(raw, Mapping):
        raise AllocationInputError(path, "expected an object")
    for key in raw:
        if key not in CONTACT_KEYS:
            raise AllocationInputError(
                f"{path}.{key}", f"unknown field; expected one of {', '.join(sorted(CONTACT_KEYS))}"
            )
    ident = text(raw.get("id"), f"{path}.id")
    status = raw.get("status", "active")
    if status not in CUSTOMER_STATUSES:
        raise AllocationInputError(
            f"{path}.status", f"expected one of {', '.join(CUSTOMER_STATUSES)}"
        )
    facts: dict[str, Any] = {"customer_id": ident, "status": status}
    facts.update(_scalar_facts(raw, path))
    facts["products"] = _products(raw.get("products", []), f"{path}.products")
    facts["attributes"] = _attributes(raw.get("attributes", {}), f"{path}.attributes")
    facts["orders_last_day"] = integer(raw.get("orders_last_day", 0), f"{path}.orders_last_day")
    priority = integer(raw.get("priority", 0), f"{path}.priority")
    if abs(priority) > MAX_PRIORITY:
        raise AllocationInputError(
            f"{path}.priority", f"expected a whole number within ±{MAX_PRIORITY}"
        )
    return Contact(id=ident, facts=CustomerFacts(**facts), priority=priority)


def _scalar_facts(raw: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The optional text, whole-number and decimal facts, then the per-key count maps."""
    facts: dict[str, Any] = {}
    for name in _TEXT_FACTS:
        if raw.get(name) is not None:
            facts[name] = text(raw[name], f"{path}.{name}")
    for name in _INT_FACTS:
        if raw.get(name) is not None:
            facts[name] = integer(raw[name], f"{path}.{name}")
    for name in _DECIMAL_FACTS:
        if raw.get(name) is not None:
            facts[name] = decimal(raw[name], f"{path}.{name}")
    for name in _COUNT_MAPS:
        facts[name] = _counts(raw.get(name, {}), f"{path}.{name}")
    return facts


def _products(products: Any, path: str) -> tuple[str, ...]:
    if not isinstance(products, list):
        raise AllocationInputError(path, "expected a list of texts")
    return tuple(text(p, f"{path}[{i}]") for i, p in enumerate(products))


def _attributes(attributes: Any, path: str) -> dict[str, Any]:
    if not isinstance(attributes, Mapping):
        raise AllocationInputError(path, "expected an object")
    return {str(k): float(v) if isinstance(v, Decimal) else v for k, v in attributes.items()}


def parse_partner(raw: object, path: str) -> PartnerTerms:
    """One partner: `id`, `capacity`, `cost_per_contact`, `eligibility` rule, `performance`."""
    if not isinstance(raw, Mapping):
        raise AllocationInputError(path, "expected an object")
    for key in raw:
        if key not in PARTNER_KEYS:
            raise AllocationInputError(
                f"{path}.{key}", f"unknown key; expected one of {', '.join(sorted(PARTNER_KEYS))}"
            )
    for key in ("id", "capacity", "cost_per_contact", "eligibility"):
        if key not in raw:
            raise AllocationInputError(f"{path}.{key}", "required")
    capacity = integer(raw["capacity"], f"{path}.capacity")
    if not 0 <= capacity <= MAX_CAPACITY:
        raise AllocationInputError(f"{path}.capacity", f"expected 0 to {MAX_CAPACITY}")
    cost = decimal(raw["cost_per_contact"], f"{path}.cost_per_contact")
    if cost < 0:
        raise AllocationInputError(f"{path}.cost_per_contact", "must not be negative")
    return PartnerTerms(
        id=text(raw["id"], f"{path}.id"),
        capacity=capacity,
        cost_per_contact=cost,
        rule=eligibility_rule(raw["eligibility"], f"{path}.eligibility"),
        performance=performance(raw.get("performance", {}), f"{path}.performance"),
    )


def eligibility_rule(raw: object, path: str) -> Rule | None:
    """A partner's rule; an empty object means every contact (no restriction)."""
    if isinstance(raw, Mapping) and not raw:
        return None
    try:
        return validate_rule(raw, path=path)
    except RuleError as exc:
        raise AllocationInputError(exc.path, exc.message) from None


def performance(raw: object, path: str) -> dict[str, Decimal]:
    """Performance figures by name (quality_score, cancellation_rate, upsell_rate, …)."""
    if not isinstance(raw, Mapping):
        raise AllocationInputError(path, "expected an object of figure → number")
    return {str(k): decimal(v, f"{path}.{k}") for k, v in raw.items() if v is not None}


def _counts(raw: object, path: str) -> dict[str, int]:
    if not isinstance(raw, Mapping):
        raise AllocationInputError(path, "expected an object of name → whole number")
    return {str(k): integer(v, f"{path}.{k}") for k, v in raw.items()}


def text(value: object, path: str) -> str:
    """A non-empty text of at most 256 characters."""
    if not isinstance(value, str) or not value.strip() or len(value) > 256:
        raise AllocationInputError(path, "expected a non-empty text of at most 256 characters")
    return value


def integer(value: object, path: str) -> int:
    """A whole number (JSON integer, not true/false)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise AllocationInputError(path, "expected a whole number")
    return value


def decimal(value: object, path: str) -> Decimal:
    """A finite number, given as a JSON number or a decimal string."""
    if isinstance(value, bool):
        raise AllocationInputError(path, "expected a number")
    try:
        if isinstance(value, float):
            if not math.isfinite(value):
                raise AllocationInputError(path, "expected a finite number")
            number = Decimal(repr(value))
        elif isinstance(value, int | str | Decimal):
            number = Decimal(value.strip() if isinstance(value, str) else value)
        else:
            raise AllocationInputError(path, "expected a number")
    except InvalidOperation:
        raise AllocationInputError(path, f"{value!r} is not a number") from None
    if not number.is_finite() or abs(number) >= Decimal(10) ** 12:
        raise AllocationInputError(path, "expected a finite number below 10^12")
    return number
