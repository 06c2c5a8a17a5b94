"""Consent, sending windows in the customer's own zone (DST included), frequency caps."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from channels.consent import (
    SEND,
    Decision,
    cap_frees_at,
    customer_zone,
    decide,
    may_contact,
    next_allowed,
    plan_time,
    recent_contact_times,
)
from gateway.core.db.engine import Database
from gateway.core.db.models import Customer, CustomerPhone, DoNotContact, OutboundContact
from gateway.core.db.types import new_id
from gateway.core.policy import ContactPolicy, FrequencyCap
from tests.support.factories import make_customer

KYIV = ZoneInfo("Europe/Kyiv")
NEW_YORK = ZoneInfo("America/New_York")
POLICY = ContactPolicy()
SMS = POLICY.window_for("sms")
VOICE = POLICY.window_for("voice")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(text: str, zone: ZoneInfo) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone).astimezone(UTC)


def person(**values: object) -> Customer:
    row = Customer(id="cus_1", external_id="C-1", name="N", email="Olena@Example.com")
    row.phones = [
        CustomerPhone(e164="+380501110000", invalid=True),
        CustomerPhone(e164="+380671234567", invalid=False),
    ]
    for key, value in values.items():
        setattr(row, key, value)
    return row


def test_the_same_instant_is_judged_in_each_customers_own_zone() -> None:
    now = utc("2026-11-02T06:30")  # Monday: 08:30 in Kyiv, 01:30 in New York
    assert (
        next_allowed(now, SMS, KYIV) == local("2026-11-02T09:00", KYIV) == utc("2026-11-02T07:00")
    )
    assert next_allowed(now, SMS, NEW_YORK) == local("2026-11-02T09:00", NEW_YORK)
    assert next_allowed(utc("2026-11-02T07:00"), SMS, KYIV) == utc("2026-11-02T07:00")
    assert plan_time(utc("2026-11-02T07:00"), SMS, KYIV) == SEND
    assert plan_time(now, SMS, NEW_YORK) == Decision(
        "defer", utc("2026-11-02T14:00"), "sending_window"
    )


@pytest.mark.parametrize(
    ("at", "opens"),
    [
        ("2026-11-06T19:59", "2026-11-06T19:59"),  # Friday, still open
        ("2026-11-06T20:00", "2026-11-07T10:00"),  # Friday close → Saturday's later start
        ("2026-11-07T18:00", "2026-11-09T09:00"),  # Saturday close → Monday (no Sunday)
        ("2026-11-08T12:00", "2026-11-09T09:00"),
    ],
)
def test_default_sms_week(at: str, opens: str) -> None:
    assert next_allowed(local(at, KYIV), SMS, KYIV) == local(opens, KYIV)


def test_spring_forward_moves_the_utc_opening_an_hour_earlier() -> None:
    # Europe/Kyiv jumps 03:00 → 04:00 on Sunday 29 March 2026.
    saturday_evening = local("2026-03-28T19:00", KYIV)
    assert next_allowed(saturday_evening, SMS, KYIV) == utc("2026-03-30T06:00")
    assert next_allowed(local("2026-03-27T21:00", KYIV), SMS, KYIV) == utc("2026-03-28T08:00")


def test_a_window_opening_in_the_skipped_hour_opens_when_the_clock_jumps() -> None:
    window = ContactPolicy(windows={"sms": {"sun": ["03:30-05:00"]}}).window_for("sms")
    assert next_allowed(utc("2026-03-28T23:00"), window, KYIV) == utc("2026-03-29T01:00")
    assert next_allowed(utc("2026-03-29T01:59"), window, KYIV) == utc("2026-03-29T01:59")
    assert next_allowed(utc("2026-03-29T02:00"), window, KYIV) == utc("2026-04-05T00:30")


def test_fall_back_uses_the_first_occurrence_of_a_repeated_hour() -> None:
    # Europe/Kyiv shows 03:00–04:00 twice on Sunday 25 October 2026.
    window = ContactPolicy(windows={"sms": {"sun": ["03:30-04:30"]}}).window_for("sms")
    assert next_allowed(utc("2026-10-24T20:00"), window, KYIV) == utc("2026-10-25T00:30")
    assert next_allowed(utc("2026-10-25T02:29"), window, KYIV) == utc("2026-10-25T02:29")
    assert next_allowed(utc("2026-10-25T02:30"), window, KYIV) == utc("2026-11-01T01:30")
    assert next_allowed(local("2026-10-24T19:00", KYIV), SMS, KYIV) == utc("2026-10-26T07:00")


def test_new_york_changes_on_its_own_dates() -> None:
    # 8 March 2026 in New York; Kyiv is still on winter time that week.
    friday = local("2026-03-06T21:00", NEW_YORK)
    assert next_allowed(friday, SMS, NEW_YORK) == utc("2026-03-07T15:00")  # EST
    saturday = local("2026-03-07T19:00", NEW_YORK)
    assert next_allowed(saturday, SMS, NEW_YORK) == utc("2026-03-09T13:00")  # EDT
    assert next_allowed(utc("2026-03-09T06:00"), SMS, KYIV) == utc("2026-03-09T07:00")


def test_holidays_close_windowed_channels_but_not_email() -> None:
    policy = ContactPolicy(holidays=[date(2026, 1, 1), date(2026, 1, 2)])
    new_year = local("2026-01-01T10:00", KYIV)
    decision = plan_time(new_year, policy.window_for("sms"), KYIV)
    assert decision == Decision("defer", local("2026-01-03T10:00", KYIV), "holiday")
    assert plan_time(new_year, policy.window_for("email"), KYIV) == SEND


def test_a_range_past_midnight_belongs_to_the_day_it_starts() -> None:
    policy = ContactPolicy(
        windows={"voice": {"fri": ["22:00-02:00"]}}, holidays=[date(2026, 11, 13)]
    )
    window = policy.window_for("voice")
    saturday_1am = local("2026-11-07T01:00", KYIV)
    assert next_allowed(saturday_1am, window, KYIV) == saturday_1am
    assert next_allowed(local("2026-11-07T02:00", KYIV), window, KYIV) == local(
        "2026-11-20T22:00",
        KYIV,  # the 13th is a holiday: its night is closed too
    )
    assert next_allowed(local("2026-11-14T01:00", KYIV), window, KYIV) == local(
        "2026-11-20T22:00", KYIV
    )


def test_channels_without_windows_are_always_open_and_empty_windows_never() -> None:
    sunday_3am = local("2026-11-08T03:00", KYIV)
    assert plan_time(sunday_3am, POLICY.window_for("email"), KYIV) == SEND
    assert ContactPolicy(windows={}).window_for("sms") is None
    closed = ContactPolicy(windows={"voice": {}}).window_for("voice")
    assert plan_time(sunday_3am, closed, KYIV) == Decision("skip", reason="no_sending_window")


@given(
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31)),
    st.sampled_from([KYIV, NEW_YORK, ZoneInfo("Australia/Lord_Howe")]),
    st.sampled_from(["sms", "voice"]),
)
def test_next_allowed_is_open_and_nothing_earlier_is(
    naive: datetime, zone: ZoneInfo, channel: str
) -> None:
    now = naive.replace(tzinfo=UTC)
    window = POLICY.window_for(channel)
    opens = next_allowed(now, window, zone)
    assert opens >= now
    assert next_allowed(opens, window, zone) == opens
    if opens > now:
        assert next_allowed(max(now, opens - timedelta(seconds=1)), window, zone) == opens
        hour = opens.astimezone(zone).hour
        assert 9 <= hour <= 10 or zone.key == "Australia/Lord_Howe"


def test_frequency_cap_frees_when_the_oldest_counted_contact_leaves_the_period() -> None:
    cap = FrequencyCap(max=3, days=7)
    now = utc("2026-11-05T10:00")
    times = [utc("2026-11-01T10:00"), utc("2026-11-03T10:00"), utc("2026-11-04T10:00")]
    assert cap_frees_at(times, cap, now) == utc("2026-11-08T10:00")
    over = [*times, utc("2026-11-05T09:00")]
    assert cap_frees_at(over, cap, now) == utc("2026-11-10T10:00")
    assert cap_frees_at(times[1:], cap, now) is None
    assert cap_frees_at([utc("2026-10-29T10:00"), *times[1:]], cap, now) is None
    assert cap_frees_at([utc("2026-10-29T10:01"), *times[1:]], cap, now) == utc("2026-11-05T10:01")
    assert cap_frees_at(times, None, now) is None
    # Frees on a Sunday (no SMS) → Monday 09:00 Kyiv, and the cap is the reason given.
    freed = plan_time(now, SMS, KYIV, times, cap)
    assert freed == Decision("defer", local("2026-11-09T09:00", KYIV), "frequency_cap")


def test_consent_reasons() -> None:
    phone = "+380671234567"
    assert may_contact(person(), "sms", phone) == SEND
    assert may_contact(person(sms_opt_out=True), "sms", phone).reason == "opted_out"
    assert may_contact(person(sms_opt_out=True), "email", "olena@example.com") == SEND
    assert may_contact(person(email_opt_out=True), "email", "x@y.z").reason == "opted_out"
    assert may_contact(person(voice_opt_out=True), "voice", phone).reason == "opted_out"
    assert may_contact(person(do_not_contact=True), "email", "a@b.c").reason == "do_not_contact"
    assert may_contact(person(), "sms", "+380501110000").reason == "invalid_number"
    assert may_contact(person(), "voice", None).reason == "invalid_number"
    assert may_contact(person(phones=[]), "sms", None).reason == "no_address"
    assert may_contact(person(), "email", None).reason == "no_address"
    listed = may_contact(person(), "email", "Olena@Example.com", ["olena@example.com"])
    assert listed.reason == "do_not_contact"
    gone = person(deleted_at=utc("2026-01-01T00:00"))
    assert may_contact(gone, "sms", phone).reason == "customer_deleted"


def test_customer_zone_falls_back_to_the_default() -> None:
    assert customer_zone(person(timezone="America/New_York"), "Europe/Kyiv") == NEW_YORK
    assert customer_zone(person(timezone="Mars/Olympus"), "Europe/Kyiv") == KYIV
    assert customer_zone(person(timezone=None), "Europe/Kyiv") == KYIV


@pytest.mark.parametrize("bad", ["9-17", "25:00-26:00", "09:00-24:30", "00:00-00:00", "0900-1700"])
def test_policy_refuses_bad_ranges(bad: str) -> None:
    with pytest.raises(ValidationError, match=r"time range|24:00|whole day"):
        ContactPolicy(windows={"sms": {"mon": [bad]}})


def test_policy_defaults() -> None:
    assert SMS is not None and VOICE is not None
    assert SMS.hours[5] == ((600, 1080),) and 6 not in SMS.hours
    assert VOICE.hours[0] == ((540, 1140),) and 5 not in VOICE.hours
    assert POLICY.cap_for("sms") == FrequencyCap(max=3, days=7)
    assert POLICY.cap_for("email") is None and POLICY.default_language == "uk"


def contact(customer_id: str, channel: str, status: str, at: datetime) -> OutboundContact:
    return OutboundContact(
        id=new_id("msg"),
        idempotency_key=new_id("key"),
        channel=channel,
        customer_id=customer_id,
        status=status,
        variables={},
        sent_at=at if status in ("sent", "delivered") else None,
        created_at=at,
        updated_at=at,
    )


async def test_caps_count_what_went_out_on_the_channel_across_campaigns(
    database: Database,
) -> None:
    now = utc("2026-11-05T10:00")  # Thursday, 12:00 in Kyiv
    olena = await make_customer(database, now, "C-1", ["+380671234567"])
    other = await make_customer(database, now, "C-2", ["+380501112233"])
    day = timedelta(days=1)
    async with database.transaction() as session:
        session.add_all(
            [
                contact(olena, "sms", "delivered", now - 6 * day),
                contact(olena, "sms", "sent", now - 2 * day),
                contact(olena, "sms", "failed", now - day),
                contact(olena, "sms", "skipped", now - day),
                contact(olena, "sms", "undelivered", now - day),
                contact(olena, "sms", "pending", now - day),
                contact(olena, "sms", "delivered", now - 8 * day),
                contact(olena, "email", "sent", now - day),
                contact(other, "sms", "sent", now - day),
            ]
        )
    async with database.sessions() as session:
        times = await recent_contact_times(session, olena, "sms", now - 7 * day)
        assert sorted(times) == [now - 6 * day, now - 2 * day]
        customer = await session.get(Customer, olena)
        assert customer is not None
        assert (
            await decide(session, customer, "sms", "+380671234567", POLICY, now, "Europe/Kyiv")
            == SEND
        )
    sending = contact(olena, "sms", "sending", now - day)
    async with database.transaction() as session:
        session.add(sending)
    async with database.sessions() as session:
        customer = await session.get(Customer, olena)
        assert customer is not None
        decision = await decide(
            session, customer, "sms", "+380671234567", POLICY, now, "Europe/Kyiv"
        )
        assert decision == Decision("defer", now + day, "frequency_cap")
        # The contact being decided does not count against itself.
        again = await decide(
            session, customer, "sms", "+380671234567", POLICY, now, "Europe/Kyiv", sending.id
        )
        assert again == SEND


async def test_the_do_not_contact_table_blocks_numbers_and_addresses(database: Database) -> None:
    now = utc("2026-11-05T10:00")
    olena = await make_customer(database, now, "C-1", ["+380671234567"])
    async with database.transaction() as session:
        session.add_all(
            [
                DoNotContact(value="+380671234567", kind="phone", reason="court", created_at=now),
                DoNotContact(value="olena@example.com", kind="email", created_at=now),
            ]
        )
        customer = await session.get(Customer, olena)
        assert customer is not None
        customer.email = "Olena@Example.com"
    async with database.sessions() as session:
        customer = await session.get(Customer, olena)
        assert customer is not None
        for channel, address in (("sms", "+380671234567"), ("email", "Olena@Example.com")):
            decision = await decide(session, customer, channel, address, POLICY, now, "Europe/Kyiv")
            assert decision == Decision("skip", reason="do_not_contact")
        other = await decide(session, customer, "sms", "+380671234568", POLICY, now, "Europe/Kyiv")
        assert other == SEND
