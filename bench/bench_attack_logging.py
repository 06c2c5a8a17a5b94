"""Benchmark: the log masker's throughput, and /health latency while the gateway logs a
1 MB attribute at DEBUG.

Usage: python bench/bench_attack_logging.py [--rounds 3] [--events 20] [--old-seconds 20]
                                            [--limit-seconds 60] [--old-tree DIR]

Masker: CPU time (this thread's, so other work on the machine does not count) of
masking 32 KB and 1 MB of a hostile text (one long word, what made the old patterns
quadratic) and of a typical log text (SQL with phones, e-mails, dates, channel names),
for the masker as it was before the rewrite (its patterns are copied below) and as it
is; the median of `--rounds` rounds. The old masker is stopped after `--old-seconds` of
CPU and reported as not finishing.

/health: `switchboard serve` at DEBUG on SQLite (aiosqlite logs every statement with its
parameters there) in a child process; a client polls /health every 20 ms while another
posts `--events` signed `customer.upserted` events with a 1 MB attribute, one after the
other. p50/p99/max of the /health answers, median of `--rounds` fresh servers, and the
same with no attack; a /health not answered within `--limit-seconds` ends the round
(reported as inf). `--old-tree DIR` runs the server from another checkout (e.g.
`git worktree add DIR 1dc6915`) to measure the code before the fix.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crm_sync.signature import HEADER, sign
from gateway.core.log_masking import mask_pii
from tests.support.databases import copy_sqlite, create_sqlite_template

REPO = Path(__file__).resolve().parents[1]
SECRET = "bench-webhook-secret"
CLI_MAIN = "import sys; from gateway.cli import main; sys.exit(main(sys.argv[1:]))"

# The masker before the rewrite (gateway/logs.py at 1dc6915), for the "before" figures.
_OLD_PHONE = re.compile(r"(?<![\w/])\+?\d[\d\s\-().]{5,}\d(?![\w])")
_OLD_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
_OLD_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_OLD_NOT_A_PHONE = re.compile(
    rf"\d{{4}}-\d{{2}}-\d{{2}}.*|\d+\.\d+|{_OLD_OCTET}(?:\.{_OLD_OCTET}){{3}}"
)


def old_mask_pii(text: str) -> str:
    """The old masker (phones: the old mask_phone is equivalent to today's)."""
    from gateway.core.log_masking import mask_phone

    def phone(match: re.Match[str]) -> str:
        found = match.group(0)
        return found if _OLD_NOT_A_PHONE.fullmatch(found) else mask_phone(found)

    text = _OLD_EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _OLD_PHONE.sub(phone, text)


TYPICAL = (
    "2026-12-07 17:18:17,123 DEBUG aiosqlite: executing functools.partial(<built-in method "
    "execute>, 'INSERT INTO customers (id, name, email) VALUES (?, ?, ?)', ('cus_0641a2b3c4d5"
    "e6f7a8b9c0d1', 'Олена', 'olena.k@bank.ua')) caller +380671234567 on PJSIP/201-0000001a "
    "uid 1733600051.42 from 203.0.113.5 phone 067 123 45 67 "
)


class OutOfTime(Exception):
    """The CPU budget ran out."""


@contextmanager
def cpu_budget(seconds: float) -> Iterator[None]:
    """Stop the body after `seconds` of process CPU (regex matching checks signals)."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise OutOfTime

    previous = signal.signal(signal.SIGPROF, expire)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def cpu_time(mask: Callable[[str], str], text: str, budget: float) -> float | None:
    """Seconds of this thread's CPU to mask `text`, or None past `budget`."""
    started = time.thread_time()
    try:
        with cpu_budget(budget):
            mask(text)
    except OutOfTime:
        return None
    return time.thread_time() - started


def masker_figures(rounds: int, old_budget: float) -> None:
    """Print the masker's throughput before and after, on hostile and typical text."""
    print("masker throughput (CPU time, median of rounds):")
    for kind, unit in (("hostile", "a"), ("typical", TYPICAL)):
        for size in (32 * 1024, 1024 * 1024):
            text = (unit * (size // len(unit) + 1))[:size]
            row = []
            for name, mask, budget in (
                ("before", old_mask_pii, old_budget),
                ("after", mask_pii, 600.0),
            ):
                times = []
                for _ in range(rounds):
                    spent = cpu_time(mask, text, budget)
                    times.append(spent)
                    if spent is None:
                        break  # one run past the budget says enough
                if any(t is None for t in times):
                    row.append(f"{name}: > {budget:.0f} s (stopped)")
                else:
                    median = statistics.median(t for t in times if t is not None)
                    row.append(f"{name}: {median * 1000:9.1f} ms {size / median / 1e6:7.2f} MB/s")
            print(f"  {kind:8s} {size // 1024:5d} KB  " + "   ".join(row))


def free_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def attack_body(n: int) -> bytes:
    """A signed-to-be `customer.upserted` with a 1 MB attribute."""
    event = {
        "id": f"evt-bench-attack-{n}",
        "type": "customer.upserted",
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data": {
            "external_id": f"C-ATTACK-{n}",
            "name": "Mallory",
            "attributes": {"note": "a" * 1_000_000},
        },
    }
    return json.dumps(event).encode()


async def health_during(port: int, events: int, limit: float) -> list[float]:
    """/health answer times (ms) while `events` attack events are posted (0: none, 3 s);
    an answer not given within `limit` seconds counts as infinite and ends the run."""
    base = f"http://127.0.0.1:{port}"
    stop = asyncio.Event()
    times: list[float] = []

    async def poll() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=limit)) as session:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    async with session.get(f"{base}/health") as response:
                        await response.read()
                except TimeoutError:
                    times.append(float("inf"))
                    return
                times.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.02)

    async def attack() -> None:
        async with aiohttp.ClientSession() as session:
            for n in range(events):
                body = attack_body(n)
                headers = {HEADER: sign(SECRET, body, int(time.time()))}
                headers["Content-Type"] = "application/json"
                async with session.post(f"{base}/crm/events", data=body, headers=headers) as reply:
                    await reply.read()
                    if reply.status != 200:
                        print(f"  attack event answered {reply.status}")

    poller = asyncio.create_task(poll())
    await asyncio.sleep(0.5)
    try:
        await asyncio.wait_for(attack() if events else asyncio.sleep(3), limit)
        await asyncio.sleep(0.5)
    except TimeoutError:
        print(f"  the attack was not answered within {limit:.0f} s")
    stop.set()
    await poller
    return times


