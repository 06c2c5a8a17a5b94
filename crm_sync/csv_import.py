"""Streaming CSV import of customers: validate row by row, upsert in batches.

Decisions the file format leaves open:
- Columns may come in any order; a missing, unknown or repeated column makes the whole
  file unreadable (exit 2), because guessing would import data into the wrong fields.
- Every column is written as the file has it; an empty cell clears the field and an empty
  `phones` cell removes the customer's numbers (the file is the CRM's truth).
- `language` is any ISO 639-1 code (case ignored, stored lower case): templates carry
  bodies per language, and a closed list would refuse a legitimate customer, while the
  ISO list still catches the classic slip `ua` (a country, not a language).
- A repeated `external_id` is applied in file order, so the later row wins, exactly as a
  sequence of CRM updates would; each row is counted by its own effect.
- Line numbers are physical lines (the header is line 1); a row whose quoted field spans
  lines is reported by the line it starts on.
"""

from __future__ import annotations

import asyncio
import csv
import os
import re
import sys
import time
import zoneinfo
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, cast

from sqlalchemy import Integer, String, Table, any_, bindparam, delete, null, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from tqdm import tqdm

from crm_sync.phones import LAST_DIGITS, InvalidPhone, normalize_phone
from gateway.clock import Clock
from gateway.db.engine import Database
from gateway.db.models import Customer, CustomerPhone
from gateway.db.types import UtcDateTime, new_id

COLUMNS = (
    "external_id",
    "name",
    "phones",
    "email",
    "timezone",
    "language",
    "region",
    "responsible_agent",
)
BATCH_ROWS = 2_000
REJECTS_KEPT = 50
# Column widths of the customers table: longer values would fail the whole batch.
MAX_LENGTH = {
    "external_id": 128,
    "name": 256,
    "email": 320,
    "timezone": 64,
    "region": 64,
    "responsible_agent": 128,
}
EMAIL_SHAPE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
UTF8_BOM = b"\xef\xbb\xbf"
# ISO 639-1 language codes, two letters each.
_ISO_639_1_CODES = (
    "aaabaeafakamanarasavayazbabebgbhbibmbnbobrbscacechcocrcscucvcydadedvdzeeeleneoeseteu"
    "fafffifjfofrfygagdglgngugvhahehihohrhthuhyhziaidieigiiikioisititiujajvkakgkikjkkklkm"
    "knkokrkskukvkwkylalblglilnloltlulvmgmhmimkmlmnmrmsmtmynanbndnengnlnnnonrnvnyocojomor"
    "ospapiplpsptqurmrnrorurwsascsdsesgsiskslsmsnsosqsrssstsusvswtatetgthtitktltntotrtstt"
    "twtyugukuruzvevivowawoxhyiyozazhzu"
)
ISO_639_1 = frozenset(_ISO_639_1_CODES[i : i + 2] for i in range(0, len(_ISO_639_1_CODES), 2))


class ImportFileError(Exception):
    """The file cannot be imported at all: unreadable, not UTF-8, or a wrong header."""


class RowRejected(ValueError):
    """One row is invalid; the message is the reason shown beside its line number."""


