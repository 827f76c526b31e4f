"""The SQL pushdown (COPY) writes the same CSV bytes as the Python path, the reference."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import threading
import zipfile
from decimal import Decimal

import openpyxl
import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from django.db.models import QuerySet

from cases.models import Case, Party
from cases.tests.factories import CaseFactory, InvestigationFactory, RIUFactory
from exports import pushdown
from exports import sql as sql_module
from exports.columns_base import Column, ColumnType
from exports.filters import cases_filtered
from exports.pushdown import export_query
from exports.rows import RowPlan
from exports.services import ExportCancelled, export_job_create, export_job_run, exports_storage
from exports.tests.office import needs_office, office_csv
from exports.writers.xlsx_writer import XlsxWriter
from organizations.models import Organization
from organizations.pseudonyms import hmac_pads
from organizations.tests.factories import OrganizationFactory, UserFactory
from tagging.models import TagSlot
from tagging.tests.factories import tag_slots

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ZONE = "America/St_Johns"  # a half-hour offset with DST: -03:30 / -02:30
TEXTS = [
    "plain",
    "",
    "=1+1",
    "+cmd|' /C calc'!A0",
    "-12.5",
    "@SUM(A1)",
    "\tindented",
    "\rcarriage",
    "\nnewline first",
    'comma, "quotes" and\na line feed',
    "crlf inside\r\nthe text",
    "ünïcödé — ✓ 日本語 🙂",
    "back\\slash",
    "  spaced  ",
    'ctl \x01\x02\x1f\x7f "q" end',
    "null",
]
JSON_VALUES = [
    "EMEA",
    "",
    None,
    '=HYPERLINK("x")',
    "-7",
    " 42 ",
    "1,500",
    "1.50",
    "1e3",
    "1.5e3",
    ".5",
    "007",
    "1_000",
    "abc",
    'a\\b\n\t\x01 é 😀 \u2028 "q"',  # escaped in JSON as the writer escapes it
    "yes",
    "No",
    " TRUE ",
    "0",
    "2",
    0,
    1,
    2,
    -5,
    1500.0,
    1985.91,
    0.1,
    1e-05,
    -12.5,
    123456789012345678901234567890,
    True,
    False,
    [],
    ["urgent", "board"],
    ["a", None, "", 3, 2.5, True, "=x"],
    [None],
]
# People named in tricky ways: case and whitespace variants of one person (one pseudonym),
# Unicode lower-casing (ß, dotted İ, final sigma), a formula, blanks.
NAMES = [
    "Zoë Ångström",
    "  ZOË ÅNGSTRÖM\u00a0",
    "Straße Müller",
    "İlker Şahin",
    "ΣΟΦΊΑ ΟΔΥΣΣΕΥΣ",
    "=cmd|' /C calc'!A0",
    "",
    "   ",
    "José Núñez",
    "O'Brien, Pat; Jr",
    "日本 太郎",
    "\x1cMARY-ANN O'NEIL\x0b",  # ASCII: trimmed of ASCII whitespace, lower-cased byte by byte
    "\tmary-ann o'neil \r",
]
TAG_SPECS = [
    ("case", "custom_fields.v", ["text", "number", "boolean", "list"]),
    ("case", "custom_fields.deep.v", ["text", "number"]),
    ("case", "custom_fields.arr.0", ["text"]),  # a numeric key: only objects are walked
    ("riu", "custom_fields.v", ["text", "boolean"]),
    ("investigation", "custom_fields.v", ["text", "number"]),
    ("case", "title", ["text"]),
    ("case", "status", ["text"]),
    ("case", "closed_at", ["text"]),
    ("case", "legal_hold", ["boolean", "text"]),
    ("case", "risk_score", ["number"]),
    ("case", "financial_impact", ["number"]),
    ("riu", "reporter_relationship", ["text"]),
    ("investigation", "number", ["number"]),
]


# Tags that read a person: pseudonymised by default, like the core identity columns
# (and rendered as standard tags when identities are included).
IDENTITY_TAGS = {
    ("case", "custom_fields.v", "list"),
    ("case", "custom_fields.deep.v", "text"),
    ("riu", "custom_fields.v", "text"),
    ("case", "title", "text"),
}


def _tags(org: Organization) -> None:
    tag_slots(org, [(entity, path, t) for entity, path, types in TAG_SPECS for t in types], IDENTITY_TAGS)


def _parties(org: Organization, case, i: int) -> None:
    """A reporter on most cases (two on some: the first one recorded is shown, blank or
    not), up to three subjects and two witnesses, named from NAMES."""
    people = []
    if i % 5:
        people.append(("reporter", NAMES[i % len(NAMES)]))
    if i % 3 == 1:
        people.append(("reporter", NAMES[(i + 5) % len(NAMES)]))
    people += [("subject", NAMES[(i + k) % len(NAMES)]) for k in range(i % 4)]
    people += [("witness", NAMES[(i * 3 + k) % len(NAMES)]) for k in range(i % 3)]
    for n, (role, name) in enumerate(people):
        Party.objects.create(
            organization=org,
            case=case,
            role=role,
            full_name=name,
            email=f"{name.strip()[:3].lower()}.{n}@example.com" if name.strip() else "",
            phone=["+44 20 7946 0000", "", "=1+1", " 555-0101 "][(i + n) % 4],
            employee_id=["E10423", "e10423 ", "", "E-77"][(i + n) % 4],
        )


def _seed() -> Organization:
    org: Organization = OrganizationFactory(slug="edge", timezone=ZONE)  # type: ignore[assignment]
    _tags(org)
    assignee = UserFactory(username="d.whitfield")
    # Around the November 2026 fall-back in St. John's (05:31 UTC = 02:01 local, NDT → NST).
    edge = dt.datetime(2026, 11, 1, 4, 30, tzinfo=dt.UTC)
    for i, value in enumerate(JSON_VALUES):
        text = TEXTS[i % len(TEXTS)]
        riu = (
            None
            if i % 7 == 3
            else RIUFactory(organization=org, reporter_relationship="vendor", custom_fields={"v": value})
        )
        case = CaseFactory(
            organization=org,
            primary_riu=riu,
            title=text or "untitled",
            summary=TEXTS[(i + 3) % len(TEXTS)],
            subcategory=text,
            status=["new", "open", "in_review", "closed"][i % 4],
            outcome=["", "substantiated", "unsubstantiated"][i % 3],
            # A known channel, then values with no label (an older import): text with care.
            intake_channel=["hotline", "=legacy fax", " walk-in "][i % 3],
            assignee=assignee if i % 2 else None,
            created_at=edge + dt.timedelta(minutes=37 * i, microseconds=0 if i % 2 else 123456),
            reported_at=edge - dt.timedelta(days=i),
            closed_at=edge + dt.timedelta(days=i, hours=5) if i % 3 == 0 else None,
            due_at=edge + dt.timedelta(days=10 - i) if i % 4 else None,
            is_substantiated=[None, True, False][i % 3],
            legal_hold=bool(i % 2),
            financial_impact=[None, Decimal("-12.50"), Decimal("99999.99"), Decimal("0.00")][i % 4],
            risk_score=None if i % 5 == 0 else i,
            custom_fields={"v": value, "deep": {"v": value}, "arr": [value]} if i % 6 else {"deep": value},
        )
        for n in range(1, i % 5 + 1):
            InvestigationFactory(
                case=case,
                number=n * 2,  # numbers with gaps: "investigation 1" is the first by number
                status=["open", "closed"][n % 2],
                investigator=TEXTS[(i + n) % len(TEXTS)],
                allegation_type="=cmd" if n == 3 else "Falsified records",
                opened_at=edge + dt.timedelta(hours=n, microseconds=n * 7),
                closed_at=None if n % 2 else edge + dt.timedelta(days=n),
                finding=["", "substantiated", "unfounded"][n % 3],
                actions_taken=TEXTS[(i * n) % len(TEXTS)],
                custom_fields={"v": JSON_VALUES[(i + n) % len(JSON_VALUES)]},
            )
        _parties(org, case, i)
    return org


def _export(org: Organization, settings, pushdown: bool, columns: dict, fmt: str = "csv") -> bytes:
    settings.EXPORT_SQL_PUSHDOWN = pushdown
    cleared = UserFactory(is_superuser=True) if columns.get("identity") == "include" else None
    job = export_job_create(
        organization=org, dataset="cases", format=fmt, columns=columns, requested_by=cleared, enqueue_run=False
    )
    export_job_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert job.status == "completed", job.error
    with exports_storage().open(job.storage_key, "rb") as handle:
        return handle.read()


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet", "xlsx"])
@pytest.mark.parametrize(
    "columns",
    [
        {"max_investigations": 3, "include_overflow": True},
        {"include_investigations": False, "core": ["reference", "created_at", "investigation_count", "is_overdue"]},
        {"max_investigations": 1, "identity": "include", "identity_reason": "Board-approved investigation"},
    ],
    ids=["pseudonymised", "some-core", "identities-included"],
)
def test_copy_pushdown_writes_the_same_bytes_as_the_python_path(settings, columns, fmt):
    org = _seed()
    snapshot = [t.snapshot() for t in TagSlot.objects.filter(organization=org)]
    plan = _plan(org, snapshot, columns)
    cases = cases_filtered(organization_id=org.pk, filters={}, timezone=ZONE)
    assert export_query(plan, cases, format=fmt, now=dt.datetime.now(dt.UTC)) is not None  # all in SQL

    reference = _export(org, settings, pushdown=False, columns=columns, fmt=fmt)
    pushed = _export(org, settings, pushdown=True, columns=columns, fmt=fmt)

    if fmt == "xlsx":
        mine_book, expected_book = (openpyxl.load_workbook(io.BytesIO(data)) for data in (pushed, reference))
        assert mine_book.sheetnames == expected_book.sheetnames == ["Data", "About"]
        mine_rows = list(mine_book["Data"].iter_rows())
        expected_rows = list(expected_book["Data"].iter_rows())
        assert len(mine_rows) == len(expected_rows) == len(JSON_VALUES) + 1
        header = [cell.value for cell in expected_rows[0]]
        for r, (ours, theirs) in enumerate(zip(mine_rows, expected_rows, strict=True)):
            for c, (x, y) in enumerate(zip(ours, theirs, strict=True)):
                where = f"row {r}, column {header[c]!r}"
                assert (x.value, type(x.value)) == (y.value, type(y.value)), f"{where}: {x.value!r} != {y.value!r}"
                assert x.number_format == y.number_format, where
        about = [[c.value for c in row] for row in mine_book["About"].iter_rows()]
        expected_about = [[c.value for c in row] for row in expected_book["About"].iter_rows()]
        assert [label for label, _ in about] == [label for label, _ in expected_about]
        assert about[-1] == expected_about[-1] == ["Rows", f"{len(JSON_VALUES):,}"]
        assert mine_book["Data"].freeze_panes == "A2" and mine_book["Data"].auto_filter.ref
        # Numbers and datetime serials as written, digit for digit (openpyxl rounds a serial
        # to the microsecond when it reads it back as a datetime).
        values = [re.findall(rb"<v>([^<]*)</v>", _sheet_xml(data)) for data in (pushed, reference)]
        assert values[0] == values[1] and len(values[1]) > len(JSON_VALUES)
        return
    if fmt == "parquet":
        mine, expected = pq.read_table(io.BytesIO(pushed)), pq.read_table(io.BytesIO(reference))
        assert mine.schema.equals(expected.schema, check_metadata=True), (mine.schema, expected.schema)
        for name in expected.column_names:
            assert mine.column(name).to_pylist() == expected.column(name).to_pylist(), name
        assert mine.equals(expected, check_metadata=True)
        assert mine.num_rows == len(JSON_VALUES)
        return
    if fmt == "jsonl":
        # Lines end at line feeds only (str.splitlines would also cut at U+2028 in a value).
        ours, theirs = (data.decode().removesuffix("\n").split("\n") for data in (pushed, reference))
        assert len(ours) == len(theirs) == len(JSON_VALUES)
        for line, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            mine, expected = json.loads(a), json.loads(b)
            for key in expected:
                assert mine[key] == expected[key], f"line {line}, {key}: {mine[key]!r} != {expected[key]!r}"
            assert a == b, f"line {line}"
        assert pushed == reference
        return
    assert pushed.startswith(b"\xef\xbb\xbf")
    if pushed != reference:  # show the first differing cell, not two blobs
        ours = list(csv.reader(io.StringIO(pushed.decode("utf-8-sig"), newline="")))
        theirs = list(csv.reader(io.StringIO(reference.decode("utf-8-sig"), newline="")))
        header = theirs[0]
        assert len(ours) == len(theirs), (len(ours), len(theirs), pushed[:3000])
        for r, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            for c, (x, y) in enumerate(zip(a, b, strict=True)):
                assert x == y, f"row {r}, column {header[c]!r}: pushdown {x!r} != python {y!r}"
    assert pushed == reference
    rows = list(csv.reader(io.StringIO(reference.decode("utf-8-sig"), newline="")))
    assert len(rows) == len(JSON_VALUES) + 1


def _sheet_xml(workbook: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(workbook)) as package:
        return package.read("xl/worksheets/sheet1.xml")


def _plan(org: Organization, snapshot: list, columns: dict) -> RowPlan:
    return RowPlan(
        dataset="cases",
        options=columns,
        snapshot=snapshot,
        timezone=ZONE,
        now=dt.datetime.now(dt.UTC),
        pseudonym_key=bytes(org.pseudonym_key),
    )


def test_filters_apply_in_the_pushdown_too(settings):
    org = _seed()
    other = OrganizationFactory(slug="other", timezone=ZONE)
    CaseFactory(organization=other, title="not ours")
    filters = {"status": ["open", "closed"], "created_from": "2026-11-01", "created_to": "2026-11-01"}
    settings.EXPORT_SQL_PUSHDOWN = True
    job = export_job_create(organization=org, dataset="cases", format="csv", filters=filters, enqueue_run=False)
    export_job_run(job_id=str(job.pk))
    job.refresh_from_db()
    expected = cases_filtered(organization_id=org.pk, filters=job.filters, timezone=ZONE).count()
    assert 0 < expected < len(JSON_VALUES)
    assert job.row_count == expected
    with exports_storage().open(job.storage_key, "rb") as handle:
        rows = list(csv.reader(io.StringIO(handle.read().decode("utf-8-sig"), newline="")))
    assert len(rows) == expected + 1
    assert all(row[3] in ("Open", "Closed") for row in rows[1:])


def test_a_tag_the_sql_cannot_render_falls_back_to_the_python_path(settings):
    org = _seed()
    TagSlot.objects.filter(organization=org, slot=1).update(data_type="date")
    snapshot = [t.snapshot() for t in TagSlot.objects.filter(organization=org)]
    plan = _plan(org, snapshot, {})
    cases = cases_filtered(organization_id=org.pk, filters={}, timezone=ZONE)
    assert export_query(plan, cases, format="csv", now=dt.datetime.now(dt.UTC)) is None
    assert _export(org, settings, pushdown=True, columns={}) == _export(org, settings, pushdown=False, columns={})


@pytest.mark.slow
def test_seeded_demo_data_is_the_same_both_ways(settings):
    call_command("seed_demo", "--org", "demo", "--cases", "3000", "--no-users", "--anchor", "2026-06-30")
    org = Organization.objects.get(slug="demo")
    columns = {"max_investigations": 3, "include_overflow": True}
    mine, expected = (
        pq.read_table(io.BytesIO(_export(org, settings, pushdown=flag, columns=columns, fmt="parquet")))
        for flag in (True, False)
    )
    assert mine.equals(expected, check_metadata=True)
    books = [
        openpyxl.load_workbook(io.BytesIO(_export(org, settings, pushdown=flag, columns=columns, fmt="xlsx")))
        for flag in (True, False)
    ]
    assert [[c.value for c in row] for row in books[0]["Data"].iter_rows()] == [
        [c.value for c in row] for row in books[1]["Data"].iter_rows()
    ]
    for fmt in ("csv", "jsonl"):
        assert _export(org, settings, pushdown=True, columns=columns, fmt=fmt) == _export(
            org, settings, pushdown=False, columns=columns, fmt=fmt
        )


def test_parts_written_on_several_connections_join_in_order(settings, monkeypatch):
    org = _seed()
    monkeypatch.setattr(pushdown, "PART_ROWS", 5)
    settings.EXPORT_COPY_CONNECTIONS = 3
    columns = {"max_investigations": 2}
    cases = cases_filtered(organization_id=org.pk, filters={}, timezone=ZONE)
    # Rows 4 to 12 created at one instant (an import): they stay in one part.
    ids = list(cases.order_by("created_at", "id").values_list("id", flat=True))
    instant = cases.get(pk=ids[3]).created_at
    Case.objects.filter(pk__in=ids[3:12]).update(created_at=instant)
    bounds = pushdown.part_bounds(cases, len(JSON_VALUES))
    starts = list(cases.order_by("created_at", "id").values_list("created_at", flat=True))
    assert starts[5] == starts[10] == instant != starts[15]
    assert bounds == [None, instant, *starts[15::5], None]  # rows 1–3, 4–15, 16–20, 21…
    assert _export(org, settings, pushdown=True, columns=columns) == _export(
        org, settings, pushdown=False, columns=columns
    )


def test_json_lines_are_framed_as_the_parts_go_into_the_file_a_few_rows_at_a_time(settings, monkeypatch):
    org = _seed()
    # Parts of 5 rows, framed in blocks of ~100 bytes (a row or two each).
    monkeypatch.setattr(pushdown, "PART_ROWS", 5)
    monkeypatch.setattr(pushdown, "FRAMED_BLOCK_BYTES", 100)
    held: list[bytes] = []
    copy = pushdown._Part.copy

    def copying(part, cursor):  # type: ignore[no-untyped-def]
        copy(part, cursor)
        part.output.seek(0)
        held.append(part.output.read())

    monkeypatch.setattr(pushdown._Part, "copy", copying)
    blocks: list[int] = []
    frame = pushdown.json_lines

    def framing(data, json_frame):  # type: ignore[no-untyped-def]
        blocks.append(data.count(b"\n"))
        return frame(data, json_frame)

    monkeypatch.setattr(pushdown, "json_lines", framing)
    columns = {"max_investigations": 2}
    exported = _export(org, settings, pushdown=True, columns=columns, fmt="jsonl")
    assert exported == _export(org, settings, pushdown=False, columns=columns, fmt="jsonl")
    # A part holds the database's values, a row a line, without the keys (a third the size).
    assert len(held) > 1 and sum(part.count(b"\n") for part in held) == len(JSON_VALUES)
    assert all(b'"reference":' not in part and b"\x02" in part for part in held)
    assert sum(map(len, held)) < len(exported) / 2
    assert sum(blocks) == len(JSON_VALUES) and len(blocks) > len(held) and max(blocks) <= 2


def test_a_pushed_down_workbook_rolls_over_sheets_across_parts_as_the_python_one_does(settings, monkeypatch):
    org = _seed()
    # Parts of 5 rows read in blocks of ~100 bytes (a few rows each); sheets of 7 rows.
    monkeypatch.setattr(pushdown, "PART_ROWS", 5)
    monkeypatch.setattr(pushdown, "BLOCK_BYTES", 100)
    monkeypatch.setattr(XlsxWriter, "max_rows_per_sheet", 7)
    laid: list[int] = []
    line_blocks = pushdown.line_blocks

    def counted(file, size=None):  # type: ignore[no-untyped-def]
        for block in line_blocks(file, size):
            laid.append(block.count(b"\n"))
            yield block

    monkeypatch.setattr(pushdown, "line_blocks", counted)
    columns = {"max_investigations": 1}
    books = [
        openpyxl.load_workbook(io.BytesIO(_export(org, settings, pushdown=p, columns=columns, fmt="xlsx")))
        for p in (True, False)
    ]
    assert sum(laid) == len(JSON_VALUES) and max(laid) == 1  # a block a row: blocks cross the sheets' ends
    pages = -(-len(JSON_VALUES) // 7)
    names = ["Data", *(f"Data ({n})" for n in range(2, pages + 1)), "About"]
    assert books[0].sheetnames == books[1].sheetnames == names
    for name in names[:-1]:
        mine, expected = ([[c.value for c in row] for row in book[name].iter_rows()] for book in books)
        assert mine == expected, name
        assert books[0][name].max_row == len(mine) <= 8 and mine[0][0] == "Case reference"
    about = [[c.value for c in row] for row in books[0]["About"].iter_rows()]
    assert about[-1] == ["Rows", f"{len(JSON_VALUES):,}"]


def _parts_of_five(settings, monkeypatch) -> tuple[RowPlan, QuerySet[Case]]:
    """The seeded default export's plan and cases, cut into parts of 5 on two connections."""
    org = _seed()
    monkeypatch.setattr(pushdown, "PART_ROWS", 5)
    settings.EXPORT_COPY_CONNECTIONS = 2
    snapshot = [t.snapshot() for t in TagSlot.objects.filter(organization=org)]
    return _plan(org, snapshot, {}), cases_filtered(organization_id=org.pk, filters={}, timezone=ZONE)


