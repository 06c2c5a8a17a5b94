"""The campaign editor in headless Chromium, beyond editing: a new campaign started from the
form (name checked by the server, counted live before its first save, saved switched off as
version 1), and an experiment's holdout share and arm weights edited with the server's
messages shown at the field their path names."""

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from gateway.core.db.engine import Database
from tests.support.auth import ADMIN_TOKEN, bearer
from tests.support.console import add_people
from tests.support.console_wiring import Client

NEW = "winter-north"
ARMS = "north-split"
SEND = {"id": "remind", "type": "send", "channel": "sms", "template": "payment-reminder"}
EXPERIMENT_DEFINITION: dict[str, Any] = {
    "name": ARMS,
    "enabled": False,  # the workers are on: the campaign must not run during the test
    "schedule": "0 10 * * *",
    "audience": {"all": [{"field": "region", "op": "==", "value": "north"}]},
    "experiment": {
        "holdout": 0.1,
        "arms": [
            {"name": "sms", "weight": 1, "steps": [SEND]},
            {"name": "email", "weight": 1, "steps": [{**SEND, "channel": "email"}]},
        ],
    },
}
PEOPLE = [("Olena", "north", "uk"), ("Taras", "north", "uk"), ("Iryna", "south", "uk")]


async def open_campaigns(open_console: Any) -> Any:
    """An admin's console on the campaigns page."""
    admin = await open_console()
    await admin.sign_in(ADMIN_TOKEN)
    await admin.page.click("#nav button[data-view=campaigns]")
    return admin


async def api_json(gateway: Client, method: str, path: str, body: Any = None) -> Any:
    response = await gateway.request(method, path, json=body, headers=bearer(ADMIN_TOKEN))
    assert response.status == 200, await response.text()
    return await response.json()


async def test_new_campaign_is_checked_counted_live_and_saved_off_as_version_one(
    open_console: Any, gateway: Client, database: Database
) -> None:
    await add_people(database, PEOPLE, "+38050123470")
    admin = await open_campaigns(open_console)
    page = admin.page

    # A name the API refuses: the server's own message, and no editor opened.
    await page.fill("#campaign-new-name", "Winter North")
    await page.click("#campaign-new-start")
    refusal = page.locator("#campaign-new-errors li")
    await expect(refusal.locator("code.path")).to_have_text("name")
    await expect(refusal).to_contain_text("should match pattern")
    await expect(page.locator("#editor")).to_be_hidden()

    # A good name opens a starter definition, switched off, counted before any save.
    await page.fill("#campaign-new-name", NEW)
    await page.click("#campaign-new-start")
    await expect(page.locator("#editor-title")).to_have_text(f"{NEW} — new, not saved yet")
    await expect(page.locator("#campaign-new-errors li")).to_have_count(0)
    await expect(page.locator("#editor-enabled")).not_to_be_checked()
    await expect(page.locator("#editor-schedule")).to_have_value("0 10 * * *")
    await expect(page.locator("#editor-steps li.step")).to_have_count(1)
    # No templates are saved yet: the starter's send step says so at its own path.
    await expect(page.locator("#preview-errors li code.path")).to_have_text("steps[0].template")

    # The manager picks the audience and the template in the form.
    first = page.locator("#audience-builder .condition").nth(0)
    await first.locator("select.field").select_option("region")
    first = page.locator("#audience-builder .condition").nth(0)
    await first.locator("input.value").fill("north")
    await page.locator("#editor-steps li.step input.template").fill("payment-reminder")
    await page.fill("#editor-description", "SMS to the north")
    # A schedule that is no cron: the server's message at the schedule field.
    await page.fill("#editor-schedule", "every day")
    schedule_error = page.locator(".field-error[data-error-for=schedule]")
    await expect(schedule_error).to_contain_text("is not a cron expression")
    await page.fill("#editor-schedule", "0 10 * * *")
    await expect(schedule_error).to_have_text("")
    await expect(page.locator("#preview-errors li")).to_have_count(0)
    await expect(page.locator("#preview-of")).to_have_text("unsaved edit")
    draft = {
        "name": NEW,
        "description": "SMS to the north",
        "enabled": False,
        "schedule": "0 10 * * *",
        "occurrence": "once",
        "audience": {"all": [{"field": "region", "op": "==", "value": "north"}]},
        "steps": [
            {"id": "send-1", "type": "send", "channel": "sms", "template": "payment-reminder"}
        ],
    }
    preview = await api_json(
        gateway, "POST", f"/api/campaigns/{NEW}/preview", {"definition": draft}
    )
    assert preview["count"] == 2
    await expect(page.locator("#audience-count")).to_have_text(str(preview["count"]))
    # Nothing exists on the server yet.
    missing = await gateway.get(f"/api/campaigns/{NEW}", headers=bearer(ADMIN_TOKEN))
    assert missing.status == 404
    await admin.screenshot("campaign-new")

    await page.click("#editor-save")
    await expect(page.locator("#editor-status")).to_have_text("Saved as version 1.")
    await expect(page.locator("#editor-title")).to_have_text(f"{NEW} — version 1")
    row = page.locator(f"#campaigns tr[data-name={NEW}]")
    for cell, text in enumerate([NEW, "SMS to the north", "1", "off"]):
        await expect(row.locator("td").nth(cell)).to_have_text(text)
    await expect(page.locator("#editor-versions tr")).to_have_count(1)
    await expect(page.locator("#editor-versions tr").first).to_contain_text("admin:")
    saved = await api_json(gateway, "GET", f"/api/campaigns/{NEW}")
    assert saved["version"] == 1 and saved["enabled"] is False
    assert saved["definition"] == draft
    assert saved["created_by"].startswith("admin:")

    # Starting the same name again is refused: it exists.
    await page.fill("#campaign-new-name", NEW)
    await page.click("#campaign-new-start")
    await expect(page.locator("#campaign-new-errors li")).to_contain_text("exists already")
    await expect(page.locator("#editor-title")).to_have_text(f"{NEW} — version 1")
    assert not admin.errors and not admin.dialogs


