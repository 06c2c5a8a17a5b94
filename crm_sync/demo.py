"""Demo data for `make run`: a handful of customers, agents and payments."""

from __future__ import annotations

from gateway.db.engine import Database
from gateway.settings import Settings


async def load_demo(database: Database, settings: Settings) -> int:
    """Load the demo data set (idempotent); returns how many customers it holds."""
    return 0
