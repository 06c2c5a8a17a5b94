"""The what-if savings estimate (`switchboard report estimate`), in exact decimals.

The classic figure charges the contact only to the customers who were deflected
(`per_month`); the net figure pays for every contact sent (`per_month_net`). Both are
reported, labelled, because managers are shown the first and pay the second.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
MONTHS_PER_YEAR = 12


class EstimateError(ValueError):
    """An input is out of range."""


@dataclass(frozen=True)
class Estimate:
    """Savings per deflected customer, per month and per year, classic and net."""

    per_customer: Decimal
    per_month: Decimal
    per_month_net: Decimal
    per_year: Decimal
    per_year_net: Decimal

    def as_dict(self) -> dict[str, str]:
        """Decimal strings, as the contract's JSON keys."""
        return {name: str(value) for name, value in vars(self).items()}


def estimate(
    customers: int,
    deflection: Decimal,
    call_minutes: Decimal,
    minute_cost: Decimal,
    contact_cost: Decimal,
) -> Estimate:
    """Savings of contacting `customers` when `deflection` of them then don't call.

    per_customer = M × C − S; per_month = N × SHARE × per_customer;
    per_month_net = N × SHARE × M × C − N × S.
    """
    if customers < 0:
        raise EstimateError("customers must not be negative")
    if not Decimal(0) <= deflection <= Decimal(1):
        raise EstimateError("deflection is a share between 0 and 1")
    for name, value in (
        ("call minutes", call_minutes),
        ("minute cost", minute_cost),
        ("contact cost", contact_cost),
    ):
        if value < 0:
            raise EstimateError(f"{name} must not be negative")
    n = Decimal(customers)
    call_cost = call_minutes * minute_cost
    per_customer = call_cost - contact_cost
    per_month = n * deflection * per_customer
    per_month_net = n * deflection * call_cost - n * contact_cost

    def money(value: Decimal) -> Decimal:
        return value.quantize(CENT, ROUND_HALF_UP)

    return Estimate(
        per_customer=money(per_customer),
        per_month=money(per_month),
        per_month_net=money(per_month_net),
        per_year=money(per_month * MONTHS_PER_YEAR),
        per_year_net=money(per_month_net * MONTHS_PER_YEAR),
    )
