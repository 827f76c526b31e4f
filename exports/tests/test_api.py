"""Export API: bad input, roles, tenancy, cancel, downloads, signed links, expiry."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import signing
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from exports.downloads import download_token
from exports.models import ExportJob
from exports.services import export_job_run, exports_expire, exports_storage
from exports.tests.factories import ExportJobFactory, org_with_cases
from organizations.models import Role
from organizations.tests.factories import OrganizationFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def org():
    return org_with_cases()[0]


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def officer(org):
    return api(member(org, Role.OFFICER, username="olivia"))


def completed_job(org, django_capture_on_commit_callbacks, client, fmt="csv"):
    with django_capture_on_commit_callbacks(execute=True):
        body = client.post("/api/v1/orgs/acme/exports/", {"format": fmt}, format="json").json()
    return ExportJob.objects.get(pk=body["id"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"format": "docx"}, "format"),
        ({"format": "csv", "dataset": "people"}, "dataset"),
        ({"format": "pdf", "dataset": "cases"}, "format"),
        ({"format": "csv", "dataset": "board_report"}, "format"),
        ({}, "format"),
        ({"format": "csv", "filters": {"colour": ["red"]}}, "filters"),
        ({"format": "csv", "filters": {"period": "last_fortnight"}}, "filters"),
        ({"format": "csv", "filters": {"created_from": "2026-03-31", "created_to": "2026-01-01"}}, "filters"),
        ({"format": "csv", "filters": {"created_from": "31/01/2026"}}, "filters"),
        ({"format": "csv", "filters": {"created_to": "2026-02-30"}}, "filters"),
        ({"format": "csv", "filters": {"period": "previous_month", "created_from": "2026-01-01"}}, "filters"),
        ({"format": "csv", "filters": {"status": ["pending"]}}, "filters"),
        ({"format": "csv", "filters": "all"}, "filters"),
        ({"format": "csv", "columns": {"max_investigations": 11}}, "columns"),
        ({"format": "csv", "columns": {"max_investigations": -1}}, "columns"),
        ({"format": "csv", "columns": {"core": ["reference", "shoe_size"]}}, "columns"),
        ({"format": "csv", "columns": {"core": []}}, "columns"),
        ({"format": "csv", "columns": {"width": 3}}, "columns"),
    ],
)
def test_bad_input_is_400_and_creates_no_job(officer, body, field):
    response = officer.post("/api/v1/orgs/acme/exports/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert not ExportJob.objects.exists()
    assert not AuditEvent.objects.filter(action="export.created").exists()


def test_period_is_resolved_in_the_organizations_timezone(org, officer, django_capture_on_commit_callbacks):
    org.timezone = "Pacific/Auckland"
    org.save()
    response = officer.post(
        "/api/v1/orgs/acme/exports/", {"format": "csv", "filters": {"period": "previous_month"}}, format="json"
    )
    assert response.status_code == 202
    local_today = timezone.now().astimezone(org.tzinfo).date()
    last = local_today.replace(day=1) - dt.timedelta(days=1)
    assert response.json()["filters"]["created_from"] == last.replace(day=1).isoformat()
    assert response.json()["filters"]["created_to"] == last.isoformat()
    assert response.json()["status"] == "pending" and response.json()["progress"]["percent"] == 0


def test_viewer_cannot_create_but_can_read_and_download(org, officer, django_capture_on_commit_callbacks):
    viewer = api(member(org, Role.VIEWER))
    assert viewer.post("/api/v1/orgs/acme/exports/", {"format": "csv"}, format="json").status_code == 403
    job = completed_job(org, django_capture_on_commit_callbacks, officer)
    assert viewer.get("/api/v1/orgs/acme/exports/").json()["count"] == 1
    assert viewer.get(f"/api/v1/orgs/acme/exports/{job.pk}/download/").status_code == 200
    assert viewer.post(f"/api/v1/orgs/acme/exports/{job.pk}/cancel/").status_code == 403


def test_another_organization_gets_404_on_every_path(org, officer, django_capture_on_commit_callbacks):
    job = completed_job(org, django_capture_on_commit_callbacks, officer)
    other = OrganizationFactory(slug="globex")
    outsider = api(member(other, Role.ADMIN))
    for method, path in [
        ("get", ""),
        ("post", ""),
        ("get", f"{job.pk}/"),
        ("post", f"{job.pk}/cancel/"),
        ("get", f"{job.pk}/download/"),
    ]:
        assert getattr(outsider, method)(f"/api/v1/orgs/acme/exports/{path}").status_code == 404
    # and through the organization they do belong to, the job does not exist
    for path in [f"{job.pk}/", f"{job.pk}/download/"]:
        assert outsider.get(f"/api/v1/orgs/globex/exports/{path}").status_code == 404
    assert outsider.get("/api/v1/orgs/acme/columns/").status_code == 404


def test_download_not_ready_is_409_and_cancel_then_409(org, officer):
    job = ExportJobFactory(organization=org)
    assert officer.get(f"/api/v1/orgs/acme/exports/{job.pk}/download/").status_code == 409
    cancelled = officer.post(f"/api/v1/orgs/acme/exports/{job.pk}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert officer.post(f"/api/v1/orgs/acme/exports/{job.pk}/cancel/").status_code == 409
    assert export_job_run(job_id=str(job.pk)) is None  # a late delivery does nothing
    assert officer.get("/api/v1/orgs/acme/exports/?status=cancelled").json()["count"] == 1
    assert officer.get("/api/v1/orgs/acme/exports/?status=bogus").status_code == 400


def test_cancel_mid_export_leaves_cancelled_and_no_file(org, tmp_path):
    job = ExportJobFactory(organization=org, format="xlsx")

    def cancel_while_writing(rows_done: int) -> None:
        ExportJob.objects.filter(pk=job.pk).update(status="cancelled")

    assert export_job_run(job_id=str(job.pk), on_progress=cancel_while_writing) is None
    job.refresh_from_db()
    assert job.status == "cancelled" and not job.storage_key
    storage_root = tmp_path / "media" / "exports"
    assert not storage_root.exists() or not any(p.is_file() for p in storage_root.rglob("*"))


def test_second_delivery_of_the_same_task_produces_no_second_file(org, tmp_path):
    job = ExportJobFactory(organization=org)
    first = export_job_run(job_id=str(job.pk))
    second = export_job_run(job_id=str(job.pk))
    assert first is not None and first.status == "completed" and second is None
    files = [p for p in (tmp_path / "media" / "exports").rglob("*") if p.is_file()]
    assert len(files) == 1
    assert AuditEvent.objects.filter(action="export.completed").count() == 1


def test_expired_export_is_410_and_its_file_deleted(org, officer, django_capture_on_commit_callbacks):
    job = completed_job(org, django_capture_on_commit_callbacks, officer)
    assert exports_storage().exists(job.storage_key)
    ExportJob.objects.filter(pk=job.pk).update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    assert officer.get(f"/api/v1/orgs/acme/exports/{job.pk}/download/").status_code == 410
    with django_capture_on_commit_callbacks(execute=True):
        assert exports_expire() == 1
    job.refresh_from_db()
    assert job.status == "expired" and not exports_storage().exists(job.storage_key)
    assert officer.get(f"/api/v1/orgs/acme/exports/{job.pk}/download/").status_code == 410
    assert AuditEvent.objects.filter(action="export.expired").count() == 1


def test_signed_link_downloads_same_bytes_and_rejects_tampering(
    org, officer, django_capture_on_commit_callbacks, monkeypatch
):
    job = completed_job(org, django_capture_on_commit_callbacks, officer)
    token = download_token(job)
    anonymous = APIClient()
    response = anonymous.get(f"/d/{token}/")
    assert response.status_code == 200
    direct = officer.get(f"/api/v1/orgs/acme/exports/{job.pk}/download/")
    assert b"".join(response.streaming_content) == b"".join(direct.streaming_content)
    assert anonymous.get(f"/d/{token[:-2]}xx/").status_code == 404
    forged = signing.TimestampSigner(salt="something-else").sign_object({"job": str(job.pk), "org": org.pk})
    assert anonymous.get(f"/d/{forged}/").status_code == 404
    wrong_org = signing.TimestampSigner(salt="dossier.exports.download-link").sign_object(
        {"job": str(job.pk), "org": org.pk + 1}
    )
    assert anonymous.get(f"/d/{wrong_org}/").status_code == 404
    later = dt.datetime.now().timestamp() + 8 * 86400
    monkeypatch.setattr("django.core.signing.time.time", lambda: later)
    assert anonymous.get(f"/d/{token}/").status_code == 410
    downloads = AuditEvent.objects.filter(action="export.downloaded")
    assert {e.details["via"] for e in downloads} == {"link", "api"}


def test_columns_catalog_lists_core_investigation_and_tag_columns(officer):
    columns = officer.get("/api/v1/orgs/acme/columns/?dataset=cases&max_investigations=1").json()
    groups = {c["group"] for c in columns}
    assert groups == {"core", "investigation", "tag"}
    core = [c for c in columns if c["group"] == "core"]
    assert len(core) >= 40 and core[0] == {
        "key": "reference",
        "label": "Case reference",
        "type": "text",
        "group": "core",
        "sensitivity": "standard",
    }
    identity = {c["key"] for c in columns if c["sensitivity"] == "identity"}
    assert {
        "reporter_name",
        "reporter_email",
        "reporter_phone",
        "subject_names",
        "subject_employee_ids",
        "witness_names",
    } <= identity
    assert not any(c["group"] == "investigation" for c in columns if c["sensitivity"] == "identity")
    assert [c["label"] for c in columns if c["group"] == "tag"] == [
        "HR region",
        "Loss amount",
        "Hold",
        "Reporter",
        "Flags",
    ]
    assert "investigation_1_status" in {c["key"] for c in columns}
    assert "investigation_2_status" not in {c["key"] for c in columns}
    assert officer.get("/api/v1/orgs/acme/columns/?max_investigations=12").status_code == 400


def test_core_column_selection_keeps_requested_order(officer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        body = officer.post(
            "/api/v1/orgs/acme/exports/",
            {
                "format": "csv",
                "columns": {"core": ["severity", "reference"], "include_investigations": False, "include_tags": False},
            },
            format="json",
        ).json()
    content = b"".join(officer.get(f"/api/v1/orgs/acme/exports/{body['id']}/download/").streaming_content)
    assert content.decode("utf-8-sig").splitlines()[0] == "Severity,Case reference"
