"""The partners page in headless Chromium: an eligibility rule built with the same form
builder as a campaign audience, saved through the partners API, shown again after a
reload; a refused save names the field and changes nothing."""

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from tests.support.auth import ADMIN_TOKEN, bearer
from tests.support.console_wiring import Client

PARTNER = "collect-east"
RULE = {
    "all": [
        {"field": "region", "op": "==", "value": "east"},
        {
            "any": [
                {"field": "status", "op": "==", "value": "cold"},
                {"not": {"field": "language", "op": "==", "value": "en"}},
            ]
        },
    ]
}


async def stored(gateway: Client) -> dict[str, Any]:
    response = await gateway.get(f"/api/partners/{PARTNER}", headers=bearer(ADMIN_TOKEN))
    assert response.status == 200, await response.text()
    data: dict[str, Any] = await response.json()
    return data


async def test_partner_rule_built_in_the_form_is_saved_and_shown_after_reload(
    open_console: Any, gateway: Client
) -> None:
    terms = {"name": "Collect East", "capacity_per_day": 10, "cost_per_contact": "9.00"}
    response = await gateway.put(
        f"/api/partners/{PARTNER}",
        json={**terms, "performance": {"quality_score": "0.9"}},
        headers=bearer(ADMIN_TOKEN),
    )
    assert response.status == 200, await response.text()
    admin = await open_console()
    await admin.sign_in(ADMIN_TOKEN)
    page = admin.page
    await page.click("#nav button[data-view=partners]")
    row = page.locator(f"#partners tr[data-id={PARTNER}]")
    await expect(row.locator("td").nth(4)).to_have_text("every contact")
    await row.locator("button.open-partner").click()
    await expect(page.locator("#partner-capacity")).to_have_value("10")

    # region == east AND (status == cold OR NOT language == en), with the form alone.
    rule = page.locator("#partner-rule")
    await rule.locator(".add-condition").first.click()
    first = rule.locator(".condition").nth(0)
    await first.locator("select.field").select_option("region")
    await first.locator("input.value").fill("east")
    await rule.locator(".add-group").first.click()
    nested = rule.locator("fieldset.group fieldset.group")
    await nested.locator(".add-condition").click()
    cold = nested.locator(".condition").last
    await cold.locator("select.field").select_option("status")
    await cold.locator("select.value").select_option("cold")
    await nested.locator(".add-condition").click()
    english = nested.locator(".condition").last
    await english.locator("select.field").select_option("language")
    await english.locator("input.value").fill("en")
    await english.locator("input.negate").check()
    await page.fill("#partner-capacity", "40")
    await page.fill("#partner-cost", "12.50")

    # A negative cost is refused by the API, naming the field; nothing changes.
    await page.fill("#partner-cost", "-1")
    await page.click("#partner-save")
    await expect(page.locator("#partner-errors li code.path")).to_have_text("cost_per_contact")
    assert (await stored(gateway))["eligibility"] == {}
    await page.fill("#partner-cost", "12.50")
    await page.click("#partner-save")
    await expect(page.locator("#partners-status")).to_have_text(f"Saved {PARTNER}.")
    saved = await stored(gateway)
    assert saved["eligibility"] == RULE
    assert (saved["capacity_per_day"], saved["cost_per_contact"]) == (40, "12.5000")
    assert saved["performance"] == {"quality_score": "0.9"}  # kept as it was

    # A reload shows the rule in the form again.
    await page.reload()
    await page.click("#nav button[data-view=partners]")
    await expect(row.locator("td").nth(4)).to_have_text("3 conditions")
    await row.locator("button.open-partner").click()
    await expect(rule.locator(".condition")).to_have_count(3)
    await expect(rule.locator(".condition").nth(0).locator("input.value")).to_have_value("east")
    await expect(nested.locator("select.mode")).to_have_value("any")
    await expect(nested.locator(".condition").nth(1).locator("input.negate")).to_be_checked()
    await expect(page.locator("#partner-capacity")).to_have_value("40")
    await admin.screenshot("partner-editor")
    assert not admin.errors and not admin.dialogs