def _copy_csv_of_five(plan: RowPlan, cases: QuerySet[Case], out, **extra) -> None:
    """``copy_write`` of the cases of ``_parts_of_five`` as CSV into ``out``."""
    now = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    pushdown.copy_write(plan=plan, cases=cases, format="csv", stream=out, timezone=ZONE, now=now, total=35, **extra)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet", "xlsx"])
def test_the_pseudonym_key_never_reaches_a_statement(settings, monkeypatch, tmp_path, fmt):
    """PostgreSQL logs the text of a statement that fails (a part cancelled or timed out)
    and psycopg binds a COPY's parameters into that text: the key, and the HMAC pads made
    of it, reach the database as COPY data only, and the pseudonyms are still right."""
    plan, cases = _parts_of_five(settings, monkeypatch)
    assert plan.pseudonymises and plan.pseudonym_key
    secrets = [plan.pseudonym_key.hex(), *(pad.hex() for pad in hmac_pads(plan.pseudonym_key))]
    sent: list[str] = []
    copy = pushdown._Part.copy

    def recording(part, cursor) -> None:
        sent.append(cursor.mogrify(part.sql, part.params))  # the text psycopg sends
        copy(part, cursor)

    monkeypatch.setattr(pushdown._Part, "copy", recording)
    now = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    with (tmp_path / f"out.{fmt}").open("wb") as out:
        rows = pushdown.copy_write(plan=plan, cases=cases, format=fmt, stream=out, timezone=ZONE, now=now, total=35)
    assert rows == len(JSON_VALUES) and len(sent) > 2
    assert not [secret for text in sent for secret in secrets if secret in text]
    if fmt == "csv":  # the pseudonyms the Python path makes with the key
        identity = [c.label for c in plan.columns if c.sensitivity == "identity"]
        reference = _export(Organization.objects.get(slug="edge"), settings, pushdown=False, columns={})
        mine, expected = (
            [[row[label] for label in identity] for row in csv.DictReader(io.StringIO(data.decode("utf-8-sig")))]
            for data in ((tmp_path / "out.csv").read_bytes(), reference)
        )
        assert len(identity) >= 6 and mine == expected
        assert any("PSN-" in cell for row in mine for cell in row)


