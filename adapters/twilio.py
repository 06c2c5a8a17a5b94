"""Twilio's Messages API through the official SDK: the only module that imports `twilio`.

It knows Twilio and nothing of ours. Every failure leaves here as a `TwilioError` that
says what the caller needs to decide: may it be retried (`retryable`), and might the
message have been created anyway (`sent_unknown`). The second matters because an SMS
sent twice is worse than one sent late: a request that timed out or lost its connection
*after it was written*, or a create answered with any 5xx, may have been accepted, so it
is never reported as retryable.
Whether the request left us is observed, not guessed: an aiohttp trace hook marks the
moment the request headers were written, per call, through a context variable.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any, TypedDict

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException  # type: ignore[import-untyped]
from twilio.http.async_http_client import AsyncTwilioHttpClient  # type: ignore[import-untyped]
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]
from twilio.rest import Client  # type: ignore[import-untyped]

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_CONNECT_TIMEOUT_SECONDS = 5.0
DEFAULT_MAX_CONNECTIONS = 100
# Twilio's own "too many requests" error code, next to the HTTP status 429.
TOO_MANY_REQUESTS_CODE = 20429


class TwilioError(Exception):
    """Twilio refused the request, or could not be reached, or its answer was lost."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        retryable: bool = False,
        sent_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retryable = retryable
        self.sent_unknown = sent_unknown


class TwilioMessage(TypedDict):
    """The fields of Twilio's Message resource that we use (price is a decimal string)."""

    sid: str
    status: str
    to: str | None
    from_: str | None
    body: str | None
    direction: str | None
    num_segments: int | None
    price: str | None
    price_unit: str | None
    error_code: int | None
    error_message: str | None
    date_created: datetime | None
    date_sent: datetime | None


@dataclass
class _Progress:
    written: bool = False


# Which call the trace hook is reporting for: each send runs in its own task context.
_PROGRESS: contextvars.ContextVar[_Progress | None] = contextvars.ContextVar(
    "twilio_request_progress", default=None
)


async def _on_headers_sent(
    session: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: aiohttp.TraceRequestHeadersSentParams,
) -> None:
    progress = _PROGRESS.get()
    if progress is not None:
        progress.written = True


