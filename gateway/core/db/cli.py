"""`switchboard db upgrade`: apply the migrations."""

from __future__ import annotations

import argparse

from gateway.core.cli import Subparsers, run_async
from gateway.core.db.engine import Database
from gateway.core.db.migrate import upgrade
from gateway.core.settings import Settings


def register(subparsers: Subparsers) -> None:
    """Add `db upgrade`."""
    db = subparsers.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply migrations").set_defaults(handler=_db_upgrade)


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


def _safe_url(url: str) -> str:
    """The database URL without its password, for printing."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
