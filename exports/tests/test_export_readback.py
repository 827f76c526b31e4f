"""Each format read back by its real reader equals the database under the same filters."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from decimal import Decimal

import openpyxl
import pyarrow.parquet as pq
import pytest
from rest_framework.test import APIClient

from cases.models import Case
from exports.models import ExportJob
from exports.tests.factories import org_with_cases
from organizations.models import Role
from organizations.tests.factories import member

pytestmark = pytest.mark.django_db

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")


def neutralised(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def expected(org, filters_status=None):
    """Per case, in file order, the values a user should see, computed from the ORM."""
    cases = Case.objects.filter(organization=org).order_by("created_at", "id")
    if filters_status:
        cases = cases.filter(status__in=filters_status)
    rows = []
    for case in cases.select_related("primary_riu"):
        invs = list(case.investigations.order_by("number"))
        cf = case.custom_fields
        amount = (cf.get("financial") or {}).get("amount")
        tags = cf.get("tags")
        rows.append(
            {
                "reference": case.reference,
                "title": case.title,
                "status": case.get_status_display(),
                "severity": case.get_severity_display(),
                "created_at": case.created_at.astimezone(org.tzinfo),
                "financial_impact": case.financial_impact,
                "is_substantiated": case.is_substantiated,
                "days_to_close": (case.closed_at - case.created_at).days if case.closed_at else None,
                "investigation_count": len(invs),
                "investigation_1_status": invs[0].get_status_display() if invs else None,
                "investigation_2_investigator": invs[1].investigator if len(invs) > 1 else None,
                "investigations_overflow": max(0, len(invs) - 2),
                "tag_1": (cf.get("hr") or {}).get("region"),
                "tag_2": amount,
                "tag_3": invs[-1].custom_fields.get("legal_hold") if invs else None,
                "tag_4": case.primary_riu.reporter_relationship,
                "tag_5": "; ".join(tags) if tags else None,
            }
        )
    return rows


def run_export(client, fmt, django_capture_on_commit_callbacks, **body):
    payload = {
        "dataset": "cases",
        "format": fmt,
        "columns": {"max_investigations": 2, "include_overflow": True},
        **body,
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/v1/orgs/acme/exports/", payload, format="json")
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    detail = client.get(f"/api/v1/orgs/acme/exports/{job_id}/").json()
    assert detail["status"] == "completed", detail
    download = client.get(f"/api/v1/orgs/acme/exports/{job_id}/download/")
    assert download.status_code == 200
    content = b"".join(download.streaming_content)
    assert download["Content-Disposition"].startswith("attachment;")
    assert detail["file_name"] in download["Content-Disposition"]
    assert detail["sha256"] == hashlib.sha256(content).hexdigest()
    assert detail["file_size_bytes"] == len(content)
    return detail, content


@pytest.fixture
def client():
    org, _ = org_with_cases()
    api = APIClient()
    api.force_authenticate(member(org, Role.OFFICER, username="olivia"))
    return api


def test_csv_reads_back_equal_to_the_database(client, django_capture_on_commit_callbacks):
    detail, content = run_export(client, "csv", django_capture_on_commit_callbacks)
    assert content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"), newline="")))
    want = expected(ExportJob.objects.get(pk=detail["id"]).organization)
    assert detail["row_count"] == len(rows) == len(want) == 5
    for got, exp in zip(rows, want, strict=True):
        assert got["Case reference"] == exp["reference"]
        assert got["Title"] == neutralised(exp["title"])
        assert got["Status"] == exp["status"] and got["Severity"] == exp["severity"]
        assert got["Created at"] == exp["created_at"].isoformat()
        assert got["Financial impact"] == (
            format(exp["financial_impact"], "f") if exp["financial_impact"] is not None else ""
        )
        assert got["Substantiated"] == {True: "Yes", False: "No", None: ""}[exp["is_substantiated"]]
        assert got["Days to close"] == ("" if exp["days_to_close"] is None else str(exp["days_to_close"]))
        assert got["Investigations"] == str(exp["investigation_count"])
        assert got["Investigation 1 — Status"] == (exp["investigation_1_status"] or "")
        assert got["Investigation 2 — Investigator"] == (exp["investigation_2_investigator"] or "")
        assert got["Investigations beyond 2"] == str(exp["investigations_overflow"])
        assert got["HR region"] == (exp["tag_1"] or "")
        assert got["Loss amount"] == ("" if exp["tag_2"] is None else str(exp["tag_2"]))
        assert got["Hold"] == {True: "Yes", False: "No", None: ""}[exp["tag_3"]]
        assert got["Reporter"] == exp["tag_4"]
        assert got["Flags"] == (exp["tag_5"] or "")


def test_xlsx_reads_back_typed_and_neutralised(client, django_capture_on_commit_callbacks):
    detail, content = run_export(client, "xlsx", django_capture_on_commit_callbacks)
    book = openpyxl.load_workbook(io.BytesIO(content))
    assert book.sheetnames[-1] == "About"
    sheet = book[book.sheetnames[0]]
    header = [c.value for c in sheet[1]]
    want = expected(ExportJob.objects.get(pk=detail["id"]).organization)
    data = list(sheet.iter_rows(min_row=2))
    assert len(data) == len(want)
    for cells, exp in zip(data, want, strict=True):
        got = {h: c for h, c in zip(header, cells, strict=True)}
        assert all(c.data_type != "f" for c in cells)
        assert got["Title"].value == neutralised(exp["title"]) and got["Title"].data_type == "s"
        assert got["Created at"].value == exp["created_at"].replace(tzinfo=None)
        if exp["financial_impact"] is not None:
            assert got["Financial impact"].data_type == "n"  # -12.50 stays a number
            assert Decimal(str(got["Financial impact"].value)) == exp["financial_impact"]
        assert got["Investigations"].value == exp["investigation_count"]
        assert got["HR region"].value == exp["tag_1"]
        assert got["Loss amount"].value == exp["tag_2"]
        assert got["Hold"].value == {True: "Yes", False: "No", None: None}[exp["tag_3"]]
    about = {row[0].value: row[1].value for row in book["About"].iter_rows() if row[0].value}
    assert about["Rows"] == "5" and "Acme" in about["Organization"] and about["Requested by"] == "olivia"
    assert "HR region" in about["Tag columns"]


def test_jsonl_reads_back_with_native_types(client, django_capture_on_commit_callbacks):
    detail, content = run_export(client, "jsonl", django_capture_on_commit_callbacks)
    rows = [json.loads(line) for line in content.decode().splitlines()]
    want = expected(ExportJob.objects.get(pk=detail["id"]).organization)
    assert len(rows) == len(want)
    for got, exp in zip(rows, want, strict=True):
        assert got["reference"] == exp["reference"] and got["title"] == exp["title"]
        assert got["created_at"] == exp["created_at"].isoformat()
        assert (Decimal(str(got["financial_impact"])) if got["financial_impact"] is not None else None) == exp[
            "financial_impact"
        ]
        assert got["is_substantiated"] == exp["is_substantiated"]
        assert got["investigation_1_status"] == exp["investigation_1_status"]
        assert got["investigations_overflow"] == exp["investigations_overflow"]
        assert [got[f"tag_{i}"] for i in range(1, 6)] == [exp[f"tag_{i}"] for i in range(1, 6)]


def test_parquet_reads_back_with_typed_schema(client, django_capture_on_commit_callbacks):
    detail, content = run_export(client, "parquet", django_capture_on_commit_callbacks)
    table = pq.read_table(io.BytesIO(content))
    rows = table.to_pylist()
    want = expected(ExportJob.objects.get(pk=detail["id"]).organization)
    assert str(table.schema.field("investigation_count").type) == "int64"
    assert str(table.schema.field("is_substantiated").type) == "bool"
    assert str(table.schema.field("created_at").type).startswith("timestamp")
    for got, exp in zip(rows, want, strict=True):
        assert got["reference"] == exp["reference"]
        assert got["created_at"] == exp["created_at"]
        assert got["financial_impact"] == exp["financial_impact"]
        assert got["days_to_close"] == exp["days_to_close"]
        assert got["tag_1"] == exp["tag_1"]


def test_filters_select_the_same_cases_as_the_orm(client, django_capture_on_commit_callbacks):
    detail, content = run_export(
        client,
        "jsonl",
        django_capture_on_commit_callbacks,
        filters={"status": ["open", "closed"], "created_from": "2026-03-10", "created_to": "2026-03-14"},
    )
    rows = [json.loads(line) for line in content.decode().splitlines()]
    org = ExportJob.objects.get(pk=detail["id"]).organization
    assert [r["reference"] for r in rows] == [e["reference"] for e in expected(org, ["open", "closed"])]
    assert detail["filters"]["status"] == ["open", "closed"]


def test_investigations_dataset_has_one_row_per_investigation(client, django_capture_on_commit_callbacks):
    detail, content = run_export(
        client, "jsonl", django_capture_on_commit_callbacks, dataset="investigations", columns={}
    )
    rows = [json.loads(line) for line in content.decode().splitlines()]
    from cases.models import Investigation

    invs = Investigation.objects.order_by("case__created_at", "case_id", "number")
    assert [(r["case_reference"], r["investigation_number"]) for r in rows] == [
        (i.case.reference, i.number) for i in invs
    ]
    assert [r["tag_3"] for r in rows] == [i.custom_fields.get("legal_hold") for i in invs]


def test_investigation_count_is_counted_without_the_investigation_groups(client, django_capture_on_commit_callbacks):
    columns = {"include_investigations": False, "include_tags": False, "core": ["reference", "investigation_count"]}
    detail, content = run_export(client, "csv", django_capture_on_commit_callbacks, columns=columns)
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))
    assert rows[0] == ["Case reference", "Investigations"]
    counts = {case.reference: str(case.investigations.count()) for case in Case.objects.all()}
    assert dict(rows[1:]) == counts and sorted(set(counts.values())) == ["0", "1", "2", "4"]
