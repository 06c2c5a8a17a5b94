"""One customer CSV row: the header, the columns and how each cell is validated.

Decisions the file format leaves open:
- Columns may come in any order; a missing, unknown or repeated column makes the whole
  file unreadable (exit 2), because guessing would import data into the wrong fields.
- `language` is any ISO 639-1 code (case ignored, stored lower case): templates carry
  bodies per language, and a closed list would refuse a legitimate customer, while the
  ISO list still catches the classic slip `ua` (a country, not a language).
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.core.phones import InvalidPhone, normalize_phone

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
EMAIL_SHAPE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
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


class RowShapeRejected(RowRejected):
    """The row has the wrong number of fields or a field wider than its column.

    In a row whose quoted field spans lines this is the mark of a stray quote that
    closed in a later row: the reader then reads the lines it took again.
    """


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
            raise RowShapeRejected(f"expected {len(COLUMNS)} fields, got {len(fields)}")
        values = {name: fields[index].strip() for name, index in self.columns}
        if any("\0" in value for value in values.values()):
            raise RowRejected("contains a NUL character")  # PostgreSQL text cannot hold it
        for name, limit in MAX_LENGTH.items():
            if len(values[name]) > limit:
                raise RowShapeRejected(f"{name} is longer than {limit} characters")
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