@dataclass(frozen=True, slots=True)
class CustomerRow:
    """A validated row, ready to upsert (phones in E.164, file order, no repeats)."""

    line: int
    external_id: str
    name: str
    phones: tuple[str, ...]
    email: str | None
    timezone: str | None
    language: str | None
    region: str | None
    responsible_agent: str | None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row left out, with the line it starts on and why."""

    line: int
    reason: str


@dataclass(slots=True)
class ImportReport:
    """What an import did; `rejects` keeps the first REJECTS_KEPT of `rejected`."""

    rows_read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejects: list[Rejected] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def imported(self) -> int:
        """Rows applied (created, updated or already as in the file)."""
        return self.created + self.updated + self.unchanged

    @property
    def exit_status(self) -> int:
        """0 when every row went in, 3 when some were rejected."""
        return 3 if self.rejected else 0


def read_header(fields: Sequence[str]) -> tuple[int, ...]:
    """Map the header to COLUMNS order: the position of each column in a row."""
    names = [name.strip().lower() for name in fields]
    repeated = sorted({name for name in names if names.count(name) > 1})
    missing = [name for name in COLUMNS if name not in names]
    unknown = [name for name in names if name not in COLUMNS]
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown column(s) {', '.join(repr(name) for name in unknown)}")
    if repeated:
        problems.append(f"repeated column(s) {', '.join(repeated)}")
    if problems:
        raise ImportFileError(f"wrong header: {'; '.join(problems)} (expected {','.join(COLUMNS)})")
    return tuple(names.index(name) for name in COLUMNS)


class RowValidator:
    """Turns raw CSV fields into a CustomerRow or raises RowRejected."""

    def __init__(self, region: str, order: tuple[int, ...]) -> None:
        self.region = region
        self.columns = tuple(zip(COLUMNS, order, strict=True))
        self._zones: frozenset[str] | None = None

    def validate(self, line: int, fields: Sequence[str]) -> CustomerRow:
        """Check one row's fields (as read, header order)."""
        if len(fields) != len(COLUMNS):
            raise RowRejected(f"expected {len(COLUMNS)} fields, got {len(fields)}")
        values = {name: fields[index].strip() for name, index in self.columns}
        if any("\0" in value for value in values.values()):
            raise RowRejected("contains a NUL character")  # PostgreSQL text cannot hold it
        for name, limit in MAX_LENGTH.items():
            if len(values[name]) > limit:
                raise RowRejected(f"{name} is longer than {limit} characters")
        if not values["external_id"]:
            raise RowRejected("external_id is empty")
        email = values["email"]
        if email and not EMAIL_SHAPE.fullmatch(email):
            raise RowRejected(f"email {email!r} is not an address")
        return CustomerRow(
            line=line,
            external_id=values["external_id"],
            name=values["name"],
            phones=self._phones(values["phones"]),
            email=email or None,
            timezone=self._timezone(values["timezone"]),
            language=_language(values["language"]),
            region=values["region"] or None,
            responsible_agent=values["responsible_agent"] or None,
        )

    def _phones(self, cell: str) -> tuple[str, ...]:
        numbers: dict[str, None] = {}
        for raw in cell.split(";"):
            if raw.strip():
                try:
                    numbers[normalize_phone(raw, self.region)] = None
                except InvalidPhone:
                    raise RowRejected(
                        f"phone {raw.strip()!r} is not a valid number for region {self.region}"
                    ) from None
        return tuple(numbers)

    def _timezone(self, name: str) -> str | None:
        if not name:
            return None
        if self._zones is None:
            self._zones = frozenset(zoneinfo.available_timezones())
        if name not in self._zones:
            raise RowRejected(f"timezone {name!r} is not an IANA time zone")
        return name


def _language(code: str) -> str | None:
    if not code:
        return None
    lower = code.lower()
    if lower == "ua":
        raise RowRejected("language 'ua' is a country code; Ukrainian is 'uk'")
    if lower not in ISO_639_1:
        raise RowRejected(f"language {code!r} is not an ISO 639-1 code (such as uk, ru, en)")
    return lower


@dataclass(slots=True)
class Batch:
    """Up to BATCH_ROWS rows read from the file, validated."""

    rows: list[CustomerRow]
    rejects: list[Rejected]
    rows_read: int
    bytes_read: int
    done: bool