async def test_holdout_and_weights_are_edited_with_the_servers_messages_at_their_fields(
    open_console: Any, gateway: Client, database: Database
) -> None:
    await add_people(database, PEOPLE, "+38050123480")
    await api_json(gateway, "PUT", f"/api/campaigns/{ARMS}", EXPERIMENT_DEFINITION)
    admin = await open_campaigns(open_console)
    page = admin.page
    await page.locator(f"#campaigns tr[data-name={ARMS}] button.open-campaign").click()
    holdout = page.locator("#editor-steps input.holdout")
    weights = page.locator("#editor-steps input.arm-weight")
    await expect(holdout).to_have_value("0.1")
    await expect(page.locator("#editor-enabled")).not_to_be_checked()
    await expect(weights).to_have_count(2)
    holdout_error = page.locator(".field-error[data-error-for='experiment.holdout']")
    weight_error = page.locator(".field-error[data-error-for='experiment.arms[1].weight']")

    # A holdout of the whole audience: the server's message at the holdout field, live and
    # on save; nothing saved.
    await holdout.fill("1")
    await expect(holdout_error).to_have_text("Input should be less than 1")
    await page.click("#editor-save")
    await expect(page.locator("#editor-errors li code.path")).to_have_text("experiment.holdout")
    await expect(holdout_error).to_have_text("Input should be less than 1")
    await expect(weight_error).to_have_text("")
    await admin.screenshot("campaign-arms")
    # Text that is no number goes as typed: the server says why.
    await holdout.fill("a tenth")
    await expect(holdout_error).to_contain_text("valid number")

    # A zero weight: the message on that arm's weight, not the holdout's.
    await holdout.fill("0.2")
    await weights.nth(1).fill("0")
    await expect(weight_error).to_have_text("Input should be greater than 0")
    await expect(holdout_error).to_have_text("")
    await page.click("#editor-save")
    await expect(weight_error).to_have_text("Input should be greater than 0")
    versions = await api_json(gateway, "GET", f"/api/campaigns/{ARMS}/versions")
    assert [v["version"] for v in versions["items"]] == [1]

    # Valid numbers: saved as version 2, the preview's holdout follows.
    await weights.nth(1).fill("3")
    await expect(weight_error).to_have_text("")
    await page.click("#editor-save")
    await expect(page.locator("#editor-status")).to_have_text("Saved as version 2.")
    await expect(page.locator("#editor-errors li")).to_have_count(0)
    saved = await api_json(gateway, "GET", f"/api/campaigns/{ARMS}")
    assert saved["enabled"] is False and saved["definition"]["enabled"] is False
    experiment = saved["definition"]["experiment"]
    assert experiment["holdout"] == 0.2
    assert [arm["weight"] for arm in experiment["arms"]] == [1, 3]
    await expect(page.locator("#editor-steps input.holdout")).to_have_value("0.2")
    await expect(page.locator("#editor-versions tr")).to_have_count(2)
    assert not admin.errors and not admin.dialogs
