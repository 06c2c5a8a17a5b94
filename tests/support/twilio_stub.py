"""A local stand-in for Twilio's Messages API and its webhooks, on loopback.

It speaks the shape Twilio documents: `POST /2010-04-01/Accounts/{sid}/Messages.json`
(form-encoded, Basic auth with the account SID and auth token) answers 201 with the
message resource (`status` "queued", `price` null); `GET .../Messages/{sid}.json` fetches
one (the price appears once it was delivered); `GET .../Messages.json?To=&DateSent>=`
lists, newest first. Errors are Twilio's JSON (`code`, `message`, `more_info`, `status`).
Faults are configurable: latency, a share of 5xx answers, numbers that answer a given
Twilio error, numbers whose create is answered 5xx (by Twilio, or by a gateway in front
of it) although the message *was* created, and numbers whose request is held and then
dropped without an answer (before or after the message was created). `Chaos` fails a
random share of every request the ways a real provider does, including the ones where
Twilio took the message but the answer never reached us (or was a gateway's 5xx).
`deliver()` and `send_inbound()` call the app as Twilio would, signed with
`X-Twilio-Signature` from the auth token.
"""

from __future__ import annotations

import asyncio
import base64
import random
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import aiohttp
import gsm0338  # noqa: F401  (registers the codec)
from aiohttp import web
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

API = "/2010-04-01/Accounts/{account}/Messages"


def _rfc2822(value: datetime | None) -> str | None:
    return format_datetime(value.astimezone(UTC), usegmt=True) if value else None


def _parse_filter(raw: str) -> datetime:
    if len(raw) == 10:
        return datetime.fromisoformat(raw).replace(tzinfo=UTC)
    return datetime.fromisoformat(raw.replace("Z", "+00:00"))


@dataclass
class StubMessage:
    """One message as the stub's Twilio holds it."""

    sid: str
    to: str
    from_: str
    body: str
    status_callback: str | None
    date_created: datetime
    num_segments: int
    status: str = "queued"
    date_sent: datetime | None = None
    price: str | None = None
    price_unit: str = "USD"
    error_code: int | None = None


@dataclass
class CreateRequest:
    """What one create call looked like on the wire."""

    form: dict[str, str]
    authorization: str | None
    content_type: str


# How a chaotic create fails. Only the first two leave nothing at Twilio; the last three
# are the double-send trap: the message exists, the sender cannot know it.
CREATE_FAULTS = (
    "error_5xx",  # 503 at once, nothing created
    "timeout_before_create",  # no answer within the client's timeout, nothing created
    "timeout_after_create",  # created, the answer comes after the client gave up
    "drop_after_create",  # created, then the connection dies without an answer
    "error_504_after_create",  # created, then a gateway in front of Twilio answers 504
)
LOOKUP_FAULTS = ("lookup_5xx", "lookup_timeout")


@dataclass
class Chaos:
    """A share of all requests (creates and lookups) fail, the modes taken in turn.

    `hold_seconds` must exceed the client's timeout so that a held request really times
    out in the SDK. `max_in_a_row` caps the faults one number meets in a row, so a message
    gets through within the sender's attempt budget (exhausting it is tested elsewhere).
    """

    share: float
    hold_seconds: float
    max_in_a_row: int = 4


