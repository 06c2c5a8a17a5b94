"""File-mode input: facts mapped onto CustomerFacts, and every mistake named by its path."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from gateway.allocation.eligibility import eligible_in_python
from gateway.allocation.eligibility_fast import eligible_grouped
from gateway.allocation.model import AllocationInputError, parse_problem

PARTNER = {"id": "P", "capacity": 1, "cost_per_contact": "1.50", "eligibility": {}}


def problem_with(
    contact: dict[str, Any] | None = None, partner: dict[str, Any] | None = None
) -> Any:
    return parse_problem(
        {"contacts": [contact or {"id": "c"}], "partners": [partner or PARTNER]}, {}
    )


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        ([], "$", "expected an object"),
        ({"contacts": [], "partners": [], "extra": 1}, "extra", "unknown key"),
        ({"contacts": {}, "partners": []}, "contacts", "expected a list"),
        ({"contacts": [{"id": "a"}, {"id": "a"}], "partners": []}, "contacts[1].id", "repeated"),
        ({"contacts": [{"id": ""}], "partners": []}, "contacts[0].id", "non-empty"),
        ({"contacts": [{"id": "a", "age": 3}], "partners": []}, "contacts[0].age", "unknown field"),
        (
            {"contacts": [{"id": "a", "status": "gone"}], "partners": []},
            "contacts[0].status",
            "expected one of",
        ),
        (
            {"contacts": [{"id": "a", "contract_age_days": "3"}], "partners": []},
            "contacts[0].contract_age_days",
            "whole number",
        ),
        (
            {"contacts": [{"id": "a", "priority": True}], "partners": []},
            "contacts[0].priority",
            "whole number",
        ),
        (
            {"contacts": [], "partners": [{**PARTNER, "capacity": -1}]},
            "partners[0].capacity",
            "expected 0 to",
        ),
        (
            {"contacts": [], "partners": [{**PARTNER, "cost_per_contact": "abc"}]},
            "partners[0].cost_per_contact",
            "not a number",
        ),
        (
            {"contacts": [], "partners": [{**PARTNER, "cost_per_contact": -1}]},
            "partners[0].cost_per_contact",
            "negative",
        ),
        (
            {"contacts": [], "partners": [{"id": "P", "capacity": 1, "cost_per_contact": 1}]},
            "partners[0].eligibility",
            "required",
        ),
        (
            {
                "contacts": [],
                "partners": [
                    {
                        **PARTNER,
                        "eligibility": {"all": [{"field": "regon", "op": "==", "value": 1}]},
                    }
                ],
            },
            "partners[0].eligibility.all[0].field",
            "unknown field 'regon'",
        ),
        (
            {"contacts": [], "partners": [{**PARTNER, "performance": {"quality_score": "x"}}]},
            "partners[0].performance.quality_score",
            "not a number",
        ),
        ({"contacts": [], "partners": [], "weights": {"q": None}}, "weights.q", "number"),
    ],
)
def test_bad_input_names_the_path(raw: Any, path: str, message: str) -> None:
    with pytest.raises(AllocationInputError) as caught:
        parse_problem(raw, {})
    assert caught.value.path == path
    assert message in caught.value.message


def test_contact_fields_reach_the_rule_language() -> None:
    rule = {
        "all": [
            {"field": "products", "op": "contains", "value": "mobile"},
            {"field": "region", "op": "in", "value": ["kyiv", "lviv"]},
            {"field": "contract_age_days", "op": ">=", "value": 90},
            {"field": "contract_age_days", "op": "<", "value": 730},
            {"field": "days_until_payment", "op": "<=", "value": 3},
            {"field": "attributes.segment", "op": "==", "value": "gold"},
            {"field": "payment_amount", "op": ">", "value": "100.00"},
        ]
    }
    good = {
        "id": "good",
        "products": ["mobile", "tv"],
        "region": "kyiv",
        "contract_age_days": 90,
        "days_until_payment": 0,
        "attributes": {"segment": "gold"},
        "payment_amount": "100.01",
    }
    contacts = [
        good,
        {**good, "id": "young", "contract_age_days": 89},
        {**good, "id": "old", "contract_age_days": 730},
        {**good, "id": "no-contract", "contract_age_days": None},
        {**good, "id": "no-mobile", "products": ["tv"]},
        {**good, "id": "odesa", "region": "odesa"},
        {**good, "id": "no-payment", "days_until_payment": None},
        {**good, "id": "silver", "attributes": {"segment": "silver"}},
        {**good, "id": "exact-amount", "payment_amount": 100},
    ]
    problem = parse_problem(
        {"contacts": contacts, "partners": [{**PARTNER, "eligibility": rule}]}, {}
    )
    eligible = eligible_in_python(problem.contacts, problem.partners)
    assert [c.id for c, e in zip(problem.contacts, eligible, strict=True) if e] == ["good"]
    assert eligible_grouped(problem.contacts, problem.partners) == eligible


def test_not_rule_treats_missing_as_false_then_negates() -> None:
    rule = {"not": {"field": "region", "op": "==", "value": "kyiv"}}
    problem = parse_problem(
        {
            "contacts": [{"id": "kyiv", "region": "kyiv"}, {"id": "unknown"}],
            "partners": [{**PARTNER, "eligibility": rule}],
        },
        {},
    )
    assert eligible_in_python(problem.contacts, problem.partners) == [[], [0]]
    assert eligible_grouped(problem.contacts, problem.partners) == [[], [0]]


def test_defaults_and_weights() -> None:
    problem = problem_with()
    assert problem.contacts[0].priority == 0 and problem.contacts[0].facts.status == "active"
    assert problem.partners[0].rule is None and problem.partners[0].cost_per_contact == Decimal(
        "1.50"
    )
    defaults = {"quality_score": Decimal(1)}
    assert parse_problem({"contacts": [], "partners": []}, defaults).weights == defaults
    given = parse_problem({"contacts": [], "partners": [], "weights": {"upsell_rate": 2}}, defaults)
    assert given.weights == {"upsell_rate": Decimal(2)}
