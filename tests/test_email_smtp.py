"""Report emails against a real SMTP server on loopback: sent / sent after retry / failed."""

from __future__ import annotations

import datetime as dt
import email
import io

import openpyxl
import pytest
from rest_framework.test import APIClient

from exports.tests.factories import org_with_cases
from organizations.models import Role
from organizations.tests.factories import member
from scheduling.dispatch import schedules_dispatch
from scheduling.models import ReportSchedule, ScheduleRun
from scheduling.runner import deliveries_send
from scheduling.tests.factories import make_schedule
from tests.smtp import ScriptedHandler, smtp_server

pytestmark = pytest.mark.django_db


def test_one_bounce_and_one_transient_failure_make_a_partial_run(settings, django_capture_on_commit_callbacks):
    org, _ = org_with_cases()
    owner = member(org, Role.OFFICER, username="owner")
    owner.email = "owner@example.com"
    owner.save()
    handler = ScriptedHandler(
        script={
            "flaky@example.com": ["451 4.3.0 Mailbox busy, try again later"],
            "bounce@example.com": ["550 5.1.1 No such user here"],
        }
    )
    with smtp_server(handler) as port:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", port, False
        schedule = make_schedule(org, owner, recipients=["ok@example.com", "flaky@example.com", "bounce@example.com"])
        slot = dt.datetime(2026, 4, 1, 7, tzinfo=dt.UTC)
        ReportSchedule.objects.filter(pk=schedule.pk).update(next_run_at=slot)
        with django_capture_on_commit_callbacks(execute=True):
            schedules_dispatch(now=slot)
        run = ScheduleRun.objects.get()
        first = {d.recipient: (d.status, d.attempts) for d in run.deliveries.all()}
        assert first == {
            "ok@example.com": ("sent", 1),
            "flaky@example.com": ("pending", 1),
            "bounce@example.com": ("failed", 1),
        }
        assert run.status == "running"
        flaky = run.deliveries.get(recipient="flaky@example.com")
        assert "451" in flaky.last_error and flaky.next_attempt_at > dt.datetime.now(dt.UTC)
        assert deliveries_send(now=flaky.next_attempt_at - dt.timedelta(seconds=1)) == 0  # not due yet
        assert deliveries_send(now=flaky.next_attempt_at + dt.timedelta(seconds=1)) == 1
        assert deliveries_send(now=flaky.next_attempt_at + dt.timedelta(hours=1)) == 0  # nothing sent twice

    run.refresh_from_db()
    final = {d.recipient: (d.status, d.attempts) for d in run.deliveries.all()}
    assert final == {
        "ok@example.com": ("sent", 1),
        "flaky@example.com": ("sent", 2),
        "bounce@example.com": ("failed", 1),
    }
    assert run.status == "partial" and "bounce@example.com: SMTP 550" in run.error
    reports = [e for e in handler.messages if e.rcpt_tos != ["owner@example.com"]]
    notices = [e for e in handler.messages if e.rcpt_tos == ["owner@example.com"]]
    assert sorted(e.rcpt_tos[0] for e in reports) == ["flaky@example.com", "ok@example.com"]  # one each
    assert len(notices) == 1 and b"partial" in notices[0].content
    for envelope in reports:
        parsed = email.message_from_bytes(envelope.content)
        assert parsed["To"] == envelope.rcpt_tos[0]
        parts = [p for p in parsed.walk() if p.get_filename()]
        (attachment,) = parts
        data = attachment.get_payload(decode=True)
        book = openpyxl.load_workbook(io.BytesIO(data))
        assert book[book.sheetnames[0]].max_row == 6
        text = next(p for p in parsed.walk() if p.get_content_type() == "text/plain").get_payload(decode=True)
        link = next(line for line in text.decode().splitlines() if "/d/" in line).strip()
        downloaded = APIClient().get(link.removeprefix("http://127.0.0.1:8000"))
        assert b"".join(downloaded.streaming_content) == data