def serve_and_measure(
    template: Path, events: int, old_tree: Path | None, limit: float, level: str
) -> list[float]:
    """A fresh gateway logging at `level` on a copy of the SQLite template; /health times."""
    with tempfile.TemporaryDirectory() as directory:
        url = copy_sqlite(template, Path(directory))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        env.update(
            SWITCHBOARD_CONFIG="",
            SWITCHBOARD_DATABASE_URL=url,
            SWITCHBOARD_CRM_WEBHOOK_SECRET=SECRET,
            SWITCHBOARD_LOG_LEVEL=level,
        )
        if old_tree is not None:
            env["PYTHONPATH"] = str(old_tree)
        with open(Path(directory) / "gateway.log", "w") as log:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
                [sys.executable, "-c", CLI_MAIN, "serve", "--port", str(port)],
                env=env,
                cwd=old_tree or REPO,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        try:
            assert process.stdout is not None
            while "Switchboard console:" not in (line := process.stdout.readline()):
                if not line:
                    raise RuntimeError("the gateway did not start")
            return asyncio.run(health_during(port, events, limit))
        finally:
            process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def health_figures(
    rounds: int, events: int, old_tree: Path | None, limit: float, level: str
) -> None:
    """Print /health p50/p99/max with and without the attack."""
    with tempfile.TemporaryDirectory() as directory:
        template = create_sqlite_template(Path(directory))
        print(f"/health at {level} on SQLite{' (old tree)' if old_tree else ''}, ms:")
        for label, count in (("no attack", 0), (f"{events} x 1 MB attribute", events)):
            p50s, p99s, maxes = [], [], []
            for _ in range(rounds):
                times = serve_and_measure(template, count, old_tree, limit, level)
                p50s.append(percentile(times, 0.5))
                p99s.append(percentile(times, 0.99))
                maxes.append(max(times))
                if maxes[-1] == float("inf"):
                    break  # a frozen gateway says enough
            print(
                f"  {label:22s} p50 {statistics.median(p50s):7.1f}  "
                f"p99 {statistics.median(p99s):7.1f}  max {statistics.median(maxes):7.1f}"
                f"  ({len(times)} answers in the last round; inf: none within {limit:.0f} s)"
            )


def main(argv: list[str] | None = None) -> None:
    """Run both measurements and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--limit-seconds", type=float, default=60.0)
    parser.add_argument("--old-seconds", type=float, default=20.0)
    parser.add_argument("--old-tree", type=Path, default=None)
    parser.add_argument("--skip-masker", action="store_true")
    parser.add_argument("--log-level", default="DEBUG", help="INFO shows the attack's own cost")
    args = parser.parse_args(argv)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not args.skip_masker:
        masker_figures(args.rounds, args.old_seconds)
    health_figures(args.rounds, args.events, args.old_tree, args.limit_seconds, args.log_level)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
