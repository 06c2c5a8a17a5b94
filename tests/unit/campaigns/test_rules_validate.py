"""Rule validation: typed trees for good rules, exact paths and messages for bad ones."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.rules import (
    FIELDS,
    AllOf,
    AnyOf,
    Condition,
    Not,
    RuleError,
    catalogue,
    rule_to_raw,
    validate_rule,
)
from gateway.core.rules.validate import MAX_DEPTH, MAX_LIST, MAX_NODES, MAX_VALUES


def leaf(field: str, op: str, value: Any = None) -> dict[str, Any]:
    """A condition as raw data."""
    raw: dict[str, Any] = {"field": field, "op": op}
    if value is not None:
        raw["value"] = value
    return raw


def error_of(raw: Any, path: str = "audience") -> str:
    """The full message of the RuleError the raw rule raises."""
    with pytest.raises(RuleError) as caught:
        validate_rule(raw, path=path)
    return str(caught.value)


def test_parses_a_tree_into_typed_nodes() -> None:
    """Groups become AllOf/AnyOf/Not; values get their field's type."""
    rule = validate_rule(
        {
            "all": [
                leaf("status", "in", ["active", "warm"]),
                {"not": leaf("days_since_activity", "<", 30)},
                {"any": [leaf("payment_amount", ">=", "100.50"), leaf("bonus_balance", "<", 3)]},
                leaf("topic_calls_30d.billing", ">=", 2),
                leaf("attributes.score", ">", 2.5),
                leaf("products", "exists"),
            ]
        }
    )
    assert isinstance(rule, AllOf)
    status, negated, either, topic, score, products = rule.rules
    assert isinstance(status, Condition) and status.value == ("active", "warm")
    assert isinstance(negated, Not) and isinstance(negated.rule, Condition)
    assert negated.rule.value == 30
    assert isinstance(either, AnyOf)
    amount, bonus = either.rules
    assert isinstance(amount, Condition) and amount.value == Decimal("100.50")
    assert isinstance(bonus, Condition) and bonus.value == Decimal(3)
    assert isinstance(topic, Condition) and topic.parameter == "billing"
    assert topic.spec is FIELDS["topic_calls_30d"]
    assert isinstance(score, Condition) and score.value == Decimal("2.5")
    assert isinstance(products, Condition) and products.value is True


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {
                "all": [
                    leaf("status", "==", "active"),
                    leaf("region", "exists"),
                    leaf("days_since_activity", ">", "30"),
                ]
            },
            "audience.all[2].value: expected a whole number for field days_since_activity",
        ),
        (
            {"all": [leaf("status", "==", "active"), leaf("days_since_activity", ">", 2.5)]},
            "audience.all[1].value: expected a whole number for field days_since_activity",
        ),
        (
            {"any": [{"not": leaf("shoe_size", "==", 42)}]},
            "audience.any[0].not.field: unknown field 'shoe_size'",
        ),
        (
            leaf("region", "<", "north"),
            "audience.op: operator < does not apply to region (use ==, !=, in, not_in, exists)",
        ),
        (
            leaf("region", "like", "north"),
            "audience.op: unknown operator 'like'; expected one of ==, !=, <, <=, >, >=, in, "
            "not_in, contains, exists",
        ),
        ({"all": []}, "audience.all: `all` needs at least one rule"),
        ({"any": {"field": "region"}}, "audience.any: expected a list of rules"),
        (
            leaf("status", "==", "sleeping"),
            "audience.value: expected one of active, warm, cold, lost, cancelled for field status",
        ),
        (
            leaf("status", "in", ["active", "gone"]),
            "audience.value[1]: expected one of active, warm, cold, lost, cancelled for field "
            "status",
        ),
        (leaf("status", "in", []), "audience.value: `in` needs at least one value"),
        (leaf("status", "in", "active"), "audience.value: `in` takes a list of values"),
        (
            leaf("bonus_balance", ">", True),
            "audience.value: expected a number for field bonus_balance",
        ),
        (
            leaf("bonus_balance", ">", "1.23456"),
            "audience.value: expected a number for field bonus_balance",
        ),
        (
            leaf("bonus_balance", ">", 1.23456),
            "audience.value: at most 4 decimal places for field bonus_balance",
        ),
        (
            leaf("payment_amount", "<", float("nan")),
            "audience.value: expected a number for field payment_amount",
        ),
        (leaf("region", "==", ""), "audience.value: expected a non-empty text for field region"),
        (leaf("region", "=="), "audience.value: operator == needs a value"),
        (leaf("region", "exists", "yes"), "audience.value: `exists` takes true or false"),
        (
            {"field": "region", "op": "==", "value": "n", "note": "x"},
            "audience.note: unknown key (expected field, op, value)",
        ),
        ({"all": [leaf("region", "exists")], "any": []}, "audience.any: not allowed beside `all`"),
        ({"op": "=="}, "audience: expected an object with `all`, `any`, `not` or `field`"),
        (["region"], "audience: expected an object with `all`, `any`, `not` or `field`"),
        ({"field": 3, "op": "=="}, "audience.field: expected a field name"),
        (
            leaf("topic_calls_30d", ">", 1),
            "audience.field: field topic_calls_30d needs a topic: topic_calls_30d.<topic>",
        ),
        (
            leaf("last_contact_days.fax", ">", 1),
            "audience.field: unknown channel 'fax' for last_contact_days; expected one of sms, "
            "email, voice",
        ),
        (
            leaf("region.north", "==", "x"),
            "audience.field: unknown field 'region.north' (region takes no parameter)",
        ),
        (
            leaf("attributes.a-b", "==", 1),
            "audience.field: attribute name 'a-b' must be letters, digits and _ (at most 64)",
        ),
        (
            leaf("attributes.tier", "<", "gold"),
            "audience.value: operator < needs a number for field attributes.tier",
        ),
        (
            leaf("attributes.tier", "in", [1, "gold"]),
            "audience.value[1]: expected every value to be a number",
        ),
        (
            leaf("attributes.tier", "==", [1]),
            "audience.value: expected a number, text or true/false for field attributes.tier",
        ),
        (
            leaf("products", "==", "card"),
            "audience.op: operator == does not apply to products (use contains, exists)",
        ),
        (
            leaf("days_until_payment", "<", 10**6),
            "audience.value: expected a whole number within ±100000 for days_until_payment",
        ),
    ],
)
def test_bad_rules_name_the_exact_place(raw: Any, expected: str) -> None:
    """Each mistake is reported once, at its own path, in words an editor can show."""
    assert error_of(raw) == expected


