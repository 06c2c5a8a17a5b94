"""Templates API (admin): list, read, save, preview.

A save is validated whole and bumps `version`. A preview renders a template (the saved one,
or an unsaved edit) for a real customer through the sender's own sandboxed `Renderer` and
next-payment lookup, so what the admin reads is what the customer would get; nothing is
written.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from channels.templates import (
    MissingVariable,
    Renderer,
    TemplateProblem,
    validate_template,
)
from gateway.core.appkeys import CLOCK, DATABASE, SETTINGS
from gateway.core.clock import isoformat_z
from gateway.core.db.dialect import lock_rows
from gateway.core.db.engine import Database
from gateway.core.db.models import Customer, Template
from gateway.core.http.endpoints import (
    PageQuery,
    decode_cursor,
    endpoint,
    json_response,
    page,
    read_body,
    read_query,
)
from gateway.core.http.problems import Conflict, InvalidInput, NotFound
from gateway.messages.prepare import next_payment

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
Text = Annotated[str, Field(max_length=20_000)]
Subject = Annotated[str, Field(max_length=512)]


class TemplateIn(BaseModel):
    """A template to save: body (and e-mail subject) per language, declared variables."""

    model_config = ConfigDict(extra="forbid")

    channel: Literal["sms", "email", "voice"]
    subject: dict[str, Subject] = Field(default_factory=dict)
    body: dict[str, Text]
    variables: list[str] = Field(default_factory=list, max_length=64)


class TemplateOut(BaseModel):
    """A saved template."""

    name: str
    channel: str
    subject: dict[str, str]
    body: dict[str, str]
    variables: list[str]
    version: int
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, row: Template) -> TemplateOut:
        """Serialise a row."""
        return cls(
            name=row.name,
            channel=row.channel,
            subject=dict(row.subject or {}),
            body=dict(row.body or {}),
            variables=list(row.variables or []),
            version=row.version,
            created_at=isoformat_z(row.created_at) or "",
            updated_at=isoformat_z(row.updated_at) or "",
        )


class TemplatePage(BaseModel):
    """A page of templates, by name."""

    items: list[TemplateOut]
    next_cursor: str | None


@endpoint(
    "GET",
    "/api/templates",
    summary="Message templates, by name",
    roles=["admin"],
    query=PageQuery,
    response=TemplatePage,
    tags=["templates"],
)
async def list_templates(request: web.Request) -> web.Response:
    """A page of templates."""
    params = read_query(request, PageQuery)
    query = select(Template).order_by(Template.name).limit(params.limit + 1)
    after = decode_cursor(params.cursor)
    if after is not None:
        query = query.where(Template.name > after)
    async with request.app[DATABASE].sessions() as session:
        rows = (await session.scalars(query)).all()
    items = [TemplateOut.of(row).model_dump() for row in rows]
    return json_response(page(items, params.limit, key="name"))


@endpoint(
    "GET",
    "/api/templates/{name}",
    summary="One template",
    roles=["admin"],
    response=TemplateOut,
    tags=["templates"],
)
async def get_template(request: web.Request) -> web.Response:
    """The template, or 404."""
    name = request.match_info["name"]
    async with request.app[DATABASE].sessions() as session:
        row = await session.get(Template, name)
    if row is None:
        raise NotFound(f"no template {name}")
    return json_response(TemplateOut.of(row).model_dump())


@endpoint(
    "PUT",
    "/api/templates/{name}",
    summary="Create or replace a template (a new version); refused whole when invalid",
    roles=["admin"],
    body=TemplateIn,
    response=TemplateOut,
    tags=["templates"],
)
async def put_template(request: web.Request) -> web.Response:
    """422 naming `body.<lang>: line N: …` for the first problem; nothing saved then."""
    name = request.match_info["name"]
    if not _NAME.match(name):
        raise InvalidInput(
            "name: letters, digits, `_`, `.`, `-`, at most 128, starting with a letter or digit",
            errors=[{"field": "name", "message": "not a template name"}],
        )
    given = await read_body(request, TemplateIn)
    issues = validate_template(given.channel, given.subject, given.body, given.variables)
    if issues:
        raise InvalidInput(
            str(issues[0]),
            errors=[{"field": issue.field, "message": issue.message} for issue in issues],
        )
    now = request.app[CLOCK].now()
    try:
        row = await _save(request.app[DATABASE], name, given, now)
    except IntegrityError:
        # Two first saves of the same name raced; the loser's retry sees the row.
        row = await _save(request.app[DATABASE], name, given, now)
    return json_response(TemplateOut.of(row).model_dump())


class PreviewIn(BaseModel):
    """Whom to render for, with what values, and optionally an unsaved edit of the template."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(min_length=1, max_length=64)
    template: TemplateIn | None = Field(
        default=None, description="an edit to render instead of the saved template"
    )
    variables: dict[str, Annotated[str, Field(max_length=2_000)]] = Field(
        default_factory=dict, max_length=64, description="values of the declared variables"
    )


