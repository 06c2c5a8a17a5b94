"""What the operator's web console needs beyond the public API.

`POST/DELETE /api/session` (a token exchanged for the session cookie), `GET /api/me`
(who I am, my extensions, the wrap-up vocabulary, the CSRF token) and
`POST /api/calls/{id}/unknown-caller` (the pop's "create in CRM" button), and Chart.js
for the dashboard at `GET /static/vendor/chart.umd.min.js`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy import select

from gateway.calls.public import display_number
from gateway.core.appkeys import BUS, CLOCK, DATABASE, SETTINGS
from gateway.core.clock import isoformat_z
from gateway.core.db.models import Agent, AgentExtension, Call
from gateway.core.http.access import ensure_own_call
from gateway.core.http.auth import TOKENS, failed_authentication, principal_of
from gateway.core.http.endpoints import endpoint, json_response, read_body
from gateway.core.http.problems import (
    ApiProblem,
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)
from gateway.core.http.session import (
    SESSION_COOKIE,
    SESSION_SECONDS,
    SessionError,
    SessionStoreDown,
    new_session,
    parse_cookie,
    revoke,
)
from gateway.core.outbox import enqueue

CONSOLE_ROLES = frozenset({"operator", "supervisor", "admin"})
CHART_JS_ROUTE = "/static/vendor/chart.umd.min.js"
# Installed next to the checkout by `make` (npm ci from package-lock.json), never committed
# and never fetched at run time: the library's own prebuilt, minified UMD build.
CHART_JS = Path(__file__).resolve().parents[2] / "node_modules/chart.js/dist/chart.umd.min.js"
# Where another install keeps it (tests point it at a missing file); default CHART_JS.
CHART_JS_FILE = web.AppKey("chart_js_file", Path)

log = logging.getLogger(__name__)


class UnsupportedMediaType(ApiProblem):
    """The body is not in the one media type this endpoint reads."""

    status, type_name, title = 415, "unsupported-media-type", "Unsupported media type"


class SessionIn(BaseModel):
    """An API token to exchange for a session cookie."""

    token: str = Field(min_length=1, max_length=512)


class SessionOut(BaseModel):
    """The opened session: who, until when, and the CSRF token to send on changes."""

    role: str
    agent_id: str | None
    csrf_token: str
    expires_at: str


class MeOut(BaseModel):
    """The caller as the console shows them."""

    role: str
    agent_id: str | None
    name: str
    extensions: list[str]
    call_topics: list[str]
    csrf_token: str | None = Field(description="set when authenticated by the session cookie")


class UnknownCallerOut(BaseModel):
    """The queued `customer.unknown_caller` activity."""

    call_id: str
    event_id: str
    phone: str | None


@endpoint(
    "POST",
    "/api/session",
    summary="Sign in to the console: exchange an API token for a session cookie",
    auth="none",
    body=SessionIn,
    response=SessionOut,
    status=201,
    tags=["console"],
)
async def open_session(request: web.Request) -> web.Response:
    """Set `sb_session` (HttpOnly, SameSite=Strict, Secure under https)."""
    # Sign-in CSRF: a cross-site form can post text/plain (or urlencoded, multipart)
    # without a CORS preflight and sign the victim's browser into the attacker's
    # session; application/json cannot be sent cross-site without one. Checked before
    # anything else, so a refused form changes nothing (not even the brake's count).
    if request.content_type != "application/json":
        raise UnsupportedMediaType(
            f"sign-in takes Content-Type: application/json, not {request.content_type!r}"
        )
    body = await read_body(request, SessionIn)
    registry = request.app[TOKENS]
    principal = registry.authenticate(body.token.strip())
    if principal is None:
        # Sign-in shares the brake: it must not be a way around it.
        raise failed_authentication(request, Unauthorized("unknown or revoked token"))
    if principal.role not in CONSOLE_ROLES:
        raise Forbidden(f"role {principal.role} cannot sign in to the console")
    session = new_session(principal.token_id, request.app[CLOCK].now())
    out = SessionOut(
        role=principal.role,
        agent_id=principal.agent_id,
        csrf_token=session.csrf_token(registry.session_key),
        expires_at=isoformat_z(datetime.fromtimestamp(session.expires, UTC)) or "",
    )
    response = json_response(out.model_dump(), 201)
    response.set_cookie(
        SESSION_COOKIE,
        session.cookie_value(registry.session_key),
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.app[SETTINGS].public_url.startswith("https://"),
    )
    return response


@endpoint(
    "DELETE",
    "/api/session",
    summary="Sign out of the console (the cookie stops working on every instance)",
    roles=["operator", "supervisor", "crm"],
    status=204,
    tags=["console"],
)
async def close_session(request: web.Request) -> web.Response:
    """Revoke the session behind the cookie and clear it."""
    cookie = request.cookies.get(SESSION_COOKIE)
    response = web.Response(status=204)
    if cookie:
        now = request.app[CLOCK].now()
        try:
            session = parse_cookie(cookie, request.app[TOKENS].session_key, now)
        except SessionError:
            session = None
        if session is not None:
            try:
                await revoke(request.app[BUS], session, now)
            except SessionStoreDown as exc:
                # Not signed out: say so, rather than clear the cookie and pretend.
                raise ServiceUnavailable(f"{exc}; the session was not signed out") from exc
        response.del_cookie(SESSION_COOKIE, path="/", samesite="Strict", httponly=True)
    return response


@endpoint(
    "GET",
    "/api/me",
    summary="Who I am: role, agent, name, extensions, wrap-up topics, CSRF token",
    roles=["operator", "supervisor", "crm"],
    response=MeOut,
    tags=["console"],
)
async def me(request: web.Request) -> web.Response:
    """The console's first call after loading (also recovers the CSRF token on reload)."""
    principal = principal_of(request)
    name, extensions = principal.role, []
    if principal.agent_id:
        name = principal.agent_id
        async with request.app[DATABASE].sessions() as session:
            agent = await session.scalar(select(Agent).where(Agent.agent_id == principal.agent_id))
            if agent is not None:
                name = agent.name or agent.agent_id
                rows = await session.scalars(
                    select(AgentExtension.extension)
                    .where(AgentExtension.agent_id == agent.id)
                    .order_by(AgentExtension.extension)
                )
                extensions = list(rows)
    csrf = None
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and "Authorization" not in request.headers:
        key = request.app[TOKENS].session_key
        csrf = parse_cookie(cookie, key, request.app[CLOCK].now()).csrf_token(key)
    out = MeOut(
        role=principal.role,
        agent_id=principal.agent_id,
        name=name,
        extensions=extensions,
        call_topics=list(request.app[SETTINGS].call_topics),
        csrf_token=csrf,
    )
    return json_response(out.model_dump())


