"""Grouped (numpy) eligibility gives exactly the reference evaluation's answer."""

from __future__ import annotations

import random
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.allocation.eligibility import eligible_in_python
from gateway.allocation.eligibility_fast import eligible_grouped
from gateway.allocation.model import AllocationInputError, Contact, PartnerTerms, eligibility_rule
from gateway.core.rules import CustomerFacts
from tests.support.rule_strategies import AMOUNTS, PRODUCTS, REGIONS, rules

DAYS = [None, -1, 0, 1, 2, 7, 29, 30, 31, 41]
# Values an attribute may hold, including the ones Python calls equal but the evaluator
# does not (1, 1.0, True), and unhashable JSON.
ATTRIBUTE_VALUES = [0, 1, 1.0, True, False, 3, "3", 3.5, 2.25, -1, 10**9, "gold", None, [1], {}]


def facts(rng: random.Random, index: int) -> CustomerFacts:
    """A customer from a small world, so that many share values (the groups matter)."""

    def maybe(pool: Sequence[Any]) -> Any:
        return rng.choice(pool)

    return CustomerFacts(
        customer_id=f"c{index}",
        status=maybe(["active", "warm", "cold", "lost", "cancelled"]),
        region=maybe([None, *REGIONS]),
        language=maybe([None, "uk", "en"]),
        responsible_agent=maybe([None, "agent-1"]),
        products=tuple(p for p in PRODUCTS if rng.random() < 0.4),
        bonus_balance=maybe([None, *AMOUNTS]),
        payment_amount=maybe([None, *AMOUNTS]),
        attributes={
            name: maybe(ATTRIBUTE_VALUES) for name in ("score", "tier", "vip") if rng.random() < 0.6
        },
        days_since_activity=maybe(DAYS),
        days_since_order=maybe(DAYS),
        days_until_payment=maybe(DAYS),
        contract_age_days=maybe(DAYS),
        orders_last_day=rng.randint(0, 3),
        topic_calls_30d=maybe([{}, {"billing": 1}, {"billing": 3, "cancel": 2}]),
        last_contact_days=maybe([{}, {"sms": 0}, {"sms": 7, "voice": 31}]),
    )


# Built once: a strategy is validated (expensively, for a recursive one) when first drawn.
RULES: st.SearchStrategy[Any] = st.one_of(st.just({}), rules())


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[Contact], list[PartnerTerms]]:
    """Up to 60 contacts (from a seeded generator: cheap) and up to 4 random rules."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    contacts = [Contact(f"c{i}", facts(rng, i)) for i in range(draw(st.integers(0, 60)))]
    partners = []
    for j in range(draw(st.integers(1, 4))):
        raw: Any = draw(RULES)
        try:
            rule = eligibility_rule(raw, "eligibility")
        except AllocationInputError:
            rule = None  # an invalid draw: an unrestricted partner instead
        partners.append(PartnerTerms(f"p{j}", 1, Decimal(1), rule))
    return contacts, partners


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds())
def test_grouped_equals_reference(world: tuple[list[Contact], list[PartnerTerms]]) -> None:
    contacts, partners = world
    assert eligible_grouped(contacts, partners) == eligible_in_python(contacts, partners)


def test_equal_but_differently_typed_attributes_are_not_grouped() -> None:
    # 1 == 1.0 == True in Python; the evaluator compares a boolean only with a boolean.
    rule = eligibility_rule({"field": "attributes.vip", "op": "==", "value": True}, "r")
    contacts = [
        Contact(name, CustomerFacts(customer_id=name, status="active", attributes={"vip": v}))
        for name, v in (("int", 1), ("bool", True), ("float", 1.0), ("list", [True]))
    ]
    partners = [PartnerTerms("p", 1, Decimal(1), rule)]
    assert eligible_grouped(contacts, partners) == [[], [0], [], []]
    assert eligible_grouped(contacts, partners) == eligible_in_python(contacts, partners)


def test_no_contacts_and_no_partners() -> None:
    assert eligible_grouped([], []) == []
    contact = Contact("c", CustomerFacts(customer_id="c", status="active"))
    assert eligible_grouped([contact], []) == [[]]
