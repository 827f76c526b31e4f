"""Identity-safe exports through the API: pseudonyms by default, revealed only with
identity access and a reason (audited, stated in the file), or left out. Runs on the
embedded SQLite default (Python rows) and on PostgreSQL (the SQL pushdown)."""

from __future__ import annotations

import csv
import io
import json
import re

import openpyxl
import pyarrow.parquet as pq
import pytest
from rest_framework.test import APIClient

from audit.models import AuditEvent
from cases.models import Case, Party
from cases.tests.factories import CaseFactory
from exports.models import ExportJob
from exports.services import exports_storage
from organizations.models import Membership, Organization, Role
from organizations.pseudonyms import PATTERN
from organizations.tests.factories import OrganizationFactory, member

pytestmark = pytest.mark.django_db

IDENTITY_KEYS = [
    "reporter_name",
    "reporter_email",
    "reporter_phone",
    "subject_names",
    "subject_employee_ids",
    "witness_names",
]


def _case(org: Organization, reference: str, *, reporter: str | None, subjects: list[str], witnesses=()) -> None:
    case: Case = CaseFactory(organization=org, reference=reference)  # type: ignore[assignment]
    people = [("reporter", reporter)] if reporter is not None else []
    people += [("subject", name) for name in subjects] + [("witness", name) for name in witnesses]
    for role, name in people:
        Party.objects.create(
            organization=org,
            case=case,
            role=role,
            full_name=name,
            email=f"{name.strip().split()[0].lower()}@example.com",
            phone="+44 20 7946 0958" if role == "reporter" else "",
            employee_id=f"E{1000 + len(name)}" if role == "subject" else "",
        )


@pytest.fixture
def org() -> Organization:
    org: Organization = OrganizationFactory(slug="acme", name="Acme")  # type: ignore[assignment]
    # The same subject spelt twice (case and spaces): one person, one pseudonym.
    _case(org, "CASE-1", reporter="Zoë Ångström", subjects=["Daniel Whitfield", "Mara Ilić"], witnesses=["Ann Lee"])
    _case(org, "CASE-2", reporter=None, subjects=["  DANIEL WHITFIELD "])
    return org


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _officer(org: Organization, *, identity_access: bool = False, username: str = "olivia") -> APIClient:
    user = member(org, Role.OFFICER, username=username)
    Membership.objects.filter(user=user, organization=org).update(identity_access=identity_access)
    return _client(user)


def _export(client: APIClient, capture, org: Organization, columns: dict, fmt: str = "csv"):
    with capture(execute=True):
        response = client.post(f"/api/v1/orgs/{org.slug}/exports/", {"format": fmt, "columns": columns}, format="json")
    assert response.status_code == 202, response.json()
    job = ExportJob.objects.get(pk=response.json()["id"])
    assert job.status == "completed", job.error
    with exports_storage().open(job.storage_key, "rb") as handle:
        return job, handle.read()


LABELS = {
    "reference": "Case reference",
    "reporter_name": "Reporter name",
    "reporter_email": "Reporter email",
    "reporter_phone": "Reporter phone",
    "subject_names": "Subjects",
    "subject_employee_ids": "Subject employee ids",
    "witness_names": "Witnesses",
}


def _rows(data: bytes) -> dict[str, dict[str, str]]:
    """CSV rows by case reference, cells by column key (the header holds labels)."""
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    by_key = [{key: row[label] for key, label in LABELS.items()} for row in rows]
    return {row["reference"]: row for row in by_key}


def test_identity_cells_are_pseudonyms_by_default(org, django_capture_on_commit_callbacks):
    _, data = _export(_officer(org), django_capture_on_commit_callbacks, org, {"max_investigations": 0})
    rows = _rows(data)
    one, two = rows["CASE-1"], rows["CASE-2"]
    for key in IDENTITY_KEYS:
        for value in filter(None, one[key].split("; ")):
            assert re.match(PATTERN, value), (key, value)
    assert "Zoë" not in data.decode("utf-8-sig") and "Whitfield" not in data.decode("utf-8-sig")
    assert one["reporter_phone"].startswith("PSN-")
    # Each person on their own; the same person (whatever the spelling) the same pseudonym.
    subjects = one["subject_names"].split("; ")
    assert len(subjects) == 2 and subjects[0] != subjects[1]
    assert two["subject_names"] == subjects[0]
    assert two["reporter_name"] == ""  # anonymous: empty stays empty
    assert one["witness_names"].startswith("PSN-") and ";" not in one["witness_names"]


