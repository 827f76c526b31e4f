"""SQLite: a large CSV or JSONL export written by forked processes, a part each, is the
file one process writes, byte for byte; a part's failure or a stopped export leaves no
process behind."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
import signal
import zipfile
from pathlib import Path

import openpyxl
import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from django.db import connection

from cases.models import Investigation
from cases.tests.factories import CaseFactory
from config.worker import worker_stop_clear, worker_stop_request
from exports import forked
from exports.models import ExportJob
from exports.services import ExportCancelled, export_job_create, export_job_run, export_write, exports_storage
from exports.tests.factories import org_with_cases
from exports.writers.parquet_writer import ParquetWriter
from exports.writers.xlsx_writer import XlsxWriter
from organizations.models import Organization
from organizations.tests.factories import OrganizationFactory

pytestmark = pytest.mark.skipif(connection.vendor != "sqlite", reason="the Python path's processes are SQLite's")


def no_child_left() -> bool:
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


@pytest.fixture
def parts(monkeypatch):
    """Every export forks, and the parts each process wrote are recorded."""
    monkeypatch.setattr(forked, "MIN_ROWS", 1)
    forks: list[int] = []
    fork = forked._Child.fork.__func__

    def recorded(cls, *args, **kwargs):
        child = fork(cls, *args, **kwargs)
        forks.append(child.index)
        return child

    monkeypatch.setattr(forked._Child, "fork", classmethod(recorded))
    return forks


def stored(job: ExportJob) -> bytes:
    assert job is not None and job.status == "completed", job and job.error
    content = Path(exports_storage().path(job.storage_key)).read_bytes()
    assert hashlib.sha256(content).hexdigest() == job.sha256
    return content


def workbook(content: bytes) -> dict[str, list[tuple]]:
    """Every sheet's values (the About sheet's row count, not its time of writing)."""
    book = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
    sheets = {name: list(book[name].iter_rows(values_only=True)) for name in book.sheetnames}
    sheets["About"] = [row for row in sheets["About"] if row[0] == "Rows"]
    return sheets


def one_and_three_processes(settings, parts, org, dataset: str, format: str, rows: int) -> dict[int, bytes]:
    """The stored file of the same export written by one process and by three (the worker
    writing part 1, forked processes parts 2 and 3), each with every row done."""
    files = {}
    for processes in (1, 3):
        settings.EXPORT_PROCESSES = processes
        parts.clear()
        job = export_job_create(organization=org, dataset=dataset, format=format, enqueue_run=False)
        done = export_job_run(job_id=str(job.pk))
        assert done is not None
        files[processes] = stored(done)
        assert parts == ([] if processes == 1 else [1, 2]), parts  # the worker wrote part 1 itself
        assert done.rows_done == done.row_count == rows
    return files


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("format", ["csv", "jsonl", "xlsx", "parquet"])
@pytest.mark.parametrize("data", ["edge values", "seeded"])
def test_parts_written_by_forked_processes_make_the_file_one_process_writes(settings, parts, monkeypatch, format, data):
    if data == "seeded":  # people (pseudonymised), many investigations, cases in every month
        call_command("seed_demo", "--org", "acme", "--cases", "240", "--no-users", "--anchor", "2026-06-30")
        org = Organization.objects.get(slug="acme")
        monkeypatch.setattr(XlsxWriter, "max_rows_per_sheet", 100)  # sheets of 100, 100, 40; parts of 80
    else:  # formula-looking text, a line feed, unicode, empty strings, DST-edge datetimes, numbers in text tags
        org, _ = org_with_cases()
        monkeypatch.setattr(XlsxWriter, "max_rows_per_sheet", 3)  # sheets of 3 and 2; parts of 2, 2 and 1
    files = one_and_three_processes(settings, parts, org, "cases", format, org.cases.count())
    if format == "parquet":
        one, three = (pq.read_table(io.BytesIO(files[n])) for n in (1, 3))
        assert three.schema == one.schema  # the zone of the datetimes included
        assert three.to_pylist() == one.to_pylist()
        about = [json.loads(pq.read_metadata(io.BytesIO(files[n])).metadata[b"dossier.about"]) for n in (1, 3)]
        assert about[1]["Rows"] == about[0]["Rows"] == f"{org.cases.count():,}"
    elif format == "xlsx":
        one, three = workbook(files[1]), workbook(files[3])
        assert three == one
        assert list(one) == ["Data", "Data (2)", *(["Data (3)"] if data == "seeded" else []), "About"]
        assert sum(len(rows) - 1 for name, rows in one.items() if name != "About") == org.cases.count()
    else:
        assert files[3] == files[1]
    assert no_child_left()


@pytest.mark.django_db(transaction=True)
def test_a_parquet_part_whose_datetimes_name_another_zone_is_cast_to_the_files_schema(settings, parts, monkeypatch):
    """The file's schema names the zone of the first datetime among its first rows; where
    those hold none (cases still open) it is UTC, while a later part that holds closed cases
    names the organization's zone: its batches are cast to the file's schema."""
    monkeypatch.setattr(ParquetWriter, "batch_rows", 2)
    org = OrganizationFactory(slug="acme", timezone="America/St_Johns")
    start = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    for i in range(6):
        closed = start + dt.timedelta(days=30 + i, microseconds=i) if i >= 4 else None
        CaseFactory(organization=org, created_at=start + dt.timedelta(days=i), closed_at=closed)
    columns = {"core": ["reference", "closed_at"], "include_investigations": False}
    tables = []
    for processes in (1, 3):
        settings.EXPORT_PROCESSES = processes
        job = export_job_create(organization=org, dataset="cases", format="parquet", columns=columns, enqueue_run=False)
        tables.append(pq.read_table(io.BytesIO(stored(export_job_run(job_id=str(job.pk))))))
    one, three = tables
    assert parts == [1, 2]
    assert three.schema == one.schema and one.schema.field("closed_at").type.tz == "UTC"
    assert three.to_pylist() == one.to_pylist()
    assert [row["closed_at"] for row in one.to_pylist()][4:] == [
        start + dt.timedelta(days=34, microseconds=4),
        start + dt.timedelta(days=35, microseconds=5),
    ]
    assert no_child_left()


@pytest.mark.django_db(transaction=True)
def test_a_part_that_fails_fails_the_export_with_its_error(settings, parts):
    settings.EXPORT_PROCESSES = 2
    org, _ = org_with_cases()
    parent = os.getpid()
    plan_blocks = forked.RowPlan.blocks  # rows() reads them too

    def failing_in_the_part(self, cases):
        if os.getpid() != parent:
            raise ValueError("the part's disk is full")
        return plan_blocks(self, cases)

    forked.RowPlan.blocks = failing_in_the_part
    try:
        job = export_job_create(organization=org, dataset="cases", format="csv", enqueue_run=False)
        export_job_run(job_id=str(job.pk))
    finally:
        forked.RowPlan.blocks = plan_blocks
    job.refresh_from_db()
    assert parts == [1]
    assert job.status == "failed"
    assert job.error == "RuntimeError: export part 2: ValueError: the part's disk is full"
    assert no_child_left()
    assert list(Path(exports_storage().location).rglob("*.csv")) == []


@pytest.mark.django_db(transaction=True)
def test_a_stopped_export_kills_its_part_processes(settings, parts, tmp_path):
    settings.EXPORT_PROCESSES = 3
    org, _ = org_with_cases()
    job = export_job_create(organization=org, dataset="cases", format="jsonl", enqueue_run=False)
    job = ExportJob.objects.select_related("organization").get(pk=job.pk)

    def cancelled(rows):  # the first progress report: the parent's part is written
        raise ExportCancelled

    with (tmp_path / "out.jsonl").open("wb") as out, pytest.raises(ExportCancelled):
        export_write(job, out, on_progress=cancelled)
    assert parts == [1, 2]
    assert no_child_left()


@pytest.mark.django_db
def test_inside_a_transaction_one_process_writes(settings, parts):
    settings.EXPORT_PROCESSES = 3
    org, _ = org_with_cases()
    job = export_job_create(organization=org, dataset="cases", format="csv", enqueue_run=False)
    done = export_job_run(job_id=str(job.pk))
    assert stored(done).count(b"\r\n") == 6  # the header and five cases
    assert parts == []  # other connections would not see this transaction's cases


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("format", ["csv", "xlsx"])
def test_a_stopping_worker_hands_the_job_back_and_its_parts_stop(settings, parts, monkeypatch, format):
    settings.EXPORT_PROCESSES = 3
    settings.TASKS_SYNC = False  # the job queued again waits in the broker for another worker
    org, _ = org_with_cases()
    job = export_job_create(organization=org, dataset="cases", format=format, enqueue_run=False)
    fork = forked._Child.fork

    def sigterm_once_forked(produce, counters, index):
        child = fork(produce, counters, index)
        os.kill(child.pid, signal.SIGSTOP)  # still writing when the worker is asked to stop
        if index == 2:
            worker_stop_request()  # what the worker's SIGTERM handler does
        return child

    monkeypatch.setattr(forked._Child, "fork", sigterm_once_forked)
    try:
        assert export_job_run(job_id=str(job.pk)) is None
    finally:
        worker_stop_clear()
    job.refresh_from_db()
    assert (job.status, job.attempts, job.error) == ("pending", 0, "")  # handed back, not failed
    assert no_child_left()
    assert list(Path(exports_storage().location).rglob(f"*.{format}")) == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("format", ["csv", "xlsx"])
def test_an_investigations_export_is_cut_by_its_cases_and_keeps_its_rows(settings, parts, format):
    org, _ = org_with_cases()  # 5 cases with 0 to 4 investigations each
    investigations = Investigation.objects.filter(case__organization=org).count()
    assert investigations > 5
    files = one_and_three_processes(settings, parts, org, "investigations", format, investigations)
    if format == "xlsx":
        assert workbook(files[3]) == workbook(files[1])
    else:
        assert files[3] == files[1]


def sheet_rows(content: bytes) -> list[tuple[str, list[bytes]]]:
    """Each data sheet's dimension and the opening tags of its rows."""
    sheets = []
    with zipfile.ZipFile(io.BytesIO(content)) as package:
        for name in sorted(n for n in package.namelist() if n.startswith("xl/worksheets/sheet")):
            xml = package.read(name)
            dimension = re.search(rb'<dimension ref="([A-Z0-9:]+)"/>', xml)
            assert dimension is not None
            sheets.append((dimension.group(1).decode(), re.findall(rb"<row[^>]*>", xml)))
    return sheets[:-1]  # the About sheet last