class PreviewOut(BaseModel):
    """The message as the customer would get it."""

    customer_id: str
    customer_name: str
    language: str
    subject: str | None
    text: str
    html: str | None


@endpoint(
    "POST",
    "/api/templates/{name}/preview",
    summary="Render a template (saved, or an unsaved edit) for a customer; sends nothing",
    roles=["admin"],
    body=PreviewIn,
    response=PreviewOut,
    tags=["templates"],
)
async def preview_template(request: web.Request) -> web.Response:
    """422 naming `template.<part>.<lang>` or `variables.<name>`; 404 for a missing one."""
    name = request.match_info["name"]
    given = await read_body(request, PreviewIn)
    if given.template is not None:
        issues = validate_template(
            given.template.channel,
            given.template.subject,
            given.template.body,
            given.template.variables,
        )
        if issues:
            raise InvalidInput(
                f"template.{issues[0]}",
                errors=[{"field": f"template.{i.field}", "message": i.message} for i in issues],
            )
    settings = request.app[SETTINGS]
    async with request.app[DATABASE].sessions() as session:
        source: Any = given.template
        if source is None:
            source = await session.get(Template, name)
            if source is None:
                raise NotFound(f"no template {name}")
        customer = await session.get(Customer, given.customer_id)
        if customer is None or customer.deleted_at is not None:
            raise NotFound(f"no customer {given.customer_id}")
        payment = await next_payment(session, customer, request.app[CLOCK].now(), settings.timezone)
    # A renderer per preview: its cache of compiled templates would only hold edits.
    renderer = Renderer(default_language=settings.policy.default_language)
    try:
        rendered = renderer.render(source, customer, payment, given.variables)
    except MissingVariable as exc:
        raise InvalidInput(
            f"variables.{exc.name}: {exc}",
            errors=[{"field": f"variables.{exc.name}", "message": str(exc)}],
        ) from exc
    except TemplateProblem as exc:
        raise InvalidInput(
            f"template: {exc}", errors=[{"field": "template", "message": str(exc)}]
        ) from exc
    out = PreviewOut(
        customer_id=customer.id,
        customer_name=customer.name or "",
        language=rendered.language,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
    )
    return json_response(out.model_dump())


async def _save(database: Database, name: str, given: TemplateIn, now: datetime) -> Template:
    async with database.transaction() as session:
        query = lock_rows(select(Template).where(Template.name == name), database)
        row = (await session.scalars(query)).one_or_none()
        if row is None:
            row = Template(name=name, channel=given.channel, version=0, created_at=now)
            session.add(row)
        elif row.channel != given.channel:
            # Pending contacts and campaign steps name this template for its channel.
            raise Conflict(
                f"template {name} is for {row.channel}; save a {given.channel} one under a new name"
            )
        row.subject = dict(given.subject)
        row.body = dict(given.body)
        row.variables = list(given.variables)
        row.version += 1
        row.updated_at = now
    return row
