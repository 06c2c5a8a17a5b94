"""Customer CSV import on both databases: library, CLI end to end, and the demo loader."""

from __future__ import annotations

import asyncio
import csv
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_sync.csv_import import import_customers
from crm_sync.csv_rows import COLUMNS, ImportFileError
from crm_sync.demo import DemoDataMissing, load_demo
from gateway import cli
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models import Activity, Agent, AgentExtension, Customer, CustomerPhone, Payment
from gateway.settings import Settings

HEADER = ",".join(COLUMNS)
DEMO_DIR = Path(__file__).resolve().parents[2] / "config" / "demo"
GOOD_ROWS = [
    "C1,Олена Коваленко,+380 67 214 35 81;(044) 235-17-90,olena@example.com,Europe/Kyiv,uk,Київ,agent-201",  # noqa: E501
    "C2,Петро Коваленко,044 235 17 90,,Europe/Kyiv,UK,Київ,agent-201",
    'C3,"Мельник, Оксана",00380661239874,oksana@example.com,,ru,Полтавська,',
    "C4,Andrii Tkachenko,,andrii@example.com,Europe/Warsaw,en,,agent-203",
]


def write_csv(path: Path, rows: list[str], *, bom: bool = False) -> Path:
    text = "\n".join([HEADER, *rows]) + "\n"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


async def customers(database: Database) -> dict[str, Customer]:
    async with database.transaction() as session:
        rows = (await session.scalars(select(Customer))).all()
    return {row.external_id: row for row in rows}


async def phone_rows(database: Database) -> list[tuple[str, str, str, int]]:
    async with database.transaction() as session:
        result = await session.execute(
            select(Customer.external_id, CustomerPhone.e164, CustomerPhone.last_digits)
            .add_columns(CustomerPhone.position)
            .join(Customer, Customer.id == CustomerPhone.customer_id)
            .order_by(Customer.external_id, CustomerPhone.position)
        )
        return [tuple(row) for row in result]


async def test_good_file_is_imported(database: Database, clock: FixedClock, tmp_path: Path) -> None:
    report = await import_customers(
        database, write_csv(tmp_path / "c.csv", GOOD_ROWS), "UA", clock, progress=False
    )
    assert (report.rows_read, report.created, report.rejected, report.exit_status) == (4, 4, 0, 0)
    stored = await customers(database)
    assert stored["C1"].name == "Олена Коваленко"
    assert stored["C2"].language == "uk"
    assert stored["C3"].name == "Мельник, Оксана" and stored["C3"].timezone is None
    assert stored["C3"].responsible_agent is None
    assert stored["C4"].timezone == "Europe/Warsaw" and stored["C4"].region is None
    assert stored["C1"].id.startswith("cus_") and stored["C1"].status == "active"
    assert stored["C1"].created_at == clock.now() == stored["C1"].updated_at
    assert await phone_rows(database) == [
        ("C1", "+380672143581", "672143581", 0),
        ("C1", "+380442351790", "442351790", 1),
        ("C2", "+380442351790", "442351790", 0),  # the shared family number
        ("C3", "+380661239874", "661239874", 0),
    ]


async def test_bom_is_skipped(database: Database, clock: FixedClock, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "bom.csv", GOOD_ROWS[:1], bom=True)
    report = await import_customers(database, path, "UA", clock, progress=False)
    assert (report.created, report.rejected) == (1, 0)
    assert list(await customers(database)) == ["C1"]


async def test_bad_rows_are_reported_by_line_and_good_rows_kept(
    database: Database, clock: FixedClock, tmp_path: Path
) -> None:
    rows = [
        GOOD_ROWS[0],  # line 2
        'C5,"Бондаренко\nІрина",12345,,,,,',  # lines 3-4: invalid phone
        ",No Id,,,,,,",  # line 5
        GOOD_ROWS[1],  # line 6
        "C6,Wrong Zone,,,Mars/Olympus,,,",  # line 7
        "C7,Too,few",  # line 8
        GOOD_ROWS[2],  # line 9
        "C8,Nul\x00Name,,,,,,",  # line 10: PostgreSQL text cannot hold NUL
    ]
    report = await import_customers(
        database, write_csv(tmp_path / "mixed.csv", rows), "UA", clock, progress=False
    )
    assert report.exit_status == 3
    assert (report.rows_read, report.imported, report.rejected) == (8, 3, 5)
    assert [(item.line, item.reason.split(" ")[0]) for item in report.rejects] == [
        (3, "phone"),
        (5, "external_id"),
        (7, "timezone"),
        (8, "expected"),
        (10, "contains"),
    ]
    assert "'12345'" in report.rejects[0].reason
    assert sorted(await customers(database)) == ["C1", "C2", "C3"]


