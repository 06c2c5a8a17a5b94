"""`switchboard tick --as-of T` on the demo data and the shipped campaigns: every daily job
runs, a second tick at the same time changes nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_sync.demo import load_demo
from gateway.campaigns.store import load_directory
from gateway.cli import main
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models import Enrollment, OutboundContact, StatusChange, Task
from gateway.settings import Settings
from tests.support.databases import truncate_all

ROOT = Path(__file__).resolve().parents[2]


async def prepare(url: str, settings: Settings, clock: FixedClock) -> None:
    database = Database(url)
    try:
        if not database.is_sqlite:
            await truncate_all(database)
        await load_demo(database, settings)
        await load_directory(database, ROOT / "config" / "campaigns", clock.now())
    finally:
        await database.dispose()


async def counts(url: str) -> tuple[int, ...]:
    database = Database(url)
    try:
        async with database.sessions() as session:
            return tuple(
                [
                    int(await session.scalar(select(func.count()).select_from(model)) or 0)
                    for model in (Enrollment, OutboundContact, Task, StatusChange)
                ]
            )
    finally:
        await database.dispose()


def test_tick_runs_campaigns_and_every_daily_job_once(
    database_url: str,
    settings: Settings,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    asyncio.run(prepare(database_url, settings, clock))
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    as_of = "2026-11-03T12:00:00+02:00"

    assert main(["tick", "--as-of", as_of, "--format", "json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["daily_failed"] == []
    assert set(first["daily"]) == {
        "lifecycle",
        "cadence_tasks",
        "recession",
        "new_active",
        "allocation",
        "snapshot",
    }
    ran = {run["campaign"] for run in first["runs"]}
    assert {"payment-reminder", "reactivation", "monitoring"} <= ran, first["runs"]
    after_first = asyncio.run(counts(database_url))

    assert main(["tick", "--as-of", as_of, "--format", "json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["daily_failed"] == []
    assert asyncio.run(counts(database_url)) == after_first
