"""Agents and partners API (admin): list, read, create or replace."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.allocation.model import MAX_CAPACITY
from gateway.allocation.people import (
    InvalidTerms,
    StaleWrite,
    find_agent,
    find_partner,
    save_agent,
    save_partner,
)
from gateway.core.appkeys import CLOCK, DATABASE
from gateway.core.clock import isoformat_z
from gateway.core.db.models import Agent, Partner
from gateway.core.http.endpoints import (
    PageQuery,
    endpoint,
    json_response,
    keyset_page,
    read_body,
    read_query,
)
from gateway.core.http.problems import Conflict, InvalidInput, NotFound

Name = Annotated[str, Field(max_length=256)]
Tag = Annotated[str, Field(min_length=1, max_length=64)]
Extension = Annotated[str, Field(pattern=r"^[0-9A-Za-z*#]{1,32}$")]


class PartnerIn(BaseModel):
    """A partner's terms: capacity per day, cost per contact, eligibility rule, performance."""

    model_config = ConfigDict(extra="forbid")

    name: Name = ""
    capacity_per_day: int = Field(ge=0, le=MAX_CAPACITY)
    cost_per_contact: Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=4)]
    currency: str = Field(default="UAH", pattern=r"^[A-Z]{3}$")
    eligibility: dict[str, object] = Field(default_factory=dict)
    performance: dict[str, object] = Field(default_factory=dict)
    active: bool = True


class PartnerOut(BaseModel):
    """A stored partner."""

    id: str
    partner_id: str
    name: str
    capacity_per_day: int
    cost_per_contact: str
    currency: str
    eligibility: dict[str, object]
    performance: dict[str, object]
    active: bool
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, row: Partner) -> PartnerOut:
        """Serialise a row."""
        return cls(
            id=row.id,
            partner_id=row.partner_id,
            name=row.name,
            capacity_per_day=row.capacity_per_day,
            cost_per_contact=str(row.cost_per_contact),
            currency=row.currency,
            eligibility=dict(row.eligibility or {}),
            performance=dict(row.performance or {}),
            active=row.active,
            created_at=isoformat_z(row.created_at) or "",
            updated_at=isoformat_z(row.updated_at) or "",
        )


class PartnerPage(BaseModel):
    """A page of partners, by id."""

    items: list[PartnerOut]
    next_cursor: str | None


class AgentIn(BaseModel):
    """An operator: name, extensions, CRM user id, and their terms as an allocation target.

    With `capacity_per_day` set and active, the agent takes open call tasks like a
    partner; skills (products) and regions narrow its eligibility rule (see targets.py).
    """

    model_config = ConfigDict(extra="forbid")

    name: Name = ""
    extensions: list[Extension] = Field(default_factory=list, max_length=50)
    crm_user_id: Annotated[str, Field(max_length=128)] | None = None
    skills: list[Tag] = Field(default_factory=list, max_length=100)
    regions: list[Tag] = Field(default_factory=list, max_length=100)
    capacity_per_day: int | None = Field(default=None, ge=0, le=MAX_CAPACITY)
    cost_per_contact: Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=4)] = Decimal(
        "0"
    )
    currency: str = Field(default="UAH", pattern=r"^[A-Z]{3}$")
    eligibility: dict[str, object] = Field(default_factory=dict)
    performance: dict[str, object] = Field(default_factory=dict)
    active: bool = True


class AgentOut(BaseModel):
    """A stored agent."""

    id: str
    agent_id: str
    name: str
    extensions: list[str]
    crm_user_id: str | None
    skills: list[str]
    regions: list[str]
    capacity_per_day: int | None
    cost_per_contact: str
    currency: str
    eligibility: dict[str, object]
    performance: dict[str, object]
    active: bool
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, row: Agent) -> AgentOut:
        """Serialise a row."""
        return cls(
            id=row.id,
            agent_id=row.agent_id,
            name=row.name,
            extensions=list(row.extensions or []),
            crm_user_id=row.crm_user_id,
            skills=list(row.skills or []),
            regions=list(row.regions or []),
            capacity_per_day=row.capacity_per_day,
            cost_per_contact=str(row.cost_per_contact),
            currency=row.currency,
            eligibility=dict(row.eligibility or {}),
            performance=dict(row.performance or {}),
            active=row.active,
            created_at=isoformat_z(row.created_at) or "",
            updated_at=isoformat_z(row.updated_at) or "",
        )


class AgentPage(BaseModel):
    """A page of agents, by id."""

    items: list[AgentOut]
    next_cursor: str | None


