"""Request and response shapes of the calls API."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from gateway.core.clock import isoformat_z
from gateway.core.db.models import Call
from gateway.core.http.endpoints import PageQuery
from gateway.customers.public import money


class CallOut(BaseModel):
    """A call record as the contract lists it."""

    id: str
    pbx_linkedid: str | None
    direction: str
    state: str
    caller: str | None
    callee: str | None
    extension: str | None
    agent_id: str | None
    customer_id: str | None
    match: str
    started_at: str | None
    answered_at: str | None
    ended_at: str | None
    ring_seconds: int | None
    talk_seconds: int | None
    disposition: str | None
    topic: str | None
    cost: str | None = Field(description="decimal string")
    currency: str | None

    @classmethod
    def of(cls, call: Call) -> CallOut:
        """Serialise a row."""
        return cls(
            id=call.id,
            pbx_linkedid=call.pbx_linkedid,
            direction=call.direction,
            state=call.state,
            caller=call.caller,
            callee=call.callee,
            extension=call.extension,
            agent_id=call.agent_id,
            customer_id=call.customer_id,
            match=call.match,
            started_at=isoformat_z(call.started_at),
            answered_at=isoformat_z(call.answered_at),
            ended_at=isoformat_z(call.ended_at),
            ring_seconds=call.ring_seconds,
            talk_seconds=call.talk_seconds,
            disposition=call.disposition,
            topic=call.topic,
            cost=money(call.cost),
            currency=call.currency,
        )


class CallPage(BaseModel):
    """A page of call records."""

    items: list[CallOut]
    next_cursor: str | None


class CallQuery(PageQuery):
    """Filters of GET /api/calls (times: ISO 8601; a date alone is that day)."""

    customer_id: str | None = None
    since: str | None = None
    until: str | None = None


class TopicIn(BaseModel):
    """The wrap-up topic, from the configured vocabulary."""

    topic: str = Field(min_length=1, max_length=64)


class OriginateIn(BaseModel):
    """Click-to-call: the operator's extension and whom to call."""

    agent_extension: str = Field(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z*#_-]+$")
    customer_id: str | None = None
    number: str | None = Field(default=None, max_length=32)

    @model_validator(mode="after")
    def _one_target(self) -> OriginateIn:
        if (self.customer_id is None) == (self.number is None):
            raise ValueError("give exactly one of customer_id or number")
        return self


class OriginateOut(BaseModel):
    """Our id for the call; the record fills in as the PBX reports it."""

    call_id: str
