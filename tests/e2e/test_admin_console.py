"""The admin pages of the console in headless Chromium: the dashboard's Chart.js charts over
seeded reports, and the campaign editor (form-built audience, save with the server's error
paths, preview, versions, rollback), with API text rendered as text."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from playwright.async_api import expect

from gateway.console.http import CHART_JS_ROUTE
from gateway.core.clock import SystemClock
from gateway.core.db.engine import Database
from gateway.core.db.models import CostEntry, OutboundContact
from tests.support.auth import ADMIN_TOKEN, OPERATOR_TOKEN, SUPERVISOR_TOKEN, bearer
from tests.support.console import XSS_NAME, add_people
from tests.support.console_wiring import Client
from tests.support.cost_population import add_campaign, add_customers, insert_rows, ledger_row

CAMPAIGN = "north-sms"
DEFINITION: dict[str, Any] = {
    "name": CAMPAIGN,
    "description": XSS_NAME,
    "enabled": False,  # the workers are on: the campaign must not run during the test
    "schedule": "0 10 * * *",
    "audience": {"all": [{"field": "region", "op": "==", "value": "south"}]},
    "steps": [
        {"id": "remind", "type": "send", "channel": "sms", "template": "payment-reminder"},
        {"id": "pause", "type": "wait", "until": ["replied"], "timeout": "3d"},
        {"id": "thanks", "type": "send", "channel": "sms", "template": "reactivation-thanks"},
    ],
}
EDITED_AUDIENCE = {
    "all": [
        {"field": "region", "op": "==", "value": "north"},
        {"not": {"field": "language", "op": "==", "value": "en"}},
        {
            "any": [
                {"field": "language", "op": "==", "value": "pl"},
                {"field": "region", "op": "==", "value": "north"},
            ]
        },
    ]
}


def delivered_sms(number: int, customer_id: str, at: datetime) -> dict[str, Any]:
    """An SMS created, sent and delivered at `at`."""
    return {
        "id": f"oc{number:08d}",
        "idempotency_key": f"dashboard-{number}",
        "channel": "sms",
        "customer_id": customer_id,
        "status": "delivered",
        "variables": {},
        "created_at": at,
        "updated_at": at,
        "sent_at": at,
        "delivered_at": at,
    }


async def test_dashboard_draws_statuses_contacts_costs_and_savings(
    open_console: Any, database: Database
) -> None:
    # Days before yesterday: the workers freeze yesterday's snapshot as they start, before
    # the rows below exist.
    spent = SystemClock().now() - timedelta(days=3)
    ids = await add_customers(database, 3, spent - timedelta(days=2))
    campaign_id = await add_campaign(database, "reminder", spent)
    await insert_rows(
        database,
        CostEntry,
        [ledger_row(i, cid, campaign_id, spent) for i, cid in enumerate(ids)],
    )
    await insert_rows(
        database, OutboundContact, [delivered_sms(i, cid, spent) for i, cid in enumerate(ids)]
    )
    admin = await open_console()
    await admin.sign_in(ADMIN_TOKEN)
    await admin.page.click("#nav button[data-view=dashboard]")
    # The default range (two weeks to today) draws first.
    await expect(admin.page.locator("#dash-status")).to_contain_text("14 days from")
    today = SystemClock().now().date()
    await admin.page.fill("#dash-from", (today - timedelta(days=6)).isoformat())
    await admin.page.fill("#dash-to", (today - timedelta(days=2)).isoformat())
    await admin.page.click("#dash-range button[type=submit]")
    page = admin.page
    await expect(page.locator("#dash-status")).to_contain_text("5 days from")
    await expect(page.locator("#dash-charts canvas")).to_have_count(5)
    days = [(today - timedelta(days=n)).isoformat() for n in range(6, 1, -1)]
    # Three SMS at 0.30 on one day: one point of 0.9 on the cost line.
    costs = await drawn(page, "chart-costs")
    assert costs["labels"] == days
    assert [d["label"] for d in costs["datasets"]] == ["cost"]
    assert sorted(costs["datasets"][0]["data"]) == [0, 0, 0, 0, 0.9]
    statuses = await drawn(page, "chart-statuses")
    assert statuses["type"] == "line" and statuses["labels"] == days
    assert "active" in [d["label"] for d in statuses["datasets"]]
    moved = await drawn(page, "chart-moved-back")
    # Nobody came back to active in the range: a zero every day, not a missing series.
    assert moved["labels"] == days and moved["datasets"][0]["data"] == [0] * 5
    contacts = await drawn(page, "chart-contacts")
    assert contacts["type"] == "bar"
    assert dict(zip(contacts["labels"], contacts["datasets"][0]["data"], strict=True)) == {
        "sms created": 3,
        "sms sent": 3,
        "sms delivered": 3,
    }
    savings = await drawn(page, "chart-savings")
    # No deflection source for the campaign: no net savings, drawn as no bar rather than 0.
    assert savings["labels"] == ["reminder"] and savings["datasets"][0]["data"] == [None]
    # The figures are also in a table, as text.
    await expect(page.locator("#chart-savings table.chart-figures tbody th")).to_have_text(
        ["reminder"]
    )
    await expect(page.locator("#chart-savings table.chart-figures tbody td")).to_have_text(["n/a"])
    await expect(page.locator("#daily-figures dl")).to_contain_text("Customers active")
    await admin.screenshot("dashboard")
    assert not admin.errors and not admin.dialogs
    # The admin has no extension: no empty "Calls from" picker in the header.
    await expect(page.locator("#ext-picker")).to_be_hidden()
    operator = await open_console()
    await operator.sign_in(OPERATOR_TOKEN)
    await expect(operator.page.locator("#nav button[data-view=tasks]")).to_be_visible()
    await expect(operator.page.locator("#nav button[data-view=dashboard]")).to_be_hidden()
    await expect(operator.page.locator("#nav button[data-view=campaigns]")).to_be_hidden()
    await expect(operator.page.locator("#ext-picker")).to_be_visible()
    # A supervisor reads the statistics and configures nothing.
    supervisor = await open_console()
    await supervisor.sign_in(SUPERVISOR_TOKEN)
    await supervisor.page.click("#nav button[data-view=dashboard]")
    await expect(supervisor.page.locator("#dash-charts canvas")).to_have_count(5)
    for view in ("campaigns", "templates", "partners"):
        await expect(supervisor.page.locator(f"#nav button[data-view={view}]")).to_be_hidden()
    assert not supervisor.errors and not supervisor.dialogs


async def drawn(page: Any, box: str) -> dict[str, Any]:
    """What Chart.js drew on the canvas in `#box`: its type, labels and datasets."""
    chart: dict[str, Any] = await page.evaluate(
        """(box) => {
            const chart = Chart.getChart(document.querySelector(`#${box} canvas`));
            if (!chart) return null;
            return {
                type: chart.config.type,
                labels: chart.data.labels,
                datasets: chart.data.datasets.map((d) => ({ label: d.label, data: d.data })),
            };
        }""",
        box,
    )
    assert chart is not None, f"no Chart.js chart in #{box}"
    return chart


async def test_dashboard_shows_tables_when_the_chart_library_is_missing(
    open_console: Any, gateway: Client
) -> None:
    # The library is served from node_modules by the gateway itself...
    response = await gateway.get(CHART_JS_ROUTE)
    assert response.status == 200
    assert "Chart" in (await response.text())[:4000]
    # ...and a console whose browser cannot load it still shows the figures, as tables.
    admin = await open_console()
    await admin.page.route(f"**{CHART_JS_ROUTE}", lambda route: route.abort())
    await admin.sign_in(ADMIN_TOKEN)
    await admin.page.click("#nav button[data-view=dashboard]")
    page = admin.page
    await expect(page.locator("#dash-status")).to_contain_text("14 days from")
    await expect(page.locator("#dash-charts canvas")).to_have_count(0)
    statuses = page.locator("#chart-statuses table.chart-figures")
    await expect(statuses).to_be_visible()
    await expect(statuses.locator("tbody tr")).to_have_count(14)
    await expect(page.locator("#chart-statuses")).to_contain_text("Chart library not installed")
    assert not admin.errors


async def save_definition(gateway: Client) -> None:
    """Version 1 of the test campaign, through the API."""
    response = await gateway.put(
        f"/api/campaigns/{CAMPAIGN}", json=DEFINITION, headers=bearer(ADMIN_TOKEN)
    )
    assert response.status == 200, await response.text()


async def open_editor(open_console: Any) -> Any:
    """An admin's console with the test campaign open in the editor."""
    admin = await open_console()
    await admin.sign_in(ADMIN_TOKEN)
    await admin.page.click("#nav button[data-view=campaigns]")
    await admin.page.locator(f"#campaigns tr[data-name={CAMPAIGN}] button.open-campaign").click()
    return admin


