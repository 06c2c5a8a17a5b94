"""Twilio calling us: status callbacks and incoming SMS, signed with X-Twilio-Signature.

Every request is checked against `SWITCHBOARD_PUBLIC_URL` + the path and query exactly
as Twilio called them (Twilio signs the URL it requested, not the one we see behind a
proxy); unsigned or wrongly signed requests get 403 and change nothing.

Status callbacks move a contact forward only: `sent` → `delivered`/`undelivered`/`failed`
are applied with a conditional UPDATE naming the states they may leave, so a late or
repeated callback (a `sent` after `delivered`) changes nothing, and two racing callbacks
cannot both win. A contact left `unknown` by a timeout is settled by its first callback.
Callbacks carry no price: after `delivered`/`undelivered` the price is fetched in the
background (`settle_prices`, which the pipeline may also call for anything missed) and
replaces the configured estimate in the cost ledger.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Collection
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.twilio import TwilioAdapter, TwilioError, adapter_from_settings
from channels.sms import INBOUND_PATH, INVALID_NUMBER_CODES, OPTED_OUT_CODES, STATUS_PATH
from crm_sync.ingest_guards import consent_entity, newer
from crm_sync.outbox import enqueue
from crm_sync.phones import InvalidPhone, normalize_phone
from gateway.appkeys import CLOCK, DATABASE, SETTINGS
from gateway.customers.service import find_by_phone
from gateway.db.engine import Database
from gateway.db.models import CostEntry, Customer, CustomerPhone, OutboundContact
from gateway.db.types import new_id
from gateway.http.endpoints import add_endpoints, endpoint
from gateway.http.problems import Forbidden, InvalidInput, ServiceUnavailable

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 5.0
TWILIO_ADAPTER = web.AppKey("twilio_adapter", TwilioAdapter)
PRICE_TASKS = web.AppKey("twilio_price_tasks", set[asyncio.Task[int]])

STOP_WORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "стоп"})
START_WORDS = frozenset({"start", "unstop", "yes"})
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'

# Twilio's MessageStatus → our state; statuses before "sent" say nothing new to us.
_TARGET = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}
# The states each target may be reached from: never backwards, finals stay final.
_FROM = {
    "sent": ("sending", "unknown"),
    "delivered": ("sending", "unknown", "sent"),
    "undelivered": ("sending", "unknown", "sent"),
    "failed": ("sending", "unknown", "sent"),
}
PRICED_STATES = ("delivered", "undelivered")


async def _verified_form(request: web.Request) -> MultiDictProxy[Any]:
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


def _field(form: MultiDictProxy[Any], name: str) -> str | None:
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
    target = _TARGET.get(status.lower())
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


async def apply_status(
    session: AsyncSession,
    contact_id: str | None,
    sid: str,
    target: str,
    error_code: str | None,
    now: datetime,
) -> str | None:
    """Apply one status to the contact (by id, else by provider id); its id if it moved."""
    values: dict[str, Any] = {
        "status": target,
        "provider_id": sid,
        "updated_at": now,
        "sent_at": func.coalesce(OutboundContact.sent_at, now),
    }
    if target == "delivered":
        values["delivered_at"] = now
    elif target in ("undelivered", "failed"):
        values["failed_at"] = now
        values["error_code"] = error_code
        values["error"] = f"Twilio reported {target}" + (
            f" (error {error_code})" if error_code else ""
        )
        values["reason"] = _reason(error_code)
    where = [OutboundContact.channel == "sms", OutboundContact.status.in_(_FROM[target])]
    if contact_id:
        where += [
            OutboundContact.id == contact_id,
            or_(OutboundContact.provider_id.is_(None), OutboundContact.provider_id == sid),
        ]
    else:
        where.append(OutboundContact.provider_id == sid)
    row = (
        await session.execute(
            update(OutboundContact)
            .where(*where)
            .values(**values)
            .returning(
                OutboundContact.id,
                OutboundContact.customer_id,
                OutboundContact.campaign_id,
                OutboundContact.to_address,
            )
            .execution_options(synchronize_session=False)
        )
    ).first()
    if row is None:
        return None
    moved_id, customer_id, campaign_id, to_address = row
    if target == "sent":
        return str(moved_id)
    await _apply_consequence(session, customer_id, to_address, _reason(error_code))
    kind = "message.delivered" if target == "delivered" else "message.failed"
    await enqueue(
        session,
        type=kind,
        data={
            "message_id": moved_id,
            "channel": "sms",
            "customer_id": customer_id,
            "campaign_id": campaign_id,
            "status": target,
            "error_code": error_code if target != "delivered" else None,
        },
        ordering_key=customer_id or "messages",
        occurred_at=now,
        event_id=f"{kind}:{moved_id}",  # the pipeline uses the same: one event per contact
        now=now,
    )
    return str(moved_id)


def _reason(error_code: str | None) -> str | None:
    try:
        code = int(error_code) if error_code else None
    except ValueError:
        return None
    if code in OPTED_OUT_CODES:
        return "opted_out"
    if code in INVALID_NUMBER_CODES:
        return "invalid_number"
    return None


async def _apply_consequence(
    session: AsyncSession, customer_id: str | None, to_address: str | None, reason: str | None
) -> None:
    if customer_id is None or reason is None:
        return
    if reason == "opted_out":
        await session.execute(
            update(Customer).where(Customer.id == customer_id).values(sms_opt_out=True)
        )
    elif to_address:
        await session.execute(
            update(CustomerPhone)
            .where(CustomerPhone.customer_id == customer_id, CustomerPhone.e164 == to_address)
            .values(invalid=True)
        )


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


def _forget(tasks: set[asyncio.Task[int]]) -> Any:
    def done(task: asyncio.Task[int]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("fetching a Twilio price failed", exc_info=task.exception())

    return done


async def settle_prices(
    database: Database,
    adapter: TwilioAdapter,
    now: datetime,
    *,
    contact_ids: Collection[str] | None = None,
    limit: int = 100,
) -> int:
    """Fetch Twilio's price for delivered SMS still without one; returns how many were set.

    A contact is pending while it is a delivered/undelivered Twilio SMS with no
    `provider` ledger line. Twilio fills the price some time after delivery: a message
    still without one stays pending for the next call.
    """
    pending = (
        select(OutboundContact.id, OutboundContact.provider_id, OutboundContact.segments)
        .outerjoin(
            CostEntry,
            and_(CostEntry.contact_id == OutboundContact.id, CostEntry.source == "provider"),
        )
        .where(
            OutboundContact.channel == "sms",
            OutboundContact.sandbox.is_(False),
            OutboundContact.status.in_(PRICED_STATES),
            OutboundContact.provider_id.is_not(None),
            CostEntry.id.is_(None),
        )
        .order_by(OutboundContact.id)
        .limit(limit)
    )
    if contact_ids is not None:
        pending = pending.where(OutboundContact.id.in_(list(contact_ids)))
    async with database.sessions() as session:
        rows = (await session.execute(pending)).all()
    settled = 0
    for contact_id, provider_id, segments in rows:
        try:
            message = await adapter.fetch_message(str(provider_id))
        except TwilioError as exc:
            log.warning("cannot fetch the price of %s: %s", provider_id, exc.message)
            continue
        price = _price(message["price"])
        if price is None or not message["price_unit"]:
            continue
        units = message["num_segments"] or segments or 1
        async with database.transaction() as session:
            await _write_price(session, contact_id, price, message["price_unit"], units, now)
        settled += 1
    return settled


def _price(raw: str | None) -> Decimal | None:
    if raw is None:
        return None
    try:
        return abs(Decimal(raw))  # Twilio reports charges as negative amounts
    except InvalidOperation:
        return None


async def _write_price(
    session: AsyncSession,
    contact_id: str,
    amount: Decimal,
    currency: str,
    units: int,
    now: datetime,
) -> None:
    contact = await session.get(OutboundContact, contact_id)
    if contact is None:
        return
    currency = currency.upper()
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(CostEntry).values(
        id=new_id("cost"),
        at=now,
        channel="sms",
        customer_id=contact.customer_id,
        campaign_id=contact.campaign_id,
        contact_id=contact_id,
        amount=amount,
        currency=currency,
        source="provider",
        units=units,
    )
    # The pipeline wrote the configured estimate at send time: the price replaces it.
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[CostEntry.contact_id],
            set_={"amount": amount, "currency": currency, "source": "provider", "units": units},
        )
    )
    contact.cost, contact.currency, contact.updated_at = amount, currency, now


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
    body = form.get("Body")
    text = body if isinstance(body, str) else ""
    app = request.app
    settings, now = app[SETTINGS], app[CLOCK].now()
    async with app[DATABASE].transaction() as session:
        await apply_inbound(session, sid, sender, text, settings.default_region, now)
    return web.Response(text=EMPTY_TWIML, content_type="text/xml")


async def apply_inbound(
    session: AsyncSession, sid: str, sender: str, text: str, region: str, now: datetime
) -> str:
    """Apply one incoming SMS to every customer holding the number; returns its kind."""
    word = text.strip().casefold()
    kind = "stop" if word in STOP_WORDS else "start" if word in START_WORDS else "reply"
    matched = await find_by_phone(session, sender, region)
    try:
        phone = normalize_phone(sender, region)
    except InvalidPhone:
        phone = sender
    for customer in matched.customers:
        if kind == "reply":
            await _record_reply(session, customer, sid, phone, text, now)
            continue
        opted_out = kind == "stop"
        if customer.sms_opt_out == opted_out:
            continue
        await session.execute(
            update(Customer)
            .where(Customer.id == customer.id)
            .values(sms_opt_out=opted_out, updated_at=now)
        )
        # The customer's own word is the newest consent: an older CRM event must not undo it.
        await newer(session, consent_entity(customer.external_id, "sms"), now)
        await enqueue(
            session,
            type="consent.changed",
            data={
                "external_id": customer.external_id,
                "customer_id": customer.id,
                "channel": "sms",
                "opted_out": opted_out,
                "source": "sms_keyword",
                "at": now,
            },
            ordering_key=customer.id,
            occurred_at=now,
            event_id=f"consent.changed:{sid}:{customer.id}",
            now=now,
        )
    return kind


async def _record_reply(
    session: AsyncSession, customer: Customer, sid: str, phone: str, text: str, now: datetime
) -> None:
    contact = await session.scalar(
        select(OutboundContact)
        .where(
            OutboundContact.customer_id == customer.id,
            OutboundContact.channel == "sms",
            OutboundContact.status.in_(("sent", "delivered")),
        )
        .order_by(OutboundContact.sent_at.desc(), OutboundContact.id.desc())
        .limit(1)
    )
    if contact is not None and contact.replied_at is None:
        contact.replied_at, contact.updated_at = now, now
    await enqueue(
        session,
        type="message.replied",
        data={
            "message_id": contact.id if contact is not None else None,
            "campaign_id": contact.campaign_id if contact is not None else None,
            "external_id": customer.external_id,
            "customer_id": customer.id,
            "channel": "sms",
            "from": phone,
            "body": text,
            "at": now,
        },
        ordering_key=customer.id,
        occurred_at=now,
        event_id=f"message.replied:{sid}:{customer.id}",
        now=now,
    )


async def _twilio_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    adapter = adapter_from_settings(
        settings.twilio_account_sid, settings.secret("twilio_auth_token"), settings.twilio_api_base
    )
    tasks: set[asyncio.Task[int]] = set()
    app[PRICE_TASKS] = tasks
    if adapter is not None:
        app[TWILIO_ADAPTER] = adapter
    yield
    # Let price fetches finish first: cancelling one inside its write transaction can
    # leave SQLite's write lock held by a connection nobody returns to the pool.
    if tasks:
        await asyncio.wait(list(tasks), timeout=SHUTDOWN_GRACE_SECONDS)
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if adapter is not None:
        await adapter.close()


def setup(app: web.Application, workers: bool) -> None:
    """Add the Twilio webhooks and the shared Twilio adapter (when configured)."""
    add_endpoints(app, twilio_status, twilio_inbound)
    app.cleanup_ctx.append(_twilio_ctx)
