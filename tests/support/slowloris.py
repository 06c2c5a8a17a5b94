"""A slowloris attacker, run as a child process so that its thousands of sockets and tasks
never share an event loop (or a descriptor table) with the client that measures the
gateway.

    python -m tests.support.slowloris PORT ADDRESS[,ADDRESS…] PER_ADDRESS [WAIT_S [PACE_S]]

Every source address opens PER_ADDRESS connections (100 connects every PACE_S), each sending
part of a request line, part of the headers, or a head and part of its body, then reads
until the server closes the connection or WAIT_S pass. Prints one JSON object: how many
connections were closed by the server, answered 503, failed to connect, or were still
open at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections import Counter

from tests.support.cli_process import REPO

PARTIAL_REQUESTS = (
    b"GET /health HTT",  # a partial request line
    b"GET /health HTTP/1.1\r\nHost: gateway\r\nX-Slow: ",  # partial headers
    b"POST /api/session HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
    b"Content-Length: 500\r\n\r\n{",  # a body that never arrives
)
BATCH = 100


async def half_open(address: str, port: int, partial: bytes, wait_s: float) -> str:
    """One connection; returns how it ended."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))
    except OSError:
        return "connect failed"
    try:
        writer.write(partial)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        try:
            answer = await asyncio.wait_for(reader.read(), wait_s)
        except TimeoutError:
            return "still open"
        except ConnectionError:
            return "closed"
        if answer.startswith(b"HTTP/1.1 503"):
            return "503"
        return "closed" if answer == b"" else "answered"
    finally:
        writer.close()


async def attack(
    port: int, addresses: list[str], per_address: int, wait_s: float, pace_s: float = 0.05
) -> Counter[str]:
    """Run the whole attack; the tally of outcomes."""
    jobs = [
        (address, PARTIAL_REQUESTS[n % len(PARTIAL_REQUESTS)])
        for n in range(per_address)
        for address in addresses
    ]
    tasks: list[asyncio.Task[str]] = []
    for start in range(0, len(jobs), BATCH):
        for address, partial in jobs[start : start + BATCH]:
            tasks.append(asyncio.create_task(half_open(address, port, partial, wait_s)))
        await asyncio.sleep(pace_s)
    return Counter(await asyncio.gather(*tasks))


async def run_attacker(
    port: int, addresses: list[str], per_address: int, wait_s: float, pace_s: float = 0.05
) -> dict[str, int]:
    """Run the attack in a child process and wait for its tally."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.slowloris",
        str(port),
        ",".join(addresses),
        str(per_address),
        str(wait_s),
        str(pace_s),
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, f"the attacker failed: {out!r}"
    tally: dict[str, int] = json.loads(out)
    return tally


def main(argv: list[str]) -> int:
    """Command line: see the module docstring."""
    port, addresses, per_address = int(argv[0]), argv[1].split(","), int(argv[2])
    wait_s = float(argv[3]) if len(argv) > 3 else 20.0
    pace_s = float(argv[4]) if len(argv) > 4 else 0.05
    print(json.dumps(dict(asyncio.run(attack(port, addresses, per_address, wait_s, pace_s)))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