def test_another_organization_gets_other_pseudonyms(org, django_capture_on_commit_callbacks):
    other = OrganizationFactory(slug="globex", name="Globex")
    _case(other, "CASE-9", reporter="Zoë Ångström", subjects=["Daniel Whitfield"])
    _, ours = _export(_officer(org), django_capture_on_commit_callbacks, org, {})
    _, theirs = _export(_officer(other, username="gary"), django_capture_on_commit_callbacks, other, {})
    assert _rows(ours)["CASE-1"]["reporter_name"].startswith("PSN-")
    assert _rows(theirs)["CASE-9"]["reporter_name"].startswith("PSN-")
    assert _rows(ours)["CASE-1"]["reporter_name"] != _rows(theirs)["CASE-9"]["reporter_name"]
    assert _rows(ours)["CASE-2"]["subject_names"] != _rows(theirs)["CASE-9"]["subject_names"]


def test_pseudonyms_are_stable_until_the_key_is_rotated(org, django_capture_on_commit_callbacks):
    officer = _officer(org)
    _, first = _export(officer, django_capture_on_commit_callbacks, org, {})
    _, again = _export(officer, django_capture_on_commit_callbacks, org, {}, fmt="jsonl")
    again_rows = {json.loads(line)["reference"]: json.loads(line) for line in again.decode().splitlines()}
    assert again_rows["CASE-1"]["reporter_name"] == _rows(first)["CASE-1"]["reporter_name"]

    admin = _client(member(org, Role.ADMIN, username="ada"))
    rotated = admin.post(f"/api/v1/orgs/{org.slug}/pseudonym-key/rotate/")
    assert rotated.status_code == 204
    assert AuditEvent.objects.filter(action="organization.pseudonym_key_rotated").count() == 1
    _, after = _export(officer, django_capture_on_commit_callbacks, org, {})
    before_row, after_row = _rows(first)["CASE-1"], _rows(after)["CASE-1"]
    assert re.match(PATTERN, after_row["reporter_name"])
    assert after_row["reporter_name"] != before_row["reporter_name"]
    assert after_row["subject_names"] != before_row["subject_names"]


def test_revealing_needs_identity_access(org, django_capture_on_commit_callbacks):
    officer = _officer(org)
    for columns in ({"identity": "include", "identity_reason": "Audit committee request"}, {"identity": "include"}):
        response = officer.post("/api/v1/orgs/acme/exports/", {"format": "csv", "columns": columns}, format="json")
        assert response.status_code == 403, response.json()
        assert "identity access" in response.json()["detail"]
    assert not ExportJob.objects.exists()
    assert not AuditEvent.objects.filter(action="export.identity_included").exists()


@pytest.mark.parametrize("reason", [None, "", "   ", "x" * 501, 42])
def test_revealing_needs_a_reason(org, reason):
    cleared = _officer(org, identity_access=True)
    columns = {"identity": "include"} | ({} if reason is None else {"identity_reason": reason})
    response = cleared.post("/api/v1/orgs/acme/exports/", {"format": "csv", "columns": columns}, format="json")
    assert response.status_code == 400
    assert "identity_reason" in response.json()["columns"]
    assert not ExportJob.objects.exists()


def test_an_unknown_identity_mode_is_a_400(org):
    response = _officer(org).post(
        "/api/v1/orgs/acme/exports/", {"format": "csv", "columns": {"identity": "mask"}}, format="json"
    )
    assert response.status_code == 400
    assert "identity" in response.json()["columns"]


