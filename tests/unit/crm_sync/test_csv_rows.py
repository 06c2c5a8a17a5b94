"""Customer CSV rows: header mapping, per-row validation, line numbers as read from a file."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_sync.csv_rows import COLUMNS, ImportFileError, RowRejected, RowValidator, read_header
from crm_sync.csv_source import CsvSource
from crm_sync.csv_write import e164_last_digits
from gateway.core.phones import last_digits

IN_ORDER = tuple(range(len(COLUMNS)))
GOOD = [
    "C1",
    "Олена Коваленко",
    "067 123 45 67",
    "olena@example.com",
    "Europe/Kyiv",
    "uk",
    "Київ",
    "agent-201",
]


def row(**changes: str) -> list[str]:
    """GOOD with some columns replaced."""
    values = dict(zip(COLUMNS, GOOD, strict=True))
    values.update(changes)
    return [values[name] for name in COLUMNS]


def validate(fields: list[str], order: tuple[int, ...] = IN_ORDER) -> object:
    return RowValidator("UA", order).validate(7, fields)


def test_good_row_is_normalised() -> None:
    result = RowValidator("UA", IN_ORDER).validate(
        7, row(phones=" +38 (067) 123-45-67 ; ;0501234567;067 123 45 67", language="UK")
    )
    assert result.line == 7
    assert result.phones == ("+380671234567", "+380501234567")  # repeat dropped, order kept
    assert result.language == "uk"
    assert result.timezone == "Europe/Kyiv"


def test_empty_optional_cells_become_none() -> None:
    result = RowValidator("UA", IN_ORDER).validate(
        2, row(phones="", email="", timezone="", language="", region="", responsible_agent="")
    )
    assert result.phones == ()
    assert (result.email, result.timezone, result.language) == (None, None, None)
    assert (result.region, result.responsible_agent) == (None, None)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"external_id": "  "}, "external_id is empty"),
        ({"phones": "067 123 45 67;12345"}, "phone '12345' is not a valid number for region UA"),
        ({"email": "olena.example.com"}, "email 'olena.example.com' is not an address"),
        ({"email": "a@b"}, "is not an address"),
        ({"timezone": "Europe/Kiev2"}, "timezone 'Europe/Kiev2' is not an IANA time zone"),
        ({"timezone": "../etc/passwd"}, "is not an IANA time zone"),
        ({"language": "ua"}, "Ukrainian is 'uk'"),
        ({"language": "xx"}, "language 'xx' is not an ISO 639-1 code"),
        ({"language": "ukr"}, "not an ISO 639-1 code"),
        ({"external_id": "C" * 129}, "external_id is longer than 128 characters"),
        ({"region": "R" * 65}, "region is longer than 64 characters"),
        ({"name": "Ol\x00ena"}, "contains a NUL character"),
    ],
)
def test_bad_rows_are_rejected_with_a_reason(changes: dict[str, str], reason: str) -> None:
    with pytest.raises(RowRejected) as error:
        validate(row(**changes))
    assert reason in str(error.value)


def test_wrong_field_count_is_rejected() -> None:
    with pytest.raises(RowRejected, match="expected 8 fields, got 9"):
        validate([*GOOD, "extra"])


def test_header_in_any_order_maps_columns() -> None:
    header = list(reversed(COLUMNS))
    order = read_header([f" {name.upper()} " for name in header])
    result = RowValidator("UA", order).validate(2, list(reversed(GOOD)))
    assert result.external_id == "C1" and result.responsible_agent == "agent-201"


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (["external_id", "name"], "missing column(s) phones, email"),
        ([*COLUMNS[:2], "phone", *COLUMNS[3:]], "unknown column(s) 'phone'"),
        ([*COLUMNS, "name"], "repeated column(s) name"),
    ],
)
def test_wrong_header_names_the_problem(header: list[str], problem: str) -> None:
    with pytest.raises(ImportFileError) as error:
        read_header(header)
    assert problem in str(error.value)


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def read_all(source: CsvSource, size: int = 2) -> tuple[list[int], list[tuple[int, str]]]:
    """Lines of the accepted rows and (line, reason) of the rejected ones, batch by batch."""
    good: list[int] = []
    bad: list[tuple[int, str]] = []
    while True:
        batch = source.next_batch(size)
        good += [item.line for item in batch.rows]
        bad += [(item.line, item.reason) for item in batch.rejects]
        if batch.done:
            source.close()
            return good, bad


def test_line_numbers_count_physical_lines(tmp_path: Path) -> None:
    header = ",".join(COLUMNS)
    text = (
        f"\ufeff{header}\r\n"
        'C1,"Коваленко,\nОлена\nВасилівна",0671234567,,,,,\r\n'  # lines 2-4
        "\r\n"  # line 5: blank, skipped
        "C2,Bad,12,,,,,\r\n"  # line 6
        "C3,Fine,,,,,,\n"  # line 7
        '"C4","unterminated,0671234567,,,,,\n'  # line 8: runs to the end of the file
        "C5,Read again,,,,,,\n"  # line 9: the open quote took it; it is read again
    )
    source = CsvSource(write(tmp_path / "c.csv", text), "UA")
    good, bad = read_all(source)
    assert good == [2, 7, 9]
    assert [line for line, _ in bad] == [6, 8]
    assert "'12'" in bad[0][1] and "no closing quote before the end of the file" in bad[1][1]


def test_undecodable_line_rejects_only_its_row(tmp_path: Path) -> None:
    data = (",".join(COLUMNS) + "\nC1,A,,,,,,\nC2,\xff\xfe,,,,,,\nC3,B,,,,,,\n").encode("latin-1")
    data = data.replace(b",A,", ",Олена,".encode())
    good, bad = read_all(CsvSource(write(tmp_path / "c.csv", data), "UA"))
    assert good == [2, 4]
    assert bad == [(3, "not valid UTF-8 text")]


def test_errors_file_gets_every_reject_with_its_fields(tmp_path: Path) -> None:
    text = ",".join(COLUMNS) + "\nC1,A,bad,,,,,\nC2,B,,,,xx,,\nC3,C,,,,,,\n"
    sink = io.StringIO()
    read_all(CsvSource(write(tmp_path / "c.csv", text), "UA", sink))
    rows = list(csv.reader(io.StringIO(sink.getvalue())))
    assert rows[0] == ["line", "reason", *COLUMNS]
    assert [r[0] for r in rows[1:]] == ["2", "3"]
    assert rows[2][2:] == ["C2", "B", "", "", "", "xx", "", ""]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "is empty"),
        (b"\n\n", "is empty"),
        (b"\xff\xfeexternal_id,name\n", "not UTF-8"),
        (b"external_id;name;phones\n", "wrong header"),
    ],
)
def test_unusable_files_are_refused(tmp_path: Path, content: bytes, problem: str) -> None:
    with pytest.raises(ImportFileError, match=problem):
        CsvSource(write(tmp_path / "c.csv", content), "UA")


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="cannot read"):
        CsvSource(tmp_path / "absent.csv", "UA")
    with pytest.raises(ImportFileError, match="cannot read"):
        CsvSource(tmp_path, "UA")


names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\0"),
    max_size=20,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(names, min_size=1, max_size=8))
def test_rows_written_by_csv_read_back_with_their_start_lines(
    tmp_path_factory: pytest.TempPathFactory, cells: list[str]
) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    expected: list[tuple[int, str]] = []
    for index, name in enumerate(cells):
        starts_on = buffer.getvalue().count("\n") + 1  # only "\n" ends a physical line
        writer.writerow([f"C{index}", name, "", "", "", "", "", ""])
        expected.append((starts_on, name.strip()))
    path = tmp_path_factory.mktemp("csv") / "c.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    source = CsvSource(path, "UA")
    batch = source.next_batch(100)
    source.close()
    assert [(item.line, item.name) for item in batch.rows] == expected


@given(st.from_regex(r"\+[1-9][0-9]{7,14}", fullmatch=True))
def test_tail_of_e164_is_last_digits(e164: str) -> None:
    assert e164_last_digits(e164) == last_digits(e164)


def test_stray_quote_closed_by_a_later_row_loses_no_row(tmp_path: Path) -> None:
    """A stray quote that a later row's quoted field closes: every line in between kept."""
    lines = [",".join(COLUMNS), 'S1,"Stray quote,,,,,,']  # line 2
    lines += [f"S{n},Row {n},,,,,," for n in range(3, 40)]  # lines 3-39
    lines += ['S40,"Мельник, Оксана",,,,,,', "S41,Last,,,,,,"]  # lines 40-41
    sink = io.StringIO()
    good, bad = read_all(CsvSource(write(tmp_path / "c.csv", "\n".join(lines) + "\n"), "UA", sink))
    assert good == list(range(3, 42))
    [(line, reason)] = bad
    assert line == 2 and reason.startswith("malformed CSV")
    assert reason.endswith("(its quoted field took lines 2-40; 3-40 are read again)")