def test_a_failed_part_stops_the_others_and_its_error_is_raised(settings, monkeypatch, tmp_path):
    plan, cases = _parts_of_five(settings, monkeypatch)
    pool: list[threading.Thread] = []
    first_copying = threading.Event()
    start = pushdown._Connection.start

    def started(self) -> None:
        pool.append(self)
        start(self)

    def copy(part, cursor) -> None:
        if threading.current_thread() is pool[0]:
            first_copying.set()
            part.stop.wait(timeout=10)  # the first connection sees the stop and stops,
            raise pushdown.ExportStopped  # as it does between blocks...
        first_copying.wait(timeout=10)
        raise ValueError("disk full")  # ...because the second one failed: the cause

    monkeypatch.setattr(pushdown._Connection, "start", started)
    monkeypatch.setattr(pushdown._Part, "copy", copy)
    before = threading.active_count()
    with (tmp_path / "out.csv").open("wb") as out, pytest.raises(ValueError, match="disk full"):
        _copy_csv_of_five(plan, cases, out)
    assert threading.active_count() == before


def test_a_part_written_as_its_connection_ends_is_laid_in_not_taken_for_a_lost_connection():
    class WrittenAsTheWaitGivesUp(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            if self.is_set():
                return True
            self.set()  # the connection writes the part and ends just after the wait times out
            return False

    ended = threading.Thread(target=lambda: None)
    ended.start()
    ended.join()
    ended.error = None  # type: ignore[attr-defined]
    part = pushdown._Part(("SELECT 1", {}), "csv", threading.Event())
    part.done = WrittenAsTheWaitGivesUp()

    assert list(pushdown._in_order([part], [ended], None)) == [part]  # type: ignore[list-item]
    part.output.close()


def test_a_cancel_during_copy_stops_every_part(settings, monkeypatch, tmp_path):
    plan, cases = _parts_of_five(settings, monkeypatch)
    before = threading.active_count()

    def cancelled(rows: int) -> None:
        raise ExportCancelled

    with (tmp_path / "out.csv").open("wb") as out, pytest.raises(ExportCancelled):
        _copy_csv_of_five(plan, cases, out, on_progress=cancelled)
    assert threading.active_count() == before
    assert (tmp_path / "out.csv").read_bytes().count(b"\r\n") == 1  # the header only


@pytest.mark.slow
@needs_office
def test_a_pushed_down_workbook_opens_in_libreoffice_as_the_python_one_does(settings, tmp_path):
    org = _seed()
    columns = {"max_investigations": 2}
    converted = []
    for flag in (True, False):
        path = tmp_path / f"{flag}" / "export.xlsx"
        path.parent.mkdir()
        path.write_bytes(_export(org, settings, pushdown=flag, columns=columns, fmt="xlsx"))
        converted.append(office_csv(path, tmp_path / "profile"))
    assert converted[0] == converted[1]
    assert len(list(csv.reader(io.StringIO(converted[0], newline="")))) == len(JSON_VALUES) + 1


def test_json_values_from_copy_are_framed_as_the_jsonl_writer_writes_its_lines():
    columns = [
        Column("a", "A", ColumnType.TEXT),
        Column('b"x', "B", ColumnType.INTEGER),
        Column("c", "C", ColumnType.TEXT),
    ]
    rows = [{"a": "x\u0002y\n", 'b"x': 1, "c": None}, {"a": "", 'b"x': -2, "c": "ünï"}]
    copied = b"".join(
        b"\x02".join(json.dumps(v, ensure_ascii=False).encode() for v in row.values()) + b"\n" for row in rows
    )
    expected = b"".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for row in rows)
    assert pushdown.json_lines(copied, pushdown.json_frame(columns)) == expected
    assert pushdown.json_lines(b'"x"\n"y"\n', pushdown.json_frame(columns[:1])) == b'{"a":"x"}\n{"a":"y"}\n'
    assert pushdown.json_lines(b"", pushdown.json_frame(columns)) == b""
    # A row with a value too many or too few is never written shifted under other keys.
    with pytest.raises(RuntimeError, match="one value per column"):
        pushdown.json_lines(copied.replace(b"\x021\x02", b"\x02"), pushdown.json_frame(columns))


