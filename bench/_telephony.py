"""Shared pieces of the telephony benchmarks: a loaded PostgreSQL database, the whole
gateway in a child process wired to a simulator, an observable simulator, percentiles.

Timestamps cross the process boundary: on Linux `time.perf_counter()` is
CLOCK_MONOTONIC, one clock for every process on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import gc
import inspect
import json
import logging
import multiprocessing
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.bench_phone_lookup import load as load_customers
from bench.bench_webhook_ingest import free_port
from gateway.pbx_simulator import SimulatorServer
from tests.support.databases import create_postgres_database, drop_postgres_database

ADMIN_TOKEN = "bench-admin-token-0123456789"
AMI_USER, AMI_SECRET = "bench", "bench-secret"
Fields = list[tuple[str, str]]

# The agents table as the benches COPY into it.
AGENT_COLUMNS = [
    "id",
    "agent_id",
    "name",
    "extensions",
    "skills",
    "regions",
    "active",
    "created_at",
    "updated_at",
]


def asyncpg_dsn(url: str) -> str:
    """The asyncpg form of a SQLAlchemy URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://")


@dataclass(frozen=True)
class LoadedDatabase:
    """A throwaway database with customers and agents in it."""

    url: str
    known: list[str]  # national numbers (9 digits) some customer has
    shared: list[str]  # E.164 numbers two or more customers have


def prepare_database(customers: int, seed: int, extensions: Sequence[str]) -> LoadedDatabase:
    """Create and migrate a database, COPY the customers in, add one agent per extension."""
    url = create_postgres_database()

    async def fill() -> LoadedDatabase:
        known = await load_customers(url, customers, seed)
        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            now = datetime.now(UTC).replace(tzinfo=None)
            empty = (json.dumps([]), json.dumps([]), True)
            await connection.copy_records_to_table(
                "agents",
                records=[
                    (
                        f"agt_{ext}",
                        f"agent-{ext}",
                        f"Оператор {ext}",
                        json.dumps([ext]),
                        *empty,
                        now,
                        now,
                    )
                    for ext in extensions
                ],
                columns=AGENT_COLUMNS,
            )
            await connection.copy_records_to_table(
                "agent_extensions",
                records=[(ext, f"agt_{ext}") for ext in extensions],
                columns=["extension", "agent_id"],
            )
            shared = await connection.fetch(
                "SELECT e164 FROM customer_phones GROUP BY e164 HAVING count(*) > 1 LIMIT 2000"
            )
        finally:
            await connection.close()
        return LoadedDatabase(url, known, [row["e164"] for row in shared])

    return asyncio.run(fill())


def reuse_database(url: str) -> LoadedDatabase:
    """A database an earlier run kept (`--keep`): its numbers are sampled back from it."""

    async def sample() -> LoadedDatabase:
        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            known = await connection.fetch(
                "SELECT last_digits FROM customer_phones TABLESAMPLE SYSTEM (1) LIMIT 2000"
            )
            shared = await connection.fetch(
                "SELECT e164 FROM customer_phones GROUP BY e164 HAVING count(*) > 1 LIMIT 2000"
            )
        finally:
            await connection.close()
        return LoadedDatabase(
            url, [row["last_digits"] for row in known], [row["e164"] for row in shared]
        )

    return asyncio.run(sample())


def add_database_options(parser: argparse.ArgumentParser) -> None:
    """--seed, --keep and --database-url: which loaded database a bench measures on."""
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the database; print its URL")
    parser.add_argument("--database-url", help="reuse a database kept by an earlier --keep run")


@contextlib.contextmanager
def loaded_database(
    args: argparse.Namespace, extensions: Sequence[str]
) -> Iterator[LoadedDatabase]:
    """The database `--database-url` names, else a new one of `--customers`; dropped after
    unless kept (a kept one's URL is printed, to pass back as --database-url)."""
    if args.database_url:
        db = reuse_database(args.database_url)
    else:
        db = prepare_database(args.customers, args.seed, extensions)
    try:
        yield db
    finally:
        if args.keep or args.database_url:
            print(f"  database kept: --database-url {db.url}")
        else:
            drop_postgres_database(db.url)