class CsvSource:
    """Reads the file lazily: lines decoded one by one, csv rows with their start line."""

    def __init__(self, path: Path, region: str, errors: IO[str] | None = None) -> None:
        self.bytes_read = 0
        self._undecodable = False
        self._lines_seen = 0
        self._last_line = 0
        try:
            self._file = path.open("rb")
            self.size = os.fstat(self._file.fileno()).st_size
            self._reader = csv.reader(self._decoded_lines())
            header = self._next_fields()
        except OSError as exc:
            raise ImportFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
        try:
            if self._undecodable:
                raise ImportFileError(f"{path} is not UTF-8 text (its header cannot be decoded)")
            if header is None or not any(cell.strip() for cell in header[1]):
                raise ImportFileError(f"{path} is empty: expected the header {','.join(COLUMNS)}")
            if header[2] is not None:
                raise ImportFileError(f"{path}: cannot read the header: {header[2]}")
            self.validator = RowValidator(region, read_header(header[1]))
        except ImportFileError:
            self._file.close()
            raise
        self._errors = csv.writer(errors) if errors is not None else None
        if self._errors is not None:
            self._errors.writerow(["line", "reason", *header[1]])

    def _decoded_lines(self) -> Iterator[str]:
        # Lines are split on bytes (a newline byte never occurs inside a UTF-8 sequence)
        # so that one undecodable line rejects one row instead of the whole file.
        for raw in self._file:
            self._lines_seen += 1
            self.bytes_read += len(raw)
            if self._lines_seen == 1 and raw.startswith(UTF8_BOM):
                raw = raw[len(UTF8_BOM) :]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                self._undecodable = True
                yield raw.decode("utf-8", errors="replace")

    def _next_fields(self) -> tuple[int, list[str], str | None] | None:
        """The next row, the line it starts on, and the csv module's complaint if any."""
        start = self._last_line + 1
        try:
            fields, error = next(self._reader), None
        except StopIteration:
            return None
        except csv.Error as exc:
            fields, error = [], f"malformed CSV: {exc}"
        self._last_line = self._reader.line_num
        return start, fields, error

    def next_batch(self, size: int = BATCH_ROWS) -> Batch:
        """Read and validate up to `size` rows (blocking: run it in a thread)."""
        batch = Batch(rows=[], rejects=[], rows_read=0, bytes_read=0, done=False)
        before = self.bytes_read
        while len(batch.rows) + len(batch.rejects) < size:
            item = self._next_fields()
            if item is None:
                batch.done = True
                break
            line, fields, error = item
            if error is None and (not fields or (len(fields) == 1 and not fields[0].strip())):
                continue  # blank line
            batch.rows_read += 1
            try:
                if error is not None:
                    raise RowRejected(error)
                if self._undecodable:  # from this row's lines: csv reads no further ahead
                    self._undecodable = False
                    raise RowRejected("not valid UTF-8 text")
                batch.rows.append(self.validator.validate(line, fields))
            except RowRejected as exc:
                batch.rejects.append(Rejected(line, str(exc)))
                if self._errors is not None:
                    self._errors.writerow([line, str(exc), *fields])
        batch.bytes_read = self.bytes_read - before
        return batch

    def close(self) -> None:
        """Close the file."""
        self._file.close()


async def import_customers(
    database: Database,
    path: Path,
    region: str,
    clock: Clock,
    progress: bool = True,
    *,
    errors: IO[str] | None = None,
    batch_size: int = BATCH_ROWS,
) -> ImportReport:
    """Import a customers CSV; raises ImportFileError when the file cannot be used.

    Each batch is one transaction, so an interrupted import keeps what it committed and
    a re-run completes it. The next batch is read in a thread while this one is written.
    """
    started = time.perf_counter()
    source: CsvSource = await asyncio.to_thread(CsvSource, Path(path), region, errors)
    report = ImportReport()
    bar = tqdm(
        total=source.size,
        initial=source.bytes_read,  # the header
        unit="B",
        unit_scale=True,
        desc="customers",
        file=sys.stderr,
        disable=not progress,
    )
    try:
        async with database.engine.connect() as conn:
            await _pump(source, conn, clock, report, bar, batch_size)
    finally:
        bar.close()
        await asyncio.to_thread(source.close)
    report.seconds = time.perf_counter() - started
    return report


async def _pump(
    source: CsvSource,
    conn: AsyncConnection,
    clock: Clock,
    report: ImportReport,
    bar: tqdm[Any],
    batch_size: int,
) -> None:
    """Write batch after batch while the next one is read and validated in a thread."""
    reading: asyncio.Future[Batch] | None = None
    try:
        reading = asyncio.ensure_future(asyncio.to_thread(source.next_batch, batch_size))
        while reading is not None:
            batch = await reading
            reading = None
            if not batch.done:
                reading = asyncio.ensure_future(asyncio.to_thread(source.next_batch, batch_size))
            if batch.rows:
                created, updated, unchanged = await write_batch(conn, batch.rows, clock.now())
                report.created += created
                report.updated += updated
                report.unchanged += unchanged
            report.rows_read += batch.rows_read
            report.rejected += len(batch.rejects)
            report.rejects.extend(batch.rejects[: max(REJECTS_KEPT - len(report.rejects), 0)])
            bar.update(batch.bytes_read)
    finally:
        if reading is not None:  # the thread cannot be cancelled: let it finish first
            await asyncio.gather(reading, return_exceptions=True)


# Written from the file; the rest of a customer (status, consent, products…) is left alone.
FILE_FIELDS = ("name", "email", "timezone", "language", "region", "responsible_agent")
CUSTOMERS = cast(Table, Customer.__table__)
PHONES = cast(Table, CustomerPhone.__table__)
# What one customer looks like in the file: the fields above, then its phones.
Snapshot = tuple[Any, ...]


