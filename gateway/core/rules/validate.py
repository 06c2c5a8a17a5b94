"""Validation of raw rules (JSON/YAML data) into small typed trees, with exact error paths."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TypeAlias

from gateway.core.rules.fields import ALL_OPS, FieldSpec, Kind, UnknownField, resolve_field

# A rule is compiled to SQL on the event loop (previews, segments): these bounds keep the
# heaviest rule they allow within ~0.1 s of compiling on a core (500 conditions took
# seconds on a busy machine), and SQLite's expression depth (1,000) out of reach.
MAX_DEPTH = 12
MAX_NODES = 100
MAX_LIST = 1000
MAX_VALUES = 5000  # in all the lists of a rule together
MAX_TEXT = 256
MAX_INTEGER = 100_000
# Money columns hold 14 digits with 4 decimals; values beyond that cannot match anyway,
# and keeping within it keeps SQLite's float comparisons exact.
MAX_DECIMAL = Decimal(10) ** 10
DECIMAL_TEXT = re.compile(r"-?\d{1,10}(\.\d{1,4})?")

Scalar: TypeAlias = int | Decimal | str | bool
Value: TypeAlias = Scalar | tuple[Scalar, ...]


class RuleError(ValueError):
    """A rule that cannot be used, with the path of the offending part."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class Condition:
    """A leaf: `field op value`."""

    field: str
    spec: FieldSpec
    parameter: str | None
    op: str
    value: Value


@dataclass(frozen=True, slots=True)
class AllOf:
    """True when every sub-rule is."""

    rules: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """True when at least one sub-rule is."""

    rules: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """True when the sub-rule is false (missing data included: plain two-valued logic)."""

    rule: Rule


Rule: TypeAlias = AllOf | AnyOf | Not | Condition


def validate_rule(raw: object, *, path: str = "rule") -> Rule:
    """Parse raw rule data into a Rule, or raise RuleError naming the exact bad part."""
    return _Parser().node(raw, path, 1)


class _Parser:
    def __init__(self) -> None:
        self.nodes = 0
        self.values = 0

    def node(self, raw: object, path: str, depth: int) -> Rule:
        if depth > MAX_DEPTH:
            raise RuleError(path, f"rules may nest at most {MAX_DEPTH} levels deep")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise RuleError(path, f"a rule may have at most {MAX_NODES} conditions and groups")
        if not isinstance(raw, Mapping):
            raise RuleError(path, "expected an object with `all`, `any`, `not` or `field`")
        keys = set(raw)
        for group in ("all", "any", "not"):
            if group in keys:
                if len(keys) != 1:
                    extra = sorted(str(key) for key in keys - {group})[0]
                    raise RuleError(f"{path}.{extra}", f"not allowed beside `{group}`")
                return self.group(group, raw[group], f"{path}.{group}", depth)
        if "field" not in keys:
            raise RuleError(path, "expected an object with `all`, `any`, `not` or `field`")
        return self.condition(raw, path)

    def group(self, kind: str, raw: object, path: str, depth: int) -> Rule:
        if kind == "not":
            return Not(self.node(raw, path, depth + 1))
        if not isinstance(raw, list):
            raise RuleError(path, "expected a list of rules")
        if not raw:
            raise RuleError(path, f"`{kind}` needs at least one rule")
        rules = tuple(
            self.node(item, f"{path}[{index}]", depth + 1) for index, item in enumerate(raw)
        )
        return AllOf(rules) if kind == "all" else AnyOf(rules)

    def condition(self, raw: Mapping[object, object], path: str) -> Condition:
        for key in raw:
            if key not in ("field", "op", "value"):
                raise RuleError(f"{path}.{key}", "unknown key (expected field, op, value)")
        name = raw["field"]
        if not isinstance(name, str):
            raise RuleError(f"{path}.field", "expected a field name")
        try:
            spec, parameter = resolve_field(name)
        except UnknownField as exc:
            raise RuleError(f"{path}.field", str(exc)) from None
        op = raw.get("op")
        if not isinstance(op, str) or op not in ALL_OPS:
            raise RuleError(
                f"{path}.op", f"unknown operator {op!r}; expected one of {', '.join(ALL_OPS)}"
            )
        if op not in spec.ops:
            allowed = ", ".join(candidate for candidate in ALL_OPS if candidate in spec.ops)
            raise RuleError(f"{path}.op", f"operator {op} does not apply to {name} (use {allowed})")
        value = _value(spec, name, op, raw, f"{path}.value")
        if isinstance(value, tuple):
            self.values += len(value)
            if self.values > MAX_VALUES:
                message = f"a rule may hold at most {MAX_VALUES} list values in all"
                raise RuleError(f"{path}.value", message)
        return Condition(name, spec, parameter, op, value)


