"""The CRM boundary's durable state: processed webhook ids, entity versions, the outbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.core.db.models.base import Base
from gateway.core.db.states import OutboxState
from gateway.core.db.types import JsonDocument, UtcDateTime


class ProcessedWebhook(Base):
    """An event id we already applied: a replay is answered 200 and does nothing."""

    __tablename__ = "processed_webhooks"

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class EntityVersion(Base):
    """The `occurred_at` of the newest event applied to an entity (e.g. `customer:C1`).

    One generic table instead of a column per model: an older event for the same entity
    is recognised and dropped whatever the entity is.
    """

    __tablename__ = "entity_versions"

    entity: Mapped[str] = mapped_column(String(256), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)


class OutboxItem(Base):
    """An activity to push to the CRM; delivered in `seq` order per `ordering_key`."""

    __tablename__ = "crm_outbox"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(String(128), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    ordering_key: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, object]] = mapped_column(JsonDocument)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    state: Mapped[str] = mapped_column(String(16), default=OutboxState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_crm_outbox_state_key_seq", "state", "ordering_key", "seq"),
        Index("ix_crm_outbox_due", "state", "next_attempt_at"),
    )


class ApiToken(Base):
    """An API token stored by its SHA-256 (never the token), with a role."""

    __tablename__ = "api_tokens"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[str | None] = mapped_column(String(128))
    label: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
