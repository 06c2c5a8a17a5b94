"""Demo data for `make run`: customers, operators with extensions, payments, activity.

Everything is keyed by the CRM's identifiers, so loading twice changes nothing. Dates are
relative (`due_in_days`, `days_ago`) and re-anchored to today on each load, so the demo
always has payments coming up in the next days.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_sync.csv_import import import_customers
from gateway.core.clock import Clock, SystemClock
from gateway.core.db.engine import Database
from gateway.core.db.models import Activity, Agent, AgentExtension, Customer, Payment
from gateway.core.db.states import PaymentStatus
from gateway.core.db.types import new_id
from gateway.core.settings import Settings

DEMO_SUBDIR = Path("config") / "demo"


class DemoDataMissing(FileNotFoundError):
    """The config/demo directory (or a file in it) cannot be found or read."""


def find_demo_dir(explicit: Path | None = None) -> Path:
    """The demo directory: `explicit`, else config/demo under the working dir or the repo."""
    candidates = (
        [explicit]
        if explicit is not None
        else [Path.cwd() / DEMO_SUBDIR, Path(__file__).resolve().parents[1] / DEMO_SUBDIR]
    )
    for candidate in candidates:
        if (candidate / "customers.csv").is_file():
            return candidate
    looked = ", ".join(str(candidate) for candidate in candidates)
    raise DemoDataMissing(f"demo data not found (looked for customers.csv in {looked})")


async def load_demo(
    database: Database,
    settings: Settings,
    *,
    clock: Clock | None = None,
    directory: Path | None = None,
) -> int:
    """Load the demo data set (idempotent); returns how many customers it holds."""
    clock = clock or SystemClock()
    demo, agents, payments, activities = await asyncio.to_thread(_read_demo, directory)
    report = await import_customers(
        database, demo / "customers.csv", settings.default_region, clock, progress=False
    )
    if report.rejected:
        reasons = "; ".join(f"line {item.line}: {item.reason}" for item in report.rejects)
        raise DemoDataMissing(f"{demo / 'customers.csv'} has invalid rows: {reasons}")
    now = clock.now()
    zone = ZoneInfo(settings.timezone)
    today = now.astimezone(zone).date()
    # Activity times hang on today's local noon, so loads on the same day agree.
    noon = datetime.combine(today, time(12), zone).astimezone(UTC)
    async with database.transaction() as session:
        for agent in agents:
            await _upsert_agent(session, agent, now)
        customers = await _customer_ids(
            session, {str(item.get("external_id")) for item in (*payments, *activities)}
        )
        for payment in payments:
            await _upsert_payment(session, customers, payment, today, now)
        for activity in activities:
            await _upsert_activity(session, customers, activity, noon)
    return report.imported


Section = list[dict[str, Any]]


def _read_demo(directory: Path | None) -> tuple[Path, Section, Section, Section]:
    """The demo directory and its YAML sections, all read before anything is written."""
    demo = find_demo_dir(directory)
    return (
        demo,
        _section(demo / "agents.yaml", "agents"),
        _section(demo / "payments.yaml", "payments"),
        _section(demo / "activities.yaml", "activities"),
    )


def _section(path: Path, key: str) -> Section:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DemoDataMissing(f"cannot read {path}: {exc}") from exc
    items = data.get(key, []) if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise DemoDataMissing(f"{path}: expected a list of mappings under {key!r}")
    return items


async def _customer_ids(session: AsyncSession, external_ids: set[str]) -> dict[str, str]:
    rows = await session.execute(
        select(Customer.external_id, Customer.id).where(Customer.external_id.in_(external_ids))
    )
    return {external_id: customer_id for external_id, customer_id in rows}


def _customer(customers: dict[str, str], data: dict[str, Any]) -> str:
    try:
        return customers[data["external_id"]]
    except KeyError:
        raise DemoDataMissing(
            f"demo data names unknown customer {data.get('external_id')!r}"
        ) from None


async def _upsert_agent(session: AsyncSession, data: dict[str, Any], now: datetime) -> None:
    agent = await session.scalar(select(Agent).where(Agent.agent_id == data["agent_id"]))
    if agent is None:
        agent = Agent(id=new_id("agt"), agent_id=data["agent_id"], created_at=now)
        session.add(agent)
    extensions = [str(extension) for extension in data.get("extensions", [])]
    values = {
        "name": data.get("name", ""),
        "crm_user_id": data.get("crm_user_id"),
        "extensions": extensions,
        "skills": list(data.get("skills", [])),
        "regions": list(data.get("regions", [])),
        "active": True,
    }
    if any(getattr(agent, name, None) != value for name, value in values.items()):
        for name, value in values.items():
            setattr(agent, name, value)
        agent.updated_at = now
    await session.flush()
    await session.execute(
        delete(AgentExtension).where(
            (AgentExtension.agent_id == agent.id) | AgentExtension.extension.in_(extensions)
        )
    )
    session.add_all(AgentExtension(extension=ext, agent_id=agent.id) for ext in extensions)
    await session.flush()


async def _upsert_payment(
    session: AsyncSession,
    customers: dict[str, str],
    data: dict[str, Any],
    today: date,
    now: datetime,
) -> None:
    customer_id = _customer(customers, data)
    due_date = today + timedelta(days=int(data["due_in_days"]))
    # Keyed by contract: a later load moves the demo instalment rather than adding one.
    payment = await session.scalar(
        select(Payment).where(
            Payment.customer_id == customer_id, Payment.contract_id == data["contract_id"]
        )
    )
    if payment is None:
        payment = Payment(
            id=new_id("pay"), customer_id=customer_id, contract_id=data["contract_id"]
        )
        session.add(payment)
    values = {
        "due_date": due_date,
        "amount": Decimal(str(data["amount"])),
        "currency": data["currency"],
        "status": PaymentStatus.DUE,
    }
    if any(getattr(payment, name, None) != value for name, value in values.items()):
        for name, value in values.items():
            setattr(payment, name, value)
        payment.updated_at = now


async def _upsert_activity(
    session: AsyncSession, customers: dict[str, str], data: dict[str, Any], noon: datetime
) -> None:
    customer_id = _customer(customers, data)
    at = noon - timedelta(days=int(data["days_ago"]))
    source = f"demo:{data['id']}"
    activity = await session.scalar(select(Activity).where(Activity.source_event_id == source))
    if activity is None:
        activity = Activity(id=new_id("act"), customer_id=customer_id, source_event_id=source)
        session.add(activity)
    activity.kind = data["kind"]
    activity.at = at
    activity.amount = Decimal(str(data["amount"])) if "amount" in data else None
    customer = await session.get(Customer, customer_id)
    assert customer is not None
    if customer.last_activity_at is None or customer.last_activity_at < at:
        customer.last_activity_at = at
    if data["kind"] == "order" and (customer.last_order_at is None or customer.last_order_at < at):
        customer.last_order_at = at
