"""The streaming file writers, each file read back by its real reader (no database)."""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import json
import random
import tempfile
import tracemalloc
import zipfile
import zoneinfo
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from exports.columns_base import Column, ColumnGroup, ColumnType
from exports.tests.office import needs_office, office_csv
from exports.writers import FORMATS, BaseWriter, get_writer, writer_class
from exports.writers.cells import spreadsheet_text
from exports.writers.csv_writer import CsvWriter
from exports.writers.jsonl_writer import JsonlWriter, json_value
from exports.writers.parquet_writer import ParquetWriter
from exports.writers.xlsx_writer import XlsxWriter
from tagging.formatting import as_text

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
FORMULA_STARTS = ["=", "+", "-", "@", "\t", "\r", "\n"]
MARKER = "… [truncated]"
ABOUT = [("Organization", "Acme Corp"), ("Filters", "status = open"), ("Generated", "2024-03-31 02:30")]

T, G = ColumnType, ColumnGroup
COLUMNS = [
    Column("case_number", "Case number", T.TEXT, G.CORE, 14),
    Column("status", "Status", T.CHOICE, G.CORE, 12),
    Column("riu_count", "RIU count", T.INTEGER, G.CORE, 10),
    Column("financial_impact", "Financial impact", T.DECIMAL, G.CORE, 16),
    Column("opened_on", "Opened on", T.DATE, G.CORE, 12),
    Column("created_at", "Created at", T.DATETIME, G.CORE, 20),
    Column("anonymous", "Anonymous", T.BOOLEAN, G.CORE, 10),
    Column("allegations", "Allegations", T.LIST, G.CORE, 30),
    Column("investigation_1_status", "Investigation 1 — Status", T.CHOICE, G.INVESTIGATION, 18),
    Column("tag_region", "Region", T.TEXT, G.TAG, 12),
    Column("tag_amount", "Amount at risk", T.NUMBER, G.TAG, 14),
    Column("tag_legal_hold", "Legal hold", T.BOOLEAN, G.TAG, 10),
    Column("tag_interviewed_on", "Interviewed on", T.DATE, G.TAG, 12),
]
KEYS = [column.key for column in COLUMNS]


def make_row(i: int) -> tuple[Any, ...]:
    """A realistic case row; every few rows have empty values and odd tag values."""
    return (
        f"C-{i:06d}",
        ["open", "closed", "in_progress"][i % 3],
        i % 5,
        Decimal(f"{i * 37 % 100000}.{i % 100:02d}") if i % 4 else None,
        dt.date(2024, 1, 1) + dt.timedelta(days=i % 366),
        # Real instants shown in Paris time, across the 2024 DST changes (as from the database).
        (dt.datetime(2024, 3, 30, 11, 0, 15, tzinfo=dt.UTC) + dt.timedelta(hours=7 * i)).astimezone(PARIS),
        i % 2 == 0,
        "Fraud; Bribery" if i % 3 else "Harassment",
        "Substantiated" if i % 2 else None,
        ["EMEA", "AMER", "Région Île-de-France", "東京"][i % 4],
        [Decimal("12.50"), 7, 2.25, "n/a", None][i % 5],
        [True, False, None][i % 3],
        dt.date(2024, 2, 29) if i % 2 else None,
    )


def make_rows(n: int) -> list[tuple[Any, ...]]:
    return [make_row(i) for i in range(n)]


def write(writer: BaseWriter, rows: Any, columns: Sequence[Column] = COLUMNS, **kwargs: Any) -> bytes:
    stream = io.BytesIO()
    count = writer.write(columns=columns, rows=iter(rows), stream=stream, **kwargs)
    assert not stream.closed
    if isinstance(rows, list):
        assert count == len(rows)
    return stream.getvalue()


def one_column_rows(values: Sequence[Any]) -> tuple[list[Column], list[tuple[Any, ...]]]:
    return [Column("value", "Value", T.TEXT, G.TAG)], [(value,) for value in values]


def header_labels() -> list[str]:
    return [column.label for column in COLUMNS]


def is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def expected_csv_cell(value: Any) -> str:
    """Written independently of the writer: as_text, quoted when text starts like a formula."""
    text = as_text(value)
    if not is_number(value) and text[:1] in FORMULA_STARTS:
        return "'" + text
    return text


def read_csv(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data[3:].decode("utf-8"), newline="")))


