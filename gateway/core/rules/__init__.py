"""The rule language shared by campaign audiences, branches and partner eligibility."""

from gateway.core.rules.compile_sql import compile_rule, segment_query
from gateway.core.rules.evaluate import evaluate
from gateway.core.rules.facts import CustomerFacts, CustomerNotFound, load_facts, segment
from gateway.core.rules.fields import FIELDS, FieldSpec, Kind, catalogue
from gateway.core.rules.validate import (
    AllOf,
    AnyOf,
    Condition,
    Not,
    Rule,
    RuleError,
    rule_to_raw,
    validate_rule,
)

__all__ = [
    "FIELDS",
    "AllOf",
    "AnyOf",
    "Condition",
    "CustomerFacts",
    "CustomerNotFound",
    "FieldSpec",
    "Kind",
    "Not",
    "Rule",
    "RuleError",
    "catalogue",
    "compile_rule",
    "evaluate",
    "load_facts",
    "rule_to_raw",
    "segment",
    "segment_query",
    "validate_rule",
]
