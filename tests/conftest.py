"""Fixtures shared by every test: both databases, Redis, settings, the running app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.http.auth import TokenRegistry
from gateway.settings import Settings
from tests.support.auth import WEBHOOK_SECRET, role_tokens
from tests.support.databases import (
    copy_sqlite,
    create_postgres_database,
    create_sqlite_template,
    drop_postgres_database,
    redis_test_url,
    truncate_all,
)
from tests.support.factories import START


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated PostgreSQL database of this test run's own."""
    url = create_postgres_database()
    yield url
    drop_postgres_database(url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test."""
    return create_sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """Each database test runs on both SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return copy_sqlite(sqlite_template, tmp_path)
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """An empty, migrated database."""
    db = Database(database_url)
    if not db.is_sqlite:
        await truncate_all(db)
    yield db
    await db.dispose()


@pytest.fixture
def clock() -> FixedClock:
    """A clock the test moves by hand."""
    return FixedClock(START)


@pytest.fixture
def redis_url() -> str:
    """The real Redis, on a database index emptied before each test."""
    url = redis_test_url()
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


@pytest.fixture
def tokens() -> TokenRegistry:
    """One token per role."""
    return role_tokens()


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Settings for an app on the test database, nothing outside configured."""
    return Settings(
        database_url=database_url,
        crm_webhook_secret=WEBHOOK_SECRET,
        default_region="UA",
        max_body_bytes=65_536,
    )


@pytest.fixture
async def client(
    settings: Settings, database: Database, clock: FixedClock, tokens: TokenRegistry
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The real app over real HTTP on loopback (HTTP only, no background workers)."""
    app = create_app(settings, clock=clock, tokens=tokens, workers=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client
