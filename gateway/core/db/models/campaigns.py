"""Campaign definitions (versioned), enrollments, experiment arms, daily snapshots."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.core.db.models.base import Base, Timestamped
from gateway.core.db.states import EnrollmentState
from gateway.core.db.types import JsonDocument, UtcDateTime


class Campaign(Timestamped, Base):
    """A campaign's identity and schedule state; its definition lives in versions."""

    __tablename__ = "campaigns"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    enabled: Mapped[bool] = mapped_column(default=True)
    last_run_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_run_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class CampaignVersion(Base):
    """One saved definition; running enrollments stay on theirs."""

    __tablename__ = "campaign_versions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, object]] = mapped_column(JsonDocument)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (UniqueConstraint("campaign_id", "version"),)


class Enrollment(Timestamped, Base):
    """A customer's position in a journey; one per campaign, customer and occurrence."""

    __tablename__ = "enrollments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    occurrence: Mapped[str] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(64), default="0")
    state: Mapped[str] = mapped_column(String(16), default=EnrollmentState.ACTIVE)
    next_run_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    wait_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    arm: Mapped[str | None] = mapped_column(String(32))
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    context: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)

    __table_args__ = (
        UniqueConstraint("campaign_id", "customer_id", "occurrence"),
        Index("ix_enrollments_due", "state", "next_run_at"),
    )


class ExperimentAssignment(Base):
    """The arm (or holdout) a customer was put in, stored so it never changes."""

    __tablename__ = "experiment_assignments"

    campaign_id: Mapped[str] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    arm: Mapped[str] = mapped_column(String(32))
    assigned_at: Mapped[datetime] = mapped_column(UtcDateTime)


class DailySnapshot(Base):
    """A day's statistics, frozen so later edits don't rewrite history."""

    __tablename__ = "daily_snapshots"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime)
