"""Export jobs in the admin: new export form, export selected cases, progress, download, cancel."""

from __future__ import annotations

import pytest
from django.test import Client

from cases.models import Case
from exports.models import ExportJob
from exports.tests.factories import ExportJobFactory, org_with_cases
from organizations.models import Role
from organizations.tests.factories import OrganizationFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def org():
    return org_with_cases()[0]


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def new_export(org, **overrides):
    data = {
        "organization": org.pk,
        "dataset": "cases",
        "format": "csv",
        "period": "",
        "created_from": "",
        "created_to": "",
        "category_filter": "",
        "business_unit_filter": "",
        "include_investigations": "on",
        "max_investigations": 2,
        "include_tags": "on",
    }
    data.update(overrides)
    return data


def test_officer_creates_an_export_from_the_form(org, django_capture_on_commit_callbacks):
    client = logged_in(member(org, Role.OFFICER, username="olivia"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/exports/exportjob/add/", new_export(org, status_filter=["open"], severity_filter=["high"])
        )
    assert response.status_code == 302
    job = ExportJob.objects.get()
    assert job.source == "admin" and job.requested_by.username == "olivia" and job.status == "completed"
    assert job.filters["status"] == ["open"] and job.filters["severity"] == ["high"]
    assert job.columns["max_investigations"] == 2
    listing = client.get("/admin/exports/exportjob/").content.decode()
    assert "Download" in listing and 'http-equiv="refresh"' not in listing
    download = client.get(f"/admin/exports/exportjob/{job.pk}/download/")
    assert download.status_code == 200 and download["Content-Disposition"].startswith("attachment")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"format": "pdf"}, "The board_report dataset is a PDF"),
        ({"created_from": "2026-03-31", "created_to": "2026-01-01"}, "is after created_to"),
        ({"period": "previous_month", "created_from": "2026-01-01"}, "either a period or"),
        ({"max_investigations": 11}, "Ensure this value is less than or equal to 10"),
    ],
)
def test_bad_form_input_is_a_form_error_and_no_job(org, overrides, message):
    client = logged_in(member(org, Role.OFFICER))
    response = client.post("/admin/exports/exportjob/add/", new_export(org, **overrides))
    assert response.status_code == 200 and message in response.content.decode()
    assert not ExportJob.objects.exists()


def test_running_jobs_refresh_the_list_and_show_progress(org):
    client = logged_in(member(org, Role.VIEWER))
    job = ExportJobFactory(organization=org, status="processing", rows_done=50, rows_total=200)
    html = client.get("/admin/exports/exportjob/").content.decode()
    # Progress and status refresh in place from the job's JSON, not by reloading the page.
    assert f'data-progress-url="/admin/exports/exportjob/{job.pk}/progress/"' in html and "width:25%" in html
    assert "exports/progress.js" in html and 'http-equiv="refresh"' not in html
    assert client.get("/admin/exports/exportjob/add/").status_code == 403


def test_export_selected_cases_action_exports_just_those(org, django_capture_on_commit_callbacks):
    client = logged_in(member(org, Role.OFFICER))
    chosen = list(Case.objects.filter(organization=org).order_by("reference")[:2])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/cases/case/", {"action": "export_selected_cases", "_selected_action": [c.pk for c in chosen]}
        )
    assert response.status_code == 302
    job = ExportJob.objects.get()
    assert job.format == "xlsx" and job.row_count == 2
    assert sorted(job.filters["reference"]) == [c.reference for c in chosen]


def test_cancel_action_and_other_organizations_jobs_are_invisible(org):
    other = OrganizationFactory(slug="globex")
    foreign = ExportJobFactory(organization=other)
    mine = ExportJobFactory(organization=org)
    client = logged_in(member(org, Role.OFFICER))
    html = client.get("/admin/exports/exportjob/").content.decode()
    assert str(foreign.pk) not in html
    assert client.get(f"/admin/exports/exportjob/{foreign.pk}/download/").status_code == 404
    client.post("/admin/exports/exportjob/", {"action": "cancel_selected", "_selected_action": [mine.pk, foreign.pk]})
    mine.refresh_from_db()
    foreign.refresh_from_db()
    assert mine.status == "cancelled" and foreign.status == "pending"
