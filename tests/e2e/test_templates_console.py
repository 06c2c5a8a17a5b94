"""The template page in headless Chromium: an edit previewed for a customer picked by
search (rendered by the server's sandboxed renderer), the server's syntax error shown by
path, and a customer's name rendered as text."""

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from gateway.core.db.engine import Database
from tests.support.auth import ADMIN_TOKEN, bearer
from tests.support.console import XSS_NAME, add_customer
from tests.support.console_wiring import Client

GREETING: dict[str, Any] = {
    "channel": "sms",
    "body": {"uk": "{{ first_name }}, вітаємо! {{ name }}, {{ link }}"},
    "variables": ["link"],
}


async def test_template_preview_for_a_real_customer_and_the_servers_errors(
    open_console: Any, gateway: Client, database: Database
) -> None:
    await add_customer(database, "Олена Коваль", "+380501112233", language="uk")
    await add_customer(database, XSS_NAME, "+380501112244", language="uk")
    response = await gateway.put(
        "/api/templates/greeting", json=GREETING, headers=bearer(ADMIN_TOKEN)
    )
    assert response.status == 200, await response.text()
    admin = await open_console()
    await admin.sign_in(ADMIN_TOKEN)
    page = admin.page
    await page.click("#nav button[data-view=templates]")
    await page.locator("#templates tr[data-name=greeting] button.open-template").click()
    await expect(page.locator("#tpl-body-uk")).to_have_value(GREETING["body"]["uk"])

    # Pick a customer by search; the declared variable gets a value in the form.
    await page.fill("#tpl-customer-query", "Олена")
    await page.click("#tpl-find button[type=submit]")
    await page.locator("#tpl-customers button.pick-customer", has_text="Олена Коваль").click()
    await expect(page.locator("#tpl-preview-errors li code.path")).to_have_text("variables.link")
    await page.locator("#tpl-values input[name=link]").fill("https://pay.test/1")
    rendered = page.locator("#tpl-rendered")
    await expect(rendered).to_have_text("Олена, вітаємо! Олена Коваль, https://pay.test/1")
    await expect(page.locator("#tpl-preview")).not_to_contain_text("null")
    await admin.screenshot("template-preview")

    # A syntax error in the edit: the server's message, by path; nothing saved.
    await page.fill("#tpl-body-uk", "Привіт, {{ name }")
    errors = page.locator("#tpl-preview-errors li")
    await expect(errors.locator("code.path")).to_have_text("template.body.uk")
    await expect(errors).to_contain_text("line 1: unexpected '}'")
    await page.click("#tpl-save")
    await expect(page.locator("#tpl-errors li code.path")).to_have_text("body.uk")
    await admin.screenshot("template-syntax-error")
    stored = await (
        await gateway.get("/api/templates/greeting", headers=bearer(ADMIN_TOKEN))
    ).json()
    assert stored["version"] == 1 and stored["body"] == GREETING["body"]

    # A customer whose name is markup: rendered as text, no element made of it.
    await page.fill("#tpl-body-uk", "{{ name }}")
    await page.fill("#tpl-customer-query", "+380501112244")
    await page.click("#tpl-find button[type=submit]")
    await page.locator("#tpl-customers button.pick-customer").first.click()
    await expect(rendered).to_have_text(XSS_NAME)
    await expect(page.locator("#tpl-preview img")).to_have_count(0)

    # The fixed edit saves as version 2.
    await page.click("#tpl-save")
    await expect(page.locator("#tpl-status")).to_have_text("Saved as version 2.")
    assert not admin.errors and not admin.dialogs
