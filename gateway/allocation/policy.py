"""The allocation policy the config file carries (data only, no behaviour imported)."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from pydantic import Field

from gateway.core.settings import Section

# Money per unit of each performance figure: a partner's value per contact is
# Σ weight × figure, and the plan minimises cost − value. Cancellations count against.
DEFAULT_WEIGHTS: dict[str, Decimal] = {
    "quality_score": Decimal("1"),
    "cancellation_rate": Decimal("-2"),
    "upsell_rate": Decimal("2"),
}


class AllocationPolicy(Section):
    """How performance figures trade against cost per contact."""

    section_name: ClassVar[str] = "allocation"

    weights: dict[str, Decimal] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