def _value(spec: FieldSpec, name: str, op: str, raw: Mapping[object, object], path: str) -> Value:
    if op == "exists":
        value = raw.get("value", True)
        if not isinstance(value, bool):
            raise RuleError(path, "`exists` takes true or false")
        return value
    if "value" not in raw:
        raise RuleError(path, f"operator {op} needs a value")
    value = raw["value"]
    if op in ("in", "not_in"):
        if not isinstance(value, list):
            raise RuleError(path, f"`{op}` takes a list of values")
        if not value:
            raise RuleError(path, f"`{op}` needs at least one value")
        if len(value) > MAX_LIST:
            raise RuleError(path, f"at most {MAX_LIST} values")
        items = tuple(
            _scalar(spec, name, op, item, f"{path}[{index}]") for index, item in enumerate(value)
        )
        if spec.kind is Kind.JSON:
            first = _json_type(items[0])
            for index, item in enumerate(items):
                if _json_type(item) != first:
                    raise RuleError(f"{path}[{index}]", f"expected every value to be a {first}")
        return items
    return _scalar(spec, name, op, value, path)


def _json_type(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true/false"
    return "text" if isinstance(value, str) else "number"


def _scalar(spec: FieldSpec, name: str, op: str, value: object, path: str) -> Scalar:
    kind = spec.kind
    if kind is Kind.INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RuleError(path, f"expected a whole number for field {name}")
        if abs(value) > MAX_INTEGER:
            raise RuleError(path, f"expected a whole number within ±{MAX_INTEGER} for {name}")
        return value
    if kind is Kind.DECIMAL:
        return _decimal(value, name, path)
    if kind in (Kind.TEXT, Kind.ENUM, Kind.TEXT_LIST):
        text = _text(value, name, path)
        if spec.choices and text not in spec.choices:
            raise RuleError(path, f"expected one of {', '.join(spec.choices)} for field {name}")
        return text
    # JSON attributes: the value's own type says how the attribute is compared.
    if isinstance(value, bool):
        if op not in ("==", "!=", "in", "not_in"):
            raise RuleError(path, f"operator {op} needs a number for field {name}")
        return value
    if isinstance(value, str):
        if op in ("<", "<=", ">", ">="):
            raise RuleError(path, f"operator {op} needs a number for field {name}")
        return _text(value, name, path)
    if isinstance(value, int | float):
        return _decimal(value, name, path)
    raise RuleError(path, f"expected a number, text or true/false for field {name}")


def _text(value: object, name: str, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise RuleError(path, f"expected a non-empty text for field {name}")
    if len(value) > MAX_TEXT:
        raise RuleError(path, f"text longer than {MAX_TEXT} characters for field {name}")
    return value


def _decimal(value: object, name: str, path: str) -> Decimal:
    message = f"expected a number for field {name}"
    if isinstance(value, bool):
        raise RuleError(path, message)
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise RuleError(path, message)
        number = Decimal(repr(value))
    elif isinstance(value, str) and DECIMAL_TEXT.fullmatch(value.strip()):
        number = Decimal(value.strip())
    elif isinstance(value, Decimal) and value.is_finite():
        number = value
    else:
        raise RuleError(path, message)
    try:
        exponent = number.normalize().as_tuple().exponent
    except InvalidOperation:  # pragma: no cover - finite decimals always normalise
        raise RuleError(path, message) from None
    if isinstance(exponent, int) and exponent < -4:
        raise RuleError(path, f"at most 4 decimal places for field {name}")
    if abs(number) >= MAX_DECIMAL:
        raise RuleError(path, f"a number below {MAX_DECIMAL:,} expected for field {name}")
    return number


def rule_to_raw(rule: Rule) -> dict[str, object]:
    """The rule as plain data again (what the editor shows and saves)."""
    if isinstance(rule, AllOf):
        return {"all": [rule_to_raw(item) for item in rule.rules]}
    if isinstance(rule, AnyOf):
        return {"any": [rule_to_raw(item) for item in rule.rules]}
    if isinstance(rule, Not):
        return {"not": rule_to_raw(rule.rule)}
    value = rule.value
    out: object
    if isinstance(value, tuple):
        out = [_raw_scalar(rule.spec, item) for item in value]
    else:
        out = _raw_scalar(rule.spec, value)
    return {"field": rule.field, "op": rule.op, "value": out}


def _raw_scalar(spec: FieldSpec, value: Scalar) -> object:
    if isinstance(value, Decimal):
        if spec.kind is Kind.DECIMAL:
            return str(value)  # money travels as decimal strings
        # An attribute number must stay a JSON number: its type decides the comparison.
        return int(value) if value == value.to_integral_value() else float(value)
    return value
