"""`POST /crm/events`: signed CRM webhooks in, applied in one transaction each."""

from __future__ import annotations

import logging
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import IntegrityError

from crm_sync.events import (
    CustomerUpserted,
    Envelope,
    NulCharacter,
    ParseContext,
    UnknownEventType,
    parse_data,
    parse_envelope,
)
from crm_sync.ingest import EventRejected, apply_customer_upserted, apply_event
from crm_sync.ingest_fast import FAST_INGEST
from crm_sync.signature import HEADER, SignatureError, verify
from gateway.core.appkeys import CLOCK, DATABASE, METRICS, SETTINGS
from gateway.core.http.endpoints import endpoint, json_response
from gateway.core.http.json_body import TooDeep, loads_bounded
from gateway.core.http.problems import (
    ApiProblem,
    Conflict,
    InvalidInput,
    ServiceUnavailable,
    Unauthorized,
    invalid_from_validation,
)

log = logging.getLogger(__name__)


class WebhookAck(BaseModel):
    """What a 2xx says: applied now, seen before, or older than what we hold."""

    status: Literal["applied", "duplicate", "stale"]


class _Refused(Exception):
    """Internal: carries the metric outcome alongside the problem to answer with."""

    def __init__(self, outcome: str, problem: ApiProblem) -> None:
        super().__init__(problem.detail)
        self.outcome = outcome
        self.problem = problem


@endpoint(
    "POST",
    "/crm/events",
    summary="CRM event (signed with X-Switchboard-Signature)",
    auth="crm-signature",
    body=Envelope,
    response=WebhookAck,
    tags=["crm"],
)
async def crm_events(request: web.Request) -> web.Response:
    """Verify, validate, apply in one transaction; answer 2xx only after the commit."""
    metrics = request.app[METRICS]
    try:
        outcome = await _handle(request)
    except _Refused as refused:
        metrics.webhooks.labels(refused.outcome).inc()
        raise refused.problem from None
    except web.HTTPRequestEntityTooLarge:
        metrics.webhooks.labels("too_large").inc()
        raise
    metrics.webhooks.labels(outcome).inc()
    return json_response({"status": outcome})


async def _handle(request: web.Request) -> str:
    app = request.app
    settings = app[SETTINGS]
    secret = settings.secret("crm_webhook_secret")
    if not secret:
        raise _Refused(
            "unavailable", ServiceUnavailable("CRM webhooks need SWITCHBOARD_CRM_WEBHOOK_SECRET")
        )
    raw = await request.read()  # over client_max_size: aiohttp raises 413 here
    now = app[CLOCK].now()
    try:
        verify(
            secret,
            raw,
            request.headers.get(HEADER),
            now.timestamp(),
            settings.webhook_tolerance_seconds,
        )
    except SignatureError as exc:
        log.warning("refused a CRM webhook: %s", exc)
        raise _Refused("unauthorized", Unauthorized(str(exc))) from exc
    event, data = _parse(raw, ParseContext(settings.default_region, settings.timezone))
    database = app[DATABASE]
    try:
        if isinstance(data, CustomerUpserted):
            # The bulk of the CRM's traffic: one statement on PostgreSQL when nothing
            # concurrent interferes, else Core statements in a transaction (no ORM).
            fast = app.get(FAST_INGEST)
            if fast is not None:
                outcome = await fast.customer_upserted(event, data, now)
                if outcome is not None:
                    return outcome
            async with database.engine.begin() as conn:
                return await apply_customer_upserted(conn, event, data, now)
        async with database.transaction() as session:
            return await apply_event(session, event, data, now)
    except EventRejected as exc:
        problem = InvalidInput(str(exc), errors=[{"field": exc.field, "message": exc.message}])
        raise _Refused("invalid", problem) from exc
    except IntegrityError as exc:
        # A unique constraint other than the event id's (e.g. two deliveries racing on
        # a new customer's phones): nothing was written, the CRM's retry will settle it.
        log.warning("CRM event %s conflicted: %s", event.id, exc.orig)
        raise _Refused("conflict", Conflict("concurrent change; retry")) from exc


def _parse(raw: bytes, context: ParseContext) -> tuple[Envelope, Any]:
    try:
        document = loads_bounded(raw)
    except TooDeep as exc:
        raise _Refused("invalid", ApiProblem(str(exc), limit=exc.limit)) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Refused("invalid", ApiProblem(f"body is not valid JSON: {exc}")) from exc
    try:
        event = parse_envelope(document, context)
    except ValidationError as exc:
        raise _Refused("invalid", invalid_from_validation(exc)) from exc
    except UnknownEventType as exc:
        problem = InvalidInput(f"type: {exc}", errors=[{"field": "type", "message": str(exc)}])
        raise _Refused("invalid", problem) from exc
    except NulCharacter as exc:
        problem = InvalidInput(str(exc), errors=[{"field": exc.path, "message": "NUL character"}])
        raise _Refused("invalid", problem) from exc
    try:
        return event, parse_data(event, context)
    except ValidationError as exc:
        raise _Refused("invalid", invalid_from_validation(exc, prefix="data")) from exc
