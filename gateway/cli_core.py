"""Core commands: serve, db upgrade, demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from aiohttp import web

from gateway.cli import run_async
from gateway.db.engine import Database
from gateway.db.migrate import upgrade
from gateway.settings import Settings

log = logging.getLogger(__name__)


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
    from crm_sync.demo import load_demo

    async def run() -> int:
        database = Database(settings.database_url)
        try:
            await upgrade(database)
            loaded = await load_demo(database, settings)
        finally:
            await database.dispose()
        print(f"demo data: {loaded} customers loaded")
        return 0

    return run_async(run())


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    host = args.host or settings.http_host
    port = args.port or settings.http_port
    return run_async(serve(settings, host, port, demo=args.demo))


async def serve(settings: Settings, host: str, port: int, *, demo: bool = False) -> int:
    """Run the gateway until interrupted."""
    from crm_sync.demo import load_demo
    from gateway.app import create_app

    if demo:
        database = Database(settings.database_url)
        try:
            await upgrade(database)
            await load_demo(database, settings)
        finally:
            await database.dispose()
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    print(f"Switchboard console: http://{host}:{port}/", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
    return 0


def _safe_url(url: str) -> str:
    """The database URL without its password, for printing."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
