"""One-click email unsubscribe (RFC 8058): the link every campaign email carries.

`GET` shows a confirmation page with a button (mail scanners follow links, so a GET
must never change anything); `POST` with `List-Unsubscribe=One-Click` (what mailbox
providers send, and what the page's button sends) opts the customer out of email and
tells the CRM with `consent.changed`. The signed token in the path is the credential.
"""

from __future__ import annotations

import html
import logging

from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from channels.email import InvalidUnsubscribeToken, customer_from_token
from crm_sync.ingest_guards import consent_entity, newer
from gateway.core.appkeys import CLOCK, DATABASE, SETTINGS
from gateway.core.db.models import Customer
from gateway.core.http.endpoints import endpoint
from gateway.core.http.problems import ApiProblem, NotFound, ServiceUnavailable
from gateway.core.outbox import enqueue

log = logging.getLogger(__name__)

PATH = "/unsubscribe/email/{token}"
_HEADERS = {
    # The token is a credential: keep it out of caches, referrers and search engines.
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}


class NotOneClick(ApiProblem):
    """The POST body is not the RFC 8058 one-click form."""

    status, type_name, title = 400, "not-one-click", "Not a one-click unsubscribe"


def _customer_id(request: web.Request) -> str:
    secret = request.app[SETTINGS].secret("crm_webhook_secret")
    if not secret:
        raise ServiceUnavailable("unsubscribe links need SWITCHBOARD_CRM_WEBHOOK_SECRET")
    try:
        return customer_from_token(secret, request.match_info["token"])
    except InvalidUnsubscribeToken as exc:
        # One answer for forged and unknown: a caller learns nothing about which ids exist.
        raise NotFound("no such unsubscribe link") from exc


async def _live_customer(session: AsyncSession, customer_id: str, lock: bool) -> Customer:
    query = select(Customer).where(Customer.id == customer_id, Customer.deleted_at.is_(None))
    customer = await session.scalar(query.with_for_update() if lock else query)
    if customer is None:
        raise NotFound("no such unsubscribe link")
    return customer


def _masked(address: str | None) -> str:
    if not address or "@" not in address:
        return "your address"
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


def _page(title: str, body: str, status: int = 200) -> web.Response:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}"
        "button{font-size:1rem;padding:.5rem 1rem}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return web.Response(
        text=document, status=status, content_type="text/html", charset="utf-8", headers=_HEADERS
    )


@endpoint(
    "GET",
    PATH,
    summary="Confirmation page for an email unsubscribe link (changes nothing)",
    auth="none",
    tags=["messages"],
)
async def unsubscribe_page(request: web.Request) -> web.Response:
    """A page naming the (masked) address, with a button that POSTs the one-click form."""
    customer_id = _customer_id(request)
    async with request.app[DATABASE].transaction() as session:
        customer = await _live_customer(session, customer_id, lock=False)
    if customer.email_opt_out:
        return _page("You are unsubscribed", "<p>We no longer send e-mail to this address.</p>")
    address = html.escape(_masked(customer.email))
    form = (
        f"<p>Stop e-mails to {address}?</p>"
        '<form method="post" action="">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'
    )
    return _page("Unsubscribe", form)


@endpoint(
    "POST",
    PATH,
    summary="RFC 8058 one-click unsubscribe: opt the customer out of email",
    auth="none",
    tags=["messages"],
)
async def unsubscribe(request: web.Request) -> web.Response:
    """Set email_opt_out and enqueue `consent.changed` once; a repeat changes nothing."""
    customer_id = _customer_id(request)
    form = await request.post()
    if form.get("List-Unsubscribe") != "One-Click":
        raise NotOneClick("the body must be List-Unsubscribe=One-Click (RFC 8058)")
    now = request.app[CLOCK].now()
    async with request.app[DATABASE].transaction() as session:
        customer = await _live_customer(session, customer_id, lock=True)
        if not customer.email_opt_out:
            previous = customer.updated_at
            # Guarded update: of two racing POSTs only one flips the flag and reports it.
            changed = await session.execute(
                update(Customer)
                .where(Customer.id == customer_id, Customer.email_opt_out.is_(False))
                .values(email_opt_out=True, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            if changed.rowcount == 1:  # type: ignore[attr-defined]
                # The customer's own click is the newest consent: older CRM events lose.
                await newer(session, consent_entity(customer.external_id, "email"), now)
                await enqueue(
                    session,
                    type="consent.changed",
                    data={
                        "external_id": customer.external_id,
                        "channel": "email",
                        "opted_out": True,
                        "source": "list-unsubscribe",
                    },
                    ordering_key=customer_id,
                    occurred_at=now,
                    # Named after the state it changes, so the same transition can never
                    # be reported twice, whoever enqueues it.
                    event_id=f"unsubscribe:email:{customer_id}:{previous.timestamp():.6f}",
                    now=now,
                )
                log.info("customer %s unsubscribed from email by link", customer_id)
    return _page("You are unsubscribed", "<p>We will not send you e-mail any more.</p>")
