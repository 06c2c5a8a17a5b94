"""The operator console in headless Chromium against the whole gateway and the PBX
simulator: screen-pops, queue calls, verified task completion, wrap-up, click-to-call,
the customer page, and API text rendered as text."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from playwright.async_api import expect
from sqlalchemy import select

from gateway.core.clock import SystemClock
from gateway.core.db.engine import Database
from gateway.core.db.models import Payment
from gateway.core.db.models.crm import OutboxItem
from gateway.core.db.types import new_id
from gateway.pbx_simulator import CallSpec, SimulatorServer
from tests.support.auth import ADMIN_TOKEN, OPERATOR_AGENT, OPERATOR_TOKEN, bearer
from tests.support.console import XSS_NAME, add_customer
from tests.support.console_wiring import SECOND_AGENT, SECOND_OPERATOR_TOKEN, Client
from tests.support.factories import make_call, make_task
from tests.support.telephony import ended_calls

OLENA = "+380501234567"


async def add_payment_in_three_days(database: Database, customer_id: str) -> None:
    now = SystemClock().now()
    async with database.transaction() as session:
        session.add(
            Payment(
                id=new_id("pay"),
                customer_id=customer_id,
                contract_id="K-77",
                due_date=(now + timedelta(days=3)).date(),
                amount=Decimal("1250.00"),
                currency="UAH",
                status="due",
                updated_at=now,
            )
        )


async def test_a_queue_call_pops_for_both_and_closes_for_the_one_who_did_not_answer(
    gateway: Client, database: Database, pbx: SimulatorServer, open_console: Any
) -> None:
    customer = await add_customer(
        database, "Олена Коваль", OLENA, responsible_agent=SECOND_AGENT, bonus_balance="42.50"
    )
    await add_payment_in_three_days(database, customer)
    first, second = await open_console(), await open_console()
    await first.sign_in(OPERATOR_TOKEN)
    await second.sign_in(SECOND_OPERATOR_TOKEN)
    await first.wait_live()
    await second.wait_live()
    await first.screenshot("calls-waiting")

    pbx.start_call(
        CallSpec(
            caller=OLENA,
            extensions=("201", "202"),
            answered_by="202",
            ring_seconds=60,
            talk_seconds=60,
        )
    )
    for console in (first, second):
        pop = console.page.locator(".pop")
        await expect(pop.locator(".customer-name")).to_have_text("Олена Коваль")
        await expect(pop.locator(".why")).to_contain_text("due in 3 day(s)")
        await expect(pop).to_contain_text(SECOND_AGENT)
        await expect(pop).to_contain_text("42.50")
    await second.screenshot("screen-pop-ringing")

    # 202 answers: 201's pop says so and closes; 202 talks, then wraps up.
    other = first.page.locator(".pop")
    await expect(other).to_have_attribute("data-state", "answered_elsewhere")
    await expect(other.locator(".state")).to_have_text("Answered by a colleague")
    await first.screenshot("screen-pop-answered-elsewhere")
    await expect(other).to_have_count(0, timeout=10_000)
    mine = second.page.locator(".pop")
    await expect(mine).to_have_attribute("data-state", "ended", timeout=10_000)
    await expect(mine.locator(".state")).to_contain_text("Ended")
    await mine.get_by_label("Call topic").select_option("complaint")
    await second.screenshot("wrap-up")
    await mine.get_by_role("button", name="Save topic").click()
    await expect(mine.get_by_role("status")).to_have_text("Saved.")
    (record,) = await ended_calls(gateway, 1)
    assert record["topic"] == "complaint" and record["extension"] == "202"
    assert first.dialogs == second.dialogs == []
    assert first.errors == second.errors == []
    for console in (first, second):
        console.assert_no_token_in_urls()
        assert any("/ws/agents/" in url and "?ticket=" in url for url in console.urls)


async def test_an_unknown_caller_can_be_sent_to_the_crm(
    gateway: Client, database: Database, pbx: SimulatorServer, open_console: Any
) -> None:
    console = await open_console()
    await console.sign_in(OPERATOR_TOKEN)
    await console.wait_live()
    pbx.start_call(CallSpec(caller="+380931112233", extensions=("201",), ring_seconds=60))
    pop = console.page.locator(".pop")
    await expect(pop).to_contain_text("Unknown caller.")
    await expect(pop.locator(".caller")).to_have_text("+380931112233")
    await pop.get_by_role("button", name="Create in CRM").click()
    await expect(pop.get_by_role("status")).to_have_text("Sent to the CRM as a new lead.")
    await console.screenshot("screen-pop-unknown-caller")
    async with database.sessions() as session:
        items = (await session.scalars(select(OutboxItem))).all()
    unknown = [item for item in items if item.type == "customer.unknown_caller"]
    assert len(unknown) == 1
    assert unknown[0].payload["phone"] == "+380931112233"
    assert unknown[0].payload["requested_by"] == OPERATOR_AGENT


async def test_a_task_is_refused_with_a_short_call_and_completed_with_a_long_one(
    gateway: Client, database: Database, pbx: SimulatorServer, open_console: Any
) -> None:
    customer = await add_customer(database, "Петро Іваненко", OLENA)
    task = await make_task(
        database,
        customer_id=customer,
        created_at=SystemClock().now(),
        min_call_seconds=20,
        assignee=OPERATOR_AGENT,
    )
    pbx.start_call(CallSpec(caller=OLENA, extensions=("201",), ring_seconds=1, talk_seconds=10))
    await ended_calls(gateway, 1)
    pbx.start_call(CallSpec(caller=OLENA, extensions=("201",), ring_seconds=1, talk_seconds=25))
    calls = await ended_calls(gateway, 2)
    short = next(c["id"] for c in calls if c["talk_seconds"] < 20)
    long = next(c["id"] for c in calls if c["talk_seconds"] >= 20)

    console = await open_console()
    await console.sign_in(OPERATOR_TOKEN)
    await console.page.get_by_role("button", name="My tasks").click()
    row = console.page.locator(f'.task[data-task-id="{task}"]')
    await expect(row).to_contain_text("Петро Іваненко")
    await row.get_by_role("button", name="Complete…").click()
    await row.get_by_label("Call that did this task").select_option(short)
    await row.get_by_role("button", name="Complete with this call").click()
    alert = row.get_by_role("alert")
    await expect(alert).to_have_attribute("data-reason", "call-too-short")
    problem = await gateway.post(
        f"/api/tasks/{task}/complete", json={"call_id": short}, headers=bearer(OPERATOR_TOKEN)
    )
    await expect(alert).to_have_text(f"Call too short: {(await problem.json())['detail']}")
    await console.screenshot("task-refused-too-short")

    await row.get_by_label("Call that did this task").select_option(long)
    await row.get_by_role("button", name="Complete with this call").click()
    await expect(row).to_have_attribute("data-status", "done")
    await console.screenshot("task-done")
    tasks = await gateway.get(f"/api/tasks?customer_id={customer}", headers=bearer(ADMIN_TOKEN))
    (done,) = (await tasks.json())["items"]
    assert done["status"] == "done" and done["completed_by_call_id"] == long


async def test_click_to_call_from_a_task_rings_my_extension_then_the_customer(
    gateway: Client, database: Database, open_console: Any
) -> None:
    customer = await add_customer(database, "Ірина Мельник", OLENA)
    await make_task(
        database, customer_id=customer, created_at=SystemClock().now(), assignee=OPERATOR_AGENT
    )
    console = await open_console()
    await console.sign_in(OPERATOR_TOKEN)
    await console.page.get_by_role("button", name="My tasks").click()
    await console.page.locator(".task").get_by_role("button", name="Call").click()
    await expect(console.page.locator("#flash")).to_contain_text("your phone 201 rings first")
    (record,) = await ended_calls(gateway, 1)
    assert record["direction"] == "outbound" and record["customer_id"] == customer
    assert record["extension"] == "201"


async def test_customer_page_search_timeline_filter_and_text_never_markup(
    gateway: Client, database: Database, open_console: Any
) -> None:
    customer = await add_customer(
        database, XSS_NAME, OLENA, attributes={"note": "<script>alert(2)</script>"}
    )
    now = SystemClock().now()
    await make_call(
        database,
        started_at=now - timedelta(days=2),
        talk_seconds=31,
        caller=OLENA,
        customer_id=customer,
    )
    await make_task(database, customer_id=customer, created_at=now - timedelta(days=1))
    console = await open_console()
    await console.sign_in(OPERATOR_TOKEN)
    page = console.page
    await page.get_by_role("button", name="Customers").click()
    await page.fill("#query", "img src")
    await page.get_by_role("button", name="Search").click()
    await page.get_by_role("button", name=XSS_NAME).click()
    card = page.locator("#customer .card")
    await expect(card.locator(".customer-name")).to_have_text(XSS_NAME)
    await expect(card).to_contain_text("<script>alert(2)</script>")
    assert await page.locator("main img, main script").count() == 0

    timeline = page.locator("#timeline li")
    await expect(timeline).to_have_count(2)
    kinds = [await item.get_attribute("data-kind") for item in await timeline.all()]
    assert kinds == ["task", "call"]  # newest first
    await page.get_by_label("Timeline kind").select_option("call")
    await expect(timeline).to_have_count(1)
    await expect(timeline).to_contain_text("31 s")
    await console.screenshot("customer-page")

    # By phone, in a written form, finds the same customer.
    await page.fill("#query", "050 123 45 67")
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("#results li")).to_have_count(1)
    await expect(page.locator("#results")).to_contain_text(XSS_NAME)

    # A reload keeps the session (cookie); signing out ends it.
    await page.reload()
    await expect(page.locator("#sign-out")).to_be_visible()
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.locator("#token")).to_be_visible()
    await page.reload()
    await expect(page.locator("#token")).to_be_visible()
    await console.screenshot("sign-in")
    assert console.dialogs == [] and console.errors == []