@pytest.mark.parametrize("rows_a_block", [1, 7, 100])
def test_strings_copy_quotes_are_the_jsonl_writers_strings(rows_a_block):
    """Raw text quoted and escaped by COPY (``json_copy``), mended where COPY cannot make
    it JSON (``json_rows``): each value as the JSONL writer writes it."""
    from django.db import connection

    texts = [*TEXTS, None, '"quoted" first', 'two "" quotes', "\\", '\\"', "a\u2028b"]
    # A number tag's values: numbers, or (data that did not fit) to_json's strings.
    mixed: list[object] = [12, "abc", -1.5, '"q"', None, "a\nb\x02", "null", 0, '\\"x', "x\x1c"]
    mixed = (mixed * 3)[: len(texts)]
    kinds = ["s" if isinstance(v, str) else "n" for v in mixed]
    sql = (
        "SELECT t AS c1, CASE WHEN k = 's' THEN to_json(v)::text ELSE v END AS c2, n::text AS c3, t AS c4 "
        "FROM unnest(%(t)s::text[], %(k)s::text[], %(v)s::text[]) WITH ORDINALITY AS r(t, k, v, n) ORDER BY n"
    )
    params = {"t": texts, "k": kinds, "v": [v if isinstance(v, str) or v is None else str(v) for v in mixed]}
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(pushdown.json_copy(sql, [True, False, False, True]), params) as copy,
    ):
        copied = [bytes(row) for row in copy]
    mended = b"".join(
        pushdown.json_rows(copied[i : i + rows_a_block], [True, False, False, True])
        for i in range(0, len(copied), rows_a_block)
    )
    expected = b"".join(
        b"\x02".join(json.dumps(v, ensure_ascii=False).encode() for v in (t, m, n, t)) + b"\n"
        for n, (t, m) in enumerate(zip(texts, mixed, strict=True), 1)
    )
    assert mended == expected
    assert len(copied) == len(texts)  # a row a message, whatever its values hold


