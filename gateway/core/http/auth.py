"""Bearer tokens with roles: admin, supervisor, operator (bound to an agent), crm."""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web

from gateway.core.appkeys import BUS, CLOCK, SETTINGS
from gateway.core.http.endpoints import spec_of
from gateway.core.http.forwarded import request_client
from gateway.core.http.problems import (
    ApiProblem,
    Forbidden,
    Handler,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    problem_response,
)
from gateway.core.http.session import (
    CSRF_HEADER,
    SESSION_COOKIE,
    UNSAFE_METHODS,
    CsrfRefused,
    SessionError,
    SessionStoreDown,
    check_csrf,
    ensure_not_revoked,
    parse_cookie,
    session_key,
)

log = logging.getLogger(__name__)

# supervisor: reads every call, task, customer and statistic; acts (originates, wraps
# up, completes) only on its own agent's extensions, calls and tasks, when bound to one.
ROLES = frozenset({"admin", "supervisor", "operator", "crm"})
FAILURE_LIMIT = 20
FAILURE_WINDOW = timedelta(minutes=1)
# Bounds the brake's memory when a botnet spreads its guesses over many addresses.
MAX_TRACKED_CLIENTS = 10_000


class TokenConfigError(ValueError):
    """SWITCHBOARD_API_TOKENS is malformed."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a role, and for operators (and supervisors) the agent they act as."""

    role: str
    agent_id: str | None = None
    token_id: str = ""

    def may(self, roles: frozenset[str]) -> bool:
        """Admin may do everything; others only what the endpoint lists."""
        return self.role == "admin" or self.role in roles