async def preview_count(gateway: Client) -> int:
    response = await gateway.post(
        f"/api/campaigns/{CAMPAIGN}/preview", json={}, headers=bearer(ADMIN_TOKEN)
    )
    assert response.status == 200
    return int((await response.json())["count"])


async def test_campaign_editor_builds_saves_refuses_and_rolls_back(
    open_console: Any, gateway: Client, database: Database
) -> None:
    people = [
        ("Olena", "north", "uk"),
        (XSS_NAME, "north", "uk"),
        ("Taras", "north", "uk"),
        ("John", "north", "en"),
        ("Iryna", "south", "uk"),
        ("Petro", "south", "uk"),
    ]
    await add_people(database, people, "+38050123450")
    await save_definition(gateway)
    admin = await open_editor(open_console)
    page = admin.page
    row = page.locator(f"#campaigns tr[data-name={CAMPAIGN}]")
    await expect(row.locator("td").nth(1)).to_have_text(XSS_NAME)
    await expect(page.locator("#audience-count")).to_have_text("2")
    await expect(page.locator("#editor-steps li.step")).to_have_count(3)
    pause = page.locator("#editor-steps li.step[data-id=pause]")
    await expect(pause.locator("select.wait-mode")).to_have_value("until")

    # Build region == north AND NOT language == en AND (language == pl OR region == north)
    # with the form alone.
    first = page.locator("#audience-builder .condition").nth(0)
    await first.locator("input.value").fill("north")
    await page.locator("#audience-builder .add-condition").first.click()
    second = page.locator("#audience-builder .condition").nth(1)
    await second.locator("select.field").select_option("language")
    await second.locator("select.op").select_option("==")
    await second.locator("input.value").fill("en")
    await second.locator("input.negate").check()
    # A nested "any of" group: were it saved as "all of", nobody would match.
    await page.locator("#audience-builder .add-group").first.click()
    nested = page.locator("#audience-builder fieldset.group fieldset.group")
    await expect(nested.locator("select.mode")).to_have_value("any")
    for field, value in (("language", "pl"), ("region", "north")):
        await nested.locator(".add-condition").click()
        row = nested.locator(".condition").last
        await row.locator("select.field").select_option(field)
        await row.locator("input.value").fill(value)
    await page.click("#editor-save")
    await expect(page.locator("#editor-status")).to_have_text("Saved as version 2.")
    await expect(page.locator("#audience-count")).to_have_text("3")
    response = await gateway.get(f"/api/campaigns/{CAMPAIGN}", headers=bearer(ADMIN_TOKEN))
    assert (await response.json())["definition"]["audience"] == EDITED_AUDIENCE
    assert await preview_count(gateway) == 3
    await expect(page.locator("#editor-preview .sample li", has_text=XSS_NAME)).to_have_count(1)
    await expect(page.locator("#editor-versions tr")).to_have_count(2)
    await expect(page.locator("#editor-versions tr").first).to_contain_text("admin:")

    # An invalid edit is refused whole, naming the exact path; nothing is saved.
    await first.locator("select.field").select_option("days_since_activity")
    first = page.locator("#audience-builder .condition").nth(0)
    await first.locator("select.op").select_option(">=")
    await first.locator("input.value").fill("soon")
    await page.click("#editor-save")
    errors = page.locator("#editor-errors li")
    await expect(errors).to_have_count(1)
    await expect(errors.locator("code.path")).to_have_text("audience.all[0].value")
    await expect(errors).to_contain_text("whole number")
    await expect(page.locator("#editor-versions tr")).to_have_count(2)
    await admin.screenshot("campaign-editor")

    # Roll back to version 1: saved as version 3, the south audience again.
    await page.locator("#editor-versions tr[data-version='1'] button.rollback").click()
    await expect(page.locator("#editor-status")).to_contain_text("version 3 restores version 1")
    await expect(page.locator("#audience-count")).to_have_text("2")
    await expect(page.locator("#editor-versions tr")).to_have_count(3)
    assert await preview_count(gateway) == 2
    assert not admin.errors and not admin.dialogs


