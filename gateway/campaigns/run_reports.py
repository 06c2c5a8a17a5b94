"""What campaign runs, ticks and advances did: counts for the CLI, the API and bench."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class AdvanceReport:
    """What advancing due enrollments did."""

    enrollments: int = 0
    steps: int = 0
    contacts: int = 0
    tasks: int = 0
    status_moves: int = 0
    crm_actions: int = 0
    failed: int = 0

    def add(self, other: AdvanceReport) -> None:
        """Add another report's counts to this one."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class RunReport:
    """What one campaign run did."""

    campaign: str
    as_of: datetime
    version: int = 0
    skipped: str | None = None  # why nothing was done (another process holds the run)
    audience: int = 0
    enrolled: int = 0
    holdout: int = 0
    advance: AdvanceReport = field(default_factory=AdvanceReport)


@dataclass
class TickReport:
    """What one tick did: the campaigns it ran and the enrollments it moved."""

    as_of: datetime
    runs: list[RunReport] = field(default_factory=list)
    advance: AdvanceReport = field(default_factory=AdvanceReport)
