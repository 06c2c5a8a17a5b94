"""Twilio calling us: status callbacks and incoming SMS, signed with X-Twilio-Signature.

Every request is checked against `SWITCHBOARD_PUBLIC_URL` + the path and query exactly
as Twilio called them (Twilio signs the URL it requested, not the one we see behind a
proxy); unsigned or wrongly signed requests get 403 and change nothing. What a callback
does lives beside this module: `twilio_status` (contact states), `twilio_inbound`
(STOP/START/replies) and `twilio_prices` (the real price, fetched after delivery).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web
from aiohttp.web_request import FileField
from multidict import MultiDictProxy

from adapters.twilio import TwilioAdapter
from channels.sms import INBOUND_PATH, STATUS_PATH
from gateway.core.appkeys import CLOCK, DATABASE, SETTINGS
from gateway.core.http.endpoints import endpoint
from gateway.core.http.problems import Forbidden, InvalidInput, ServiceUnavailable
from gateway.messages.twilio_inbound import apply_inbound
from gateway.messages.twilio_prices import PRICED_STATES, settle_prices
from gateway.messages.twilio_status import TWILIO_TARGET, apply_status

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 5.0
TWILIO_ADAPTER = web.AppKey("twilio_adapter", TwilioAdapter)
PRICE_TASKS = web.AppKey("twilio_price_tasks", set[asyncio.Task[int]])

MAX_SID_LENGTH = 128
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


async def _verified_form(
    request: web.Request,
) -> MultiDictProxy[str | bytes | bytearray | FileField]:
    adapter = request.app.get(TWILIO_ADAPTER)
    if adapter is None:
        raise ServiceUnavailable(
            "Twilio webhooks need SWITCHBOARD_TWILIO_ACCOUNT_SID and _AUTH_TOKEN"
        )
    form = await request.post()
    url = request.app[SETTINGS].public_url.rstrip("/") + request.raw_path
    if not adapter.validate_signature(url, form, request.headers.get("X-Twilio-Signature")):
        log.warning("refused a Twilio webhook to %s: bad or missing signature", request.path)
        raise Forbidden("X-Twilio-Signature is missing or does not sign this request")
    return form


def _field(form: MultiDictProxy[str | bytes | bytearray | FileField], name: str) -> str | None:
    value = form.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


@endpoint(
    "POST",
    STATUS_PATH,
    summary="Twilio message status callback (signed with X-Twilio-Signature)",
    auth="twilio-signature",
    tags=["providers"],
)
async def twilio_status(request: web.Request) -> web.Response:
    """Move the named contact forward; repeats and stale callbacks change nothing."""
    form = await _verified_form(request)
    sid, status = _field(form, "MessageSid"), _field(form, "MessageStatus")
    if sid is None or status is None:
        raise InvalidInput("MessageSid and MessageStatus are required")
    target = TWILIO_TARGET.get(status.lower())
    if target is None:
        return web.Response(status=204)
    app = request.app
    now = app[CLOCK].now()
    code = _field(form, "ErrorCode")
    contact_id = request.query.get("contact")
    async with app[DATABASE].transaction() as session:
        changed = await apply_status(session, contact_id, sid, target, code, now)
    if changed is None:
        log.info("Twilio status %s for %s changed nothing", status, sid)
    elif target in PRICED_STATES:
        _spawn_price_fetch(app, changed)
    return web.Response(status=204)


def _spawn_price_fetch(app: web.Application, contact_id: str) -> None:
    adapter = app.get(TWILIO_ADAPTER)
    tasks = app.get(PRICE_TASKS)
    if adapter is None or tasks is None:
        return
    task = asyncio.create_task(
        settle_prices(app[DATABASE], adapter, app[CLOCK].now(), contact_ids=[contact_id])
    )
    tasks.add(task)
    task.add_done_callback(_forget(tasks))


def _forget(tasks: set[asyncio.Task[int]]) -> Callable[[asyncio.Task[int]], None]:
    def done(task: asyncio.Task[int]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("fetching a Twilio price failed", exc_info=task.exception())

    return done


@endpoint(
    "POST",
    INBOUND_PATH,
    summary="Incoming SMS from Twilio (signed with X-Twilio-Signature)",
    auth="twilio-signature",
    tags=["providers"],
)
async def twilio_inbound(request: web.Request) -> web.Response:
    """STOP words opt out, START words opt back in, anything else is a reply."""
    form = await _verified_form(request)
    sid, sender = _field(form, "MessageSid"), _field(form, "From")
    if sid is None or sender is None:
        raise InvalidInput("MessageSid and From are required")
    if len(sid) > MAX_SID_LENGTH:
        # Twilio's SIDs are 34 characters; the SID is stored to refuse replays.
        raise InvalidInput(f"MessageSid is longer than {MAX_SID_LENGTH} characters")
    body = form.get("Body")
    text = body if isinstance(body, str) else ""
    app = request.app
    settings, now = app[SETTINGS], app[CLOCK].now()
    async with app[DATABASE].transaction() as session:
        await apply_inbound(session, sid, sender, text, settings.default_region, now)
    return web.Response(text=EMPTY_TWIML, content_type="text/xml")