def read_xlsx(data: bytes) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(data))


def sheet_values(sheet: Any) -> list[list[Any]]:
    return [list(row) for row in sheet.iter_rows(values_only=True)]


def read_jsonl(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line, parse_float=Decimal) for line in data.decode("utf-8").splitlines()]


def read_parquet(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


# --- registry --------------------------------------------------------------------------


def test_registry_has_one_writer_per_format() -> None:
    assert set(FORMATS) == {"csv", "xlsx", "jsonl", "parquet"}
    classes = {"csv": CsvWriter, "xlsx": XlsxWriter, "jsonl": JsonlWriter, "parquet": ParquetWriter}
    for name in FORMATS:
        writer = get_writer(name)
        assert writer_class(name) is classes[name] and type(writer) is classes[name]
        assert writer.format == writer.extension == name
    assert get_writer("csv").media_type == "text/csv; charset=utf-8"
    assert get_writer("xlsx").media_type == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def test_get_writer_unknown_format_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="csv, jsonl, parquet, xlsx"):
        get_writer("pdf")


# --- CSV -------------------------------------------------------------------------------


def test_csv_reads_back_as_text_of_every_value() -> None:
    rows = make_rows(40)
    data = write(CsvWriter(), rows)
    assert b"\r\n" in data and data.count(b"\r\n") == 41
    header, *body = read_csv(data)
    assert header == [column.label for column in COLUMNS]
    assert body == [[expected_csv_cell(value) for value in row] for row in rows]
    assert body[0][6] == "Yes" and body[1][6] == "No"
    assert body[1][5] == "2024-03-30T19:00:15+01:00"
    assert body[3][5] == "2024-03-31T10:00:15+02:00"  # after the DST change, still local time
    assert body[3][10] == "n/a"
    assert body[0][3] == "" and body[1][3] == "37.01"


def test_csv_quotes_separators_quotes_and_line_breaks() -> None:
    columns, rows = one_column_rows(['a, "b"', "line 1\nline 2", "plain"])
    data = write(CsvWriter(), rows, columns)
    assert b'"a, ""b"""\r\n' in data
    assert [row[0] for row in read_csv(data)[1:]] == ['a, "b"', "line 1\nline 2", "plain"]


@pytest.mark.parametrize("start", FORMULA_STARTS)
def test_csv_neutralises_text_starting_like_a_formula(start: str) -> None:
    payload = start + 'HYPERLINK("http://evil","x")'
    columns = [Column("value", start + "SUM(A1)", T.TEXT)]
    header, *body = read_csv(write(CsvWriter(), [(payload,)], columns))
    assert header == ["'" + start + "SUM(A1)"]
    assert body == [["'" + payload]]


def test_csv_keeps_real_negative_numbers_unquoted() -> None:
    columns, rows = one_column_rows([-12.5, -3, Decimal("-1000.25"), "-12.5", "safe - text", 0.1])
    body = [row[0] for row in read_csv(write(CsvWriter(), rows, columns))[1:]]
    assert body == ["-12.5", "-3", "-1000.25", "'-12.5", "safe - text", "0.1"]


def test_csv_survives_values_as_text_cannot_render() -> None:
    columns, rows = one_column_rows([float("nan"), float("inf"), float("-inf"), "\udc80bad", [1, 2]])
    body = [row[0] for row in read_csv(write(CsvWriter(), rows, columns))[1:]]
    assert body == ["NaN", "Infinity", "'-Infinity", "?bad", "1; 2"]


