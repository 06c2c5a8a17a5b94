"""The console under its Content-Security-Policy in headless Chromium (issue 14, item 12):
the page is served with the policy, and signing in, the live feed, every view and the
dashboard's Chart.js charts work without a single violation reported by the browser."""

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from tests.support.auth import ADMIN_TOKEN, OPERATOR_TOKEN
from tests.support.console_wiring import Client

# Before the page's own scripts: every violation the browser reports, kept for the test.
WATCH_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""
ADMIN_VIEWS = ("customers", "tasks", "dashboard", "campaigns", "templates", "partners", "calls")


async def _violations(console: Any) -> list[str]:
    found: list[str] = await console.page.evaluate("window.__violations")
    return found


async def test_the_console_works_under_its_content_security_policy(
    open_console: Any, gateway: Client
) -> None:
    response = await gateway.get("/")
    policy = response.headers.get("Content-Security-Policy", "")
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy

    admin = await open_console()
    await admin.context.add_init_script(WATCH_VIOLATIONS)
    await admin.sign_in(ADMIN_TOKEN)
    for view in ADMIN_VIEWS:
        await admin.page.click(f"#nav button[data-view={view}]")
        await expect(admin.page.locator(f"#view-{view}")).to_be_visible()
    await admin.page.click("#nav button[data-view=dashboard]")
    await expect(admin.page.locator("#dash-status")).to_contain_text("14 days from")
    await expect(admin.page.locator("#dash-charts canvas").first).to_be_visible()
    assert await admin.page.evaluate("typeof Chart") == "function"

    operator = await open_console()
    await operator.context.add_init_script(WATCH_VIOLATIONS)
    await operator.sign_in(OPERATOR_TOKEN)
    await operator.wait_live()  # the WebSocket is allowed by connect-src 'self'

    assert await _violations(admin) == []
    assert await _violations(operator) == []
    assert not admin.errors and not operator.errors
