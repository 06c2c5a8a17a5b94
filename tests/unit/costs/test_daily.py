"""Daily snapshots over a replayed month: correct each day, frozen against later edits."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import update

from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models import Call, CostEntry, Customer, DailySnapshot, OutboundContact
from gateway.core.db.models.customers import StatusChange
from gateway.core.settings import CostRates
from gateway.costs.daily import daily_snapshot, day_bounds
from gateway.costs.model import CostModel
from gateway.settings import Settings
from tests.support.cost_population import add_customers, call_row, insert_rows, ledger_row

ZONE = "Europe/Kyiv"
FIRST = date(2026, 11, 1)
DAYS = 30
STATUSES = ("active", "warm", "cold", "lost")


def contact_row(number: int, customer_id: str, at: datetime, outcome: str) -> dict[str, Any]:
    """A contact created at `at` that reached `outcome` the same minute."""
    row: dict[str, Any] = {
        "id": f"oc{number:08d}",
        "idempotency_key": f"k{number}",
        "channel": "sms" if number % 3 else "email",
        "customer_id": customer_id,
        "status": outcome,
        "created_at": at,
        "updated_at": at,
        "variables": {},
    }
    if outcome in ("sent", "delivered", "replied"):
        row["sent_at"] = at
    if outcome in ("delivered", "replied"):
        row["delivered_at"] = at
    if outcome == "replied":
        row["status"], row["replied_at"] = "delivered", at
    if outcome == "failed":
        row["failed_at"] = at
    if outcome == "skipped":
        row["reason"] = "opted_out"
    return row


async def replay_month(database: Database, seed: int) -> dict[date, dict[str, Any]]:
    """Write a month of activity day by day; return what each day should show."""
    rng = random.Random(seed)
    before = datetime(2026, 10, 20, tzinfo=UTC)
    ids = await add_customers(database, 60, before)
    status = dict.fromkeys(ids, "active")
    await insert_rows(
        database,
        StatusChange,
        (
            {
                "id": f"s{c}",
                "customer_id": c,
                "from_status": None,
                "to_status": "active",
                "at": before,
                "reason": "created",
            }
            for c in ids
        ),
    )
    expected: dict[date, dict[str, Any]] = {}
    contact_no = call_no = change_no = 0
    for offset in range(DAYS):
        day = FIRST + timedelta(days=offset)
        start, _ = day_bounds(day, ZONE)
        changes, contacts, calls, costs = [], [], [], []
        outcomes: Counter[str] = Counter()
        back = 0
        for _ in range(rng.randrange(0, 6)):
            customer = rng.choice(ids)
            target = rng.choice([s for s in STATUSES if s != status[customer]])
            back += target == "active"
            changes.append(
                {
                    "id": f"m{change_no:06d}",
                    "customer_id": customer,
                    "from_status": status[customer],
                    "to_status": target,
                    "at": start + timedelta(minutes=rng.randrange(1440)),
                    "reason": "replay",
                }
            )
            change_no += 1
            status[customer] = target
        for _ in range(rng.randrange(0, 8)):
            outcome = rng.choice(["sent", "delivered", "replied", "failed", "skipped"])
            at = start + timedelta(minutes=rng.randrange(1440))
            row = contact_row(contact_no, rng.choice(ids), at, outcome)
            contacts.append(row)
            outcomes[outcome] += 1
            if row.get("sent_at"):
                costs.append(ledger_row(contact_no, row["customer_id"], None, at))
            contact_no += 1
        for _ in range(rng.randrange(0, 5)):
            talk = rng.choice([None, 60, 90])
            at = start + timedelta(minutes=rng.randrange(1440))
            calls.append(call_row(call_no, rng.choice(ids), at, talk_seconds=talk))
            call_no += 1
        async with database.transaction() as session:
            for change in changes:
                session.add(StatusChange(**change))
                await session.execute(
                    update(Customer)
                    .where(Customer.id == change["customer_id"])
                    .values(status=change["to_status"])
                )
        await insert_rows(database, OutboundContact, contacts)
        await insert_rows(database, Call, calls)
        await insert_rows(database, CostEntry, costs)
        expected[day] = {
            "by_status": Counter(status.values()),
            "back": back,
            "outcomes": outcomes,
            "calls": len(calls),
            "answered": sum(1 for c in calls if c["talk_seconds"]),
            "talk": sum(c["talk_seconds"] or 0 for c in calls),
            "cost": Decimal("0.30") * len(costs),
        }
    return expected


def check(snapshot: dict[str, Any], want: dict[str, Any]) -> None:
    by_status = {s: n for s, n in snapshot["customers_by_status"].items() if n}
    assert by_status == dict(want["by_status"])
    assert snapshot["moved_back_to_active"] == want["back"]
    contacts = snapshot["contacts"]
    sent = sum(c["sent"] for c in contacts.values())
    assert sent == sum(want["outcomes"][o] for o in ("sent", "delivered", "replied"))
    assert sum(c["replied"] for c in contacts.values()) == want["outcomes"]["replied"]
    assert sum(c["failed"] for c in contacts.values()) == want["outcomes"]["failed"]
    skipped = sum(c["skipped"].get("opted_out", 0) for c in contacts.values())
    assert skipped == want["outcomes"]["skipped"]
    calls = snapshot["calls"].get("inbound", {"total": 0, "answered": 0, "talk_minutes": "0.00"})
    assert calls["total"] == want["calls"] and calls["answered"] == want["answered"]
    assert Decimal(calls["talk_minutes"]) == (Decimal(want["talk"]) / 60).quantize(Decimal("0.01"))
    assert snapshot["costs"]["total"] == str(want["cost"].quantize(Decimal("0.01")))


async def test_a_replayed_month_matches_day_by_day(database: Database, settings: Settings) -> None:
    expected = await replay_month(database, seed=11)
    model = CostModel.from_settings(settings)
    clock = FixedClock(datetime(2026, 10, 31, tzinfo=UTC))
    for day, want in expected.items():
        clock.set(day_bounds(day, ZONE)[1] + timedelta(minutes=5))
        snapshot = await daily_snapshot(database, model, ZONE, clock, day)
        assert snapshot["final"] is True
        check(snapshot, want)
    methods: Counter[str] = Counter()
    async with database.sessions() as session:
        for day in expected:
            stored = await session.get(DailySnapshot, day)
            assert stored is not None
            methods[stored.data["status_method"]] += 1
    assert methods == {
        "grouped count - later status changes": 1,
        "previous snapshot + status changes": DAYS - 1,
    }


async def test_the_first_snapshot_rolls_back_later_moves(
    database: Database, settings: Settings
) -> None:
    """With no earlier snapshot, a mid-month day starts from today's count, rolled back."""
    expected = await replay_month(database, seed=12)
    clock = FixedClock(datetime(2026, 12, 5, tzinfo=UTC))
    model = CostModel.from_settings(settings)
    for day in (date(2026, 11, 15), date(2026, 11, 16), date(2026, 11, 20)):
        snapshot = await daily_snapshot(database, model, ZONE, clock, day)
        check(snapshot, expected[day])