def _snapshot(row: CustomerRow) -> Snapshot:
    return (*(getattr(row, name) for name in FILE_FIELDS), row.phones)


async def write_batch(
    conn: AsyncConnection, rows: list[CustomerRow], now: datetime
) -> tuple[int, int, int]:
    """Apply validated rows in one transaction; returns (created, updated, unchanged).

    Rows are compared with what is stored first, so a re-import writes nothing (not even
    `updated_at`), and rows are counted as if applied one by one in file order.
    """
    async with conn.begin():
        ids, stored = await _load_stored(conn, list({row.external_id for row in rows}))
        state: dict[str, Snapshot | None] = dict(stored)
        final: dict[str, tuple[CustomerRow, Snapshot]] = {}
        created = updated = unchanged = 0
        for row in rows:
            snapshot = _snapshot(row)
            if row.external_id not in state:
                created += 1
            elif state[row.external_id] != snapshot:
                updated += 1
            else:
                unchanged += 1
            state[row.external_id] = snapshot
            final[row.external_id] = (row, snapshot)
        upserts: list[CustomerRow] = []
        new_phones: list[CustomerRow] = []
        for ext, (row, snapshot) in final.items():
            before = stored.get(ext)
            if before is None or before[:-1] != snapshot[:-1]:
                upserts.append(row)
            if (before[-1] if before is not None else ()) != row.phones:
                new_phones.append(row)
        proposed = {row.external_id: new_id("cus") for row in upserts if row.external_id not in ids}
        fresh: set[str] = set()
        if upserts:
            written = await _upsert(conn, upserts, {**ids, **proposed}, now)
            # An id other than the proposed one means someone created the customer meanwhile.
            fresh = {cid for ext, cid in written.items() if proposed.get(ext) == cid}
            ids.update(written)
        if new_phones:
            lists = [(ids[row.external_id], row.phones) for row in new_phones]
            await _replace_phones(conn, lists, fresh)
    return created, updated, unchanged


def _is_in(column: Any, values: list[str], dialect: str) -> Any:
    """`column IN values`; on PostgreSQL one array parameter, planned once."""
    if dialect == "postgresql":
        return column == any_(bindparam(None, values, type_=_TEXT))
    return column.in_(values)


def e164_last_digits(e164: str) -> str:
    """last_digits() of an E.164 number, without its per-character scan (hot loop)."""
    return e164[1:][-LAST_DIGITS:]  # E.164 is "+" then digits only


async def _load_stored(
    conn: AsyncConnection, keys: list[str]
) -> tuple[dict[str, str], dict[str, Snapshot | None]]:
    """Ids and snapshots of the batch's existing customers (None for a deleted one)."""
    columns = [CUSTOMERS.c[name] for name in FILE_FIELDS]
    result = await conn.execute(
        select(CUSTOMERS.c.id, CUSTOMERS.c.external_id, CUSTOMERS.c.deleted_at, *columns).where(
            _is_in(CUSTOMERS.c.external_id, keys, conn.dialect.name)
        )
    )
    ids: dict[str, str] = {}
    fields: dict[str, tuple[Any, ...] | None] = {}
    for record in result:
        ids[record.external_id] = record.id
        fields[record.external_id] = None if record.deleted_at else tuple(record[3:])
    phones: dict[str, list[str]] = {customer_id: [] for customer_id in ids.values()}
    if ids:
        result = await conn.execute(
            select(PHONES.c.customer_id, PHONES.c.e164)
            .where(_is_in(PHONES.c.customer_id, list(ids.values()), conn.dialect.name))
            .order_by(PHONES.c.customer_id, PHONES.c.position)
        )
        for customer_id, e164 in result:
            phones[customer_id].append(e164)
    stored: dict[str, Snapshot | None] = {}
    for ext, values in fields.items():
        # A deleted customer compares unequal to any row: importing it restores it.
        stored[ext] = None if values is None else (*values, tuple(phones[ids[ext]]))
    return ids, stored