@dataclass
class TwilioStub:
    """The fake Twilio; `await start()`, then point the adapter at `base_url`."""

    account_sid: str
    auth_token: str
    latency: float = 0.0
    failure_share: float = 0.0
    seed: int = 7
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # To-number → (HTTP status, Twilio code, message)
    errors: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    # To-number → HTTP status a gateway answers (its own HTML page, no Twilio code) after
    # the message was created.
    errors_after_create: dict[str, int] = field(default_factory=dict)
    # To-numbers whose create is held `hold_seconds` and then the connection is dropped.
    drop_before_create: set[str] = field(default_factory=set)
    drop_after_create: set[str] = field(default_factory=set)
    hold_seconds: float = 0.3
    messages: dict[str, StubMessage] = field(default_factory=dict)
    creates: list[CreateRequest] = field(default_factory=list)
    record_requests: bool = True
    chaos: Chaos | None = None
    # What chaos did, by mode (CREATE_FAULTS, LOOKUP_FAULTS) and "ok".
    chaos_seen: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._faults_in_a_row: Counter[str] = Counter()
        self._faults_dealt: Counter[tuple[str, ...]] = Counter()
        self._requests_seen: Counter[tuple[str, ...]] = Counter()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.base_url = ""
        self._expected_auth = (
            "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        )
        self.validator = RequestValidator(self.auth_token)

    async def start(self) -> str:
        """Listen on a free loopback port; returns the base URL."""
        app = web.Application()
        prefix = API.format(account="{account}")
        app.router.add_post(prefix + ".json", self._create)
        app.router.add_get(prefix + ".json", self._list)
        app.router.add_get(prefix + "/{sid}.json", self._fetch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        self._session = aiohttp.ClientSession()
        return self.base_url

    async def close(self) -> None:
        """Stop listening."""
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- the API -------------------------------------------------------------------

    def _error(self, status: int, code: int, message: str) -> web.Response:
        return web.json_response(
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            status=status,
        )

    def _authorised(self, request: web.Request) -> bool:
        account = request.match_info["account"]
        return (
            account == self.account_sid
            and request.headers.get("Authorization") == self._expected_auth
        )

    def _resource(self, message: StubMessage) -> dict[str, Any]:
        uri = API.format(account=self.account_sid) + f"/{message.sid}.json"
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": message.body,
            "date_created": _rfc2822(message.date_created),
            "date_sent": _rfc2822(message.date_sent),
            "date_updated": _rfc2822(message.date_sent or message.date_created),
            "direction": "outbound-api",
            "error_code": message.error_code,
            "error_message": None,
            "from": message.from_,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": str(message.num_segments),
            "price": message.price,
            "price_unit": message.price_unit,
            "sid": message.sid,
            "status": message.status,
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": message.to,
            "uri": uri,
        }

    async def _hold_and_drop(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.hold_seconds)
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # the client sees the connection die, no answer

    def _chaos_mode(self, key: str, modes: tuple[str, ...]) -> str | None:
        """The fault this request meets (None: it goes through), counted in `chaos_seen`."""
        chaos = self.chaos
        if chaos is None:
            return None
        # Evenly spread, not drawn: exactly `share` of the creates, and of the lookups, fail
        # however short the run; which requests they hit follows the senders' timing.
        self._requests_seen[modes] += 1
        if self._faults_in_a_row[key] < chaos.max_in_a_row and self._faults_dealt[modes] < int(
            self._requests_seen[modes] * chaos.share
        ):
            self._faults_in_a_row[key] += 1
            mode = modes[self._faults_dealt[modes] % len(modes)]
            self._faults_dealt[modes] += 1
        else:
            self._faults_in_a_row[key] = 0
            mode = None
        self.chaos_seen[mode or "ok"] += 1
        return mode

    async def _answer_too_late(self, response: web.Response) -> web.Response:
        assert self.chaos is not None
        await asyncio.sleep(self.chaos.hold_seconds)  # the client has timed out by now
        return response

    async def _create(self, request: web.Request) -> web.StreamResponse:
        form = {key: str(value) for key, value in (await request.post()).items()}
        if self.record_requests:
            self.creates.append(
                CreateRequest(form, request.headers.get("Authorization"), request.content_type)
            )
        if self.latency:
            await asyncio.sleep(self.latency)
        if not self._authorised(request):
            return self._error(401, 20003, "Authenticate")
        invalid = self._invalid_form(form)
        if invalid is not None:
            return invalid
        to, from_, body = form["To"], form["From"], form["Body"]
        if to in self.drop_before_create:
            return await self._hold_and_drop(request)
        if to in self.errors:
            return self._error(*self.errors[to])
        if self.failure_share and self._rng.random() < self.failure_share:
            return self._error(503, 20500, "Service unavailable")
        fault = self._chaos_mode(f"create:{to}", CREATE_FAULTS)
        if fault == "error_5xx":
            return self._error(503, 20500, "Service unavailable")
        if fault == "timeout_before_create":
            return await self._answer_too_late(self._error(503, 20500, "Service unavailable"))
        message = StubMessage(
            sid="SM" + secrets.token_hex(16),
            to=to,
            from_=from_,
            body=body,
            status_callback=form.get("StatusCallback"),
            date_created=self.clock(),
            num_segments=_segments(body),
        )
        self.messages[message.sid] = message
        return await self._created(request, message, fault)

    def _invalid_form(self, form: dict[str, str]) -> web.Response | None:
        """Twilio's answer to a create without To, From or Body (None when all are there)."""
        if not form.get("To"):
            return self._error(400, 21604, "A 'To' phone number is required.")
        if not form.get("From"):
            return self._error(400, 21603, "A 'From' phone number is required.")
        if not form.get("Body"):
            return self._error(400, 21602, "Message body is required.")
        return None

    async def _created(
        self, request: web.Request, message: StubMessage, fault: str | None
    ) -> web.StreamResponse:
        """The answer once the message exists: 201, or a fault that hides the creation."""
        if message.to in self.drop_after_create or fault == "drop_after_create":
            return await self._hold_and_drop(request)
        if fault == "error_504_after_create":
            return _gateway_error(504)
        if message.to in self.errors_after_create:
            return _gateway_error(self.errors_after_create[message.to])
        if fault == "timeout_after_create":
            return await self._answer_too_late(
                web.json_response(self._resource(message), status=201)
            )
        return web.json_response(self._resource(message), status=201)

    async def _fetch(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error(401, 20003, "Authenticate")
        message = self.messages.get(request.match_info["sid"])
        if message is None:
            return self._error(404, 20404, "The requested resource was not found")
        return web.json_response(self._resource(message))

    async def _list(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error(401, 20003, "Authenticate")
        to = request.query.get("To")
        fault = self._chaos_mode(f"lookup:{to}", LOOKUP_FAULTS)
        if fault == "lookup_5xx":
            return self._error(503, 20500, "Service unavailable")
        if fault == "lookup_timeout":
            return await self._answer_too_late(self._error(503, 20500, "Service unavailable"))
        after = request.query.get("DateSent>")
        since = _parse_filter(after) if after else None
        found = [
            message
            for message in self.messages.values()
            if (to is None or message.to == to)
            # A message not yet sent has no DateSent; the stub lets it match by its
            # creation time so a just-queued message can be found after a timeout.
            and (since is None or (message.date_sent or message.date_created) >= since)
        ]
        found.sort(key=lambda m: m.date_created, reverse=True)
        size = int(request.query.get("PageSize", "50"))
        return web.json_response(
            {
                "messages": [self._resource(m) for m in found[:size]],
                "end": min(size, len(found)) - 1,
                "first_page_uri": request.path_qs,
                "next_page_uri": None,
                "page": 0,
                "page_size": size,
                "previous_page_uri": None,
                "start": 0,
                "uri": request.path_qs,
            }
        )

    # --- Twilio calling the app ------------------------------------------------------

    def sign(self, url: str, params: dict[str, str]) -> str:
        """`X-Twilio-Signature` for a POST of `params` to `url`."""
        return str(self.validator.compute_signature(url, params))

    async def post_signed(
        self,
        url: str,
        params: dict[str, str],
        *,
        signature: str | None = None,
        send_to: str | None = None,
    ) -> tuple[int, str, str]:
        """POST a form to `url` signed as Twilio would; returns status, type, body.

        `signature` overrides the real one (forgeries); `send_to` delivers to another
        address than the signed one (a proxy in front of the app).
        """
        assert self._session is not None
        headers = {
            "X-Twilio-Signature": signature if signature is not None else self.sign(url, params)
        }
        if signature == "":
            headers = {}
        async with self._session.post(send_to or url, data=params, headers=headers) as response:
            return response.status, response.content_type, await response.text()

    async def deliver(
        self,
        sid: str,
        status: str = "delivered",
        *,
        error_code: int | None = None,
        price: str | None = "-0.07500",
        price_unit: str = "USD",
        signature: str | None = None,
    ) -> tuple[int, str, str]:
        """Move a message to `status` and send its signed status callback."""
        message = self.messages[sid]
        message.status = status
        message.error_code = error_code
        if status in ("sent", "delivered", "undelivered") and message.date_sent is None:
            message.date_sent = self.clock()
        if status in ("delivered", "undelivered"):
            message.price, message.price_unit = price, price_unit
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "AccountSid": self.account_sid,
            "From": message.from_,
            "To": message.to,
            "ApiVersion": "2010-04-01",
        }
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        assert message.status_callback, "the message was created without a StatusCallback"
        return await self.post_signed(message.status_callback, params, signature=signature)

    async def send_inbound(
        self, url: str, from_: str, to: str, body: str, *, signature: str | None = None
    ) -> tuple[int, str, str]:
        """An incoming SMS, as Twilio posts it to the number's webhook."""
        sid = "SM" + secrets.token_hex(16)
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "SmsMessageSid": sid,
            "AccountSid": self.account_sid,
            "From": from_,
            "To": to,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": "1",
            "ApiVersion": "2010-04-01",
        }
        return await self.post_signed(url, params, signature=signature)


def _gateway_error(status: int) -> web.Response:
    """What a proxy or load balancer in front of the API answers: a page, not Twilio's JSON."""
    return web.Response(
        status=status,
        text=f"<html><body>{status} gateway error</body></html>",
        content_type="text/html",
    )


def _segments(body: str) -> int:
    # Twilio counts for itself; the stub's plain arithmetic is near enough.
    try:
        units, single, part = len(body.encode("gsm03.38")), 160, 153
    except UnicodeEncodeError:
        units, single, part = len(body.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else -(-units // part)
