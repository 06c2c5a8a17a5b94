"""The console's session cookie and its CSRF token.

Choice: the cookie is signed, not stored. Its value is `sid.token_id.expires.mac` where
the MAC is HMAC-SHA256 under a key derived from every configured API token's digest, so
all instances sharing `SWITCHBOARD_API_TOKENS` accept each other's sessions without a
shared session table, and changing the token list ends every session. The cookie names
the token it was exchanged for (by its digest prefix), so revoking that token ends its
sessions too, and role and agent are always read from the current registry.

Signing out marks the session id as revoked on the bus (Redis with several instances)
until the cookie would have expired, so a copied cookie dies with the sign-out.

CSRF: a synchronizer token derived from the session id (HMAC under the same key), handed
to the page in JSON; every POST/PUT/PATCH/DELETE authenticated by the cookie must carry
it in `X-CSRF-Token`. The cookie is also `SameSite=Strict` and `HttpOnly`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from gateway.core.bus import Bus, BusError

SESSION_COOKIE = "sb_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_SECONDS = 12 * 3600  # a working shift and some; then sign in again
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_KEY_LABEL = b"switchboard/console-session/v1"


class SessionError(Exception):
    """A session cookie or CSRF token that does not hold."""


class CsrfRefused(SessionError):
    """A state-changing request with the cookie but without its CSRF token."""


class SessionStoreDown(SessionError):
    """The bus that keeps sign-outs cannot be reached, so a cookie cannot be trusted."""


def session_key(token_digests: list[str]) -> bytes:
    """The signing key: HMAC of every configured token's digest (order-free)."""
    material = "\n".join(sorted(token_digests)).encode()
    return hmac.new(_KEY_LABEL, material, hashlib.sha256).digest()


@dataclass(frozen=True)
class Session:
    """A verified cookie: who it was issued to and until when."""

    sid: str
    token_id: str
    expires: int

    def csrf_token(self, key: bytes) -> str:
        """The CSRF token bound to this session."""
        return _mac(key, f"csrf|{self.sid}")

    def cookie_value(self, key: bytes) -> str:
        """The signed cookie value."""
        body = f"{self.sid}.{self.token_id}.{self.expires}"
        return f"{body}.{_mac(key, 'session|' + body)}"


def _mac(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def new_session(token_id: str, now: datetime) -> Session:
    """A fresh session for the token with digest prefix `token_id`."""
    # token_hex has no dots, which separate the cookie's fields.
    return Session(secrets.token_hex(16), token_id, int(now.timestamp()) + SESSION_SECONDS)


def parse_cookie(value: str, key: bytes, now: datetime) -> Session:
    """Verify the MAC and the expiry; raise SessionError otherwise."""
    parts = value.split(".")
    if len(parts) != 4:
        raise SessionError("malformed session cookie")
    sid, token_id, expires, mac = parts
    if not hmac.compare_digest(mac, _mac(key, f"session|{sid}.{token_id}.{expires}")):
        raise SessionError("session cookie signature does not match")
    if not expires.isdigit() or int(expires) <= now.timestamp():
        raise SessionError("session expired; sign in again")
    return Session(sid, token_id, int(expires))


def check_csrf(session: Session, key: bytes, header: str | None) -> None:
    """Refuse a state-changing request without the session's CSRF token."""
    if not header:
        raise CsrfRefused(f"missing {CSRF_HEADER} header (required with the session cookie)")
    if not hmac.compare_digest(header, session.csrf_token(key)):
        raise CsrfRefused(f"{CSRF_HEADER} does not match this session")


def _revoked_key(sid: str) -> str:
    return f"session-revoked:{sid}"


async def revoke(bus: Bus, session: Session, now: datetime) -> None:
    """Remember the sign-out until the cookie would have expired anyway."""
    # The marker is never taken, only read (ensure_not_revoked) until it expires with
    # the cookie: one write, so there is no moment at which a signed-out cookie passes.
    ttl = max(1.0, session.expires - now.timestamp())
    try:
        await bus.put_once(_revoked_key(session.sid), "1", ttl)
    except BusError as exc:
        raise SessionStoreDown(f"session store unreachable: {exc}") from exc


async def ensure_not_revoked(bus: Bus, session: Session, now: datetime) -> None:
    """Raise SessionError for a signed-out session; SessionStoreDown when the bus is out."""
    # A plain read: concurrent requests with the same cookie all see the marker (taking
    # it and putting it back let the requests in between through, and an error between
    # the two lost the sign-out for good).
    try:
        marker = await bus.peek(_revoked_key(session.sid))
    except BusError as exc:
        raise SessionStoreDown(f"session store unreachable: {exc}") from exc
    if marker is not None:
        raise SessionError("signed out; sign in again")