def test_the_whitespace_list_is_what_python_calls_whitespace():
    assert [c for c in range(0x110000) if chr(c).isspace()] == sql_module.WHITESPACE


def test_people_are_normalised_in_sql_as_in_python_on_both_roads():
    """ASCII text takes the byte-by-byte road, any other ICU's: each gives
    ``pseudonym_normalise``'s text, every ASCII character around letters included."""
    from django.db import connection

    from organizations.pseudonyms import pseudonym_normalise

    ascii_texts = [f"{chr(c)}Ab{chr(c)}Z {chr(c)}" for c in range(1, 0x80)] + ["".join(map(chr, range(1, 0x80)))]
    unicode_texts = [*NAMES, "\u00a0ÉCOLE Ω\u2003", "İSTANBUL\x1c", "ǅUNGLA ǈ", "ΣΑΣ\u3000", "a\u0085"]
    builder = sql_module.SqlBuilder("csv")
    texts = builder.param(ascii_texts + unicode_texts)
    query = f"SELECT {builder.normalised('u.t')} FROM unnest({texts}::text[]) WITH ORDINALITY AS u(t, o) ORDER BY u.o"
    with connection.cursor() as cursor:
        cursor.execute(query, builder.params)
        found = [row[0] for row in cursor.fetchall()]
    assert found == [pseudonym_normalise(text) for text in ascii_texts + unicode_texts]
    assert any(text != text.lower() for text in ascii_texts)  # letters to lower-case on the ASCII road


