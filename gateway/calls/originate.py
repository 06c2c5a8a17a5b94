"""The one way to originate a call: click-to-call now, the dialer and a CRM's
click-to-call later. Every Originate the gateway sends goes through `Originator`
(tests/unit/calls/test_originate_policy.py checks that nothing else calls the link's
originate), so its two rules hold for every caller:

- from whose extension: operators and supervisors ring only their own agent's
  extensions (gateway/calls/access.py); admins and the CRM's server any extension;
- to which number: only numbers the allow-list admits (`pbx.originate_allow`, regexes
  over E.164; by default the default region's numbers, premium-rate ones excepted), so
  a leaked token cannot run up a bill on foreign or premium numbers (toll fraud).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import phonenumbers
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.calls.link import PbxLink
from gateway.calls.settings import PbxTopology
from gateway.core.clock import Clock
from gateway.core.db.engine import Database
from gateway.core.db.models import Call, Customer
from gateway.core.db.types import new_id
from gateway.core.http.access import owns_extension
from gateway.core.http.auth import Principal
from gateway.core.http.problems import Forbidden, InvalidInput, NotFound
from gateway.core.phones import InvalidPhone, normalize_phone
from gateway.core.settings import Settings

log = logging.getLogger(__name__)

# Self-service roles ring only their own extensions; these may ring any.
ANY_EXTENSION = frozenset({"admin", "crm"})


class DestinationNotAllowed(Forbidden):
    """The number is outside the originate allow-list."""

    type_name, title = "destination-not-allowed", "Destination not allowed"


class DestinationPolicy:
    """Which E.164 numbers an originate may dial."""

    def __init__(self, patterns: list[str], region: str) -> None:
        self._patterns = [re.compile(pattern) for pattern in patterns]
        self._region = region.upper()

    @classmethod
    def from_settings(cls, settings: Settings) -> DestinationPolicy:
        """The configured allow-list, or the default region's numbers."""
        return cls(settings.section(PbxTopology).originate_allow, settings.default_region)

    def allows(self, e164: str) -> bool:
        """Whether `e164` may be dialled."""
        if self._patterns:
            return any(pattern.fullmatch(e164) for pattern in self._patterns)
        try:
            number = phonenumbers.parse(e164, None)
        except phonenumbers.NumberParseException:
            return False
        return (
            phonenumbers.region_code_for_number(number) == self._region
            and phonenumbers.number_type(number) != phonenumbers.PhoneNumberType.PREMIUM_RATE
        )


@dataclass(frozen=True)
class OriginateRequest:
    """Ring `extension`, then dial the customer (their first number) or `number`."""

    extension: str
    customer_id: str | None = None
    number: str | None = None


class Originator:
    """Checks who may ring which extension and which number, records the call, asks
    the PBX."""

    def __init__(self, settings: Settings, database: Database, link: PbxLink, clock: Clock) -> None:
        """Originate through `link`; rules from `settings`."""
        self._settings, self._database, self._link, self._clock = settings, database, link, clock
        self.policy = DestinationPolicy.from_settings(settings)

    async def originate(self, principal: Principal, request: OriginateRequest) -> str:
        """Our id for the call, once the PBX has been asked (the record fills in later).

        Raises Forbidden (someone else's extension), DestinationNotAllowed, NotFound (no
        callable customer) or InvalidInput (not a phone number); nothing is written then.
        """
        now = self._clock.now()
        async with self._database.transaction() as session:
            if principal.role not in ANY_EXTENSION and not await owns_extension(
                session, principal, request.extension
            ):
                raise Forbidden(f"extension {request.extension} is not one of yours")
            number = await self._destination(session, request)
            if not self.policy.allows(number):
                log.warning(
                    "refused an originate to %s from extension %s by %s %s",
                    number,
                    request.extension,
                    principal.role,
                    principal.agent_id or principal.token_id,
                )
                raise DestinationNotAllowed(
                    f"{number} is not a number this gateway may dial (pbx.originate_allow)"
                )
            call = Call(
                id=new_id("call"),
                direction="outbound",
                state="originating",
                callee=number,
                extension=request.extension,
                customer_id=request.customer_id,
                match="exact" if request.customer_id else "none",
                originate_action_id=new_id("orig"),
                details={},
                created_at=now,
                updated_at=now,
            )
            session.add(call)
        await self._link.originate(
            request.extension, number.lstrip("+"), call.originate_action_id or ""
        )
        return call.id

    async def _destination(self, session: AsyncSession, request: OriginateRequest) -> str:
        """The E.164 number to dial."""
        if request.customer_id is not None:
            customer = await session.get(Customer, request.customer_id)
            if customer is None or customer.deleted_at is not None or not customer.phones:
                raise NotFound(f"no callable customer {request.customer_id}")
            return customer.phones[0].e164
        try:
            return normalize_phone(request.number or "", self._settings.default_region)
        except InvalidPhone as exc:
            raise InvalidInput(
                f"number: {exc}", errors=[{"field": "number", "message": str(exc)}]
            ) from exc


ORIGINATOR = web.AppKey("originator", Originator)