@pytest.mark.django_db(transaction=True)
def test_forked_sheet_rows_carry_no_numbers_so_parts_never_collide(settings, parts, monkeypatch):
    """A part's rows follow the rows before them whatever those held by the time they were
    read (cases back-dated into an earlier part, or deleted, while the export ran): no row
    is numbered, in any part, so two can never share a number."""
    settings.EXPORT_PROCESSES = 3
    org, _ = org_with_cases()
    monkeypatch.setattr(XlsxWriter, "max_rows_per_sheet", 3)  # a sheet rolls over inside a part
    job = export_job_create(organization=org, dataset="cases", format="xlsx", enqueue_run=False)
    content = stored(export_job_run(job_id=str(job.pk)))
    assert parts == [1, 2]  # parts of 2, 2 and 1 cases
    width = len(workbook(content)["Data"][0])
    column = openpyxl.utils.get_column_letter(width)
    assert sheet_rows(content) == [
        (f"A1:{column}4", [b'<row r="1">', b"<row>", b"<row>", b"<row>"]),
        (f"A1:{column}3", [b'<row r="1">', b"<row>", b"<row>"]),
    ]  # the header numbered, then data rows that are not
    settings.EXPORT_PROCESSES = 1
    one = export_job_run(
        job_id=str(export_job_create(organization=org, dataset="cases", format="xlsx", enqueue_run=False).pk)
    )
    assert one is not None and workbook(content) == workbook(stored(one))
    assert no_child_left()


@pytest.mark.django_db(transaction=True)
def test_cases_created_while_a_workbook_is_written_are_in_its_last_part(settings, parts, monkeypatch):
    settings.EXPORT_PROCESSES = 2
    settings.TASKS_SYNC = False
    org, _ = org_with_cases()
    job = export_job_create(organization=org, dataset="cases", format="xlsx", enqueue_run=False)
    fork = forked._Child.fork.__func__

    def a_case_arrives_once_the_parts_are_cut(cls, *args, **kwargs):
        CaseFactory(organization=org)  # after the file's count and the parts' bounds
        return fork(cls, *args, **kwargs)

    monkeypatch.setattr(forked._Child, "fork", classmethod(a_case_arrives_once_the_parts_are_cut))
    done = export_job_run(job_id=str(job.pk))
    assert done is not None and done.status == "completed", job.error
    assert parts == [1]
    sheets = workbook(stored(done))
    assert len(sheets["Data"]) - 1 == done.row_count == 6  # the header; five cases and the new one
    assert [row[0] for row in sheets["Data"][1:]] == list(
        org.cases.order_by("created_at", "id").values_list("reference", flat=True)
    )
    assert sheets["About"] == [("Rows", "6")]