async def _upsert(
    conn: AsyncConnection, rows: list[CustomerRow], ids: dict[str, str], now: datetime
) -> dict[str, str]:
    """Insert or update by external_id in one statement; returns external_id → id."""
    if conn.dialect.name == "postgresql":
        arrays = {"id": [ids[row.external_id] for row in rows]}
        for name in ("external_id", *FILE_FIELDS):
            arrays[name] = [getattr(row, name) for row in rows]
        result = await conn.execute(_PG_UPSERT, {**arrays, "now": now})
    else:
        upsert = sqlite.insert(CUSTOMERS)
        updates = {name: upsert.excluded[name] for name in (*FILE_FIELDS, "updated_at")}
        statement = upsert.on_conflict_do_update(
            index_elements=[CUSTOMERS.c.external_id], set_={**updates, "deleted_at": null()}
        ).returning(CUSTOMERS.c.id, CUSTOMERS.c.external_id)
        params = [
            {
                "id": ids[row.external_id],
                "external_id": row.external_id,
                **{name: getattr(row, name) for name in FILE_FIELDS},
                **NEW_CUSTOMER,
                "created_at": now,
                "updated_at": now,
            }
            for row in rows
        ]
        result = await conn.execute(statement, params)
    return {external_id: customer_id for customer_id, external_id in result}


async def _replace_phones(
    conn: AsyncConnection, lists: list[tuple[str, tuple[str, ...]]], fresh: set[str]
) -> None:
    """Make each customer's numbers exactly the given list; `fresh` ones have none yet."""
    known = [customer_id for customer_id, _ in lists if customer_id not in fresh]
    if known:
        await conn.execute(
            delete(PHONES).where(_is_in(PHONES.c.customer_id, known, conn.dialect.name))
        )
    owners = [cid for cid, numbers in lists for _ in numbers]
    numbers = [e164 for _, numbers in lists for e164 in numbers]
    if not numbers:
        return
    positions = [position for _, numbers in lists for position in range(len(numbers))]
    tails = [e164_last_digits(e164) for e164 in numbers]
    if conn.dialect.name == "postgresql":
        arrays = {"customer_id": owners, "e164": numbers, "tail": tails, "position": positions}
        await conn.execute(_PG_PHONES, arrays)
        return
    params = [
        {"customer_id": cid, "e164": e164, "last_digits": tail, "position": pos, "invalid": False}
        for cid, e164, tail, pos in zip(owners, numbers, tails, positions, strict=True)
    ]
    await conn.execute(PHONES.insert(), params)


# Values a new customer starts with; an update leaves them alone.
NEW_CUSTOMER: dict[str, Any] = {
    "products": [],
    "attributes": {},
    "status": "active",
    "sms_opt_out": False,
    "email_opt_out": False,
    "voice_opt_out": False,
    "do_not_contact": False,
    "deleted_at": None,
}
_TEXT = ARRAY(String())
# PostgreSQL: one array per column through unnest() is several times faster than a
# multi-row VALUES list, which SQLAlchemy would bind and process value by value.
_PG_UPSERT = text(
    f"""
    INSERT INTO customers (id, external_id, {", ".join(FILE_FIELDS)}, products, attributes,
        status, sms_opt_out, email_opt_out, voice_opt_out, do_not_contact, deleted_at,
        created_at, updated_at)
    SELECT u.*, '[]'::jsonb, '{{}}'::jsonb, 'active', false, false, false, false, NULL,
        :now, :now
    FROM unnest(:id, :external_id, {", ".join(f":{name}" for name in FILE_FIELDS)})
        AS u(id, external_id, {", ".join(FILE_FIELDS)})
    ON CONFLICT (external_id) DO UPDATE SET
        {", ".join(f"{name} = excluded.{name}" for name in FILE_FIELDS)},
        updated_at = excluded.updated_at, deleted_at = NULL
    RETURNING id, external_id
    """  # noqa: S608 -- names from FILE_FIELDS, values bound
).bindparams(
    *(bindparam(name, type_=_TEXT) for name in ("id", "external_id", *FILE_FIELDS)),
    bindparam("now", type_=UtcDateTime()),
)
_PG_PHONES = text(
    """
    INSERT INTO customer_phones (customer_id, e164, last_digits, position, invalid)
    SELECT u.*, false FROM unnest(:customer_id, :e164, :tail, :position)
        AS u(customer_id, e164, last_digits, position)
    """
).bindparams(
    *(bindparam(name, type_=_TEXT) for name in ("customer_id", "e164", "tail")),
    bindparam("position", type_=ARRAY(Integer())),
)