def token_digest(token: str) -> str:
    """SHA-256 of a token: what we keep and compare, never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


class FailureBrake:
    """Sliding window of failed authentications per client address.

    It brakes failed attempts, never valid ones: a valid credential always passes, even
    from an address past the limit. Braking the address as a whole let one stale
    console tab (or one guesser) behind an office NAT lock everyone behind it out; the
    same rule binds any per-account lockout added later: count and refuse the failures,
    never the account's valid credential. A braked address's failed attempts are
    answered 429 with Retry-After and still counted, so a client that keeps failing
    stays braked. What keeps tokens from being guessed is their size (16 characters at
    least, 192 bits when generated), not this brake: it tells broken clients to back
    off and keeps a guesser's log lines few.

    Kept in process memory on purpose: it is a brake, not an accounting, so losing it
    on restart costs nothing, and with several instances each one brakes the share of
    failures that reaches it.
    """

    def __init__(
        self,
        limit: int = FAILURE_LIMIT,
        window: timedelta = FAILURE_WINDOW,
        max_clients: int = MAX_TRACKED_CLIENTS,
    ) -> None:
        if limit < 1 or window <= timedelta(0) or max_clients < 1:
            raise ValueError("the brake needs a positive limit, window and client cap")
        self.limit = limit
        self.window = window
        self._max_clients = max_clients
        self._failures: OrderedDict[str, deque[datetime]] = OrderedDict()

    def _recent(self, client: str, now: datetime) -> deque[datetime] | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        return failures

    def retry_after(self, client: str, now: datetime) -> int | None:
        """Whole seconds until `client` may try again, or None when it is not braked."""
        failures = self._recent(client, now)
        if failures is None or len(failures) < self.limit:
            return None
        # The window slides: one more attempt is allowed once the oldest failure ages out.
        wait = (failures[0] + self.window - now).total_seconds()
        return max(1, math.ceil(wait))

    def record_failure(self, client: str, now: datetime) -> int | None:
        """Count one failed authentication from `client`; the seconds to wait when the
        client was already braked (refuse this one with 429), else None (answer 401)."""
        braked = self.retry_after(client, now) is not None
        failures = self._recent(client, now)
        if failures is None:
            failures = self._failures[client] = deque(maxlen=self.limit)
            while len(self._failures) > self._max_clients:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(client)
        failures.append(now)
        return self.retry_after(client, now) if braked else None

    def tracked(self) -> int:
        """How many client addresses have failures on record."""
        return len(self._failures)


class TokenRegistry:
    """Known tokens by digest. Looking up a digest leaks nothing useful about the token."""

    def __init__(self, brake: FailureBrake | None = None) -> None:
        self._by_digest: dict[str, Principal] = {}
        self._session_key = session_key([])
        # Lives with the tokens it protects: one per app, no global state.
        self.brake = brake or FailureBrake()

    def add(self, token: str, role: str, agent_id: str | None = None) -> Principal:
        """Register a token."""
        if role not in ROLES:
            raise TokenConfigError(f"unknown role {role!r} (expected one of {sorted(ROLES)})")
        if role == "operator" and not agent_id:
            raise TokenConfigError("an operator token must name its agent: token:operator:AGENT")
        if len(token) < 16:
            raise TokenConfigError("tokens must be at least 16 characters long")
        digest = token_digest(token)
        principal = Principal(role, agent_id or None, digest[:12])
        self._by_digest[digest] = principal
        self._session_key = session_key(list(self._by_digest))
        return principal

    @property
    def session_key(self) -> bytes:
        """Key signing console sessions; changes whenever the token list does."""
        return self._session_key

    def by_token_id(self, token_id: str) -> Principal | None:
        """The principal whose token digest starts with `token_id` (a session's token)."""
        for principal in self._by_digest.values():
            if hmac.compare_digest(principal.token_id, token_id):
                return principal
        return None

    def authenticate(self, token: str) -> Principal | None:
        """The principal for `token`, compared in constant time on the digest."""
        digest = token_digest(token)
        for known, principal in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return principal
        return None

    def __len__(self) -> int:
        return len(self._by_digest)

    @classmethod
    def from_spec(cls, spec: str | None) -> tuple[TokenRegistry, str | None]:
        """Parse `token:role[:agent_id],…`; with none, generate one admin token.

        Returns the registry and the generated token (to print once), if any.
        """
        registry = cls()
        generated = None
        for item in filter(None, (part.strip() for part in (spec or "").split(","))):
            pieces = item.split(":")
            if len(pieces) not in (2, 3):
                raise TokenConfigError("each API token must look like token:role[:agent_id]")
            registry.add(pieces[0], pieces[1], pieces[2] if len(pieces) == 3 else None)
        if not len(registry):
            generated = secrets.token_urlsafe(24)
            registry.add(generated, "admin")
        return registry, generated


TOKENS = web.AppKey("tokens", TokenRegistry)
PRINCIPAL = web.RequestKey("principal", Principal)


def bearer_token(request: web.Request) -> str | None:
    """The token from `Authorization: Bearer …`."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Enforce the roles an endpoint declares; other auth schemes check in their handler.

    The bearer header wins; without one, the console's session cookie is accepted, with
    its CSRF token required on state-changing methods.
    """
    spec = spec_of(request.match_info.handler)
    try:
        if spec is not None and spec.auth == "bearer":
            principal = await _credential_principal(request)
            if not principal.may(spec.roles):
                raise Forbidden(f"role {principal.role} may not call {spec.method} {spec.path}")
            request[PRINCIPAL] = principal
        return await handler(request)
    except RateLimited as limited:
        # problem_middleware knows no headers of ours; Retry-After is set here, also for
        # handlers that check tokens themselves (failed_authentication).
        response = problem_response(limited)
        response.headers["Retry-After"] = str(limited.retry_after)
        return response


def failed_authentication(request: web.Request, refusal: ApiProblem) -> ApiProblem:
    """Count a failed credential against the caller's address; the problem to raise:
    `refusal` (401), or RateLimited (429 + Retry-After) once the address is braked."""
    # Handlers that take a credential themselves (sign-in, WebSocket) call this when it
    # is wrong, so they share the address's allowance; valid credentials never get here.
    wait = request.app[TOKENS].brake.record_failure(
        client_address(request), request.app[CLOCK].now()
    )
    if wait is None:
        return refusal
    return RateLimited(
        f"too many failed authentications from this address; retry in {wait} s", wait
    )


def client_address(request: web.Request) -> str:
    """The address the failure brake counts by: the peer, or behind a trusted proxy the
    right-most X-Forwarded-For hop that is not one of ours (settings.trusted_proxies)."""
    settings = request.app.get(SETTINGS)
    return request_client(request, settings.trusted_proxies if settings is not None else [])


async def _credential_principal(request: web.Request) -> Principal:
    """Check the bearer token or session cookie, braking addresses that keep failing."""
    registry = request.app[TOKENS]
    token = bearer_token(request)
    try:
        if token is not None:
            principal = registry.authenticate(token)
            if principal is None:
                raise Unauthorized("unknown or revoked token")
            return principal
        if SESSION_COOKIE in request.cookies:
            return await session_principal(request, csrf=True)
    except Unauthorized as refusal:
        problem = failed_authentication(request, refusal)
        if problem is refusal and token is not None:
            # Not once braked: a guesser's flood is one 429 a request, not a log line.
            log.warning(
                "refused an unknown token on %s %s from %s",
                request.method,
                request.path,
                client_address(request),
            )
        raise problem from None
    # No credential at all is not a guess: it does not count against the address.
    raise Unauthorized("missing bearer token or session cookie")


class RateLimited(TooManyRequests):
    """Too many failed authentications from one address; says when to come back."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.retry_after = retry_after


async def session_principal(request: web.Request, *, csrf: bool) -> Principal:
    """The principal behind the session cookie (and, if `csrf`, the CSRF header checked)."""
    registry = request.app[TOKENS]
    now = request.app[CLOCK].now()
    try:
        session = parse_cookie(request.cookies.get(SESSION_COOKIE, ""), registry.session_key, now)
        if csrf and request.method in UNSAFE_METHODS:
            check_csrf(session, registry.session_key, request.headers.get(CSRF_HEADER))
        principal = registry.by_token_id(session.token_id)
        if principal is None:
            raise SessionError("the token this session was opened with is revoked")
        await ensure_not_revoked(request.app[BUS], session, now)
    except CsrfRefused as exc:
        raise Forbidden(str(exc)) from exc
    except SessionStoreDown as exc:
        raise ServiceUnavailable(f"{exc}; use a bearer token") from exc
    except SessionError as exc:
        raise Unauthorized(str(exc)) from exc
    return principal


def principal_of(request: web.Request) -> Principal:
    """The authenticated caller (set by auth_middleware)."""
    return request[PRINCIPAL]
