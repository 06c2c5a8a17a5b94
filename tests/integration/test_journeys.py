"""Journeys and the scheduler on both databases, replayed with an injected `as_of`.

Customers, activity and payments go through the real CRM ingest; campaigns are saved
through the campaign store; time only moves when the test moves it (no sleeping).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.campaigns.arms import HOLDOUT, assign_arm
from gateway.campaigns.definition import validate_definition
from gateway.campaigns.journey import contact_key
from gateway.campaigns.scheduler import (
    CampaignDisabled,
    CampaignNotFound,
    run_campaign,
    tick,
)
from gateway.core.bus import MemoryBus
from gateway.core.cli import UsageError
from gateway.core.clock import isoformat_z
from gateway.core.db.engine import Database
from gateway.core.db.models import (
    Campaign,
    Customer,
    Enrollment,
    ExperimentAssignment,
    OutboundContact,
    OutboxItem,
    StatusChange,
    Task,
)
from gateway.core.db.states import EnrollmentState
from gateway.settings import Settings
from tests.support.databases import truncate_all
from tests.support.journeys import campaign, crm, customer, day


async def contacts(database: Database) -> list[OutboundContact]:
    async with database.sessions() as session:
        return list(
            await session.scalars(select(OutboundContact).order_by(OutboundContact.created_at))
        )


async def enrollment_of(database: Database, customer_id: str) -> Enrollment:
    async with database.sessions() as session:
        return (
            await session.scalars(select(Enrollment).where(Enrollment.customer_id == customer_id))
        ).one()


WINBACK = {
    "name": "winback",
    "schedule": "0 10 * * *",
    "occurrence": "once",
    "audience": {"field": "status", "op": "==", "value": "cold"},
    "steps": [
        {"id": "hello", "type": "send", "channel": "sms", "template": "winback"},
        {"id": "wait", "type": "wait", "until": ["activity"], "timeout": "30d"},
        {
            "id": "check",
            "type": "branch",
            "cases": [{"outcome": "activity", "goto": "reacted"}],
            "otherwise": "call",
        },
        {"id": "call", "type": "call_task", "min_call_seconds": 45, "due_in": "3d"},
        {"id": "tell-crm", "type": "crm_action", "action": "customer.winback_failed"},
        {"id": "stop", "type": "branch", "cases": [{"outcome": "timeout", "goto": "end"}]},
        {"id": "reacted", "type": "set_status", "status": "active"},
    ],
}


async def test_a_month_replayed_day_by_day(database: Database, settings: Settings) -> None:
    await campaign(database, WINBACK, day(-1))
    reacts = await customer(database, "c-reacts", day(-1), status="cold")
    silent = await customer(database, "c-silent", day(-1), status="cold")
    await customer(database, "c-active", day(-1))  # not in the audience

    first = await tick(database, settings, day(0))
    assert [run.enrolled for run in first.runs] == [2]
    assert first.advance.contacts == 2
    keys = sorted(c.idempotency_key for c in await contacts(database))
    assert keys == sorted(contact_key("winback", c, "hello", "once") for c in (reacts, silent))
    assert all(c.status == "pending" and c.channel == "sms" for c in await contacts(database))

    activity_at = day(4, hours=5)
    for n in range(1, 32):
        if n == 5:
            data = {"external_id": "c-reacts", "kind": "card_use", "at": isoformat_z(activity_at)}
            await crm(database, "customer.activity", data, activity_at)
        report = await tick(database, settings, day(n))
        assert report.advance.contacts == 0  # one message each, however often it runs
        if n == 29:
            waiting = await enrollment_of(database, silent)
            assert (waiting.state, waiting.step) == (EnrollmentState.WAITING, "wait")
            async with database.sessions() as session:
                assert await session.scalar(select(func.count()).select_from(Task)) == 0

    done = await enrollment_of(database, reacts)
    assert (done.state, done.context["outcome"]) == (EnrollmentState.DONE, "activity")
    async with database.sessions() as session:
        moved = await session.get(Customer, reacts)
        assert moved is not None and moved.status == "active"
        change = (
            await session.scalars(
                select(StatusChange).where(
                    StatusChange.customer_id == reacts, StatusChange.to_status == "active"
                )
            )
        ).all()
        # Stamped when the customer reacted, not when a tick noticed it.
        assert [(c.at, c.reason) for c in change][-1] == (activity_at, "campaign:winback")
        tasks = list(await session.scalars(select(Task)))
        assert [(t.customer_id, t.assignee, t.min_call_seconds) for t in tasks] == [
            (silent, "agent-7", 45)
        ]
        assert tasks[0].created_at == day(30) and tasks[0].due_at == day(33)
        actions = list(
            await session.scalars(
                select(OutboxItem).where(OutboxItem.type == "customer.winback_failed")
            )
        )
        assert [a.payload["external_id"] for a in actions] == ["c-silent"]
        unmoved = await session.get(Customer, silent)
        assert unmoved is not None and unmoved.status == "cold"
    timed_out = await enrollment_of(database, silent)
    assert (timed_out.state, timed_out.context["outcome"]) == (EnrollmentState.DONE, "timeout")
    assert len(await contacts(database)) == 2


async def test_the_same_history_whether_ticked_hourly_or_once(
    database: Database, settings: Settings
) -> None:
    await campaign(database, WINBACK, day(-1))
    silent = await customer(database, "c-silent", day(-1), status="cold")
    await run_campaign(database, settings, "winback", day(0))
    report = await tick(database, settings, day(40))  # a month and more in one tick
    assert report.advance.tasks == 1
    async with database.sessions() as session:
        task = (await session.scalars(select(Task))).one()
    assert (task.customer_id, task.created_at, task.due_at) == (silent, day(30), day(33))


REMINDER = {
    "name": "payment-reminder",
    "schedule": "0 10 * * *",
    "occurrence": "payment",
    "audience": {"field": "days_until_payment", "op": "==", "value": 3},
    "steps": [{"id": "remind", "type": "send", "channel": "sms", "template": "payment-due"}],
}


async def test_one_reminder_per_payment_occurrence(database: Database, settings: Settings) -> None:
    await campaign(database, REMINDER, day(-1))
    payer = await customer(database, "c-payer", day(-1))
    for contract_day in ("2026-11-05", "2026-12-05"):
        data = {
            "external_id": "c-payer",
            "contract_id": "loan-1",
            "due_date": contract_day,
            "amount": "120.50",
            "currency": "UAH",
        }
        await crm(database, "payment.scheduled", data, day(-1))

    for n in range(0, 40):
        if n == 4:
            paid = {"external_id": "c-payer", "contract_id": "loan-1", "due_date": "2026-11-05"}
            await crm(database, "payment.paid", paid, day(n))
        await tick(database, settings, day(n))
        # Rerunning the same day (by hand, later that day) creates nothing new.
        again = await run_campaign(database, settings, "payment-reminder", day(n, hours=3))
        assert again.enrolled == 0 and again.advance.contacts == 0

    keys = [c.idempotency_key for c in await contacts(database)]
    assert keys == [
        contact_key("payment-reminder", payer, "remind", "2026-11-05"),
        contact_key("payment-reminder", payer, "remind", "2026-12-05"),
    ]
    created = [c.created_at for c in await contacts(database)]
    assert created == [day(0), day(30)]  # three days before each due date


async def test_enrollments_stay_on_their_version(database: Database, settings: Settings) -> None:
    v1 = {
        "name": "onboarding",
        "schedule": "0 10 * * *",
        "audience": {"field": "region", "op": "==", "value": "north"},
        "steps": [
            {"id": "welcome", "type": "send", "channel": "sms", "template": "welcome"},
            {"id": "pause", "type": "wait", "duration": "2d"},
            {"id": "tips", "type": "send", "channel": "email", "template": "tips"},
        ],
    }
    await campaign(database, v1, day(-1))
    early = await customer(database, "c-early", day(-1))
    await tick(database, settings, day(0))
    v2 = {
        **v1,
        "steps": [
            {"id": "hello", "type": "send", "channel": "email", "template": "hello-v2"},
            {"id": "pause", "type": "wait", "duration": "1d"},
            {"id": "offer", "type": "send", "channel": "sms", "template": "offer-v2"},
        ],
    }
    await campaign(database, v2, day(0, hours=1))
    late = await customer(database, "c-late", day(0, hours=2))
    await tick(database, settings, day(1))
    await tick(database, settings, day(2))
    await tick(database, settings, day(3))

    templates = {(c.customer_id, c.template) for c in await contacts(database)}
    assert templates == {
        (early, "welcome"),
        (early, "tips"),
        (late, "hello-v2"),
        (late, "offer-v2"),
    }
    assert (await enrollment_of(database, early)).version == 1
    assert (await enrollment_of(database, late)).version == 2


async def test_holdout_gets_nothing(database: Database, settings: Settings) -> None:
    definition = {
        "name": "ab-test",
        "schedule": "0 10 * * *",
        "audience": {"field": "region", "op": "==", "value": "north"},
        "experiment": {
            "holdout": 0.5,
            "arms": [
                {
                    "name": "sms",
                    "weight": 1,
                    "steps": [{"id": "go", "type": "send", "channel": "sms", "template": "a"}],
                },
                {
                    "name": "call",
                    "weight": 1,
                    "steps": [{"id": "ring", "type": "call_task"}],
                },
            ],
        },
    }
    valid = validate_definition(definition)
    await campaign(database, definition, day(-1))
    ids = [await customer(database, f"c-{n}", day(-1)) for n in range(30)]
    report = await run_campaign(database, settings, "ab-test", day(0))

    expected = {i: assign_arm("ab-test", i, valid.definition.experiment) for i in ids}
    held = {i for i, arm in expected.items() if arm == HOLDOUT}
    assert 0 < len(held) < len(ids)
    assert (report.enrolled, report.holdout) == (30, len(held))
    async with database.sessions() as session:
        rows = await session.execute(
            select(ExperimentAssignment.customer_id, ExperimentAssignment.arm)
        )
        stored = {customer_id: arm for customer_id, arm in rows.all()}
        tasks = {t.customer_id for t in await session.scalars(select(Task))}
    assert stored == expected
    sent = {c.customer_id for c in await contacts(database)}
    assert sent == {i for i, arm in expected.items() if arm == "sms"}
    assert tasks == {i for i, arm in expected.items() if arm == "call"}
    for customer_id in held:
        assert (await enrollment_of(database, customer_id)).state == HOLDOUT
    # Nothing reaches them later either.
    await tick(database, settings, day(10))
    assert {c.customer_id for c in await contacts(database)} == sent


async def test_missed_schedules_run_once(database: Database, settings: Settings) -> None:
    definition = {
        "name": "daily-news",
        "schedule": "0 10 * * *",
        "occurrence": "run",
        "audience": {"field": "region", "op": "==", "value": "north"},
        "steps": [{"id": "news", "type": "send", "channel": "email", "template": "news"}],
    }
    await campaign(database, definition, day(-1))
    reader = await customer(database, "c-reader", day(-1))
    bus = MemoryBus()
    first = await tick(database, settings, day(0), bus)
    assert [r.campaign for r in first.runs] == ["daily-news"]
    assert (await tick(database, settings, day(0, hours=2), bus)).runs == []  # no fire since

    # Down for five days: the run on coming back is one run, not one per missed day.
    back = await tick(database, settings, day(5, hours=3), bus)
    assert [(r.campaign, r.enrolled) for r in back.runs] == [("daily-news", 1)]
    keys = [c.idempotency_key for c in await contacts(database)]
    assert keys == [
        contact_key("daily-news", reader, "news", "2026-11-02"),
        contact_key("daily-news", reader, "news", "2026-11-07"),
    ]
    async with database.sessions() as session:
        row = (await session.scalars(select(Campaign))).one()
    assert row.last_run_at == day(5, hours=3)
    assert row.next_run_at == datetime(2026, 11, 8, 8, 0, tzinfo=UTC)  # 10:00 in Kyiv


async def test_bad_names_and_disabled_campaigns_change_nothing(
    database: Database, settings: Settings
) -> None:
    await customer(database, "c-1", day(-1))
    with pytest.raises(CampaignNotFound):
        await run_campaign(database, settings, "nope", day(0))
    await campaign(
        database,
        {
            **WINBACK,
            "enabled": False,
            "audience": {"field": "region", "op": "==", "value": "north"},
        },
        day(-1),
    )
    with pytest.raises(CampaignDisabled):
        await run_campaign(database, settings, "winback", day(0))
    report = await tick(database, settings, day(1))
    assert report.runs == []
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Enrollment)) == 0
        assert await session.scalar(select(func.count()).select_from(OutboundContact)) == 0


async def test_branch_on_a_rule_reads_facts_at_that_moment(
    database: Database, settings: Settings
) -> None:
    definition = {
        "name": "vip",
        "schedule": "0 10 * * *",
        "audience": {"field": "region", "op": "==", "value": "north"},
        "steps": [
            {
                "id": "which",
                "type": "branch",
                "cases": [
                    {
                        "when": {"field": "days_since_order", "op": "<=", "value": 7},
                        "goto": "thanks",
                    }
                ],
                "otherwise": "nudge",
            },
            {"id": "nudge", "type": "send", "channel": "sms", "template": "nudge"},
            {"id": "halt", "type": "branch", "cases": [{"outcome": "timeout", "goto": "end"}]},
            {"id": "thanks", "type": "send", "channel": "email", "template": "thanks"},
        ],
    }
    await campaign(database, definition, day(-1))
    buyer = await customer(database, "c-buyer", day(-1))
    idle = await customer(database, "c-idle", day(-1))
    data = {"external_id": "c-buyer", "kind": "order", "at": isoformat_z(day(-1))}
    await crm(database, "customer.activity", data, day(-1))
    await run_campaign(database, settings, "vip", day(0))
    assert {(c.customer_id, c.template) for c in await contacts(database)} == {
        (buyer, "thanks"),
        (idle, "nudge"),
    }


def _cli(argv: list[str], settings: Settings) -> int:
    """Parse and run a command as `switchboard` would, with these settings."""
    import gateway.cli

    args = gateway.cli.build_parser().parse_args(argv)
    try:
        return int(args.handler(args, settings))
    except UsageError:
        return 2


def test_cli_run_and_tick(database_url: str, settings: Settings, capsys: Any) -> None:
    async def seed() -> None:
        database = Database(database_url)
        if not database.is_sqlite:
            await truncate_all(database)
        await campaign(database, WINBACK, day(-1))
        await customer(database, "c-cold", day(-1), status="cold")
        await database.dispose()

    async def count() -> int:
        database = Database(database_url)
        async with database.sessions() as session:
            found = await session.scalar(select(func.count()).select_from(OutboundContact))
        await database.dispose()
        return int(found or 0)

    asyncio.run(seed())
    assert _cli(["tick", "--as-of", "yesterday"], settings) == 2
    assert _cli(["campaign", "run", "nope", "--as-of", "2026-11-02T11:00"], settings) == 2
    assert asyncio.run(count()) == 0
    assert (
        _cli(
            ["campaign", "run", "winback", "--as-of", "2026-11-02T11:00", "--format", "json"],
            settings,
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert (printed["enrolled"], printed["advance"]["contacts"]) == (1, 1)
    assert _cli(["tick", "--as-of", "2026-12-03"], settings) == 0
    assert "tasks 1" in capsys.readouterr().out  # the 30-day wait timed out: a call task
    assert asyncio.run(count()) == 1