async def draft_preview(gateway: Client, audience: dict[str, Any]) -> dict[str, Any]:
    """The API's preview of the definition with `audience`, unsaved."""
    response = await gateway.post(
        f"/api/campaigns/{CAMPAIGN}/preview",
        json={"definition": {**DEFINITION, "audience": audience}},
        headers=bearer(ADMIN_TOKEN),
    )
    assert response.status == 200, await response.text()
    data: dict[str, Any] = await response.json()
    return data


async def draft_count(gateway: Client, audience: dict[str, Any]) -> int:
    """The API's count for the definition with `audience`, unsaved."""
    return int((await draft_preview(gateway, audience))["count"])


async def test_editor_counts_the_unsaved_edit_as_the_api_does(
    open_console: Any, gateway: Client, database: Database
) -> None:
    people = [("Olena", "north", "uk"), ("John", "north", "en"), ("Iryna", "south", "uk")]
    await add_people(database, people, "+38050123460")
    await save_definition(gateway)
    admin = await open_editor(open_console)
    page = admin.page
    await expect(page.locator("#preview-of")).to_have_text("version 1")
    await expect(page.locator("#audience-count")).to_have_text("1")

    # region == north: counted as typed, before any save.
    first = page.locator("#audience-builder .condition").nth(0)
    await first.locator("input.value").fill("north")
    await expect(page.locator("#preview-of")).to_have_text("unsaved edit")
    north = {"all": [{"field": "region", "op": "==", "value": "north"}]}
    await expect(page.locator("#audience-count")).to_have_text(
        str(await draft_count(gateway, north))
    )
    assert await draft_count(gateway, north) == 2

    # … and not English: the count follows the form again, still unsaved.
    await page.locator("#audience-builder .add-condition").first.click()
    second = page.locator("#audience-builder .condition").nth(1)
    await second.locator("select.field").select_option("language")
    await second.locator("input.value").fill("en")
    await second.locator("input.negate").check()
    edited = {"all": [north["all"][0], {"not": {"field": "language", "op": "==", "value": "en"}}]}
    expected = await draft_count(gateway, edited)
    assert expected == 1
    api_preview = await draft_preview(gateway, edited)
    cost = f"{api_preview['estimated_cost']} {api_preview['currency']}"
    await expect(page.locator("#audience-cost")).to_have_text(cost)
    await expect(page.locator("#preview-of")).to_have_text("unsaved edit")
    await expect(page.locator("#audience-count")).to_have_text(str(expected))
    await expect(page.locator("#preview-errors li")).to_have_count(0)
    await admin.screenshot("campaign-editor-live-preview")

    # An edit that cannot be counted lists the server's path; the last count is marked stale.
    await first.locator("select.field").select_option("days_since_activity")
    first = page.locator("#audience-builder .condition").nth(0)
    await first.locator("select.op").select_option(">=")
    await first.locator("input.value").fill("soon")
    errors = page.locator("#preview-errors li")
    await expect(errors.locator("code.path")).to_have_text("audience.all[0].value")
    await expect(page.locator("#preview-of")).to_have_attribute("data-stale", "yes")
    await admin.screenshot("campaign-editor-preview-error")

    # Nothing was saved along the way.
    await expect(page.locator("#editor-versions tr")).to_have_count(1)
    response = await gateway.get(f"/api/campaigns/{CAMPAIGN}/versions", headers=bearer(ADMIN_TOKEN))
    assert len((await response.json())["items"]) == 1
    assert not admin.errors and not admin.dialogs


