"""Benchmark: e-mails through the email channel to aiosmtpd on loopback.

Usage: python bench/bench_email.py [COUNT] [--rounds N]
Prints messages/s with one reused SMTP session and with one session per message, the
sessions the server saw for each, and the server's message count (nothing lost). The
server runs in its own process so it does not share the event loop or the GIL with
the client being measured. Rounds alternate the two modes; the best round is shown.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from channels.base import Outgoing
from channels.email import email_channel_from_settings
from gateway.settings import Settings

REPO = Path(__file__).resolve().parents[1]
# The test sink in a process of its own: prints its port, then on each stdin line the
# sessions it accepted and the messages it recorded (and forgets the messages).
SERVER = """
import asyncio, sys
from tests.support.smtp_sink import SmtpSink

async def main():
    sink = await SmtpSink().start()
    print(sink.port, flush=True)
    loop = asyncio.get_running_loop()
    while await loop.run_in_executor(None, sys.stdin.readline):
        print(sink.connections, len(sink.messages), flush=True)
        sink.connections = 0
        sink.messages.clear()
    await sink.stop()

asyncio.run(main())
"""


def message(n: int) -> Outgoing:
    """A typical campaign mail: text and HTML, List-Unsubscribe."""
    return Outgoing(
        contact_id=f"msg_{n:06d}",
        idempotency_key=f"bench:{n}",
        channel="email",
        to=f"client{n}@example.com",
        subject="Ваш бонус чекає на вас",
        text="Вітаємо! На вашому рахунку 250 бонусів.\n" * 8,
        html="<p>Вітаємо! На вашому рахунку <b>250</b> бонусів.</p>\n" * 8,
        customer_id=f"cus_{n:06d}",
        campaign_id="cmp_bench",
    )


async def run_mode(settings: Settings, count: int, reuse: bool) -> float:
    """Send `count` messages one after another; returns messages per second."""
    channel = email_channel_from_settings(settings, reuse=reuse)
    started = time.perf_counter()
    try:
        for n in range(count):
            await channel.send(message(n))
    finally:
        await channel.close()
    return count / (time.perf_counter() - started)


def compose_rate(settings: Settings, count: int) -> float:
    """Messages per second for building the MIME bytes alone (no network)."""
    channel = email_channel_from_settings(settings)
    started = time.perf_counter()
    for n in range(count):
        channel.compose(message(n))[0].as_bytes()
    return count / (time.perf_counter() - started)


async def main() -> None:
    """Start the server process, alternate the modes, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVER,
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert server.stdin is not None and server.stdout is not None
    port = int(await server.stdout.readline())
    settings = Settings(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=False,
        smtp_from="Bench <bench@shop.example>",
        public_url="https://switchboard.example",
        crm_webhook_secret="bench-secret",
    )

    async def server_counts() -> tuple[int, int]:
        assert server.stdin is not None and server.stdout is not None
        server.stdin.write(b"count\n")
        await server.stdin.drain()
        sessions, messages = (await server.stdout.readline()).split()
        return int(sessions), int(messages)

    best: dict[bool, float] = {True: 0.0, False: 0.0}
    seen: dict[bool, tuple[int, int]] = {}
    try:
        await run_mode(settings, 50, True)  # warm up imports, TLS-free code paths, caches
        await server_counts()
        for _ in range(args.rounds):
            for reuse in (True, False):
                rate = await run_mode(settings, args.count, reuse)
                seen[reuse] = await server_counts()
                best[reuse] = max(best[reuse], rate)
    finally:
        server.stdin.close()
        await server.wait()

    print(
        f"{args.count} e-mails (text + HTML, List-Unsubscribe) to aiosmtpd on loopback, "
        f"best of {args.rounds} rounds"
    )
    for reuse, label in ((True, "one reused session"), (False, "a session per message")):
        sessions, received = seen[reuse]
        print(
            f"  {label:<24} {best[reuse]:8.0f} msg/s   ({sessions} session(s), {received} received)"
        )
    print(f"  reuse speed-up: {best[True] / best[False]:.1f}x")
    print(
        f"  (composing alone: {compose_rate(settings, args.count):.0f} msg/s; the stdlib "
        "email API's header folding is most of the per-message cost)"
    )


if __name__ == "__main__":
    asyncio.run(main())
