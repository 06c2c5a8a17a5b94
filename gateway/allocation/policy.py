"""The allocation policy the config file carries (data only, no behaviour imported)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field

# Money per unit of each performance figure: a partner's value per contact is
# Σ weight × figure, and the plan minimises cost − value. Cancellations count against.
DEFAULT_WEIGHTS: dict[str, Decimal] = {
    "quality_score": Decimal("1"),
    "cancellation_rate": Decimal("-2"),
    "upsell_rate": Decimal("2"),
}


class AllocationPolicy(BaseModel):
    """How performance figures trade against cost per contact."""

    weights: dict[str, Decimal] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