# -- the gateway in a child process --------------------------------------------------------
@dataclass(frozen=True)
class GatewayConfig:
    """What the child process needs to run the gateway."""

    database_url: str
    http_port: int
    ami_port: int
    redis_url: str | None = None
    trace_path: str | None = None  # write the screen-pop stage trace here on exit
    ordered_events: bool = False  # experiment: one handler queue for all events (see below)


def run_gateway(config: GatewayConfig, ready: EventType, stop: EventType) -> None:
    """Child process: the real app (workers on) until `stop` is set."""
    logging.basicConfig(level=logging.WARNING, format="gateway: %(levelname)s %(message)s")
    asyncio.run(_serve(config, ready, stop))


async def _serve(config: GatewayConfig, ready: EventType, stop: EventType) -> None:
    from aiohttp import web
    from pydantic import SecretStr

    from gateway.app import create_app
    from gateway.core.http.auth import TokenRegistry
    from gateway.settings import Settings

    trace: list[tuple[str, str, float, float]] = []
    if config.trace_path:
        _instrument(trace)
    if config.ordered_events:
        _one_queue_per_handler()
    settings = Settings(
        database_url=config.database_url,
        redis_url=config.redis_url,
        default_region="UA",
        ami_host="127.0.0.1",
        ami_port=config.ami_port,
        ami_username=AMI_USER,
        ami_secret=SecretStr(AMI_SECRET),
    )
    tokens = TokenRegistry()
    tokens.add(ADMIN_TOKEN, "admin")
    app = create_app(settings, tokens=tokens, workers=True)
    probe = asyncio.create_task(_probe_loop_lag(trace)) if config.trace_path else None
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", config.http_port).start()
    ready.set()
    await asyncio.to_thread(stop.wait)  # the loop keeps serving meanwhile
    await runner.cleanup()
    if probe is not None:
        probe.cancel()
    trace.append(("cpu", "", 0.0, time.process_time()))  # the gateway's CPU seconds in all
    if config.trace_path:
        await asyncio.to_thread(Path(config.trace_path).write_text, json.dumps(trace))


def _instrument(trace: list[tuple[str, str, float, float]]) -> None:
    """Wrap the screen-pop path's steps with timers (benchmark only; costs ~1 µs each).

    Entries are (stage, call id, start, end) in perf_counter seconds. Lookups and cards
    are attributed to the call whose `_pop` or `_warm` runs in the same task.
    """
    _time_gc(trace)
    # Each event name has its own handler task (see the report), so pops of different
    # calls may interleave: the call being popped is a per-task context variable.
    current: contextvars.ContextVar[str] = contextvars.ContextVar("popping", default="")
    _time_lookups_and_events(trace, current)
    _time_recorder(trace, current)
    _time_socket_sends(trace)
    _time_sessions_and_flushes(trace, current)


