"""End to end with a real qcluster: a schedule due in the next minute runs once, emails once."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone

from exports.tests.factories import org_with_cases
from organizations.models import Role
from organizations.tests.factories import member
from scheduling.models import ScheduleRun
from scheduling.tests.factories import make_schedule
from tests.cluster import qcluster
from tests.smtp import ScriptedHandler, smtp_server


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_schedule_due_next_minute_runs_once_and_emails_once():
    org, _ = org_with_cases(timezone="Asia/Kolkata")  # a +05:30 zone: wall-clock maths is exercised
    owner = member(org, Role.OFFICER, username="owner")
    local = (timezone.now() + dt.timedelta(minutes=1)).astimezone(org.tzinfo)
    schedule = make_schedule(
        org,
        owner,
        schedule={"kind": "daily", "time": local.strftime("%H:%M")},
        timezone="Asia/Kolkata",
        recipients=["audit@example.com"],
        format="csv",
        filters={},
    )
    assert schedule.next_run_at == local.replace(second=0, microsecond=0)
    handler = ScriptedHandler()
    with smtp_server(handler) as port, qcluster(EMAIL_URL=f"smtp://127.0.0.1:{port}"):
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not handler.messages:
            time.sleep(1)
        assert handler.messages, "no email within 240 s"
        time.sleep(40)  # at least one more dispatcher tick: nothing more may be sent
    assert [e.rcpt_tos for e in handler.messages] == [["audit@example.com"]]
    run = ScheduleRun.objects.get(schedule=schedule)
    assert run.status == "success" and run.trigger == "schedule" and run.row_count == 5
    assert run.scheduled_for == schedule.next_run_at
    schedule.refresh_from_db()
    assert schedule.next_run_at == run.scheduled_for + dt.timedelta(days=1)
