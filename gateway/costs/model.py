"""The cost model: configured rates, measured handling times, currency conversion.

Every figure a report uses carries where it came from (`measured`, `configured`,
`given`, `provider`, `assumed`) so that a manager can tell a measurement from an
assumption at a glance. Money is Decimal throughout; nothing here touches floats.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from gateway.core.settings import Settings

CENT = Decimal("0.01")
Source = Literal["measured", "configured", "given", "provider", "assumed"]
# Fewer answered calls than this and the average talk time is too noisy to trust over
# a configured handling time (one long complaint call would double it).
MIN_MEASURED_CALLS = 20


class CostModelError(ValueError):
    """The cost model cannot price something (e.g. a currency without a rate)."""


class MissingConversionRate(CostModelError):
    """A ledger amount is in a currency the configuration has no rate for."""

    def __init__(self, currency: str, report_currency: str) -> None:
        super().__init__(
            f"no conversion rate from {currency} into {report_currency}: "
            f"add costs.conversion.{currency} to the configuration"
        )
        self.currency = currency


def money(value: Decimal) -> Decimal:
    """Round to cents, half up, as accountants do."""
    return value.quantize(CENT, ROUND_HALF_UP)


def money_str(value: Decimal) -> str:
    """Decimal string of a money amount in cents."""
    return str(money(value))


@dataclass(frozen=True)
class Figure:
    """A number and where it came from."""

    value: Decimal
    source: Source

    def as_dict(self) -> dict[str, str]:
        """`{"value": "2.5", "source": "configured"}`."""
        return {"value": str(self.value), "source": self.source}


@dataclass(frozen=True)
class CostModel:
    """Rates in the report currency, conversion rates, and handling times per topic."""

    currency: str
    operator_per_minute: Figure
    channel_rates: dict[str, Figure]
    conversion: dict[str, Decimal]
    handling_minutes: dict[str, Figure] = field(default_factory=dict)

    @classmethod
    def from_settings(
        cls, settings: Settings, handling_minutes: Mapping[str, Decimal] | None = None
    ) -> CostModel:
        """The configured model; `handling_minutes` are per-topic times given by a caller."""
        rates = settings.costs
        # `costs.handling_minutes` (topic → minutes) is read when the settings carry it;
        # until then handling times are measured from call records or given per report.
        configured: Mapping[str, Decimal] = getattr(rates, "handling_minutes", None) or {}
        handling = {topic: Figure(Decimal(v), "configured") for topic, v in configured.items()}
        for topic, value in (handling_minutes or {}).items():
            handling[topic] = Figure(Decimal(value), "given")
        return cls(
            currency=rates.currency.upper(),
            operator_per_minute=Figure(rates.operator_per_minute, "configured"),
            channel_rates={
                "sms": Figure(rates.sms_per_segment, "configured"),
                "email": Figure(rates.email_per_message, "configured"),
                "voice": Figure(rates.call_per_minute, "configured"),
            },
            conversion={key.upper(): Decimal(v) for key, v in rates.conversion.items()},
            handling_minutes=handling,
        )

    def rate_into_report(self, currency: str) -> Decimal:
        """Multiplier turning an amount in `currency` into the report currency."""
        code = currency.upper()
        if code == self.currency:
            return Decimal(1)
        rate = self.conversion.get(code)
        if rate is None:
            raise MissingConversionRate(code, self.currency)
        return rate

    def convert(self, amount: Decimal, currency: str) -> Decimal:
        """`amount` in `currency`, expressed in the report currency (not rounded)."""
        return amount * self.rate_into_report(currency)

    def handling_time(
        self, topic: str | None, measured_seconds: int, measured_calls: int
    ) -> Figure | None:
        """Minutes an operator spends on a call about `topic`.

        A time given for this report wins; then a measurement from enough call records;
        then the configured time; None when nothing is known.
        """
        known = self.handling_minutes.get(topic or "*") or self.handling_minutes.get("*")
        if known is not None and known.source == "given":
            return known
        if measured_calls >= MIN_MEASURED_CALLS:
            minutes = Decimal(measured_seconds) / Decimal(60) / Decimal(measured_calls)
            return Figure(minutes.quantize(Decimal("0.0001"), ROUND_HALF_UP), "measured")
        return known
