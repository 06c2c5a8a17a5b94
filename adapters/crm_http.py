"""REST client to the CRM: POSTs one prepared activity to `<base>/activities`.

It knows HTTP and nothing of ours: the caller hands it the body bytes and headers
(signature, idempotency key) and gets back the status or one of this module's errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

import aiohttp

# Statuses that say "try again later" rather than "this request is wrong".
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})
_ERROR_EXCERPT = 300


class CrmError(Exception):
    """Base class of every CRM adapter error."""

    retryable = True


class CrmUnavailable(CrmError):
    """The CRM could not be reached or did not answer in time."""


class CrmHttpError(CrmError):
    """The CRM answered with a non-2xx status."""

    def __init__(self, status: int, retryable: bool, detail: str = "") -> None:
        """Keep the status, whether it may succeed later, and an excerpt of the answer."""
        super().__init__(f"CRM answered HTTP {status}" + (f": {detail}" if detail else ""))
        self.status = status
        self.retryable = retryable
        self.detail = detail


def is_retryable_status(status: int) -> bool:
    """5xx and the few 4xx that mean "later" may succeed on a retry."""
    return status >= 500 or status in RETRYABLE_STATUSES


class CrmClient:
    """One connection pool to the CRM's REST API; use as an async context manager."""

    def __init__(self, base_url: str, *, timeout_seconds: float, token: str | None = None) -> None:
        """Point at the CRM's API root; `token` is sent as a bearer credential."""
        self.activities_url = base_url.rstrip("/") + "/activities"
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._token = token
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Open the connection pool (idempotent)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def __aenter__(self) -> CrmClient:
        """Open the connection pool."""
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the connection pool."""
        await self.close()

    async def close(self) -> None:
        """Close the connection pool (idempotent)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post_activity(self, body: bytes, headers: Mapping[str, str]) -> int:
        """POST `body` to /activities; returns the 2xx status or raises a CrmError."""
        if self._session is None:
            raise CrmUnavailable("CRM client is not open")
        sent = {"Content-Type": "application/json", **headers}
        if self._token:
            sent["Authorization"] = f"Bearer {self._token}"
        try:
            async with self._session.post(self.activities_url, data=body, headers=sent) as resp:
                if 200 <= resp.status < 300:
                    await resp.read()
                    return resp.status
                detail = (await resp.text(errors="replace"))[:_ERROR_EXCERPT]
                raise CrmHttpError(resp.status, is_retryable_status(resp.status), detail)
        except TimeoutError as exc:
            raise CrmUnavailable("CRM did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise CrmUnavailable(f"CRM unreachable: {exc.__class__.__name__}: {exc}") from exc
