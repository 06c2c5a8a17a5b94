"""Core commands: serve, db upgrade, demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from gateway.cli import UsageError, run_async
from gateway.clock import SystemClock
from gateway.db.engine import Database
from gateway.db.migrate import upgrade
from gateway.settings import Settings

log = logging.getLogger(__name__)

# `make run` with no PBX configured: the built-in simulator on the standard AMI port, with
# the simulator's documented demo password unless SWITCHBOARD_AMI_SECRET is set.
DEMO_AMI_PORT = 5038
DEMO_PBX_SCRIPT = Path("config/demo/pbx-script.yaml")
SHIPPED_CAMPAIGNS = Path("config/campaigns")
DEMO_AMI_SECRET = "changeme"  # noqa: S105 - a loopback-only demo login, not a credential


def register(subparsers: Any) -> None:
    """Add serve, db and demo."""
    serve = subparsers.add_parser("serve", help="run the gateway")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--demo",
        action="store_true",
        help="load demo data and start the built-in PBX simulator when no AMI host is set",
    )
    serve.set_defaults(handler=_serve)

    db = subparsers.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply migrations").set_defaults(handler=_db_upgrade)

    subparsers.add_parser("demo", help="load demo data").set_defaults(handler=_demo)

    simulator = subparsers.add_parser(
        "simulate-pbx", help="built-in AMI-speaking PBX simulator for integrators"
    )
    simulator.add_argument("--host", default="127.0.0.1")
    simulator.add_argument("--port", type=int, default=5038)
    simulator.add_argument("--script", type=Path, help="YAML scenario script")
    simulator.add_argument("--seed", type=int, default=0)
    simulator.add_argument("--speed", type=float, default=1.0, help="time scale (10 = 10x faster)")
    simulator.add_argument("--username", default=None, help="AMI login (default: settings)")
    simulator.set_defaults(handler=_simulate_pbx)


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> int:
        database = Database(settings.database_url)
        try:
            await upgrade(database)
        finally:
            await database.dispose()
        print(f"database at {_safe_url(settings.database_url)} is up to date")
        return 0

    return run_async(run())


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from crm_sync.demo import DemoDataMissing, load_demo

    async def run() -> int:
        database = Database(settings.database_url)
        try:
            await upgrade(database)
            loaded = await load_demo(database, settings)
        except DemoDataMissing as exc:
            raise UsageError(f"demo data: {exc}") from exc
        finally:
            await database.dispose()
        print(f"demo data: {loaded} customers loaded")
        return 0

    return run_async(run())


def _simulate_pbx(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.pbx_simulator import ScriptError, serve_simulator

    if args.script is not None and not args.script.is_file():
        raise UsageError(f"scenario script {args.script} does not exist")
    username, secret = _simulator_login(settings, args.username)
    print(f"PBX simulator: AMI on {args.host}:{args.port}, login {username}", flush=True)
    try:
        return run_async(
            serve_simulator(
                args.host, args.port, args.script, args.seed, username, secret, speed=args.speed
            )
        )
    except ScriptError as exc:
        raise UsageError(f"scenario script {args.script}: {exc}") from exc


def _simulator_login(settings: Settings, username: str | None) -> tuple[str, str]:
    """The simulator accepts the same login the gateway is configured to use."""
    return username or settings.ami_username, settings.secret("ami_secret") or DEMO_AMI_SECRET


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    host = args.host or settings.http_host
    port = args.port or settings.http_port
    script = DEMO_PBX_SCRIPT if args.demo and DEMO_PBX_SCRIPT.is_file() else None
    return run_async(serve(settings, host, port, demo=args.demo, pbx_script=script))


async def serve(
    settings: Settings, host: str, port: int, *, demo: bool = False, pbx_script: Path | None = None
) -> int:
    """Run the gateway until interrupted."""
    from crm_sync.demo import DemoDataMissing, load_demo
    from gateway.app import create_app
    from gateway.campaigns.store import load_if_empty
    from gateway.http.http_server import start_http

    database = Database(settings.database_url)
    try:
        if demo:
            await upgrade(database)
            await load_demo(database, settings)
        # First start: the shipped campaign definitions become version 1 of each.
        report = await load_if_empty(database, SHIPPED_CAMPAIGNS, SystemClock().now())
        if report is not None:
            print(f"campaigns: loaded the shipped definitions from {SHIPPED_CAMPAIGNS}")
    except DemoDataMissing as exc:
        raise UsageError(f"demo data: {exc}") from exc
    finally:
        await database.dispose()
    simulator = None
    if demo and not settings.ami_host:
        from gateway.pbx_simulator import SimulatorServer, load_script

        username, secret = _simulator_login(settings, None)
        script = load_script(pbx_script) if pbx_script is not None else None
        simulator = SimulatorServer(
            "127.0.0.1", DEMO_AMI_PORT, username=username, secret=secret, script=script
        )
        await simulator.start()
        settings = settings.model_copy(
            update={
                "ami_host": "127.0.0.1",
                "ami_port": simulator.port,
                "ami_username": username,
                "ami_secret": SecretStr(secret),
            }
        )
        print(f"PBX simulator: AMI on 127.0.0.1:{simulator.port}", flush=True)
    app = create_app(settings)
    server = await start_http(app, host, port)
    stop = asyncio.Event()
    # Orchestrators (systemd, Kubernetes, docker stop) stop a service with SIGTERM: it must
    # run the same cleanup as Ctrl-C, so leases and the pop-leader lock are released at once
    # instead of expiring while pops and sends wait.
    loop = asyncio.get_running_loop()
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(stop_signal, stop.set)
    print(f"Switchboard console: http://{host}:{port}/", flush=True)
    try:
        await stop.wait()
        print("Switchboard: stopping", flush=True)
    finally:
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(stop_signal)
        await server.stop()
        if simulator is not None:
            await simulator.stop()
    return 0


def _safe_url(url: str) -> str:
    """The database URL without its password, for printing."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