def _csv_module_bytes(columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> bytes:
    """What Python's csv module writes of the cells (the writer's reference)."""
    text = io.StringIO(newline="")
    out = csv.writer(text, dialect="excel", quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    out.writerow([spreadsheet_text(column.label) for column in columns])
    out.writerows([[spreadsheet_text(value) for value in row] for row in rows])
    return b"\xef\xbb\xbf" + text.getvalue().encode("utf-8", errors="replace")


def mixed_rows(
    width: int, pieces: Sequence[str], more: Sequence[Callable[[random.Random], Any]] = ()
) -> list[tuple[Any, ...]]:
    """2,500 rows (two batches and a half) whose columns hold values of one kind, of one kind
    or None, or of any kind: text made of ``pieces``, None, integers, booleans, decimals,
    datetimes, dates, floats (NaN and infinities too), lists, and ``more`` (each a function
    of the random generator)."""
    rng = random.Random(width)
    kinds: list[Callable[[], Any]] = [
        lambda: "".join(rng.choices(pieces, k=rng.randint(0, 4))),
        lambda: None,
        lambda: rng.randint(-(10**20), 10**20),
        lambda: rng.choice([True, False]),
        lambda: Decimal(rng.randint(-99999, 99999)) / 100,
        lambda: dt.datetime(2026, 3, 29, rng.randint(0, 23), 30, rng.choice([0, 15]), tzinfo=PARIS),
        lambda: dt.date(2026, 1, rng.randint(1, 28)),
        lambda: rng.choice([0.1, -2.5, float("nan"), float("-inf"), 1e300]),
        lambda: ["x", rng.randint(0, 9)],
        *(functools.partial(make, rng) for make in more),
    ]
    plans = [[rng.randrange(len(kinds))] for _ in range(width)]
    plans = [p + ([1] if i % 3 == 1 else list(range(len(kinds))) if i % 3 == 2 else []) for i, p in enumerate(plans)]
    return [tuple(kinds[rng.choice(plan)]() for plan in plans) for _ in range(2500)]


@pytest.mark.parametrize("width", [1, 2, 7])
def test_csv_bytes_are_the_csv_modules_whatever_the_mix_of_values_in_a_column(width: int) -> None:
    pieces = ["a", "é", "日本", ",", '"', "\r", "\n", "\r\n", " ", "=", "-", "+", "@", "\t", "\x00", "\udc80", "'", ";"]
    rows = [*mixed_rows(width, pieces), ("",) * width, (None,) * width]
    columns = [Column(f"c{i}", ["=label", "a,b", 'q"'][i % 3], T.TEXT) for i in range(width)]

    assert write(CsvWriter(), rows, columns) == _csv_module_bytes(columns, rows)


def test_csv_leaves_the_callers_stream_open_after_an_error() -> None:
    stream = io.BytesIO()

    def rows() -> Iterator[tuple[Any, ...]]:
        yield make_row(0)
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError, match="database went away"):
        CsvWriter().write(columns=COLUMNS, rows=rows(), stream=stream)
    assert not stream.closed
    stream.write(b"still usable")


# --- XLSX ------------------------------------------------------------------------------


def expected_xlsx_cell(value: Any) -> Any:
    """What openpyxl reads back for a value the writer was given."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, Decimal):
        return float(value)
    if is_number(value):
        return value
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())  # openpyxl reads every date as a datetime
    return expected_csv_cell(value)


def test_xlsx_reads_back_typed_cells() -> None:
    rows = make_rows(40)
    workbook = read_xlsx(write(XlsxWriter(), rows, about=ABOUT))
    assert workbook.sheetnames == ["Data", "About"]
    sheet = workbook["Data"]
    header, *body = sheet_values(sheet)
    assert header == header_labels()
    assert body == [[expected_xlsx_cell(value) for value in row] for row in rows]
    # Local wall-clock time of the value, across the DST change.
    assert body[3][5] == dt.datetime(2024, 3, 31, 10, 0, 15)
    assert isinstance(body[1][3], float) and body[1][3] == 37.01
    assert sheet["E2"].number_format == "yyyy-mm-dd"
    assert sheet["F2"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert sheet["E2"].is_date and sheet["F2"].is_date
    assert sheet["C2"].data_type == "n" and sheet["A2"].data_type == "s"


def test_xlsx_header_is_styled_frozen_filtered_and_sized() -> None:
    sheet = read_xlsx(write(XlsxWriter(), make_rows(5)))["Data"]
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:M6"
    for cell in sheet[1]:
        assert cell.font.bold
        assert cell.fill.fill_type == "solid"
    assert not sheet["A2"].font.bold
    assert sheet.column_dimensions["A"].width == 14
    assert sheet.column_dimensions["K"].width == 14
    assert sheet.column_dimensions["I"].width == 18


@pytest.mark.parametrize("start", FORMULA_STARTS)
def test_xlsx_neutralises_text_starting_like_a_formula(start: str) -> None:
    payload = start + "cmd|' /C calc'!A0"
    columns = [Column("value", start + "SUM(A1)", T.TEXT)]
    sheet = read_xlsx(write(XlsxWriter(), [(payload,)], columns))["Data"]
    assert sheet["A1"].value == "'" + start + "SUM(A1)"
    assert sheet["A2"].value == "'" + payload
    assert sheet["A2"].data_type == "s"


def test_xlsx_never_writes_a_formula_or_error_cell() -> None:
    values = ["=1+1", '=HYPERLINK("http://evil")', "#N/A", "#DIV/0!", "@SUM(A1)", "'quoted", "=", "-", -12.5]
    columns, rows = one_column_rows(values)
    workbook = read_xlsx(write(XlsxWriter(), rows, columns, about=[("=cmd", "+cmd")]))
    types = {cell.data_type for sheet in workbook for row in sheet.iter_rows() for cell in row}
    assert "f" not in types and "e" not in types
    body = [row[0] for row in sheet_values(workbook["Data"])[1:]]
    assert body == [
        "'=1+1",
        '\'=HYPERLINK("http://evil")',
        "#N/A",
        "#DIV/0!",
        "'@SUM(A1)",
        "'quoted",
        "'=",
        "'-",
        -12.5,
    ]
    assert sheet_values(workbook["About"])[1] == ["'=cmd", "'+cmd"]


def test_xlsx_keeps_negative_numbers_numeric() -> None:
    columns, rows = one_column_rows([-12.5, -3, Decimal("-1000.25"), "-12.5"])
    sheet = read_xlsx(write(XlsxWriter(), rows, columns))["Data"]
    assert [(cell.value, cell.data_type) for (cell,) in sheet.iter_rows(min_row=2)] == [
        (-12.5, "n"),
        (-3, "n"),
        (-1000.25, "n"),
        ("'-12.5", "s"),
    ]


def test_xlsx_writes_numbers_excel_cannot_hold_as_exact_text() -> None:
    big = 12345678901234567890
    columns, rows = one_column_rows([big, -big, Decimal("1234567890.1234567"), float("nan"), float("-inf")])
    body = [row[0] for row in sheet_values(read_xlsx(write(XlsxWriter(), rows, columns))["Data"])[1:]]
    assert body == [str(big), str(-big), "1234567890.1234567", "NaN", "-Infinity"]


def test_xlsx_removes_control_characters() -> None:
    columns, rows = one_column_rows(["bell\x07 and\x00 nul", "\x01=1+1", "tab\tand\nnewline", "bad \udc80 \ufffe"])
    body = [row[0] for row in sheet_values(read_xlsx(write(XlsxWriter(), rows, columns))["Data"])[1:]]
    assert body == ["bell and nul", "'=1+1", "tab\tand\nnewline", "bad  "]


def test_xlsx_cuts_text_over_excels_limit_with_a_marker() -> None:
    long, emoji = "x" * 40_000, "😀" * 20_000
    columns, rows = one_column_rows([long, "=" + long, emoji, "y" * 32_767])
    body = [row[0] for row in sheet_values(read_xlsx(write(XlsxWriter(), rows, columns))["Data"])[1:]]
    cut, quoted, emojis, exact = body
    assert cut.endswith(MARKER) and len(cut) == 32_767 and cut.startswith("xxx")
    assert quoted.startswith("'=xxx") and quoted.endswith(MARKER) and len(quoted) == 32_767
    # Excel counts UTF-16 units: an emoji is two, and none is cut in half.
    assert emojis.endswith(MARKER) and len(emojis.encode("utf-16-le")) // 2 <= 32_767
    assert set(emojis.removesuffix(MARKER)) == {"😀"}
    assert exact == "y" * 32_767


def test_xlsx_keeps_leading_and_trailing_spaces() -> None:
    columns, rows = one_column_rows(["  indented", "trailing  ", " "])
    body = [row[0] for row in sheet_values(read_xlsx(write(XlsxWriter(), rows, columns))["Data"])[1:]]
    assert body == ["  indented", "trailing  ", " "]


def test_xlsx_continues_on_new_sheets_past_the_row_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(XlsxWriter, "max_rows_per_sheet", 3)
    rows = make_rows(8)
    workbook = read_xlsx(write(XlsxWriter(), rows, about=ABOUT))
    assert workbook.sheetnames == ["Data", "Data (2)", "Data (3)", "About"]
    seen = []
    for name, size in [("Data", 3), ("Data (2)", 3), ("Data (3)", 2)]:
        header, *body = sheet_values(workbook[name])
        assert header == header_labels()
        assert len(body) == size
        assert workbook[name].freeze_panes == "A2"
        assert workbook[name].auto_filter.ref == f"A1:M{size + 1}"
        seen += body
    assert [row[0] for row in seen] == [row[0] for row in rows]
    assert seen == [[expected_xlsx_cell(value) for value in row] for row in rows]


def test_xlsx_about_sheet_is_last_with_bold_labels() -> None:
    workbook = read_xlsx(write(XlsxWriter(), make_rows(2), about=ABOUT))
    about = workbook.worksheets[-1]
    assert about.title == "About"
    assert sheet_values(about) == [["Field", "Value"], *[list(pair) for pair in ABOUT]]
    assert all(cell.font.bold for cell in about["A"])
    assert not about["B2"].font.bold


def test_xlsx_about_is_read_after_the_last_row() -> None:
    about = [("Organization", "Acme Corp")]

    def rows() -> Iterator[tuple[Any, ...]]:
        yield from make_rows(3)
        about.append(("Rows", "3"))

    stream = io.BytesIO()
    XlsxWriter().write(columns=COLUMNS, rows=rows(), stream=stream, about=about)
    assert sheet_values(read_xlsx(stream.getvalue())["About"])[1:] == [["Organization", "Acme Corp"], ["Rows", "3"]]


def test_xlsx_without_rows_has_header_and_about() -> None:
    workbook = read_xlsx(write(XlsxWriter(), []))
    assert workbook.sheetnames == ["Data", "About"]
    assert sheet_values(workbook["Data"]) == [header_labels()]
    assert sheet_values(workbook["About"]) == [["Field", "Value"]]


def test_xlsx_writes_zip64_entries_past_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # Lower zipfile's 2 GiB limit so that the sheet part crosses it: the same code path as
    # a multi-gigabyte sheet, in a second.
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 50_000)
    rows = make_rows(2_500)  # more than one batch of rows deflated into the sheet
    data = write(XlsxWriter(), rows)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        sheet = archive.getinfo("xl/worksheets/sheet1.xml")
        assert sheet.file_size > 50_000
        assert sheet.extra[:2] == b"\x01\x00"  # the ZIP64 extended-information field
        assert archive.testzip() is None
    monkeypatch.undo()
    body = sheet_values(read_xlsx(data)["Data"])[1:]
    assert body == [[expected_xlsx_cell(value) for value in row] for row in rows]


def test_xlsx_cancel_removes_temporary_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(XlsxWriter, "max_rows_per_sheet", 10)

    def cancel(done: int) -> None:
        if done >= 30:
            raise InterruptedError("cancelled")

    with pytest.raises(InterruptedError):
        XlsxWriter().write(
            columns=COLUMNS, rows=iter(make_rows(100)), stream=io.BytesIO(), on_progress=cancel, progress_every=10
        )
    assert list(tmp_path.iterdir()) == []


# --- JSONL -----------------------------------------------------------------------------


@pytest.mark.parametrize("width", [1, 7])
def test_jsonl_bytes_are_each_values_json_whatever_the_mix_of_values_in_a_column(width: int) -> None:
    pieces = ["a", "é", "日本", '"', "\\", "\n", "\x00", "\x1f", "\u2028", "\udc80", "%s", "%"]
    rows = mixed_rows(width, pieces, [lambda rng: rng.choice([Decimal("NaN"), Decimal("-Infinity")])])
    columns = [Column(["c", "%s", 'q"'][i % 3] + str(i), "label", T.TEXT) for i in range(width)]

    expected = "".join(
        "{" + ",".join(f"{json.dumps(c.key)}:{json_value(v)}" for c, v in zip(columns, row, strict=True)) + "}\n"
        for row in rows
    )
    assert write(JsonlWriter(), rows, columns) == expected.encode("utf-8", "backslashreplace")


def test_jsonl_reads_back_native_types() -> None:
    rows = make_rows(40)
    data = write(JsonlWriter(), rows)
    objects = read_jsonl(data)
    assert len(objects) == 40 and data.endswith(b"}\n")
    for row, obj in zip(rows, objects, strict=True):
        assert list(obj) == KEYS
        expected = {
            key: value.isoformat()
            if isinstance(value, dt.date)
            else float(value)
            if isinstance(value, float)
            else value
            for key, value in zip(KEYS, row, strict=True)
        }
        assert obj == expected
    first, second = objects[0], objects[1]
    assert first["anonymous"] is True and second["anonymous"] is False
    assert first["financial_impact"] is None
    assert second["financial_impact"] == Decimal("37.01")
    assert second["riu_count"] == 1 and type(second["riu_count"]) is int
    assert second["created_at"] == "2024-03-30T19:00:15+01:00"
    assert objects[3]["tag_amount"] == "n/a"
    assert "東京".encode() in data  # UTF-8, not \u escapes


def test_jsonl_writes_decimals_exactly_as_numbers() -> None:
    values = [Decimal("0.10"), Decimal("12345678901234567.89"), Decimal("-0.00"), Decimal("1E+3"), 0.1, 10**30]
    columns, rows = one_column_rows(values)
    data = write(JsonlWriter(), rows, columns)
    assert data.decode().splitlines() == [
        '{"value":0.10}',
        '{"value":12345678901234567.89}',
        '{"value":-0.00}',
        '{"value":1000}',
        '{"value":0.1}',
        '{"value":1000000000000000000000000000000}',
    ]
    assert [obj["value"] for obj in read_jsonl(data)][:4] == [Decimal("0.10"), Decimal("12345678901234567.89"), 0, 1000]


def test_jsonl_has_no_formula_neutralisation_and_stays_valid_json() -> None:
    values = ["=1+1", "-5", 'quote " and \\ back', "line\nbreak", float("nan"), Decimal("NaN"), "\udc80"]
    columns, rows = one_column_rows(values)
    objects = [obj["value"] for obj in read_jsonl(write(JsonlWriter(), rows, columns))]
    assert objects == ["=1+1", "-5", 'quote " and \\ back', "line\nbreak", "NaN", "NaN", "\udc80"]


# --- Parquet ---------------------------------------------------------------------------


def test_parquet_schema_is_typed_from_column_types() -> None:
    table = read_parquet(write(ParquetWriter(), make_rows(10)))
    assert dict(zip(table.schema.names, table.schema.types, strict=True)) == {
        "case_number": pa.string(),
        "status": pa.string(),
        "riu_count": pa.int64(),
        "financial_impact": pa.decimal128(18, 2),
        "opened_on": pa.date32(),
        "created_at": pa.timestamp("us", tz="Europe/Paris"),
        "anonymous": pa.bool_(),
        "allegations": pa.string(),
        "investigation_1_status": pa.string(),
        # Tag columns are text whatever their type: they keep values that did not fit it.
        "tag_region": pa.string(),
        "tag_amount": pa.string(),
        "tag_legal_hold": pa.string(),
        "tag_interviewed_on": pa.string(),
    }


def test_parquet_reads_back_the_values() -> None:
    rows = make_rows(40)
    table = read_parquet(write(ParquetWriter(), rows))
    tag_columns = {i for i, column in enumerate(COLUMNS) if column.group == G.TAG}
    expected = [
        {
            key: (None if value is None else as_text(value)) if i in tag_columns else value
            for i, (key, value) in enumerate(zip(KEYS, row, strict=True))
        }
        for row in rows
    ]
    assert table.to_pylist() == expected
    second = table.to_pylist()[1]
    assert second["financial_impact"] == Decimal("37.01")
    assert second["created_at"].tzinfo is not None
    assert second["created_at"] == dt.datetime(2024, 3, 30, 19, 0, 15, tzinfo=PARIS)
    assert table.column("tag_amount").to_pylist()[:5] == ["12.50", "7", "2.25", "n/a", None]


def test_parquet_writes_row_groups_without_holding_all_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ParquetWriter, "batch_rows", 7)
    monkeypatch.setattr(ParquetWriter, "row_group_rows", 20)
    rows = make_rows(50)
    data = write(ParquetWriter(), rows)
    metadata = pq.ParquetFile(io.BytesIO(data)).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [21, 21, 8]
    assert read_parquet(data).column("case_number").to_pylist() == [row[0] for row in rows]


def test_parquet_coerces_core_values_that_do_not_fit_or_writes_null() -> None:
    columns = [
        Column("n", "N", T.INTEGER),
        Column("amount", "Amount", T.DECIMAL),
        Column("on", "On", T.DATE),
        Column("flag", "Flag", T.BOOLEAN),
        Column("label", "Label", T.TEXT),
    ]
    rows = [
        (True, Decimal("1.234"), dt.datetime(2024, 5, 1, 23, 30, tzinfo=PARIS), 1, 12),
        (2**70, 5, "2024-05-02", "maybe", Decimal("1.50")),
        ("12", "3.10", "not a date", 0, None),
        (3.0, Decimal("1E+20"), None, None, False),
    ]
    table = read_parquet(write(ParquetWriter(), rows, columns))
    assert table.to_pylist() == [
        {"n": 1, "amount": None, "on": dt.date(2024, 5, 1), "flag": True, "label": "12"},
        {"n": None, "amount": Decimal("5.00"), "on": dt.date(2024, 5, 2), "flag": None, "label": "1.50"},
        {"n": 12, "amount": Decimal("3.10"), "on": None, "flag": False, "label": None},
        {"n": 3, "amount": None, "on": None, "flag": None, "label": "No"},
    ]


def test_parquet_without_rows_or_datetimes_uses_utc() -> None:
    table = read_parquet(write(ParquetWriter(), []))
    assert table.num_rows == 0
    assert table.schema.field("created_at").type == pa.timestamp("us", tz="UTC")


# --- every format ----------------------------------------------------------------------

ALL_FORMATS = sorted(FORMATS)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_progress_is_reported_with_increasing_counts(fmt: str) -> None:
    calls: list[int] = []
    write(get_writer(fmt), make_rows(23), progress_every=5, on_progress=calls.append)
    assert calls == [5, 10, 15, 20, 23]


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_progress_final_count_is_not_repeated(fmt: str) -> None:
    calls: list[int] = []
    write(get_writer(fmt), make_rows(10), progress_every=5, on_progress=calls.append)
    assert calls == [5, 10]
    empty: list[int] = []
    write(get_writer(fmt), [], on_progress=empty.append)
    assert empty == [0]


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_an_exception_from_progress_propagates(fmt: str) -> None:
    produced = 0

    def rows() -> Iterator[tuple[Any, ...]]:
        nonlocal produced
        for i in range(1_000):
            produced += 1
            yield make_row(i)

    def cancel(done: int) -> None:
        raise InterruptedError(f"cancelled at {done}")

    stream = io.BytesIO()
    with pytest.raises(InterruptedError, match="cancelled at 10"):
        get_writer(fmt).write(columns=COLUMNS, rows=rows(), stream=stream, on_progress=cancel, progress_every=10)
    assert not stream.closed
    assert produced < 1_000


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_rows_are_consumed_lazily(fmt: str) -> None:
    produced = 0

    def rows() -> Iterator[tuple[Any, ...]]:
        nonlocal produced
        for i in range(3_000):
            produced += 1
            yield make_row(i)

    def check(done: int) -> None:
        # Only Parquet reads ahead, by one batch.
        assert produced - done <= (ParquetWriter.batch_rows if fmt == "parquet" else 1)

    count = get_writer(fmt).write(
        columns=COLUMNS, rows=rows(), stream=io.BytesIO(), on_progress=check, progress_every=100
    )
    assert count == produced == 3_000


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_a_row_of_the_wrong_width_is_refused(fmt: str) -> None:
    rows = [make_row(0), make_row(1)[:-1]]
    with pytest.raises(ValueError, match="row 2 has 12 values for 13 columns"):
        get_writer(fmt).write(columns=COLUMNS, rows=iter(rows), stream=io.BytesIO())


def _blocks(rows: Sequence[Sequence[Any]], sizes: Sequence[int]) -> Iterator[list[list[Any]]]:
    """``rows`` column by column, in blocks of ``sizes`` rows (0: an empty block)."""
    at = 0
    for size in sizes:
        yield [list(column) for column in zip(*rows[at : at + size], strict=True)] or [[] for _ in COLUMNS]
        at += size


def _read(fmt: str, data: bytes) -> Any:
    if fmt == "xlsx":
        return {name: sheet_values(sheet) for name, sheet in zip(*_sheets(data), strict=True)}
    return read_parquet(data).to_pylist() if fmt == "parquet" else data


def _sheets(data: bytes) -> tuple[list[str], list[Any]]:
    workbook = read_xlsx(data)
    return workbook.sheetnames, list(workbook)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_blocks_make_the_file_their_rows_make(fmt: str) -> None:
    rows: list[tuple[Any, ...]] = make_rows(300)
    if fmt in ("csv", "jsonl"):  # any mix of values in a column (the typed formats coerce by column type)
        rows += mixed_rows(len(COLUMNS), ["a", ",", '"', "\n", "=", "é", " "])
    sizes = [7, 1, 0, 250, 42] + ([1000, 1500] if fmt in ("csv", "jsonl") else [])
    assert sum(sizes) == len(rows)
    by_rows = write(get_writer(fmt), rows, about=ABOUT)
    stream = io.BytesIO()
    count = get_writer(fmt).write_blocks(columns=COLUMNS, blocks=_blocks(rows, sizes), stream=stream, about=ABOUT)
    assert count == len(rows)
    # CSV and JSONL byte for byte; a workbook's or a Parquet file's values.
    assert _read(fmt, stream.getvalue()) == _read(fmt, by_rows)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_column_writer_reports_progress_after_each_block_and_stops_when_told(fmt: str) -> None:
    rows = make_rows(40)
    calls: list[int] = []
    get_writer(fmt).write_blocks(
        columns=COLUMNS, blocks=_blocks(rows, [10, 0, 25, 5]), stream=io.BytesIO(), on_progress=calls.append
    )
    assert calls == [10, 35, 40]  # an empty block is no progress; the last count once
    taken: list[int] = []

    def blocks() -> Iterator[list[list[Any]]]:
        for i, block in enumerate(_blocks(rows, [10] * 4)):
            taken.append(i)
            yield block

    def cancel(done: int) -> None:
        raise InterruptedError(f"cancelled at {done}")

    with pytest.raises(InterruptedError, match="cancelled at 10"):
        get_writer(fmt).write_blocks(columns=COLUMNS, blocks=blocks(), stream=io.BytesIO(), on_progress=cancel)
    assert taken == [0]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_block_of_the_wrong_width_or_of_uneven_columns_is_refused(fmt: str) -> None:
    good = next(_blocks(make_rows(3), [3]))
    for bad, message in [
        (good[:-1], "a block of rows has 12 columns for 13"),
        ([*good[:-1], good[-1][:2]], "a block's columns hold different numbers of rows \\(after row 3\\)"),
    ]:
        stream = io.BytesIO()
        with pytest.raises(ValueError, match=message):
            get_writer(fmt).write_blocks(columns=COLUMNS, blocks=iter([good, bad]), stream=stream)
        assert not stream.closed


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_memory_stays_flat_over_200000_rows(fmt: str, tmp_path: Path) -> None:
    columns = COLUMNS[:6]
    templates = [row[:6] for row in make_rows(100)]

    def rows() -> Iterator[list[Any]]:
        for i in range(200_000):
            # A new row object each time, as a database cursor gives, sharing the values.
            yield list(templates[i % 100])

    with (tmp_path / f"big.{fmt}").open("wb") as stream:
        tracemalloc.start()
        try:
            count = get_writer(fmt).write(columns=columns, rows=rows(), stream=stream)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        size = stream.tell()
    assert count == 200_000
    assert size > 50_000
    # Holding every row would take > 25 MB (200,000 lists of 6); Parquet holds one batch.
    assert peak < 8_000_000, peak


def test_xlsx_sheets_declare_their_true_dimension(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(XlsxWriter, "max_rows_per_sheet", 30)
    data = write(XlsxWriter(), make_rows(45), about=ABOUT)
    # Read-only mode sizes a sheet from its <dimension> alone (None when it is missing).
    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    sizes = {name: (workbook[name].max_row, workbook[name].max_column) for name in workbook.sheetnames}
    assert sizes == {"Data": (31, 13), "Data (2)": (16, 13), "About": (4, 2)}


@pytest.mark.slow
@needs_office
def test_xlsx_opens_in_libreoffice(tmp_path: Path) -> None:
    rows = make_rows(300)
    path = tmp_path / "export.xlsx"
    path.write_bytes(write(XlsxWriter(), rows, about=ABOUT))
    converted = list(csv.reader(io.StringIO(office_csv(path, tmp_path / "profile"), newline="")))
    assert converted[0] == header_labels()
    assert len(converted) == len(rows) + 1
    assert [line[0] for line in converted[1:]] == [row[0] for row in rows]
    assert converted[1][9] == "EMEA" and converted[3][9] == "Région Île-de-France" and converted[4][9] == "東京"
