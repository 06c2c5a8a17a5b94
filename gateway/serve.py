"""`switchboard serve` and `switchboard demo`: the gateway composed from every plugin."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from pydantic import SecretStr

from gateway.core.cli import Subparsers, UsageError, run_async
from gateway.core.clock import SystemClock
from gateway.core.db.engine import Database
from gateway.core.db.migrate import upgrade
from gateway.core.settings import Settings
from gateway.pbx_simulator.cli import simulator_login

# `make run` with no PBX configured: the built-in simulator on the standard AMI port, with
# the simulator's documented demo password unless SWITCHBOARD_AMI_SECRET is set.
DEMO_AMI_PORT = 5038
DEMO_PBX_SCRIPT = Path("config/demo/pbx-script.yaml")
SHIPPED_CAMPAIGNS = Path("config/campaigns")


def register(subparsers: Subparsers) -> None:
    """Add serve and demo."""
    serve = subparsers.add_parser("serve", help="run the gateway")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--demo",
        action="store_true",
        help="load demo data and start the built-in PBX simulator when no AMI host is set",
    )
    serve.set_defaults(handler=_serve)
    subparsers.add_parser("demo", help="load demo data").set_defaults(handler=_demo)


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
    from gateway.core.http.http_server import start_http

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

        username, secret = simulator_login(settings, None)
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