EDITED_STEPS = [
    DEFINITION["steps"][0],
    {"id": "pause", "type": "wait", "until": ["replied"], "timeout": "5d"},
    {
        "id": "branch-1",
        "type": "branch",
        "cases": [
            {"outcome": "replied", "goto": "thank-you"},
            {"when": {"all": [{"field": "region", "op": "==", "value": "north"}]}, "goto": "end"},
        ],
        "otherwise": "end",
    },
    {"id": "thank-you", "type": "send", "channel": "email", "template": "reactivation-thanks"},
]


async def test_editor_edits_steps_and_shows_the_servers_messages_on_them(
    open_console: Any, gateway: Client
) -> None:
    await save_definition(gateway)
    admin = await open_editor(open_console)
    page = admin.page
    steps = page.locator("#editor-steps li.step")
    await expect(steps).to_have_count(3)

    # A wait until a reply without a timeout: refused, the message on the wait itself.
    pause = page.locator("#editor-steps li.step[data-id=pause]")
    await pause.locator("input.timeout").fill("")
    await page.click("#editor-save")
    await expect(page.locator("#editor-errors li code.path")).to_have_text("steps[1]")
    await expect(pause.locator(".step-errors li")).to_contain_text(
        "waiting until an event needs a timeout"
    )
    await admin.screenshot("campaign-editor-step-error")
    await pause.locator("input.timeout").fill("5d")

    # A branch added at the end, moved up before "thanks"; a case on the wait's outcome
    # and one on a rule built in the form.
    await page.select_option("#editor-steps select.new-step-type", "branch")
    await page.click("#editor-steps button.add-step")
    await expect(steps).to_have_count(4)
    branch = page.locator("#editor-steps li.step[data-id=branch-1]")
    await branch.locator("button.move-up").click()
    await expect(steps.nth(2)).to_have_attribute("data-id", "branch-1")
    await branch.locator("li.case select.goto").first.select_option("thanks")
    await branch.locator("button.add-case").click()
    rule_case = branch.locator("li.case").nth(1)
    await rule_case.locator("select.case-kind").select_option("rule")
    await rule_case.locator(".add-condition").click()
    await rule_case.locator("select.field").select_option("region")
    await rule_case.locator("input.value").fill("north")

    # A step added and removed again; the last message goes by e-mail under a new id
    # that the branch follows.
    await page.select_option("#editor-steps select.new-step-type", "wait")
    await page.click("#editor-steps button.add-step")
    await expect(steps).to_have_count(5)
    await page.locator("#editor-steps li.step[data-id=wait-1] button.remove-step").click()
    await expect(steps).to_have_count(4)
    thanks = page.locator("#editor-steps li.step[data-id=thanks]")
    await thanks.locator("select.channel").select_option("email")
    await thanks.locator("input.step-id").fill("thank-you")
    await thanks.locator("input.step-id").press("Tab")
    await expect(branch.locator("li.case select.goto").first).to_have_value("thank-you")
    await page.click("#editor-save")
    await expect(page.locator("#editor-status")).to_have_text("Saved as version 2.")
    await expect(page.locator("#editor-errors li")).to_have_count(0)
    saved = await gateway.get(f"/api/campaigns/{CAMPAIGN}", headers=bearer(ADMIN_TOKEN))
    assert (await saved.json())["definition"]["steps"] == EDITED_STEPS

    # A reload shows the saved sequence.
    await page.reload()
    await page.click("#nav button[data-view=campaigns]")
    await page.locator(f"#campaigns tr[data-name={CAMPAIGN}] button.open-campaign").click()
    await expect(steps).to_have_count(4)
    ids = [await steps.nth(n).get_attribute("data-id") for n in range(4)]
    assert ids == ["remind", "pause", "branch-1", "thank-you"]
    await expect(
        page.locator("#editor-steps li.step[data-id=branch-1] .case-rule input.value")
    ).to_have_value("north")
    await admin.screenshot("campaign-editor-steps")
    assert not admin.errors and not admin.dialogs
