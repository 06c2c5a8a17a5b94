"""Who handles contacts: operators (agents) with their extensions, and service partners."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.core.db.models.base import Base, Timestamped
from gateway.core.db.types import JsonDocument, Money, UtcDateTime


class Agent(Timestamped, Base):
    """An operator; `agent_id` is the CRM's identifier."""

    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(256), default="")
    crm_user_id: Mapped[str | None] = mapped_column(String(128))
    extensions: Mapped[list[str]] = mapped_column(JsonDocument, default=list)
    skills: Mapped[list[str]] = mapped_column(JsonDocument, default=list)
    regions: Mapped[list[str]] = mapped_column(JsonDocument, default=list)
    capacity_per_day: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(default=True)
    # An agent is an allocation target like a partner: what one contact costs (their
    # loaded minute cost times handling time, say), a rule over the customer, and figures.
    cost_per_contact: Mapped[Decimal] = mapped_column(
        Money, default=Decimal("0"), server_default="0"
    )
    currency: Mapped[str] = mapped_column(String(3), default="UAH", server_default="UAH")
    eligibility: Mapped[dict[str, object]] = mapped_column(
        JsonDocument, default=dict, server_default=text("'{}'")
    )
    performance: Mapped[dict[str, object]] = mapped_column(
        JsonDocument, default=dict, server_default=text("'{}'")
    )


class AgentExtension(Base):
    """Extension → agent, for the one indexed lookup a screen-pop needs."""

    __tablename__ = "agent_extensions"

    extension: Mapped[str] = mapped_column(String(32), primary_key=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)


class Partner(Timestamped, Base):
    """A service partner that takes outbound contacts under an eligibility rule."""

    __tablename__ = "partners"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    partner_id: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(256), default="")
    capacity_per_day: Mapped[int] = mapped_column(Integer, default=0)
    cost_per_contact: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    currency: Mapped[str] = mapped_column(String(3), default="UAH")
    eligibility: Mapped[dict[str, object]] = mapped_column(JsonDocument, default=dict)
    performance: Mapped[dict[str, object]] = mapped_column(JsonDocument, default=dict)
    active: Mapped[bool] = mapped_column(default=True)


class AllocationRun(Base):
    """One allocation plan: when, as of when, and its summary (assignments live on tasks)."""

    __tablename__ = "allocation_runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    as_of: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    summary: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