def test_error_carries_path_and_message_separately() -> None:
    """The form highlights the path and shows the message."""
    with pytest.raises(RuleError) as caught:
        validate_rule({"any": [leaf("region", "exists"), leaf("status", "<", 1)]}, path="branch")
    assert caught.value.path == "branch.any[1].op"
    assert caught.value.message.startswith("operator < does not apply to status")


def test_nesting_depth_is_limited() -> None:
    """MAX_DEPTH levels are fine; one more is refused at the innermost path."""
    raw: Any = leaf("region", "exists")
    for _ in range(MAX_DEPTH - 1):
        raw = {"not": raw}
    validate_rule(raw)
    too_deep = {"not": raw}
    path = "rule" + ".not" * MAX_DEPTH
    assert error_of(too_deep, "rule") == f"{path}: rules may nest at most {MAX_DEPTH} levels deep"


def test_size_is_limited() -> None:
    """A rule of more than MAX_NODES nodes is refused where the limit is crossed."""
    fits = {"any": [leaf("region", "exists")] * (MAX_NODES - 1)}
    validate_rule(fits)
    message = error_of({"any": [leaf("region", "exists")] * MAX_NODES})
    assert message == (
        f"audience.any[{MAX_NODES - 1}]: a rule may have at most {MAX_NODES} conditions and groups"
    )


def test_exists_defaults_to_true() -> None:
    """`{"field": "region", "op": "exists"}` asks whether the value is there."""
    rule = validate_rule(leaf("region", "exists"))
    assert isinstance(rule, Condition) and rule.value is True
    negative = validate_rule(leaf("region", "exists", False))
    assert isinstance(negative, Condition) and negative.value is False


def test_attribute_value_type_is_kept() -> None:
    """Numbers, texts and booleans stay distinct: the value's type decides the comparison."""
    for value, expected in ((3, Decimal(3)), ("3", "3"), (True, True)):
        rule = validate_rule(leaf("attributes.tier", "==", value))
        assert isinstance(rule, Condition)
        assert rule.value == expected and type(rule.value) is type(expected)


def test_catalogue_describes_every_field() -> None:
    """The editor's form needs a type, operators and a description for every field."""
    entries = {entry["name"]: entry for entry in catalogue()}
    assert set(entries) >= {
        "status",
        "days_since_activity",
        "topic_calls_30d.<topic>",
        "last_contact_days.<channel>",
        "attributes.<name>",
    }
    assert entries["last_contact_days.<channel>"]["parameter_choices"] == ["sms", "email", "voice"]
    assert entries["products"]["ops"] == ["contains", "exists"]
    assert all(entry["description"] and entry["ops"] for entry in entries.values())


raw_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300)
@given(
    field=st.sampled_from([*FIELDS, "topic_calls_30d.x", "attributes.a", "last_contact_days.sms"]),
    op=st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not_in", "contains", "exists"]),
    value=raw_values,
)
def test_any_input_is_a_rule_or_a_rule_error(field: str, op: str, value: Any) -> None:
    """Whatever a form sends, validation answers with a rule or a RuleError (nothing else),
    and a valid rule survives a round trip through rule_to_raw."""
    try:
        rule = validate_rule({"field": field, "op": op, "value": value})
    except RuleError as exc:
        assert exc.path.startswith("rule")
        return
    assert validate_rule(rule_to_raw(rule)) == rule


def test_list_values_are_limited_in_all() -> None:
    """Lists may hold MAX_LIST values each and MAX_VALUES in all; the list that crosses
    the total is named."""
    full = {"field": "region", "op": "in", "value": [f"r{n}" for n in range(MAX_LIST)]}
    fits = {"any": [full] * (MAX_VALUES // MAX_LIST)}
    validate_rule(fits)
    crossing = MAX_VALUES // MAX_LIST
    message = error_of({"any": [full] * (crossing + 1)})
    assert message == (
        f"audience.any[{crossing}].value: a rule may hold at most {MAX_VALUES} list values in all"
    )
    too_long = {"field": "region", "op": "in", "value": ["r"] * (MAX_LIST + 1)}
    assert error_of(too_long) == f"audience.value: at most {MAX_LIST} values"