async def _save_answering(
    request: web.Request, save: Callable[[AsyncSession], Awaitable[dict[str, object]]]
) -> web.Response:
    """Run a create-or-replace in one transaction and answer with the saved row.

    Refusals become problems (422 naming the field, 409 for an older write); two first
    saves of the same id racing on the unique key are retried once: the retry finds the
    winner's row and updates it.
    """
    for attempt in range(2):
        try:
            async with request.app[DATABASE].transaction() as session:
                out = await save(session)
            return json_response(out)
        except InvalidTerms as exc:
            raise InvalidInput(
                str(exc), errors=[{"field": exc.field, "message": exc.message}]
            ) from None
        except StaleWrite as exc:
            raise Conflict(str(exc)) from exc
        except IntegrityError:
            if attempt:
                raise
    raise AssertionError("unreachable")


@endpoint(
    "GET",
    "/api/partners",
    summary="Service partners, by id",
    roles=["admin"],
    query=PageQuery,
    response=PartnerPage,
    tags=["allocation"],
)
async def list_partners(request: web.Request) -> web.Response:
    """A page of partners."""
    params = read_query(request, PageQuery)
    return await keyset_page(
        request, select(Partner), Partner.id, lambda r: PartnerOut.of(r).model_dump(), params
    )


@endpoint(
    "GET",
    "/api/partners/{id}",
    summary="One partner (by our id or the CRM's partner_id)",
    roles=["admin"],
    response=PartnerOut,
    tags=["allocation"],
)
async def get_partner(request: web.Request) -> web.Response:
    """The partner, or 404."""
    key = request.match_info["id"]
    async with request.app[DATABASE].sessions() as session:
        row = await find_partner(session, key)
    if row is None:
        raise NotFound(f"no partner {key}")
    return json_response(PartnerOut.of(row).model_dump())


@endpoint(
    "PUT",
    "/api/partners/{id}",
    summary="Create or replace a partner; an invalid eligibility rule is refused with its path",
    roles=["admin"],
    body=PartnerIn,
    response=PartnerOut,
    tags=["allocation"],
)
async def put_partner(request: web.Request) -> web.Response:
    """An unknown id creates the partner with that partner_id."""
    key = request.match_info["id"]
    given = await read_body(request, PartnerIn)
    now = request.app[CLOCK].now()

    async def save(session: AsyncSession) -> dict[str, object]:
        row = await save_partner(
            session,
            key,
            name=given.name,
            capacity=given.capacity_per_day,
            cost_per_contact=given.cost_per_contact,
            currency=given.currency,
            eligibility=given.eligibility,
            figures=given.performance,
            active=given.active,
            now=now,
        )
        return PartnerOut.of(row).model_dump()

    return await _save_answering(request, save)


@endpoint(
    "GET",
    "/api/agents",
    summary="Operators, by id",
    roles=["admin"],
    query=PageQuery,
    response=AgentPage,
    tags=["allocation"],
)
async def list_agents(request: web.Request) -> web.Response:
    """A page of agents."""
    params = read_query(request, PageQuery)
    return await keyset_page(
        request, select(Agent), Agent.id, lambda r: AgentOut.of(r).model_dump(), params
    )


@endpoint(
    "GET",
    "/api/agents/{id}",
    summary="One operator (by our id or the CRM's agent_id)",
    roles=["admin"],
    response=AgentOut,
    tags=["allocation"],
)
async def get_agent(request: web.Request) -> web.Response:
    """The agent, or 404."""
    key = request.match_info["id"]
    async with request.app[DATABASE].sessions() as session:
        row = await find_agent(session, key)
    if row is None:
        raise NotFound(f"no agent {key}")
    return json_response(AgentOut.of(row).model_dump())


@endpoint(
    "PUT",
    "/api/agents/{id}",
    summary="Create or replace an operator; extensions move from whoever held them; "
    "an invalid eligibility rule is refused with its path",
    roles=["admin"],
    body=AgentIn,
    response=AgentOut,
    tags=["allocation"],
)
async def put_agent(request: web.Request) -> web.Response:
    """An unknown id creates the agent with that agent_id."""
    key = request.match_info["id"]
    given = await read_body(request, AgentIn)
    now = request.app[CLOCK].now()

    async def save(session: AsyncSession) -> dict[str, object]:
        row = await save_agent(
            session,
            key,
            name=given.name,
            extensions=list(given.extensions),
            crm_user_id=given.crm_user_id,
            skills=list(given.skills),
            regions=list(given.regions),
            capacity_per_day=given.capacity_per_day,
            active=given.active,
            now=now,
            cost_per_contact=given.cost_per_contact,
            currency=given.currency,
            eligibility=given.eligibility,
            figures=given.performance,
        )
        return AgentOut.of(row).model_dump()

    return await _save_answering(request, save)
