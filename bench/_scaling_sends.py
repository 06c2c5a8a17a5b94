"""The campaign-send workload of the scaling benchmark: a campaign's due SMS contacts
written at once (as a tick writes them), drained by every instance's send worker through
the official Twilio SDK to the local stub, which counts what it got per contact.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from urllib.parse import parse_qs, urlsplit

import asyncpg

from bench._cluster import TWILIO_ACCOUNT, TWILIO_TOKEN
from bench._telephony import asyncpg_dsn
from tests.support.twilio_stub import TwilioStub

TEXT = "Нагадуємо про платіж до 05.12. Дякуємо, що ви з нами!"
FINAL = ("sent", "delivered", "undelivered", "failed", "skipped", "unknown")


def _serve_stub(latency: float, pipe: Connection) -> None:
    """Child process: the Twilio stub; answers 'count' with the creates per contact."""

    async def main() -> None:
        stub = TwilioStub(TWILIO_ACCOUNT, TWILIO_TOKEN, latency=latency, record_requests=False)
        pipe.send(await stub.start())
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(None, pipe.recv) == "count":
            creates: Counter[str] = Counter()
            for message in stub.messages.values():
                query = parse_qs(urlsplit(message.status_callback or "").query)
                creates.update(query.get("contact", ["?"]))
            pipe.send(dict(creates))
        await stub.close()

    asyncio.run(main())


class StubProcess:
    """The stub in its own process (its CPU is not the gateways'), counting creates."""

    def __init__(self, latency: float) -> None:
        """Start it; `base_url` is where the SDK should point."""
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process: BaseProcess = context.Process(
            target=_serve_stub, args=(latency, child), daemon=True
        )
        self._process.start()
        self.base_url: str = self._pipe.recv()

    def creates(self) -> Counter[str]:
        """How many messages the stub created for each contact id so far."""
        self._pipe.send("count")
        return Counter(self._pipe.recv())

    def stop(self) -> None:
        """Stop and join the process."""
        self._pipe.send("stop")
        self._process.join(10)


@dataclass
class SendFigures:
    """One run: rates, outcome counts, the stub's count, who sent how many."""

    messages: int = 0
    drained_seconds: float = 0.0  # contacts committed -> last one final
    span_seconds: float = 0.0  # first sent_at -> last sent_at
    statuses: Counter[str] = field(default_factory=Counter)
    senders: Counter[str] = field(default_factory=Counter)
    received_once: int = 0
    received_twice_or_more: int = 0
    never_received: int = 0

    @property
    def rate(self) -> float:
        """Steady throughput: messages over the first-to-last send span."""
        return (self.messages - 1) / self.span_seconds if self.span_seconds else 0.0

    @property
    def exactly_once(self) -> bool:
        """Every contact sent, and the stub got each exactly once."""
        return (
            self.statuses.get("sent", 0) == self.messages
            and self.received_once == self.messages
            and not self.received_twice_or_more
            and not self.never_received
        )


async def write_due_contacts(url: str, prefix: str, messages: int, customers: int) -> float:
    """COPY `messages` pending SMS contacts of one campaign; returns the commit's time."""
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        (
            f"{prefix}{n:08d}",
            f"campaign:{prefix}:cus_{n % customers:012d}:hello:{n}",
            "sms",
            f"cus_{n % customers:012d}",
            f"cmp_{prefix}",
            "campaign",
            TEXT,
            json.dumps({}),
            "pending",
            0,
            False,
            now,
            now,
        )
        for n in range(messages)
    ]
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await connection.copy_records_to_table(
            "outbound_contacts",
            records=rows,
            columns=[
                "id",
                "idempotency_key",
                "channel",
                "customer_id",
                "campaign_id",
                "source",
                "body",
                "variables",
                "status",
                "attempts",
                "sandbox",
                "created_at",
                "updated_at",
            ],
        )
    finally:
        await connection.close()
    return time.perf_counter()


async def measure_sends(
    url: str, stub: StubProcess, prefix: str, messages: int, customers: int, timeout: float
) -> SendFigures:
    """Write the contacts, wait until every one is final, count both ends."""
    committed = await write_due_contacts(url, prefix, messages, customers)
    figures = SendFigures(messages=messages)
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = await connection.fetchval(
                "SELECT count(*) FROM outbound_contacts WHERE campaign_id = $1"
                " AND status = any($2::text[])",
                f"cmp_{prefix}",
                list(FINAL),
            )
            if done == messages:
                break
            await asyncio.sleep(0.05)
        figures.drained_seconds = time.perf_counter() - committed
        for row in await connection.fetch(
            "SELECT status, claimed_by, count(*) AS n FROM outbound_contacts"
            " WHERE campaign_id = $1 GROUP BY status, claimed_by",
            f"cmp_{prefix}",
        ):
            figures.statuses[row["status"]] += row["n"]
            figures.senders[row["claimed_by"] or "-"] += row["n"]
        span = await connection.fetchval(
            "SELECT extract(epoch FROM max(sent_at) - min(sent_at)) FROM outbound_contacts"
            " WHERE campaign_id = $1",
            f"cmp_{prefix}",
        )
        figures.span_seconds = float(span or 0)
    finally:
        await connection.close()
    creates = await asyncio.to_thread(stub.creates)
    ours = [f"{prefix}{n:08d}" for n in range(messages)]
    figures.received_once = sum(1 for c in ours if creates.get(c) == 1)
    figures.received_twice_or_more = sum(1 for c in ours if creates.get(c, 0) > 1)
    figures.never_received = sum(1 for c in ours if c not in creates)
    return figures
