"""A validated rule evaluated in Python against one customer's facts.

Missing data (None) makes every comparison false and `exists` false; `not` is plain
negation. This is exactly what the SQL compilation does (the property test holds both
to it).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from gateway.core.rules.facts import CustomerFacts
from gateway.core.rules.validate import AllOf, AnyOf, Condition, Not, Rule, Scalar


def evaluate(rule: Rule, facts: CustomerFacts) -> bool:
    """Whether the rule holds for the customer these facts describe."""
    if isinstance(rule, AllOf):
        return all(evaluate(item, facts) for item in rule.rules)
    if isinstance(rule, AnyOf):
        return any(evaluate(item, facts) for item in rule.rules)
    if isinstance(rule, Not):
        return not evaluate(rule.rule, facts)
    return _condition(rule, facts)


def field_value(rule: Condition, facts: CustomerFacts) -> Any:
    """The value a condition's field has in these facts (None when missing)."""
    name = rule.spec.name
    if name == "topic_calls_30d":
        return facts.topic_calls_30d.get(rule.parameter or "", 0)
    if name == "last_contact_days":
        return facts.last_contact_days.get(rule.parameter or "")
    if name == "attributes":
        return facts.attributes.get(rule.parameter or "")
    return getattr(facts, name)


def _condition(rule: Condition, facts: CustomerFacts) -> bool:
    value = field_value(rule, facts)
    if rule.spec.name == "products":
        if rule.op == "exists":
            return bool(facts.products) is rule.value
        return rule.value in facts.products
    if rule.op == "exists":
        return (value is not None) is rule.value
    if rule.spec.name == "attributes":
        value = _attribute_as(value, rule.value)
    if value is None:
        return False
    return _compare(value, rule.op, rule.value)


def _attribute_as(value: object, wanted: Scalar | tuple[Scalar, ...]) -> Any:
    """The attribute in the type of the rule's value, or None when it is of another type."""
    sample = wanted[0] if isinstance(wanted, tuple) else wanted
    if value is None:
        return None
    if isinstance(sample, bool) or isinstance(value, bool):
        return value if isinstance(sample, bool) and isinstance(value, bool) else None
    if isinstance(sample, str):
        return value if isinstance(value, str) else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    return None


def _compare(value: object, op: str, wanted: Any) -> bool:
    if op == "in":
        return any(value == item for item in wanted)
    if op == "not_in":
        return all(value != item for item in wanted)
    if op == "==":
        return bool(value == wanted)
    if op == "!=":
        return bool(value != wanted)
    if op == "<":
        return bool(value < wanted)
    if op == "<=":
        return bool(value <= wanted)
    if op == ">":
        return bool(value > wanted)
    return bool(value >= wanted)  # >=
