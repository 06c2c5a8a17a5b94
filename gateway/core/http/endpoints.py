"""Endpoint declarations: one decorator carries roles and schemas for auth and OpenAPI."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from gateway.core.http.input_guard import find_nul, nul_refused
from gateway.core.http.json_body import TooDeep, loads_bounded
from gateway.core.http.problems import ApiProblem, InvalidInput, invalid_from_validation

Roles = Literal["admin", "supervisor", "operator", "crm"]
AuthScheme = Literal["bearer", "none", "crm-signature", "twilio-signature", "bearer-or-ticket"]
HandlerFn = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")  # the entity a paged listing selects


@dataclass(frozen=True)
class EndpointSpec:
    """What a handler accepts, answers and who may call it."""

    method: str
    path: str
    summary: str
    roles: frozenset[str] = frozenset()
    auth: AuthScheme = "bearer"
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    tags: tuple[str, ...] = field(default_factory=tuple)


def endpoint(
    method: str,
    path: str,
    *,
    summary: str,
    roles: Iterable[Roles] = (),
    auth: AuthScheme = "bearer",
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    tags: Iterable[str] = (),
) -> Callable[[HandlerFn], HandlerFn]:
    """Declare a handler; admin may always call a bearer endpoint."""
    spec = EndpointSpec(
        method.upper(),
        path,
        summary,
        frozenset(roles),
        auth,
        body,
        query,
        response,
        status,
        tuple(tags),
    )

    def attach(handler: HandlerFn) -> HandlerFn:
        handler.__endpoint__ = spec  # type: ignore[attr-defined]
        return handler

    return attach


ENDPOINTS = web.AppKey("endpoints", list[EndpointSpec])


def spec_of(handler: object) -> EndpointSpec | None:
    """The declaration attached to a handler, if any."""
    return getattr(handler, "__endpoint__", None)


def add_endpoints(app: web.Application, *handlers: HandlerFn) -> None:
    """Route each declared handler and remember it for /openapi.json."""
    registry = app.setdefault(ENDPOINTS, [])
    for handler in handlers:
        spec = spec_of(handler)
        if spec is None:
            raise TypeError(f"{handler.__name__} has no @endpoint declaration")
        app.router.add_route(spec.method, spec.path, handler)
        registry.append(spec)


async def read_json(request: web.Request) -> object:
    """Parse the body as JSON or refuse with 400 (too deep or invalid; 422 for a NUL)."""
    raw = await request.read()
    try:
        data = loads_bounded(raw)
    except TooDeep as exc:
        raise ApiProblem(str(exc), limit=exc.limit) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiProblem(f"body is not valid JSON: {exc}") from exc
    # "\u0000" parses into a string PostgreSQL cannot store: refused like CRM events.
    where = find_nul(data)
    if where is not None:
        raise nul_refused(where or "body")
    return data


async def read_body(request: web.Request, model: type[M]) -> M:
    """Parse and validate the JSON body; 422 names every bad field."""
    data = await read_json(request)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_from_validation(exc) from exc


def read_query(request: web.Request, model: type[M]) -> M:
    """Validate the query string against `model`."""
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise invalid_from_validation(exc) from exc


def json_response(data: object, status: int = 200) -> web.Response:
    """JSON with non-ASCII kept readable (names in Cyrillic are the norm here)."""
    return web.json_response(
        data, status=status, dumps=lambda v: json.dumps(v, ensure_ascii=False, default=str)
    )


class PageQuery(BaseModel):
    """Paging parameters every collection accepts."""

    limit: int = Field(default=50, ge=1, le=500)
    cursor: str | None = None


def encode_cursor(last_key: str) -> str:
    """Opaque cursor from the last item's sort key."""
    return base64.urlsafe_b64encode(last_key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The sort key behind a cursor, or 422 when it was tampered with."""
    if cursor is None:
        return None
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor: not a cursor this API gave out") from exc


async def keyset_page(
    request: web.Request,
    query: Select[R],
    key: InstrumentedAttribute[str],
    serialize: Callable[[R], dict[str, object]],
    params: PageQuery,
    *,
    descending: bool = False,
) -> web.Response:
    """Answer a collection ordered by `key`, paged by cursor (the last key given out)."""
    from gateway.core.appkeys import DATABASE  # the app's keys import settings, not the reverse

    after = decode_cursor(params.cursor)
    if after is not None:
        query = query.where(key < after if descending else key > after)
    query = query.order_by(key.desc() if descending else key).limit(params.limit + 1)
    async with request.app[DATABASE].sessions() as session:
        rows = (await session.scalars(query)).all()
    return json_response(page([serialize(row) for row in rows], params.limit))


def page(items: list[dict[str, object]], limit: int, key: str = "id") -> dict[str, object]:
    """`{"items", "next_cursor"}` from up to limit+1 fetched rows."""
    more = len(items) > limit
    items = items[:limit]
    return {
        "items": items,
        "next_cursor": encode_cursor(str(items[-1][key])) if more and items else None,
    }
