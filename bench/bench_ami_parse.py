"""AMI parse+dispatch throughput on the recorded traces: ours vs panoramisk vs asterisk-ami.

Run: .venv/bin/python bench/bench_ami_parse.py [--seconds 1.5]
Every contender turns the same bytes into messages and hands each event to a
handler that reads one field (``Uniqueid``), in 64 KiB reads as a socket gives.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.ami.dispatch import EventDispatcher  # noqa: E402
from adapters.ami.protocol import AmiMessage, AmiParser  # noqa: E402

TRACE_DIR = ROOT / "tests" / "fixtures" / "ami"
CHUNK = 64 * 1024
CALL_EVENTS = {"Newchannel", "Newstate", "DialBegin", "DialEnd", "BridgeEnter", "Hangup", "Cdr"}


def chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def load() -> list[list[bytes]]:
    return [chunks(p.read_bytes()) for p in sorted(TRACE_DIR.glob("*.txt"))]


def ours(traces: list[list[bytes]], filtered: bool = False) -> int:
    """Our parser + dispatcher; ``filtered`` subscribes to call events only.

    Returns events handled plus events skipped unparsed, i.e. stream events
    processed, so the filtered row is comparable with the others.
    """
    seen = 0

    def handler(msg: AmiMessage) -> None:
        nonlocal seen
        msg.get("Uniqueid")
        seen += 1

    dispatcher = EventDispatcher()
    for name in CALL_EVENTS if filtered else ("*",):
        dispatcher.on(name, handler)
    for trace in traces:
        parser = AmiParser(wanted=dispatcher.wants if filtered else None)
        for data in trace:
            for msg in parser.feed(data):
                dispatcher.dispatch(msg)
        seen += parser.stats.skipped_unwanted
    return seen


def panoramisk_parser(traces: list[list[bytes]]) -> int:
    """panoramisk 1.4's AMIProtocol.data_received -> handle_message -> dispatch."""
    from panoramisk.ami_protocol import AMIProtocol

    seen = 0

    class Factory:
        save_stream = None

        def dispatch(self, event: Any) -> None:
            nonlocal seen
            event.get("Uniqueid")
            seen += 1

    for trace in traces:
        proto = AMIProtocol()
        proto.connection_made(None)
        proto.factory = Factory()
        for data in trace:
            proto.data_received(data)
    return seen


def asterisk_ami_read(traces: list[list[bytes]]) -> int:
    """asterisk-ami 0.1.7's Event.read / Response.read on packets we split for it."""
    from asterisk.ami.event import Event
    from asterisk.ami.response import Response

    seen = 0
    handlers: dict[str, Callable[[Any], None]] = {}

    def handler(event: Any) -> None:
        nonlocal seen
        event.keys.get("Uniqueid")
        seen += 1

    for trace in traces:
        buf = b""
        first = True
        for data in trace:
            buf += data
            if first:
                _, _, buf = buf.partition(b"\r\n")  # the banner line
                first = False
            *packets, buf = buf.split(b"\r\n\r\n")
            for raw in packets:
                pack = raw.decode("utf-8")
                if Response.match(pack):
                    Response.read(pack)
                elif Event.match(pack):
                    event = Event.read(pack)
                    handlers.get(event.name, handler)(event)
    return seen


Contender = Callable[[list[list[bytes]]], int]


def ours_all_fields(traces: list[list[bytes]]) -> int:
    """Ours when the handler reads every header: each lazy message is fully split."""
    seen = 0

    def handler(msg: AmiMessage) -> None:
        nonlocal seen
        seen += len(msg.headers) - len(msg.headers)  # materialise the header list
        msg.get("Uniqueid")
        seen += 1

    dispatcher = EventDispatcher()
    dispatcher.on("*", handler)
    for trace in traces:
        parser = AmiParser()
        for data in trace:
            for msg in parser.feed(data):
                dispatcher.dispatch(msg)
    return seen


def one_round(fn: Contender, traces: list[list[bytes]], secs: float) -> float:
    events = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < secs:
        events += fn(traces)
    return events / elapsed


def measure_all(
    rows: list[tuple[str, Contender]], traces: list[list[bytes]], secs: float, rounds: int
) -> dict[str, float]:
    """Best rate per contender over ``rounds`` interleaved rounds.

    The machine is shared: interleaving gives every contender the same
    background load, and the best round is the one least disturbed by it.
    """
    for _, fn in rows:
        fn(traces)  # warm up
    best = dict.fromkeys((label for label, _ in rows), 0.0)
    for _ in range(rounds):
        for label, fn in rows:
            best[label] = max(best[label], one_round(fn, traces, secs / rounds))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="work per contender")
    ap.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    args = ap.parse_args()
    logging.disable(logging.CRITICAL)  # panoramisk logs every message at debug level
    traces = load()
    full = "switchboard AmiParser (all events)"
    filtered = "switchboard AmiParser (call events only)"
    peers = ["panoramisk 1.4 AMIProtocol", "asterisk-ami 0.1.7 Event.read"]
    rows: list[tuple[str, Contender]] = [
        (full, ours),
        (filtered, lambda t: ours(t, filtered=True)),
        ("switchboard, handler reads every header", ours_all_fields),
        (peers[0], panoramisk_parser),
        (peers[1], asterisk_ami_read),
    ]
    rates = measure_all(rows, traces, args.seconds, args.rounds)
    total = sum(len(b"".join(t)) for t in traces)
    print(f"{len(traces)} traces, {total} bytes, {ours(traces)} events per pass")
    print(f"best of {args.rounds} interleaved rounds, {args.seconds:g} s per contender\n")
    print(f"{'parser':<44}{'events/s':>12}")
    for label, rate in rates.items():
        print(f"{label:<44}{rate:>12,.0f}")
    best_peer = max(peers, key=lambda p: rates[p])
    print(f"\nfaster peer: {best_peer}")
    for label in (full, filtered):
        print(f"{label} / faster peer: {rates[label] / rates[best_peer]:.2f}x")


if __name__ == "__main__":
    main()