def test_an_export_inside_a_transaction_plans_as_the_part_connections_and_restores_the_settings(
    settings, monkeypatch, tmp_path
):
    """Inside a caller's transaction the file is one part on the caller's connection: the
    same bytes, planned with the part connections' settings, which are put back after."""
    from django.db import connection, transaction

    plan, cases = _parts_of_five(settings, monkeypatch)
    names = ("TimeZone", "jit", "enable_memoize", "max_parallel_workers_per_gather")

    def current() -> tuple:
        with connection.cursor() as cursor:
            cursor.execute("SELECT " + ", ".join(f"current_setting('{name}')" for name in names))
            return cursor.fetchone()

    seen: list[tuple] = []
    copy = pushdown._Part.copy

    def copying(part, cursor) -> None:
        cursor.execute("SELECT " + ", ".join(f"current_setting('{name}')" for name in names))
        seen.append(cursor.fetchone())
        copy(part, cursor)

    def written(path) -> bytes:
        with path.open("wb") as out:
            _copy_csv_of_five(plan, cases, out)
        return path.read_bytes()

    in_parts = written(tmp_path / "parts.csv")
    monkeypatch.setattr(pushdown._Part, "copy", copying)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL max_parallel_workers_per_gather = 3")
        before = current()
        in_one = written(tmp_path / "one.csv")
        assert current() == before
    assert seen == [(ZONE, "off", "off", "0")]
    assert in_one == in_parts and in_one.count(b"\r\n") > 30
    with connection.cursor() as cursor:  # the pads it loaded are not left in the session
        cursor.execute("SELECT to_regclass(%s)", [pushdown.PADS_TABLE])
        assert cursor.fetchone() == (None,)