def test_a_file_of_open_quotes_reports_every_line(tmp_path: Path) -> None:
    """Every line opening a quote: each one reported once, each later line read again."""
    lines = [",".join(COLUMNS)] + [f'Q{n},"open,,,,,,' for n in range(300)]
    good, bad = read_all(CsvSource(write(tmp_path / "c.csv", "\n".join(lines) + "\n"), "UA"), 500)
    assert good == [] and [line for line, _ in bad] == list(range(2, 302))
    assert "no closing quote before the end of the file" in bad[-1][1]


@given(
    position=st.integers(0, 150),
    bad=st.sampled_from(['B,"open,,,,,,', '"B,open,,,,,,', 'B,x,"open', 'B,x,y"z,"w']),
)
@settings(max_examples=40, deadline=None)
def test_one_bad_quote_anywhere_keeps_every_good_row(position: int, bad: str) -> None:
    """Wherever one row with a bad quote sits, every other row is read and kept."""
    rows = [f"G{n},Row {n},,,,,," for n in range(150)]
    rows.insert(position, bad)
    with tempfile.TemporaryDirectory() as directory:
        path = write(Path(directory) / "c.csv", "\n".join([",".join(COLUMNS), *rows]) + "\n")
        good, rejected = read_all(CsvSource(path, "UA"), 64)
    assert [line for line, _ in rejected] == [position + 2]
    assert good == [line for line in range(2, 153) if line != position + 2]


def test_text_after_a_closing_quote_is_reported_not_glued_on(tmp_path: Path) -> None:
    """`"Smith" Jr` is not CSV: reported by its line (the reader is strict), nothing lost."""
    text = ",".join(COLUMNS) + '\nC1,"Smith" Jr,,,,,,\nC2,Fine,,,,,,\n'
    good, bad = read_all(CsvSource(write(tmp_path / "c.csv", text), "UA"))
    assert good == [3]
    assert bad == [(2, "malformed CSV: ',' expected after '\"'")]
