"""Browser tests: the whole gateway (workers on, PBX simulator over TCP, Redis) and
Debian's Chromium driven by Playwright. PostgreSQL only: SQLite is covered by the API tests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from gateway.core.clock import SystemClock
from gateway.core.db.engine import Database
from gateway.core.http.auth import TokenRegistry
from gateway.pbx_simulator import SimulatorServer
from gateway.settings import Settings
from tests.support.agents import add_agent
from tests.support.auth import (
    ADMIN_TOKEN,
    CRM_TOKEN,
    OPERATOR_AGENT,
    OPERATOR_TOKEN,
    SUPERVISOR_TOKEN,
)
from tests.support.console_wiring import SECOND_AGENT, SECOND_OPERATOR_TOKEN, Client, console_app
from tests.support.pbx import health_ami, pbx, wait_for, wired_to

__all__ = ["pbx"]  # the simulator fixture

CHROMIUM = os.environ.get("SWITCHBOARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """Browser tests run on PostgreSQL only (the conftest's default runs both)."""
    return postgres_url


@pytest.fixture
def tokens() -> TokenRegistry:
    """Two operators (201 and 202), an admin, a supervisor (no agent) and the CRM."""
    registry = TokenRegistry()
    registry.add(ADMIN_TOKEN, "admin")
    registry.add(CRM_TOKEN, "crm")
    registry.add(OPERATOR_TOKEN, "operator", OPERATOR_AGENT)
    registry.add(SECOND_OPERATOR_TOKEN, "operator", SECOND_AGENT)
    registry.add(SUPERVISOR_TOKEN, "supervisor")
    return registry


@pytest.fixture
async def gateway(
    settings: Settings,
    database: Database,
    tokens: TokenRegistry,
    pbx: SimulatorServer,
    redis_url: str,
) -> AsyncIterator[Client]:
    """The gateway as deployed: the console, workers on, connected to the simulator, its
    bus, locks and pop leadership on the real Redis."""
    settings.redis_url = redis_url
    app = console_app(wired_to(settings, pbx), workers=True, clock=SystemClock(), tokens=tokens)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await wait_for(lambda: health_ami(client), "connected")
        health = await (await client.get("/health")).json()
        assert health["components"]["redis"] == "ok", health
        now = SystemClock().now()
        await add_agent(database, now, OPERATOR_AGENT, ["201"])
        await add_agent(database, now, SECOND_AGENT, ["202"])
        yield client


@pytest.fixture
def chromium() -> str:
    """The browser binary (and the screenshot folder made ready)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-chromium.sh (make test does)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return CHROMIUM


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """Debian's Chromium, headless; Playwright gives it a fresh profile directory."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


class Console:
    """One operator's page, with every dialog it opened recorded."""

    def __init__(self, context: BrowserContext, page: Page, base: str) -> None:
        self.context, self.page, self.base = context, page, base
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.urls: list[str] = []
        self.tokens: list[str] = []
        page.on("dialog", self._on_dialog)
        page.on("request", lambda request: self.urls.append(request.url))
        page.on("websocket", lambda socket: self.urls.append(socket.url))
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    async def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()

    async def sign_in(self, token: str) -> None:
        """Open the console and sign in; the token never appears in a URL."""
        await self.page.goto(self.base)
        await self.page.fill("#token", token)
        await self.page.click("#sign-in button[type=submit]")
        await expect(self.page.locator("#sign-out")).to_be_visible()
        self.tokens.append(token)

    def assert_no_token_in_urls(self) -> None:
        """No request or socket URL carried an API token."""
        assert self.urls
        assert not [url for url in self.urls for token in self.tokens if token in url]

    async def wait_live(self) -> None:
        """Until every extension's socket said hello."""
        await expect(self.page.locator("body")).to_have_attribute("data-live", "ready")

    async def screenshot(self, name: str) -> Path:
        """Save a full-page screenshot under artifacts/screenshots/."""
        path = SCREENSHOTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
async def open_console(browser: Browser, gateway: Client) -> AsyncIterator[Any]:
    """A factory of isolated operator pages (each its own cookie jar)."""
    contexts: list[BrowserContext] = []
    base = str(gateway.make_url("/"))

    async def make() -> Console:
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        return Console(context, await context.new_page(), base)

    yield make
    for context in contexts:
        await context.close()
