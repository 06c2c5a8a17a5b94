"""Hypothesis strategies for rules, and the fact values they draw from."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

AMOUNTS = (
    Decimal("0"),
    Decimal("0.1"),
    Decimal("0.2"),
    Decimal("10.5"),
    Decimal("99.9999"),
    Decimal("100"),
    Decimal("250.25"),
)


# Day counts the data and the rules both favour, so that exact boundaries get hit.
DAY_CHOICES = (-1, 0, 1, 2, 7, 29, 30, 31)

REGIONS = ("north", "south", "east")

PRODUCTS = ("card", "loan", "deposit")


INTEGER_FIELDS = (
    "days_since_activity",
    "days_since_order",
    "days_until_payment",
    "contract_age_days",
    "days_until_monitoring",
    "orders_last_day",
    "topic_calls_30d.billing",
    "topic_calls_30d.cancel",
    "topic_calls_30d.nothing",
    "last_contact_days.sms",
    "last_contact_days.email",
    "last_contact_days.voice",
)


ORDERED = ("==", "!=", "<", "<=", ">", ">=")


def leaf(field: str, values: st.SearchStrategy[Any], ops: tuple[str, ...]) -> Any:
    def build(op: str, value: Any, many: list[Any], present: bool) -> dict[str, Any]:
        if op == "exists":
            return {"field": field, "op": op, "value": present}
        if op in ("in", "not_in"):
            return {"field": field, "op": op, "value": many}
        return {"field": field, "op": op, "value": value}

    return st.builds(
        build,
        st.sampled_from(ops),
        values,
        st.lists(values, min_size=1, max_size=3),
        st.booleans(),
    )


def leaves() -> st.SearchStrategy[Any]:
    """Conditions over every documented field, with values near the population's data."""
    every = (*ORDERED, "in", "not_in", "exists")
    equality = ("==", "!=", "in", "not_in", "exists")
    days = st.one_of(st.sampled_from(DAY_CHOICES), st.integers(-4, 41))
    money = st.sampled_from(
        ["0", "0.1", "0.3", "10.5", "99.9999", "100", "100.0001", "250.25", "260.75", "0.0001"]
    )
    text_fields = [
        leaf("status", st.sampled_from(["active", "warm", "cold", "lost", "cancelled"]), equality),
        leaf("region", st.sampled_from([*REGIONS, "west"]), equality),
        leaf("language", st.sampled_from(["uk", "en"]), equality),
        leaf("timezone", st.just("Europe/Kyiv"), equality),
        leaf("responsible_agent", st.sampled_from(["agent-1", "agent-2"]), equality),
        leaf("products", st.sampled_from([*PRODUCTS, "other"]), ("contains", "exists")),
    ]
    numeric = [
        leaf(field, st.integers(0, 4) if "calls" in field or "orders" in field else days, every)
        for field in INTEGER_FIELDS
    ]
    numeric += [leaf(field, money, every) for field in ("bonus_balance", "payment_amount")]
    attributes = [
        leaf(
            f"attributes.{name}",
            st.sampled_from([0, 3, 7, 3.5, -1, 10**9, 2.25]),
            every,
        )
        for name in ("score", "tier", "vip", "absent")
    ] + [
        leaf(f"attributes.{name}", values, equality)
        for name in ("score", "tier", "vip")
        for values in (st.sampled_from(["3", "gold", "silver"]), st.booleans())
    ]
    return st.one_of(*text_fields, *numeric, *attributes)


def rules() -> st.SearchStrategy[Any]:
    """Random condition trees: all / any / not over the leaves."""
    return st.recursive(
        leaves(),
        lambda children: st.one_of(
            st.lists(children, min_size=1, max_size=3).map(lambda items: {"all": items}),
            st.lists(children, min_size=1, max_size=3).map(lambda items: {"any": items}),
            children.map(lambda item: {"not": item}),
        ),
        max_leaves=6,
    )