@endpoint(
    "POST",
    "/api/calls/{id}/unknown-caller",
    summary="Ask the CRM to create a customer for your unknown caller (once per call)",
    roles=["operator", "supervisor"],
    response=UnknownCallerOut,
    status=202,
    tags=["calls"],
)
async def report_unknown_caller(request: web.Request) -> web.Response:
    """Queue `customer.unknown_caller`; the same event id as the automatic report."""
    call_id = request.match_info["id"]
    app = request.app
    now = app[CLOCK].now()
    async with app[DATABASE].transaction() as session:
        await ensure_own_call(session, principal_of(request), call_id)
        call = await session.get(Call, call_id)
        if call is None:
            raise NotFound(f"no call {call_id}")
        if call.customer_id is not None or call.direction != "inbound":
            raise Conflict(f"call {call_id} is not from an unknown caller")
        phone = display_number(call.caller, app[SETTINGS].default_region)
        item = await enqueue(
            session,
            type="customer.unknown_caller",
            data={
                "call_id": call.id,
                "phone": phone,
                "at": call.started_at or call.created_at,
                "requested_by": principal_of(request).agent_id,
            },
            ordering_key="unknown_callers",
            occurred_at=call.started_at or call.created_at,
            event_id=f"customer.unknown_caller:{call.pbx_linkedid or call.id}",
            now=now,
        )
    out = UnknownCallerOut(call_id=call_id, event_id=item.event_id, phone=phone)
    return json_response(out.model_dump(), 202)


async def chart_library(request: web.Request) -> web.StreamResponse:
    """Chart.js as installed by `make`; 404 with the fix when it is not."""
    path = request.app.get(CHART_JS_FILE, CHART_JS)
    if not path.is_file():
        # The install path is for the gateway's log (written at start), not for callers.
        raise NotFound("the chart library is not installed on this gateway: run `make` (npm ci)")
    return web.FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})
