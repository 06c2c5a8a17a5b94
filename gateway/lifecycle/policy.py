"""Lifecycle thresholds: the `lifecycle:` section of the config file.

Statuses: `active`, `warm`, `cold`, `lost`, and `cancelled` (set only by the CRM or a
deletion; nothing here ever moves a customer into or out of it).

- Activity (any kind the CRM reports: card use, order, login) → `active`.
- No activity for `warm_after_days` → `warm`, `cold_after_days` → `cold`,
  `lost_after_days` → `lost`. Inactivity only ever moves a customer further down.
- A complaint → `cold` (when `complaint_to_cold`).
- Call cadence per status (`call_every_days`): warm every 14 days, cold every 30.
- After a monitoring call the next one is due `monitoring_months_active` months later
  for an active customer, `monitoring_months_other` for everyone else.
- Recession: a regular buyer (at least `recession_min_orders` orders spread over at
  least `recession_min_history_days`) silent for more than `recession_factor` times
  their own median interval between orders.
- New active: more than `new_active_orders` orders within `new_active_window_hours`.
"""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import Field, model_validator

from gateway.core.settings import Section

# Statuses the lifecycle moves customers between; `cancelled` belongs to the CRM.
LIFECYCLE_STATUSES = ("active", "warm", "cold", "lost")
# How far down the lifecycle a status is: inactivity never moves a customer up.
RANK = {"active": 0, "warm": 1, "cold": 2, "lost": 3}


class InvalidLifecyclePolicy(ValueError):
    """The configured thresholds contradict each other."""


class LifecyclePolicy(Section):
    """Thresholds for status moves, call cadence, monitoring and the detectors."""

    section_name: ClassVar[str] = "lifecycle"

    warm_after_days: int = Field(default=30, ge=1)
    cold_after_days: int = Field(default=60, ge=1)
    lost_after_days: int = Field(default=90, ge=1)
    complaint_to_cold: bool = True
    call_every_days: dict[str, int] = Field(default_factory=lambda: {"warm": 14, "cold": 30})
    min_call_seconds: int = Field(default=20, ge=0)
    monitoring_months_active: int = Field(default=1, ge=1, le=120)
    monitoring_months_other: int = Field(default=3, ge=1, le=120)
    recession_factor: float = Field(default=3.0, gt=1.0)
    recession_min_orders: int = Field(default=6, ge=3)
    recession_min_history_days: int = Field(default=56, ge=1)
    # Orders older than this do not describe the customer's habit any more.
    recession_lookback_days: int = Field(default=365, ge=7)
    recovery_call_seconds: int = Field(default=20, ge=0)
    new_active_orders: int = Field(default=3, ge=1)
    new_active_window_hours: int = Field(default=24, ge=1)
    # Rows per statement: a batch of inserts must stay under the drivers' 32,767 parameters.
    batch_size: int = Field(default=1000, ge=1, le=3000)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.warm_after_days < self.cold_after_days < self.lost_after_days:
            raise InvalidLifecyclePolicy(
                "warm_after_days < cold_after_days < lost_after_days must hold"
            )
        for status, days in self.call_every_days.items():
            if status not in LIFECYCLE_STATUSES:
                raise InvalidLifecyclePolicy(f"call_every_days.{status}: unknown status")
            if days < 1:
                raise InvalidLifecyclePolicy(f"call_every_days.{status}: must be at least 1")
        if self.recession_min_history_days >= self.recession_lookback_days:
            raise InvalidLifecyclePolicy(
                "recession_min_history_days must be shorter than recession_lookback_days"
            )
        return self