def test_a_cleared_member_reveals_identities_with_a_reason(org, django_capture_on_commit_callbacks):
    cleared = _officer(org, identity_access=True)
    columns = {"identity": "include", "identity_reason": "  Audit committee request AC-2026-11  "}
    job, data = _export(cleared, django_capture_on_commit_callbacks, org, columns)
    rows = _rows(data)
    assert rows["CASE-1"]["reporter_name"] == "Zoë Ångström"
    assert rows["CASE-1"]["reporter_email"] == "zoë@example.com"
    assert rows["CASE-1"]["subject_names"] == "Daniel Whitfield; Mara Ilić"
    assert rows["CASE-2"]["subject_names"] == "  DANIEL WHITFIELD "
    assert rows["CASE-1"]["witness_names"] == "Ann Lee"
    event = AuditEvent.objects.get(action="export.identity_included")
    assert event.details["reason"] == "Audit committee request AC-2026-11"
    assert event.target_id == str(job.pk) and event.actor_label == "olivia"
    assert job.columns["identity_reason"] == "Audit committee request AC-2026-11"

    job, book = _export(cleared, django_capture_on_commit_callbacks, org, columns, fmt="xlsx")
    about = dict(openpyxl.load_workbook(io.BytesIO(book))["About"].iter_rows(values_only=True))
    assert about["Identities"] == "Revealed by olivia. Reason: Audit committee request AC-2026-11"
    job, parquet = _export(cleared, django_capture_on_commit_callbacks, org, columns, fmt="parquet")
    table = pq.read_table(io.BytesIO(parquet))
    meta = json.loads(pq.read_metadata(io.BytesIO(parquet)).metadata[b"dossier.about"])
    assert meta["Identities"].startswith("Revealed by olivia")
    assert sorted(table.column("reporter_name").to_pylist(), key=str) == [None, "Zoë Ångström"]


def test_omit_leaves_identity_columns_out(org, django_capture_on_commit_callbacks):
    _, data = _export(_officer(org), django_capture_on_commit_callbacks, org, {"identity": "omit"})
    header = next(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert "Case reference" in header
    assert not {LABELS[key] for key in IDENTITY_KEYS} & set(header)
    _, book = _export(_officer(org, username="otto"), django_capture_on_commit_callbacks, org, {}, fmt="xlsx")
    workbook = openpyxl.load_workbook(io.BytesIO(book))
    header = [c.value for c in next(workbook["Data"].iter_rows())]
    assert "Reporter name" in header
    assert dict(workbook["About"].iter_rows(values_only=True))["Identities"].startswith("Pseudonymised")


def test_a_schedule_reveals_identities_only_for_a_cleared_owner_over_protected_delivery(org):
    cleared = _client(member(org, Role.ADMIN, username="ada"))
    body = {
        "name": "Monthly people list",
        "export": {
            "dataset": "cases",
            "format": "csv",
            "columns": {"identity": "include", "identity_reason": "Board pack"},
        },
        "schedule": {"kind": "daily", "time": "08:00"},
        "timezone": "Europe/London",
        "delivery": {"method": "email", "recipients": ["audit@example.com"], "protection": "link_only"},
    }
    refused = cleared.post("/api/v1/orgs/acme/schedules/", body, format="json")
    assert refused.status_code == 400 and "identity access" in json.dumps(refused.json())
    Membership.objects.filter(organization=org, user__username="ada").update(identity_access=True)
    body["delivery"]["protection"] = "none"
    refused = cleared.post("/api/v1/orgs/acme/schedules/", body, format="json")
    assert refused.status_code == 400 and "protected" in json.dumps(refused.json())
    body["delivery"]["protection"] = "link_only"
    created = cleared.post("/api/v1/orgs/acme/schedules/", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["export"]["columns"]["identity"] == "include"


def test_the_board_report_names_nobody(org, django_capture_on_commit_callbacks):
    from pypdf import PdfReader

    cleared = _officer(org, identity_access=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = cleared.post(
            "/api/v1/orgs/acme/exports/", {"dataset": "board_report", "format": "pdf"}, format="json"
        )
    job = ExportJob.objects.get(pk=response.json()["id"])
    assert job.status == "completed", job.error
    with exports_storage().open(job.storage_key, "rb") as handle:
        text = " ".join(page.extract_text() for page in PdfReader(handle).pages)
    assert "CASE-1" in text or job.row_count == 2  # the report is about these cases
    for name in ("Zoë", "Ångström", "Whitfield", "Ilić", "Ann Lee", "example.com"):
        assert name not in text


def test_every_stored_pseudonym_column_is_an_identity_column_of_the_catalog():
    from cases.models import PARTY_PSEUDONYM_COLUMNS
    from exports.columns import CORE_COLUMNS
    from exports.columns_base import Sensitivity

    identity = {c.column.key for c in CORE_COLUMNS if c.column.sensitivity == Sensitivity.IDENTITY}
    mapped = [column for by_role in PARTY_PSEUDONYM_COLUMNS.values() for column in by_role.values()]
    assert sorted(mapped) == sorted(identity)  # one each way: none missing, none twice