async def test_stored_days_survive_later_edits_unless_recomputed(
    database: Database, settings: Settings
) -> None:
    expected = await replay_month(database, seed=13)
    clock = FixedClock(datetime(2026, 12, 1, 12, tzinfo=UTC))
    model = CostModel.from_settings(settings)
    day = date(2026, 11, 10)
    first = await daily_snapshot(database, model, ZONE, clock, day)
    start, _ = day_bounds(day, ZONE)
    # Later edits: a call record rebuilt into that day, a ledger line in dollars.
    await insert_rows(database, Call, [call_row(900_000, "c000001", start + timedelta(hours=3))])
    await insert_rows(
        database,
        CostEntry,
        [ledger_row(900_000, "c000001", None, start, Decimal("1.00"), currency="USD")],
    )
    clock.set(datetime(2026, 12, 2, tzinfo=UTC))
    again = await daily_snapshot(database, model, ZONE, clock, day)
    assert again == first
    recomputed = await daily_snapshot(database, model, ZONE, clock, day, recompute=True)
    assert recomputed["calls"]["inbound"]["total"] == expected[day]["calls"] + 1
    assert recomputed["costs"]["unconverted"] == {"USD": "1.0000"}
    assert recomputed["computed_at"] == "2026-12-02T00:00:00Z"
    converting = CostModel.from_settings(
        settings.model_copy(update={"costs": CostRates(conversion={"USD": Decimal("41.5")})})
    )
    converted = await daily_snapshot(database, converting, ZONE, clock, day, recompute=True)
    assert Decimal(converted["costs"]["total"]) == expected[day]["cost"] + Decimal("41.50")


async def test_a_day_that_has_not_ended_is_not_stored(
    database: Database, settings: Settings
) -> None:
    day = date(2026, 11, 3)
    clock = FixedClock(datetime(2026, 11, 3, 12, tzinfo=UTC))
    snapshot = await daily_snapshot(database, CostModel.from_settings(settings), ZONE, clock, day)
    assert snapshot["final"] is False
    async with database.sessions() as session:
        assert await session.get(DailySnapshot, day) is None