async def test_rejected_row_leaves_the_stored_customer_alone(
    database: Database, clock: FixedClock, tmp_path: Path
) -> None:
    await import_customers(
        database, write_csv(tmp_path / "a.csv", GOOD_ROWS[:1]), "UA", clock, progress=False
    )
    bad = "C1,Renamed,+380 67 214 35 81,not-an-email,,,,"
    report = await import_customers(
        database, write_csv(tmp_path / "b.csv", [bad]), "UA", clock, progress=False
    )
    assert report.rejected == 1 and "not-an-email" in report.rejects[0].reason
    assert (await customers(database))["C1"].name == "Олена Коваленко"
    assert len(await phone_rows(database)) == 2


@pytest.mark.parametrize("batch_size", [2, 2000])
async def test_reimport_changes_nothing(
    database: Database, clock: FixedClock, tmp_path: Path, batch_size: int
) -> None:
    path = write_csv(tmp_path / "c.csv", GOOD_ROWS)
    await import_customers(database, path, "UA", clock, progress=False, batch_size=batch_size)
    before, phones_before = await customers(database), await phone_rows(database)
    clock.advance(timedelta(hours=1))
    report = await import_customers(
        database, path, "UA", clock, progress=False, batch_size=batch_size
    )
    assert (report.created, report.updated, report.unchanged) == (0, 0, 4)
    after = await customers(database)
    assert {k: (v.id, v.updated_at) for k, v in after.items()} == {
        k: (v.id, v.updated_at) for k, v in before.items()
    }
    assert await phone_rows(database) == phones_before


async def test_reimport_replaces_phones_and_fields(
    database: Database, clock: FixedClock, tmp_path: Path
) -> None:
    await import_customers(
        database, write_csv(tmp_path / "a.csv", GOOD_ROWS), "UA", clock, progress=False
    )
    created_at = (await customers(database))["C1"].created_at
    clock.advance(timedelta(days=1))
    changed = [
        "C1,Олена Коваленко-Шевчук,0501234567;+380 67 214 35 81,,Europe/Kyiv,uk,Київ,agent-202",
        GOOD_ROWS[1].replace("044 235 17 90", ""),
    ]
    report = await import_customers(
        database, write_csv(tmp_path / "b.csv", changed), "UA", clock, progress=False
    )
    assert (report.created, report.updated, report.unchanged) == (0, 2, 0)
    stored = await customers(database)
    assert stored["C1"].name == "Олена Коваленко-Шевчук" and stored["C1"].email is None
    assert stored["C1"].responsible_agent == "agent-202"
    assert stored["C1"].created_at == created_at and stored["C1"].updated_at == clock.now()
    assert stored["C3"].updated_at == created_at  # not in the file: untouched
    assert await phone_rows(database) == [
        ("C1", "+380501234567", "501234567", 0),
        ("C1", "+380672143581", "672143581", 1),
        ("C3", "+380661239874", "661239874", 0),
    ]


@pytest.mark.parametrize("batch_size", [1, 3, 2000])
async def test_later_row_of_a_repeated_id_wins(
    database: Database, clock: FixedClock, tmp_path: Path, batch_size: int
) -> None:
    rows = [
        "D1,First,0671111111,,,,,",
        "D2,Other,,,,,,",
        "D1,Second,0672222222;0673333333,,,,,",
        "D1,Second,0672222222;0673333333,,,,,",
    ]
    report = await import_customers(
        database, write_csv(tmp_path / "d.csv", rows), "UA", clock, batch_size=batch_size
    )
    assert (report.created, report.updated, report.unchanged) == (2, 1, 1)
    stored = await customers(database)
    assert stored["D1"].name == "Second"
    assert [(ext, e164) for ext, e164, _, _ in await phone_rows(database)] == [
        ("D1", "+380672222222"),
        ("D1", "+380673333333"),
    ]


