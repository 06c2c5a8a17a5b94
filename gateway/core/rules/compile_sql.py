"""A validated rule as one SQLAlchemy boolean over `customers`, for SQLite and PostgreSQL.

Every value is a bound parameter. Every compiled condition is two-valued (never NULL),
so `not` means the same as in Python: missing data makes a comparison false, and its
negation true.

Day counts are never computed in SQL: `days_since_activity >= 30` becomes "the last
activity is at or before as_of − 30 days", a comparison of stored timestamps with a
bound one, which is exact (no float day arithmetic) and can use the indexes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Integer,
    Numeric,
    Select,
    SQLColumnExpression,
    String,
    and_,
    bindparam,
    case,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import aliased

from gateway.core.db.models import Activity, Call, Customer, OutboundContact, Payment
from gateway.core.db.states import SENT_CONTACT_STATES, PaymentStatus
from gateway.core.db.types import Money
from gateway.core.rules.sql_lists import one_of, whole_days_before
from gateway.core.rules.validate import AllOf, AnyOf, Condition, Not, Rule, Scalar

Bool = ColumnElement[bool]
DAY = timedelta(days=1)
TEXT_COLUMNS = {
    "status": Customer.status,
    "region": Customer.region,
    "language": Customer.language,
    "timezone": Customer.timezone,
    "responsible_agent": Customer.responsible_agent,
}


class UnsupportedDialect(ValueError):
    """Rules compile for SQLite and PostgreSQL only."""


@dataclass(frozen=True, slots=True)
class _Env:
    as_of: datetime
    today: date
    postgres: bool


@dataclass(frozen=True, slots=True)
class _IntegerFact:
    """An integer fact known through three predicates, all never NULL: whether it has a
    value, `less(n)`: whether it has one and it is below n, and `among(ns)`: whether it
    has one and it is one of ns (one bound list, however long)."""

    present: Bool
    less: Callable[[int], Bool]
    among: Callable[[list[int]], Bool]


def compile_rule(rule: Rule, *, as_of: datetime, today: date, dialect: str) -> Bool:
    """The rule as a boolean expression correlated to `customers` (as of `as_of`)."""
    if dialect not in ("sqlite", "postgresql"):
        raise UnsupportedDialect(f"rules do not compile for {dialect}")
    return _compile(rule, _Env(as_of, today, dialect == "postgresql"))


def segment_query(rule: Rule, *, as_of: datetime, today: date, dialect: str) -> Select[str]:
    """`SELECT customers.id` of the live (not deleted) customers the rule selects."""
    condition = compile_rule(rule, as_of=as_of, today=today, dialect=dialect)
    return select(Customer.id).where(Customer.deleted_at.is_(None), condition)


def _compile(rule: Rule, env: _Env) -> Bool:
    if isinstance(rule, AllOf):
        return and_(*(_compile(item, env) for item in rule.rules))
    if isinstance(rule, AnyOf):
        return or_(*(_compile(item, env) for item in rule.rules))
    if isinstance(rule, Not):
        return not_(_compile(rule.rule, env))
    return _condition(rule, env)


def _condition(rule: Condition, env: _Env) -> Bool:
    name = rule.spec.name
    if name in TEXT_COLUMNS:
        column = TEXT_COLUMNS[name]
        return _compare(column.is_not(None), column, rule, env)
    if name == "products":
        return _products(rule, env)
    if name == "bonus_balance":
        balance = Customer.bonus_balance
        return _compare(balance.is_not(None), balance, rule, env)
    if name == "payment_amount":
        return _payment_amount(rule, env)
    if name == "attributes":
        assert rule.parameter is not None
        return _attribute(rule, rule.parameter, env)
    return _integer(_integer_fact(rule, env), rule)


def _compare(present: Bool, column: Any, rule: Condition, env: _Env) -> Bool:
    """A comparison of a never-NULL-when-present expression, guarded by `present`."""
    op, value = rule.op, rule.value
    if op == "exists":
        return present if value else not_(present)
    if isinstance(value, tuple):
        matched = _member(column, value, env)
        return and_(present, matched if op == "in" else not_(matched))
    comparisons: dict[str, Callable[[], ColumnElement[bool]]] = {
        "==": lambda: column == value,
        "!=": lambda: column != value,
        "<": lambda: column < value,
        "<=": lambda: column <= value,
        ">": lambda: column > value,
        ">=": lambda: column >= value,
    }
    return and_(present, comparisons[op]())


def _nullable_compare(expression: SQLColumnExpression[object], rule: Condition, env: _Env) -> Bool:
    """A comparison of an expression that is NULL when the value is missing."""
    if rule.op == "exists":
        return expression.is_not(None) if rule.value else expression.is_(None)
    return func.coalesce(_compare(true(), expression, rule, env), false())


def _member(column: Any, values: tuple[Any, ...], env: _Env) -> Bool:
    """`column` is one of `values`: texts (booleans come as their JSON words) or numbers."""
    if isinstance(values[0], str):
        return one_of(column, values, String(), postgres=env.postgres)
    if env.postgres:
        return one_of(column, values, Numeric(), postgres=True)
    floats: Bool = column.in_([_money(value) for value in values])  # see sql_lists
    return floats


def _integer(fact: _IntegerFact, rule: Condition) -> Bool:
    op, value = rule.op, rule.value
    if op == "exists":
        return fact.present if value else not_(fact.present)

    def equal(n: int) -> Bool:
        return and_(fact.less(n + 1), not_(fact.less(n)))

    if isinstance(value, tuple):
        matched = fact.among([int(item) for item in value])
        return matched if op == "in" else and_(fact.present, not_(matched))
    assert isinstance(value, int)
    n = value
    if op == "<":
        return fact.less(n)
    if op == "<=":
        return fact.less(n + 1)
    if op == ">=":
        return and_(fact.present, not_(fact.less(n)))
    if op == ">":
        return and_(fact.present, not_(fact.less(n + 1)))
    if op == "==":
        return equal(n)
    return and_(fact.present, not_(equal(n)))  # !=


def _integer_fact(rule: Condition, env: _Env) -> _IntegerFact:
    name, as_of = rule.spec.name, env.as_of
    if name == "days_since_activity":
        return _days_since(Activity.at, [Activity.customer_id == Customer.id], env)
    if name == "days_since_order":
        where = [Activity.customer_id == Customer.id, Activity.kind == "order"]
        return _days_since(Activity.at, where, env)
    if name == "last_contact_days":
        where = [
            OutboundContact.customer_id == Customer.id,
            OutboundContact.channel == rule.parameter,
            OutboundContact.status.in_(SENT_CONTACT_STATES),
        ]
        return _days_since(OutboundContact.sent_at, where, env)
    if name == "contract_age_days":
        started = Customer.contract_started_at
        return _IntegerFact(
            started.is_not(None),
            lambda n: and_(started.is_not(None), started > as_of - n * DAY),
            lambda ns: _days_among(started, ns, env),
        )
    if name == "days_until_monitoring":
        # days_until = -floor((as_of - next) / day), so days_until < n ⟺ next <= as_of + (n-1) days
        planned = Customer.next_monitoring_at
        return _IntegerFact(
            planned.is_not(None),
            lambda n: and_(planned.is_not(None), planned <= as_of + (n - 1) * DAY),
            lambda ns: _days_among(planned, [-n for n in ns], env),
        )
    if name == "days_until_payment":
        due = [Payment.customer_id == Customer.id, Payment.status == PaymentStatus.DUE]
        first_due = select(func.min(Payment.due_date)).where(*due).scalar_subquery()
        return _IntegerFact(
            exists().where(*due),
            lambda n: exists().where(*due, Payment.due_date < env.today + n * DAY),
            lambda ns: and_(
                exists().where(*due),
                one_of(first_due, [env.today + n * DAY for n in ns], Date(), postgres=env.postgres),
            ),
        )
    if name == "orders_last_day":
        where = [
            Activity.customer_id == Customer.id,
            Activity.kind == "order",
            Activity.at > as_of - DAY,
            Activity.at <= as_of,
        ]
        return _count(Activity.id, where, env)
    if name == "topic_calls_30d":
        where = [
            Call.customer_id == Customer.id,
            Call.topic == rule.parameter,
            Call.started_at > as_of - 30 * DAY,
            Call.started_at <= as_of,
        ]
        return _count(Call.id, where, env)
    raise AssertionError(f"no SQL for field {name}")  # the catalogue and this must agree


def _days_since(
    moment: SQLColumnExpression[datetime | None], where: list[ColumnElement[bool]], env: _Env
) -> _IntegerFact:
    """Whole days since the latest row at or before as_of: below n exactly when some row
    lies in (as_of − n days, as_of]."""
    as_of = env.as_of
    rows = [*where, moment <= as_of]

    def less(n: int) -> Bool:
        if n <= 0:
            return false()
        return exists().where(*rows, moment > as_of - n * DAY)

    def among(ns: list[int]) -> Bool:
        # A derived table, so that the latest row is found once per customer.
        latest = select(func.max(moment).label("latest")).where(*rows).correlate(Customer)
        found = latest.subquery()
        days = whole_days_before(as_of, found.c.latest, postgres=env.postgres)
        return exists().select_from(found).where(one_of(days, ns, Integer(), postgres=env.postgres))

    return _IntegerFact(exists().where(*rows), less, among)


def _days_among(moment: SQLColumnExpression[datetime | None], ns: list[int], env: _Env) -> Bool:
    """`moment` is set and lies n whole days before as_of for one of ns."""
    days = whole_days_before(env.as_of, moment, postgres=env.postgres)
    return and_(moment.is_not(None), one_of(days, ns, Integer(), postgres=env.postgres))


def _count(
    key: SQLColumnExpression[object], where: list[ColumnElement[bool]], env: _Env
) -> _IntegerFact:
    counted = select(func.count(key)).where(*where).scalar_subquery()

    def less(n: int) -> Bool:
        if n <= 0:
            return false()
        if n == 1:
            return not_(exists().where(*where))
        return counted < n

    def among(ns: list[int]) -> Bool:
        return one_of(counted, ns, Integer(), postgres=env.postgres)

    return _IntegerFact(true(), less, among)


def _products(rule: Condition, env: _Env) -> Bool:
    products = Customer.products
    if env.postgres:
        document = type_coerce(products, JSONB)
        is_array = func.jsonb_typeof(document) == "array"
        if rule.op == "exists":
            non_empty = and_(is_array, document != bindparam(None, [], type_=JSONB))
            return non_empty if rule.value else not_(non_empty)
        return and_(is_array, document.contains(bindparam(None, [rule.value], type_=JSONB)))
    if rule.op == "exists":
        non_empty = func.coalesce(func.json_array_length(products), 0) > 0
        return non_empty if rule.value else not_(non_empty)
    elements = func.json_each(products).table_valued("value")
    return and_(
        func.json_type(products) == "array",
        exists().select_from(elements).where(elements.c.value == rule.value),
    )


def _payment_amount(rule: Condition, env: _Env) -> Bool:
    due = [Payment.customer_id == Customer.id, Payment.status == PaymentStatus.DUE]
    # The earliest due date of the same customer as the payment rows being added up.
    other = aliased(Payment)
    next_date = (
        select(func.min(other.due_date))
        .where(other.customer_id == Payment.customer_id, other.status == PaymentStatus.DUE)
        .scalar_subquery()
    )
    total: ColumnElement[object] = func.sum(Payment.amount)
    if not env.postgres:
        # SQLite adds money as floats; rounding to the column's 4 places makes the total
        # the nearest float to the exact sum, which compares like the Decimal would.
        total = func.round(total, 4)
    amount = (
        select(type_coerce(total, Money))
        .where(*due, Payment.due_date == next_date)
        .scalar_subquery()
    )
    return _nullable_compare(amount, _with_money_values(rule), env)


def _with_money_values(rule: Condition) -> Condition:
    """The same condition with its number as a typed bind (a float on SQLite); lists are
    bound by `_member`."""
    value = rule.value
    if isinstance(value, Decimal):
        bound: object = _money(value)
    else:
        return rule
    return Condition(rule.field, rule.spec, rule.parameter, rule.op, bound)  # type: ignore[arg-type]


def _money(value: Scalar) -> ColumnElement[Decimal]:
    return bindparam(None, value, type_=Numeric(asdecimal=True))


def _attribute(rule: Condition, name: str, env: _Env) -> Bool:
    value = rule.value
    sample = value[0] if isinstance(value, tuple) else value
    if env.postgres:
        element = type_coerce(Customer.attributes, JSONB)[name]
        json_type: ColumnElement[str] = func.jsonb_typeof(element)
        if rule.op == "exists":
            present = func.coalesce(json_type, "null") != "null"
            return present if value else not_(present)
        text = element.astext
        if isinstance(sample, bool):
            typed: ColumnElement[object] = case((json_type == "boolean", text))
            return _nullable_compare(typed, _as_text_booleans(rule), env)
        if isinstance(sample, str):
            return _nullable_compare(case((json_type == "string", text)), rule, env)
        number = case((json_type == "number", text.cast(Numeric())))
        return _nullable_compare(number, _with_money_values(rule), env)
    path = f"$.{name}"
    sqlite_type: ColumnElement[str] = func.json_type(Customer.attributes, path)
    if rule.op == "exists":
        present = func.coalesce(sqlite_type, "null") != "null"
        return present if value else not_(present)
    extracted = func.json_extract(Customer.attributes, path)
    if isinstance(sample, bool):
        typed = case((sqlite_type.in_(("true", "false")), sqlite_type))
        return _nullable_compare(typed, _as_text_booleans(rule), env)
    if isinstance(sample, str):
        return _nullable_compare(case((sqlite_type == "text", extracted)), rule, env)
    number = case((sqlite_type.in_(("integer", "real")), extracted))
    return _nullable_compare(number, _with_money_values(rule), env)


def _as_text_booleans(rule: Condition) -> Condition:
    """Booleans compared as the JSON words both databases give back."""
    value = rule.value
    words: object
    if isinstance(value, tuple):
        words = tuple("true" if item else "false" for item in value)
    else:
        words = "true" if value else "false"
    return Condition(rule.field, rule.spec, rule.parameter, rule.op, words)
