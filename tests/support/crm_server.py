"""A real HTTP server on loopback playing the CRM's `POST /activities` endpoint.

It verifies our signature like a CRM would, records every request, and can misbehave:
answer a share of requests with 500, hang past the client's timeout (never applying
the activity), or apply it and then hang (the lost-answer case that makes delivery
at-least-once); chosen event ids get a permanent 4xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from crm_sync.signature import HEADER, SignatureError, verify

Failure = Literal["500", "timeout", "late"]


@dataclass
class Received:
    """One request as the CRM saw it."""

    event_id: str
    type: str
    data: dict[str, Any]
    idempotency_key: str | None
    authorization: str | None
    signature_ok: bool
    answered: int  # the status sent, or 0 when the client was left hanging
    applied: bool  # whether the CRM acted on it (2xx, or "late")


@dataclass
class CrmServer:
    """The fake CRM; `url` is its API base once started."""

    secret: str
    now: Callable[[], float]
    token: str | None = None
    fail_share: float = 0.0
    failures: tuple[Failure, ...] = ("500",)
    permanent: dict[str, int] = field(default_factory=dict)
    delay_seconds: float = 0.0
    hang_seconds: float = 5.0
    seed: int = 7
    received: list[Received] = field(default_factory=list)
    max_parallel: Counter[str] = field(default_factory=Counter)
    url: str = ""

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._in_flight: Counter[str] = Counter()
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        """Listen on 127.0.0.1, a free port; returns the API base URL."""
        app = web.Application()
        app.router.add_post("/activities", self._activities)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        """Release hanging requests and stop."""
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> CrmServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def applied_ids(self, data_key: str | None = None, value: str | None = None) -> list[str]:
        """Event ids the CRM acted on, in arrival order (optionally for one data value)."""
        return [
            r.event_id
            for r in self.received
            if r.applied and (data_key is None or r.data.get(data_key) == value)
        ]

    async def _hang(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._release.wait(), self.hang_seconds)

    async def _activities(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            verify(self.secret, raw, request.headers.get(HEADER), self.now())
            signature_ok = True
        except SignatureError:
            signature_ok = False
        body = json.loads(raw)
        record = Received(
            event_id=body["id"],
            type=body["type"],
            data=body["data"],
            idempotency_key=request.headers.get("Idempotency-Key"),
            authorization=request.headers.get("Authorization"),
            signature_ok=signature_ok,
            answered=0,
            applied=False,
        )
        self.received.append(record)
        event_id = record.event_id
        self._in_flight[event_id] += 1
        self.max_parallel[event_id] = max(self.max_parallel[event_id], self._in_flight[event_id])
        try:
            if self.delay_seconds:
                await asyncio.sleep(self.delay_seconds)
            if not signature_ok:
                record.answered = 401
                return web.json_response({"error": "bad signature"}, status=401)
            if event_id in self.permanent:
                record.answered = self.permanent[event_id]
                return web.json_response({"error": "rejected"}, status=record.answered)
            if self._rng.random() < self.fail_share:
                failure = self._rng.choice(self.failures)
                if failure == "500":
                    record.answered = 500
                    return web.json_response({"error": "try later"}, status=500)
                record.applied = failure == "late"
                await self._hang()
                return web.json_response({"error": "too late"}, status=504)
            record.applied = True
            record.answered = 201
            return web.json_response({"ok": True}, status=201)
        finally:
            self._in_flight[event_id] -= 1
