"""The board report as an on-demand export, from the CLI, and as a scheduled attachment."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core import mail
from django.core.management import call_command
from pypdf import PdfReader
from rest_framework.test import APIClient

from exports.tests.factories import org_with_cases
from organizations.models import Role
from organizations.tests.factories import member
from scheduling.dispatch import schedules_dispatch
from scheduling.models import ReportSchedule, ScheduleRun
from scheduling.tests.factories import make_schedule

pytestmark = pytest.mark.django_db


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def test_board_report_export_over_the_api(django_capture_on_commit_callbacks):
    org, cases = org_with_cases()
    client = APIClient()
    client.force_authenticate(member(org, Role.OFFICER))
    with django_capture_on_commit_callbacks(execute=True):
        body = client.post(
            "/api/v1/orgs/acme/exports/",
            {
                "dataset": "board_report",
                "format": "pdf",
                "filters": {"created_from": "2026-03-01", "created_to": "2026-03-31"},
            },
            format="json",
        ).json()
    job = client.get(f"/api/v1/orgs/acme/exports/{body['id']}/").json()
    assert job["status"] == "completed", job
    response = client.get(f"/api/v1/orgs/acme/exports/{body['id']}/download/")
    content = b"".join(response.streaming_content)
    assert content.startswith(b"%PDF") and response["Content-Type"] == "application/pdf"
    text = pdf_text(content)
    assert org.name in text and "1 March 2026" in text
    assert job["row_count"] == len(cases) == 5


def test_board_report_from_the_cli(tmp_path):
    org, _ = org_with_cases()
    out = io.StringIO()
    call_command(
        "export",
        "--org",
        org.slug,
        "--dataset",
        "board_report",
        "--format",
        "pdf",
        "--output",
        f"{tmp_path}/",
        stdout=out,
    )
    path = out.getvalue().splitlines()[0]
    assert path.endswith(".pdf") and org.name in pdf_text(open(path, "rb").read())  # noqa: SIM115


def test_scheduled_board_report_is_attached(django_capture_on_commit_callbacks):
    org, _ = org_with_cases()
    owner = member(org, Role.OFFICER)
    schedule = make_schedule(org, owner, dataset="board_report", format="pdf", recipients=["board@example.com"])
    slot = dt.datetime(2026, 4, 1, 7, tzinfo=dt.UTC)
    ReportSchedule.objects.filter(pk=schedule.pk).update(next_run_at=slot)
    with django_capture_on_commit_callbacks(execute=True):
        schedules_dispatch(now=slot)
    assert ScheduleRun.objects.get().status == "success"
    (message,) = mail.outbox
    name, content, mime = message.attachments[0]
    assert name.endswith(".pdf") and mime == "application/pdf"
    assert "March 2026" in pdf_text(content)
