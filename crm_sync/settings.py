"""The CRM boundary's settings section (`outbox:` in the config file, SWITCHBOARD_OUTBOX__*)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from gateway.core.settings import Section


class OutboxPolicy(Section):
    """How CRM push-back retries: exponential backoff with full jitter, then dead letter."""

    section_name: ClassVar[str] = "outbox"

    max_attempts: int = Field(default=12, ge=1)
    base_delay_seconds: float = Field(default=1.0, gt=0)
    max_delay_seconds: float = Field(default=600.0, gt=0)
    request_timeout_seconds: float = Field(default=10.0, gt=0)
    batch_size: int = Field(default=100, ge=1)
    poll_seconds: float = Field(default=1.0, gt=0)
