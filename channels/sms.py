"""SMS through Twilio: the Channel the send pipeline uses when Twilio is configured.

Error mapping (Twilio's error codes, https://www.twilio.com/docs/api/errors):
- 21610 (the recipient replied STOP to our number) → `failed`, reason `opted_out`.
- A number that is invalid or cannot receive SMS (21211, 21214, 21217, 21401, 21407,
  21612, 21614, 30003, 30005, 30006) → `failed`, reason `invalid_number`.
- 429 / 20429, and a connection that failed before the request was written → `retry`:
  nothing was sent.
- A timeout or a dropped connection after the request was written, and any 5xx answer
  to the create (Twilio's own 500 may follow a created message; a 502/504 from a proxy
  in front of it says nothing either way) → `unknown`: Twilio may have created the
  message; the pipeline resolves it with `find_sent` before any resend.
- Any other refusal (bad sender, account suspended) → `failed` with the code.

`find_sent` rule. Twilio's message resource does not echo the StatusCallback URL, so
our contact id cannot be read back from it; and our text carries no id. A message is
therefore ours when it went to the same number, from our account, outbound, with
exactly our body, created at or after `since` (less `CLOCK_SKEW` for the difference
between our clock and Twilio's). Twilio filters the list by DateSent, which a message
still queued does not have yet: ask again later before concluding "not sent". When
several match (the same text sent twice to one number within the window), the oldest
is reported: for an unknown outcome, claiming "sent" is the error that cannot produce
a duplicate SMS.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from adapters.twilio import TwilioAdapter, TwilioError, TwilioMessage
from channels.base import Accepted, ChannelName, DeliveryError, Outgoing
from channels.segments import count_segments
from gateway.core.db.states import ContactStatus
from gateway.core.settings import Settings

OPTED_OUT_CODES = frozenset({21610})
INVALID_NUMBER_CODES = frozenset(
    {21211, 21214, 21217, 21401, 21407, 21612, 21614, 30003, 30005, 30006}
)
CLOCK_SKEW = timedelta(minutes=5)
STATUS_PATH = "/providers/twilio/status"
INBOUND_PATH = "/providers/twilio/inbound"


class SmsNotConfigured(RuntimeError):
    """Twilio is configured without a sender number."""


def status_callback_url(public_url: str, contact_id: str) -> str:
    """The status callback that names our contact (Twilio signs exactly this URL)."""
    return f"{public_url.rstrip('/')}{STATUS_PATH}?contact={contact_id}"


def delivery_error(error: TwilioError) -> DeliveryError:
    """Our outcome for one of the adapter's errors."""
    code = str(error.code) if error.code is not None else None
    if error.sent_unknown:
        return DeliveryError("unknown", error.message, code=code or _status(error))
    if error.retryable:
        return DeliveryError("retry", error.message, code=code or _status(error))
    if error.code in OPTED_OUT_CODES:
        return DeliveryError("failed", error.message, code=code, reason="opted_out")
    if error.code in INVALID_NUMBER_CODES:
        return DeliveryError("failed", error.message, code=code, reason="invalid_number")
    return DeliveryError("failed", error.message, code=code or _status(error))


def _status(error: TwilioError) -> str | None:
    return f"http_{error.status}" if error.status is not None else None


def _accepted(message: TwilioMessage, fallback_segments: int) -> Accepted:
    delivered = message["status"] in ("delivered", "read")
    return Accepted(
        provider_id=message["sid"],
        status=ContactStatus.DELIVERED if delivered else ContactStatus.SENT,
        segments=message["num_segments"] or fallback_segments,
        price=None,  # a price is only final after delivery: the status feature fetches it
        price_currency=None,
    )


class SmsChannel:
    """Channel `sms` over Twilio's Messages API."""

    name: ChannelName = "sms"
    sandbox = False

    def __init__(self, adapter: TwilioAdapter, settings: Settings) -> None:
        """Send with `adapter` from `settings.twilio_from`; callbacks to `public_url`."""
        if not settings.twilio_from:
            raise SmsNotConfigured("SWITCHBOARD_TWILIO_FROM is required to send SMS")
        self._adapter = adapter
        self._from = settings.twilio_from
        self._public_url = settings.public_url

    async def send(self, message: Outgoing) -> Accepted:
        """Create the message at Twilio; DeliveryError says retry, failed or unknown."""
        segments = count_segments(message.text).segments
        try:
            created = await self._adapter.create_message(
                message.to,
                self._from,
                message.text,
                status_callback_url(self._public_url, message.contact_id),
            )
        except TwilioError as exc:
            raise delivery_error(exc) from exc
        return _accepted(created, segments)

    async def find_sent(self, message: Outgoing, since: datetime) -> Accepted | None:
        """Twilio's record of this message (see the module's rule), or None."""
        earliest = since - CLOCK_SKEW
        try:
            listed = await self._adapter.list_messages(message.to, earliest)
        except TwilioError as exc:
            raise DeliveryError("unknown", f"cannot ask Twilio: {exc.message}") from exc
        matches = [
            item
            for item in listed
            if (item["direction"] or "").startswith("outbound")
            and item["body"] == message.text
            and (item["date_created"] is None or item["date_created"] >= earliest)
        ]
        if not matches:
            return None
        oldest = min(matches, key=lambda item: item["date_created"] or since)
        return _accepted(oldest, count_segments(message.text).segments)

    async def close(self) -> None:
        """Release the adapter's connections."""
        await self._adapter.close()