def _time_gc(trace: list[tuple[str, str, float, float]]) -> None:
    """Garbage collector pauses, per generation."""
    clock = time.perf_counter
    collecting: list[float] = []

    def collector(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collecting[:] = [clock()]
        elif collecting:
            trace.append((f"gc{info['generation']}", "", collecting[0], clock()))

    gc.callbacks.append(collector)


def _time_lookups_and_events(
    trace: list[tuple[str, str, float, float]], current: contextvars.ContextVar[str]
) -> None:
    """Caller lookups, cards, bus publishes, and when each DialBegin was received."""
    import gateway.calls.pops as pops
    import gateway.calls.recorder as recorder
    from adapters.ami.dispatch import EventDispatcher
    from gateway.calls.ids import call_id_for

    clock = time.perf_counter

    def timed(stage: str, function: Any, key: Callable[..., str]) -> Any:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            result = await function(*args, **kwargs)
            trace.append((stage, key(*args, **kwargs), started, clock()))
            return result

        return wrapper

    def wrap(module: Any, name: str, stage: str, key: Callable[..., str]) -> None:
        setattr(module, name, timed(stage, getattr(module, name), key))

    wrap(pops, "find_by_phone", "lookup", lambda *a, **k: current.get())
    wrap(pops, "card", "card", lambda *a, **k: current.get())
    wrap(recorder, "publish", "publish", lambda bus, ext, msg: f"{msg['call_id']}:{msg['type']}")
    dispatch = EventDispatcher.dispatch

    def dispatched(self: EventDispatcher, msg: Any) -> None:
        if msg.name == "DialBegin":
            now = clock()
            trace.append(("received", call_id_for(msg.get("Linkedid") or ""), now, now))
        dispatch(self, msg)

    EventDispatcher.dispatch = dispatched  # type: ignore[method-assign]


def _time_recorder(
    trace: list[tuple[str, str, float, float]], current: contextvars.ContextVar[str]
) -> None:
    """Change dispatch to the apply shards, and the recorder's pop, warm, build, insert."""
    import gateway.calls.link as link
    import gateway.calls.recorder as recorder
    from gateway.calls.ids import call_id_for

    clock = time.perf_counter

    # When the tracker's change that made the pop was handed to its apply shard.
    dispatched_at: dict[str, tuple[str, float]] = {}
    dispatch_changes = link.PbxLink._dispatch

    def timed_dispatch(self: link.PbxLink, changes: list[Any]) -> None:
        now = clock()
        for change in changes:
            dispatched_at.setdefault(
                f"{call_id_for(change.linkedid)}:{change.kind}", (str(change.kind), now)
            )
        dispatch_changes(self, changes)

    link.PbxLink._dispatch = timed_dispatch  # type: ignore[method-assign]

    class TimedRecorder(recorder.CallRecorder):
        async def _pop(self, live: Any, change: Any, extensions: tuple[str, ...]) -> None:
            current.set(live.call_id)
            started = clock()
            name, handler_started = dispatched_at.get(
                f"{live.call_id}:{change.kind}", (str(change.kind), started)
            )
            trace.append((f"trigger {name}", live.call_id, handler_started, started))
            await super()._pop(live, change, extensions)
            trace.append(("pop", live.call_id, started, clock()))

        async def _warm(self, change: Any) -> Any:
            current.set(call_id_for(change.linkedid))
            started = clock()
            result = await super()._warm(change)
            trace.append(("warm", current.get(), started, clock()))
            return result

        async def _caller(self, live: Any, change: Any) -> Any:
            started = clock()
            result = await super()._caller(live, change)
            trace.append(("build", live.call_id, started, clock()))
            return result

        async def _insert_started(self, call_id: str, change: Any) -> None:
            started = clock()
            await super()._insert_started(call_id, change)
            trace.append(("insert_started", call_id, started, clock()))

    vars(link)["CallRecorder"] = TimedRecorder  # PbxLink builds its recorder from this name


def _time_socket_sends(trace: list[tuple[str, str, float, float]]) -> None:
    clock = time.perf_counter

    # When the pop's frame was written to the operator's socket (the gateway's last step).
    from aiohttp import web

    send_json = web.WebSocketResponse.send_json

    async def timed_send_json(
        self: web.WebSocketResponse, data: Any, *args: Any, **kw: Any
    ) -> None:
        started = clock()
        await send_json(self, data, *args, **kw)
        if isinstance(data, dict) and data.get("type") == "screen_pop":
            trace.append(("ws_sent", str(data["call_id"]), started, clock()))

    web.WebSocketResponse.send_json = timed_send_json  # type: ignore[method-assign,assignment]


def _time_sessions_and_flushes(
    trace: list[tuple[str, str, float, float]], current: contextvars.ContextVar[str]
) -> None:
    import gateway.calls.link as link

    clock = time.perf_counter

    # Opening and closing the pops' autocommit sessions (pool checkout and return).
    import contextlib

    import gateway.core.db.sessions as sessions

    autocommit = sessions._autocommit

    @contextlib.asynccontextmanager
    async def timed_autocommit(database: Any) -> Any:
        started = clock()
        async with autocommit(database) as session:
            trace.append(("session_open", current.get(), started, clock()))
            yield session
            closing = clock()
        trace.append(("session_close", current.get(), closing, clock()))

    sessions._autocommit = timed_autocommit

    # New database connections (a pool too small for the tasks in flight opens them).
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def connected(*_: Any) -> None:
        now = clock()
        trace.append(("db_connect", "", now, now))

    # How long each raw-event flush holds the loop (its batches are written in one go).
    flush = link.PbxLink._flush

    async def timed_flush(self: link.PbxLink) -> None:
        started = clock()
        await flush(self)
        trace.append(("raw_flush", "", started, clock()))

    link.PbxLink._flush = timed_flush  # type: ignore[method-assign]


async def _probe_loop_lag(trace: list[tuple[str, str, float, float]]) -> None:
    """Every 5 ms, note how late the event loop woke us (its lag behind other work)."""
    clock = time.perf_counter
    while True:
        due = clock() + 0.005
        await asyncio.sleep(0.005)
        trace.append(("loop_lag", "", due, clock()))


def _one_queue_per_handler() -> None:
    """Experiment: PbxLink subscribes `_on_event` once per event name, and the dispatcher
    gives every subscription its own queue and task, so events of different names are
    handled concurrently and out of order. Here one handler gets one queue for all names
    (what subscribing once would do), to compare records and lags."""
    from adapters.ami.dispatch import EventDispatcher, EventHandler, _AsyncSubscriber

    original = EventDispatcher.on

    def on(self: EventDispatcher, name: str, handler: EventHandler) -> Callable[[], None]:
        if not inspect.iscoroutinefunction(handler):
            return original(self, name, handler)
        shared: dict[Any, _AsyncSubscriber] = vars(self).setdefault("_bench_shared", {})
        subscriber = shared.setdefault(handler, _AsyncSubscriber(handler))
        self._async.setdefault(name.lower(), []).append(subscriber)
        self._changed()
        return lambda: None

    EventDispatcher.on = on  # type: ignore[method-assign]


class GatewayProcess:
    """The gateway in a child process: `async with` starts it, leaving stops and joins it."""

    def __init__(self, config: GatewayConfig) -> None:
        """Prepare (nothing runs yet)."""
        context = multiprocessing.get_context("spawn")
        self._ready, self._stop = context.Event(), context.Event()
        self.process: BaseProcess = context.Process(
            target=run_gateway, args=(config, self._ready, self._stop), name="gateway"
        )

    @property
    def pid(self) -> int:
        """The child's process id."""
        assert self.process.pid is not None
        return self.process.pid

    async def __aenter__(self) -> GatewayProcess:
        self.process.start()
        if not await asyncio.to_thread(self._ready.wait, 60):
            await self.__aexit__()
            raise RuntimeError("the gateway did not start")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.to_thread(self.process.join, 60)
        if self.process.is_alive():
            self.process.kill()


async def wait_ami_connected(http_port: int, timeout: float = 30.0) -> None:
    """Poll /health until the gateway's AMI session is up."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            async with session.get(f"http://127.0.0.1:{http_port}/health") as response:
                body = await response.json()
            if body.get("components", {}).get("ami") == "connected":
                return
            await asyncio.sleep(0.1)
    raise RuntimeError("the gateway did not log in to the simulator")


async def gateway_metric(http_port: int, name: str) -> float:
    """One sample of a Prometheus metric from /metrics (0 when absent)."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{http_port}/metrics", headers=headers) as response,
    ):
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# -- the simulator, observed -----------------------------------------------------------------
class ObservedSimulator(SimulatorServer):
    """The simulator, telling `observer` about every event right after writing it."""

    def __init__(self, observer: Callable[[str, Fields], None], **kwargs: Any) -> None:
        """`kwargs` go to SimulatorServer."""
        super().__init__(**kwargs)
        self.observer = observer

    def _broadcast(self, name: str, fields: Fields, privilege: str) -> None:
        super()._broadcast(name, fields, privilege)
        self.observer(name, fields)


def simulator(observer: Callable[[str, Fields], None], speed: float) -> ObservedSimulator:
    """An observed simulator on a free loopback port with the bench's login."""
    return ObservedSimulator(
        observer,
        host="127.0.0.1",
        port=free_port(),
        username=AMI_USER,
        secret=AMI_SECRET,
        speed=speed,
        timestamp_events=True,
    )


def field(fields: Fields, name: str) -> str:
    """The first header called `name` ('' when absent)."""
    return next((value for key, value in fields if key == name), "")


# -- figures -------------------------------------------------------------------------------
def cuts(values_ms: Sequence[float]) -> str:
    """p50/p95/p99/max of millisecond values, one line."""
    if len(values_ms) < 2:
        return f"n={len(values_ms)}"
    q = statistics.quantiles(values_ms, n=100, method="inclusive")
    return (
        f"p50 {q[49]:7.2f}  p95 {q[94]:7.2f}  p99 {q[98]:7.2f}  max {max(values_ms):7.2f} ms"
        f"  (n={len(values_ms)})"
    )