async def test_deleted_customer_is_restored_by_import(
    database: Database, clock: FixedClock, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "c.csv", GOOD_ROWS[:1])
    await import_customers(database, path, "UA", clock, progress=False)
    async with database.transaction() as session:
        customer = await session.scalar(select(Customer).where(Customer.external_id == "C1"))
        assert customer is not None
        customer.deleted_at = clock.now()
    report = await import_customers(database, path, "UA", clock, progress=False)
    assert report.updated == 1
    assert (await customers(database))["C1"].deleted_at is None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"id,name\nC1,x\n", "missing column(s) external_id"),
        (b"", "is empty"),
        (b"\xff\xfe\x00e\x00x\x00t\n", "not UTF-8"),
    ],
)
async def test_unusable_file_changes_nothing(
    database: Database, clock: FixedClock, tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(ImportFileError, match=re.escape(problem)):
        await import_customers(database, path, "UA", clock, progress=False)
    assert await customers(database) == {}


def run_cli(argv: list[str]) -> int:
    """The console script in a thread: it runs its own event loop."""
    return cli.main(argv)


async def test_cli_exit_codes_and_report(
    database: Database,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    good = write_csv(tmp_path / "good.csv", GOOD_ROWS)
    status = await asyncio.to_thread(run_cli, ["import", "customers", str(good)])
    out = capsys.readouterr()
    assert status == 0
    assert "rows read: 4, imported: 4 (created 4, updated 0, unchanged 0), rejected: 0" in out.out
    assert "customers" in out.err  # the progress bar goes to stderr

    mixed = write_csv(tmp_path / "mixed.csv", [*GOOD_ROWS[:2], "C9,Bad,999,,,,,", "C10,,,,,xx,,"])
    errors = tmp_path / "rejects.csv"
    argv = ["import", "customers", str(mixed), "--errors", str(errors), "--no-progress"]
    status = await asyncio.to_thread(run_cli, argv)
    out = capsys.readouterr()
    assert status == 3
    assert "unchanged 2), rejected: 2" in out.out
    assert "line 4: phone '999'" in out.out and "line 5: language 'xx'" in out.out
    with errors.open(encoding="utf-8", newline="") as handle:
        rejects = list(csv.reader(handle))
    assert [row[:3] for row in rejects[1:]] == [
        ["4", rejects[1][1], "C9"],
        ["5", rejects[2][1], "C10"],
    ]

    wrong = tmp_path / "wrong.csv"
    wrong.write_text("external_id,name,phone\n", encoding="utf-8")
    status = await asyncio.to_thread(run_cli, ["import", "customers", str(wrong)])
    assert status == 2
    assert "wrong header" in capsys.readouterr().err

    status = await asyncio.to_thread(run_cli, ["import", "customers", str(tmp_path / "nope.csv")])
    assert status == 2
    assert "nope.csv" in capsys.readouterr().err
    assert len(await customers(database)) == 4


async def test_cli_truncates_long_reject_lists(
    database: Database,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    path = write_csv(tmp_path / "bad.csv", [f"E{n},Name,,,,zz,," for n in range(60)])
    status = await asyncio.to_thread(run_cli, ["import", "customers", str(path), "--no-progress"])
    out = capsys.readouterr().out
    assert status == 3
    assert out.count("is not an ISO 639-1 code") == 50
    assert "... and 10 more rejected row(s)" in out and "--errors FILE" in out
    assert await customers(database) == {}


async def test_demo_loads_and_is_idempotent(
    database: Database, settings: Settings, clock: FixedClock
) -> None:
    assert await load_demo(database, settings, clock=clock) == 40
    first = await _demo_state(database)
    assert await load_demo(database, settings, clock=clock) == 40
    assert await _demo_state(database) == first
    counts, extensions, due_days, agents_of_customers = first
    assert counts == (40, 3, 7, 6)
    assert extensions == [("201", "agent-201"), ("202", "agent-202"), ("203", "agent-203")]
    assert min(due_days) >= 0 and max(due_days) <= 7
    assert agents_of_customers <= {"agent-201", "agent-202", "agent-203"}


# Row counts, (extension, agent) pairs, payment due days, customers' responsible agents.
DemoState = tuple[tuple[int | None, ...], list[tuple[str, str]], list[int], set[str | None]]


async def _demo_state(database: Database) -> DemoState:
    async with database.transaction() as session:
        counts = tuple(
            [
                await session.scalar(select(func.count()).select_from(model))
                for model in (Customer, Agent, Payment, Activity)
            ]
        )
        extensions = (
            await session.execute(
                select(AgentExtension.extension, Agent.agent_id)
                .join(Agent, Agent.id == AgentExtension.agent_id)
                .order_by(AgentExtension.extension)
            )
        ).all()
        first_update = await session.scalar(select(func.min(Payment.updated_at)))
        assert first_update is not None
        today = first_update.date()
        due = [(row - today).days for row in (await session.scalars(select(Payment.due_date)))]
        agents = set(await session.scalars(select(Customer.responsible_agent)))
    return counts, [(extension, agent) for extension, agent in extensions], sorted(due), agents


async def test_demo_without_its_directory_says_where_it_looked(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(DemoDataMissing, match=re.escape(str(tmp_path))):
        await load_demo(database, settings, directory=tmp_path)
    assert await customers(database) == {}


async def test_demo_with_a_broken_file_writes_nothing(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    demo = tmp_path / "demo"
    await asyncio.to_thread(shutil.copytree, DEMO_DIR, demo)
    await asyncio.to_thread((demo / "agents.yaml").write_text, "agents: {not: a list}\n", "utf-8")
    with pytest.raises(DemoDataMissing, match=re.escape("agents.yaml: expected a list")):
        await load_demo(database, settings, directory=demo)
    assert await customers(database) == {}


def runaway_file(path: Path, good: int, bad_at: int, bad_row: str) -> Path:
    """`good` valid rows with `bad_row` at physical line `bad_at` (the header is line 1)."""
    rows = [f"R{n:05d},Customer {n},,,,,," for n in range(good)]
    rows.insert(bad_at - 2, bad_row)
    return write_csv(path, rows)


@pytest.mark.parametrize(
    ("bad_at", "bad_row", "reason"),
    [
        (3, 'R_bad,"Unterminated name,,,,,,', "no closing quote within 100 lines"),
        (3000, 'R_bad,"Unterminated name,,,,,,', "no closing quote before the end of the file"),
        (3, 'R_bad,"Long' + "x" * 70_000 + ",,,,,,", "no closing quote within 65536 characters"),
    ],
)
async def test_unterminated_quote_is_reported_and_every_good_row_kept(
    database: Database,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    bad_at: int,
    bad_row: str,
    reason: str,
) -> None:
    """A runaway quoted field is cut short: its row is reported and reading resumes after it."""
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    path = runaway_file(tmp_path / "runaway.csv", 3_000, bad_at, bad_row)
    errors = tmp_path / "rejects.csv"
    argv = ["import", "customers", str(path), "--errors", str(errors), "--no-progress"]
    status = await asyncio.to_thread(run_cli, argv)
    out = capsys.readouterr().out
    assert status == 3
    assert (
        "rows read: 3001, imported: 3000 (created 3000, updated 0, unchanged 0), rejected: 1" in out
    )
    assert f"line {bad_at}: unterminated quoted field" in out and reason in out
    stored = await customers(database)
    assert len(stored) == 3_000 and "R_bad" not in stored
    assert stored["R00001"].name == "Customer 1" and stored["R02999"].name == "Customer 2999"
    with errors.open(encoding="utf-8", newline="") as handle:
        [_, (line, why, *cells)] = list(csv.reader(handle))
    assert (line, cells[0][:5]) == (str(bad_at), "R_bad") and reason in why


async def test_legitimate_multiline_fields_still_import(
    database: Database, clock: FixedClock, tmp_path: Path
) -> None:
    """A quoted field over many lines (within the limit) is one row, reported by its start."""
    name = "\n".join(str(n % 10) for n in range(90))  # 179 characters: within the column
    rows = [GOOD_ROWS[0], f'M1,"{name}",,,,,,', GOOD_ROWS[1], 'M2,"two\nlines",999,,,,,']
    report = await import_customers(
        database, write_csv(tmp_path / "multi.csv", rows), "UA", clock, progress=False
    )
    assert (report.rows_read, report.imported, report.rejected) == (4, 3, 1)
    assert report.rejects[0].line == 94 and "phone '999'" in report.rejects[0].reason
    assert (await customers(database))["M1"].name == name