def _int_or_none(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _as_message(instance: Any) -> TwilioMessage:
    return TwilioMessage(
        sid=str(instance.sid),
        status=str(instance.status),
        to=instance.to,
        from_=instance.from_,
        body=instance.body,
        direction=instance.direction,
        num_segments=_int_or_none(instance.num_segments),
        price=None if instance.price in (None, "") else str(instance.price),
        price_unit=instance.price_unit,
        error_code=_int_or_none(instance.error_code),
        error_message=instance.error_message,
        date_created=instance.date_created,
        date_sent=instance.date_sent,
    )


def _translate(exc: BaseException, progress: _Progress, *, creates: bool) -> TwilioError:
    if isinstance(exc, TwilioRestException):
        status = int(exc.status)
        code = _int_or_none(exc.code)
        if creates and status >= 500:
            # Every 5xx to a create is "maybe sent", none is retried blindly. Twilio says
            # so for its own 500 (error 20500: a POST that sends an SMS is not idempotent,
            # "a customer may receive multiple messages" if it is retried), and documents
            # no 5xx, not even 503/20503 with Retry-After, as "not processed". A 502/504
            # may come from a proxy or load balancer after Twilio created the message, and
            # nothing in the answer tells that apart. The price of caution is one lookup
            # (`find_sent`) per failure and, when nothing was created, a resend after the
            # pipeline's resolution grace instead of after a backoff.
            return TwilioError(str(exc.msg), status=status, code=code, sent_unknown=True)
        # 429 / 20429: Twilio refused before processing it; nothing was created.
        retryable = status == 429 or status >= 500 or code == TOO_MANY_REQUESTS_CODE
        return TwilioError(str(exc.msg), status=status, code=code, retryable=retryable)
    if isinstance(exc, TwilioException):
        # A list page that did not answer 200 comes as a bare TwilioException.
        response = exc.args[1] if len(exc.args) > 1 else None
        page_status = _int_or_none(getattr(response, "status_code", None))
        retryable = page_status is None or page_status == 429 or page_status >= 500
        return TwilioError(str(exc.args[0]), status=page_status, retryable=retryable)
    written = progress.written
    kind = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
    if written and creates:
        return TwilioError(f"Twilio request {kind} after it was sent", sent_unknown=True)
    return TwilioError(f"Twilio request {kind}: {exc}", retryable=True)


class TwilioAdapter:
    """One SDK client and connection pool; create and close it inside the running loop."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        api_base: str | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        """Remember the credentials; the HTTP client is opened on first use."""
        self.account_sid = account_sid
        self._auth_token = auth_token
        self._api_base = api_base.rstrip("/") if api_base else None
        self._timeout = aiohttp.ClientTimeout(
            total=timeout_seconds, connect=connect_timeout_seconds
        )
        self._max_connections = max_connections
        self._validator = RequestValidator(auth_token)
        self._http: Any = None
        self._client: Any = None

    def _sdk(self) -> Any:
        # The SDK's async client opens an aiohttp session in its constructor, which must
        # happen inside the running loop: hence lazily, from the first coroutine.
        if self._client is None:
            trace = aiohttp.TraceConfig()
            trace.on_request_headers_sent.append(_on_headers_sent)
            http = AsyncTwilioHttpClient(pool_connections=False)
            # Our own session: the SDK's default has a 5-minute timeout and no trace. Its
            # timeout alone does nothing, though: the SDK passes `timeout=None` with every
            # request, which aiohttp takes as "no timeout at all" (overriding the session's),
            # so a Twilio that never answered held a send forever. Hence `asyncio.timeout`
            # around each call as well.
            http.session = aiohttp.ClientSession(
                timeout=self._timeout,
                trace_configs=[trace],
                connector=aiohttp.TCPConnector(limit=self._max_connections),
            )
            client = Client(self.account_sid, self._auth_token, http_client=http)
            if self._api_base:
                client.api.base_url = self._api_base
            self._http, self._client = http, client
        return self._client

    async def create_message(
        self, to: str, from_: str, body: str, status_callback: str | None
    ) -> TwilioMessage:
        """POST a new message; TwilioError says whether it may be retried or is unknown."""
        client = self._sdk()
        progress = _Progress()
        token = _PROGRESS.set(progress)
        try:
            kwargs: dict[str, object] = {"to": to, "from_": from_, "body": body}
            if status_callback:
                kwargs["status_callback"] = status_callback
            async with asyncio.timeout(self._timeout.total):
                instance = await client.messages.create_async(**kwargs)
        except (TimeoutError, TwilioException, aiohttp.ClientError, OSError) as exc:
            raise _translate(exc, progress, creates=True) from exc
        finally:
            _PROGRESS.reset(token)
        return _as_message(instance)

    async def fetch_message(self, sid: str) -> TwilioMessage:
        """GET one message (its price is filled in some time after sending)."""
        client = self._sdk()
        progress = _Progress()
        try:
            async with asyncio.timeout(self._timeout.total):
                instance = await client.messages(sid).fetch_async()
        except (TimeoutError, TwilioException, aiohttp.ClientError, OSError) as exc:
            raise _translate(exc, progress, creates=False) from exc
        return _as_message(instance)

    async def list_messages(
        self, to: str, date_sent_after: datetime | None, *, limit: int = 100
    ) -> list[TwilioMessage]:
        """Messages to `to` (newest first), optionally only those sent after a time."""
        client = self._sdk()
        progress = _Progress()
        kwargs: dict[str, object] = {"to": to, "limit": limit, "page_size": min(limit, 1000)}
        if date_sent_after is not None:
            kwargs["date_sent_after"] = date_sent_after
        try:
            async with asyncio.timeout(self._timeout.total):
                instances = await client.messages.list_async(**kwargs)
        except (TimeoutError, TwilioException, aiohttp.ClientError, OSError) as exc:
            raise _translate(exc, progress, creates=False) from exc
        return [_as_message(instance) for instance in instances]

    def validate_signature(
        self, url: str, params: Mapping[str, object], signature: str | None
    ) -> bool:
        """Whether `X-Twilio-Signature` signs this URL and form with our auth token."""
        if not signature:
            return False
        return bool(self._validator.validate(url, params, signature))

    async def close(self) -> None:
        """Close the connection pool."""
        if self._http is not None:
            await self._http.close()
        self._http = self._client = None


def adapter_from_settings(
    account_sid: str | None, auth_token: str | None, api_base: str | None
) -> TwilioAdapter | None:
    """An adapter when Twilio is configured, else None (SMS then goes to the sandbox)."""
    if not account_sid or not auth_token:
        return None
    return TwilioAdapter(account_sid, auth_token, api_base=api_base)
