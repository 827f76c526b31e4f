"""Dispatching and running schedules: once per slot, the right period, each recipient once."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
import pytest
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from exports.tests.factories import org_with_cases
from organizations.models import Membership, Role
from organizations.tests.factories import member
from scheduling import runner
from scheduling.dispatch import schedules_dispatch
from scheduling.models import ReportSchedule, ScheduleRun
from scheduling.runner import schedule_run_execute
from scheduling.tests.factories import make_schedule
from tests.locks import LockHolder, wait_briefly_for_locks

pytestmark = pytest.mark.django_db


@pytest.fixture
def org():
    return org_with_cases()[0]  # 5 cases created 10–14 March 2026


@pytest.fixture
def owner(org):
    user = member(org, Role.OFFICER, username="owner")
    user.email = "owner@example.com"
    user.save()
    return user


def due(schedule: ReportSchedule, when: dt.datetime) -> None:
    ReportSchedule.objects.filter(pk=schedule.pk).update(next_run_at=when)


def test_run_on_1_april_reports_march_in_the_schedules_timezone(org, owner, django_capture_on_commit_callbacks):
    schedule = make_schedule(org, owner)  # monthly, day 1, 08:00 Europe/London, previous_month
    slot = dt.datetime(2026, 4, 1, 7, 0, tzinfo=dt.UTC)  # 08:00 BST
    due(schedule, slot)
    with django_capture_on_commit_callbacks(execute=True):
        assert schedules_dispatch(now=slot + dt.timedelta(seconds=20)) == {"dispatched": 1, "errors": 0}
    run = ScheduleRun.objects.get()
    assert run.scheduled_for == slot and run.status == "success" and run.missed_slots == 0
    assert run.export_job.filters["created_from"] == "2026-03-01"
    assert run.export_job.filters["created_to"] == "2026-03-31"
    assert run.export_job.source == "schedule" and run.row_count == 5
    # one message per recipient, nobody sees the others
    assert sorted(m.to[0] for m in mail.outbox) == ["audit@example.com", "board@example.com"]
    assert all(len(m.to) == 1 and not m.cc and not m.bcc for m in mail.outbox)
    message = mail.outbox[0]
    assert "2026-03-01 to 2026-03-31" in message.subject and "Rows: 5" in message.body
    name, content, mime = message.attachments[0]
    assert name == run.export_job.file_name and mime.endswith("spreadsheetml.sheet")
    book = openpyxl.load_workbook(io.BytesIO(content))
    assert book[book.sheetnames[0]].max_row == 6  # header + 5 cases
    link = next(line for line in message.body.splitlines() if "/d/" in line).strip()
    assert link.startswith("http://127.0.0.1:8000/d/")
    downloaded = APIClient().get(link.removeprefix("http://127.0.0.1:8000"))
    assert b"".join(downloaded.streaming_content) == content
    html = message.alternatives[0][0]
    assert "Download the report" in html and link in html
    schedule.refresh_from_db()
    assert schedule.last_run_status == "success" and schedule.next_run_at == dt.datetime(2026, 5, 1, 7, tzinfo=dt.UTC)


def test_second_dispatcher_and_duplicate_task_send_nothing_twice(org, owner, django_capture_on_commit_callbacks):
    schedule = make_schedule(org, owner)
    slot = dt.datetime(2026, 4, 1, 7, 0, tzinfo=dt.UTC)
    due(schedule, slot)
    with django_capture_on_commit_callbacks(execute=True):
        schedules_dispatch(now=slot)
        due(schedule, slot)  # as if a second dispatcher read the schedule before the first moved it
        assert schedules_dispatch(now=slot)["dispatched"] == 0
    run = ScheduleRun.objects.get()
    assert schedule_run_execute(run_id=str(run.pk)) is None  # the task delivered again
    assert len(mail.outbox) == 2
    assert run.deliveries.count() == 2


def test_missed_slots_are_coalesced_into_one_run(org, owner, django_capture_on_commit_callbacks):
    schedule = make_schedule(
        org,
        owner,
        schedule={"kind": "daily", "time": "09:00"},
        timezone="UTC",
        delivery_method="storage",
        recipients=[],
        storage_path="reports/daily",
    )
    due(schedule, dt.datetime(2026, 4, 1, 9, tzinfo=dt.UTC))
    now = dt.datetime(2026, 4, 4, 12, tzinfo=dt.UTC)  # down since before 1 April 09:00
    with django_capture_on_commit_callbacks(execute=True):
        schedules_dispatch(now=now)
    run = ScheduleRun.objects.get()
    assert run.scheduled_for == dt.datetime(2026, 4, 4, 9, tzinfo=dt.UTC) and run.missed_slots == 3
    schedule.refresh_from_db()
    assert schedule.next_run_at == dt.datetime(2026, 4, 5, 9, tzinfo=dt.UTC)


def test_one_broken_schedule_does_not_stop_the_others(org, owner, django_capture_on_commit_callbacks):
    good = make_schedule(org, owner, name="Good")
    broken = make_schedule(org, owner, name="Broken")
    ReportSchedule.objects.filter(pk=broken.pk).update(schedule={"kind": "cron", "cron": "0 0 31 2 *"})
    slot = dt.datetime(2026, 4, 1, 7, tzinfo=dt.UTC)
    ReportSchedule.objects.update(next_run_at=slot)
    with django_capture_on_commit_callbacks(execute=True):
        counts = schedules_dispatch(now=slot)
    assert counts == {"dispatched": 1, "errors": 1}
    assert list(ScheduleRun.objects.values_list("schedule__name", flat=True)) == ["Good"]
    assert good.runs.get().status == "success"


def test_skip_if_empty_sends_nothing(org, owner, django_capture_on_commit_callbacks):
    schedule = make_schedule(org, owner, skip_if_empty=True)
    slot = dt.datetime(2026, 6, 1, 7, tzinfo=dt.UTC)  # previous month = May: no cases
    due(schedule, slot)
    with django_capture_on_commit_callbacks(execute=True):
        schedules_dispatch(now=slot)
    run = ScheduleRun.objects.get()
    assert run.status == "skipped" and run.row_count == 0 and not run.deliveries.exists()
    assert mail.outbox == []


def test_oversized_file_is_sent_as_link_only_with_the_reason(org, owner, settings, django_capture_on_commit_callbacks):
    settings.EMAIL_MAX_ATTACHMENT_MB = 0.001
    schedule = make_schedule(org, owner, recipients=["audit@example.com"])
    slot = dt.datetime(2026, 4, 1, 7, tzinfo=dt.UTC)
    due(schedule, slot)
    with django_capture_on_commit_callbacks(execute=True):
        schedules_dispatch(now=slot)
    (message,) = mail.outbox
    assert message.attachments == []
    assert "over the 0.001 MB attachment limit, so it is not attached: use the download link" in message.body
    assert ScheduleRun.objects.get().deliveries.get().attached is False


def test_storage_delivery_writes_a_dated_file(org, owner, tmp_path, django_capture_on_commit_callbacks):
    schedule = make_schedule(
        org,
        owner,
        delivery_method="email_and_storage",
        recipients=["audit@example.com"],
        storage_path="reports/board",
        format="csv",
    )
    slot = dt.datetime(2026, 4, 1, 7, tzinfo=dt.UTC)
    due(schedule, slot)
    with django_capture_on_commit_callbacks(execute=True):
        schedules_dispatch(now=slot)
    run = ScheduleRun.objects.get()
    stored = run.deliveries.get(kind="storage")
    assert stored.status == "sent"
    path = tmp_path / "media" / "exports" / stored.message_id
    assert path.parent == tmp_path / "media" / "exports" / "reports" / "board"
    assert path.name.startswith("acme-monthly-board-pack-2026-04-01_0800-") and path.suffix == ".csv"
    assert path.read_bytes().startswith(b"\xef\xbb\xbfCase reference")
    assert run.status == "success"


def test_owner_losing_membership_pauses_the_schedule_and_says_why(org, owner, django_capture_on_commit_callbacks):
    schedule = make_schedule(org, owner)
    Membership.objects.filter(user=owner).delete()
    slot = dt.datetime(2026, 4, 1, 7, tzinfo=dt.UTC)
    due(schedule, slot)
    with django_capture_on_commit_callbacks(execute=True):
        schedules_dispatch(now=slot)
    schedule.refresh_from_db()
    assert schedule.is_active is False and "no longer has officer access" in schedule.paused_reason
    assert ScheduleRun.objects.get().status == "failed" and mail.outbox == []


def test_three_failed_runs_in_a_row_pause_and_tell_the_owner(
    org, owner, django_capture_on_commit_callbacks, monkeypatch
):
    schedule = make_schedule(org, owner, recipients=["audit@example.com"])
    from exports import services

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(services, "export_write", broken)
    for month in (4, 5, 6):
        slot = dt.datetime(2026, month, 1, 7, tzinfo=dt.UTC)
        due(schedule, slot)
        with django_capture_on_commit_callbacks(execute=True):
            schedules_dispatch(now=slot)
    schedule.refresh_from_db()
    assert [r.status for r in schedule.runs.order_by("scheduled_for")] == ["failed", "failed", "failed"]
    assert schedule.is_active is False and "3 failed runs" in schedule.paused_reason
    to_owner = [m for m in mail.outbox if m.to == ["owner@example.com"]]
    assert len(to_owner) == 4  # one notice per failed run, one for the pause
    assert "disk full" in to_owner[0].body


def test_send_a_test_to_me_reaches_only_the_requester(org, owner, django_capture_on_commit_callbacks):
    from scheduling.services import schedule_run_now

    schedule = make_schedule(org, owner)
    with django_capture_on_commit_callbacks(execute=True):
        run = schedule_run_now(schedule=schedule, actor=owner, to_me=True)
    run.refresh_from_db()
    assert [m.to for m in mail.outbox] == [["owner@example.com"]]
    assert mail.outbox[0].subject.startswith("[Test] ")
    assert run.trigger == "manual" and run.status == "success"
    schedule.refresh_from_db()
    assert schedule.last_run_status == ""  # a test is not the schedule's history


def test_manual_runs_do_not_block_the_scheduled_slot(org, owner):
    schedule = make_schedule(org, owner)
    when = timezone.now().replace(microsecond=0)
    ScheduleRun.objects.create(schedule=schedule, scheduled_for=when, trigger="manual")
    ScheduleRun.objects.create(schedule=schedule, scheduled_for=when, trigger="manual")
    ScheduleRun.objects.create(schedule=schedule, scheduled_for=when, trigger="schedule")
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        ScheduleRun.objects.create(schedule=schedule, scheduled_for=when, trigger="schedule")


def test_a_run_whose_worker_keeps_dying_is_retried_then_failed(org, owner, django_capture_on_commit_callbacks):
    from scheduling.runner import MAX_RUN_ATTEMPTS, runs_recover

    schedule = make_schedule(org, owner)
    past = timezone.now() - dt.timedelta(minutes=1)
    retried = ScheduleRun.objects.create(
        schedule=schedule, scheduled_for=past, status="running", lease_expires_at=past, attempts=1
    )
    exhausted = ScheduleRun.objects.create(
        schedule=schedule,
        scheduled_for=past - dt.timedelta(days=1),
        status="running",
        lease_expires_at=past,
        attempts=MAX_RUN_ATTEMPTS,
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert runs_recover() == 1
    retried.refresh_from_db()
    exhausted.refresh_from_db()
    assert retried.status == "success" and retried.attempts == 2
    assert exhausted.status == "failed" and "stopped 3 times without recording a result" in exhausted.error


@pytest.mark.django_db(transaction=True)
def test_a_run_that_raises_ends_failed_with_its_error_once_a_long_lock_is_gone(monkeypatch, caplog):
    org, _ = org_with_cases()
    owner = member(org, Role.OFFICER, username="owner")
    schedule = make_schedule(org, owner, format="csv", filters={})
    run = ScheduleRun.objects.create(schedule=schedule, scheduled_for=timezone.now(), trigger="manual")
    holder = LockHolder(ScheduleRun, run.pk)

    def disk_full(run_id):
        holder.take()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runner, "_execute", disk_full)
    wait_briefly_for_locks()
    schedule_run_execute(run_id=str(run.pk))
    holder.join()
    run.refresh_from_db()
    assert run.status == "failed" and run.lease_expires_at is None
    assert run.error == "OSError: [Errno 28] No space left on device"  # the real cause
    assert any("database busy" in r.getMessage() for r in caplog.records)  # it waited the lock out
    schedule.refresh_from_db()
    assert schedule.last_run_status == "failed" and schedule.consecutive_failures == 1


def test_a_schedule_whose_owner_lost_identity_access_sends_pseudonyms(org, owner, django_capture_on_commit_callbacks):
    from audit.models import AuditEvent
    from cases.models import Case, Party

    case = Case.objects.filter(organization=org).first()
    Party.objects.create(organization=org, case=case, role="reporter", full_name="Zoë Ångström")
    schedule = make_schedule(org, owner, format="csv")
    # Set before this rule existed (schedules refuse it now): reveal identities.
    revealing = {"identity": "include", "identity_reason": "Board pack"}
    ReportSchedule.objects.filter(pk=schedule.pk).update(columns=revealing)
    for day in (1, 2):  # two runs: the owner is told once
        slot = dt.datetime(2026, 4, day, 7, 0, tzinfo=dt.UTC)
        due(schedule, slot)
        with django_capture_on_commit_callbacks(execute=True):
            schedules_dispatch(now=slot + dt.timedelta(seconds=20))
    runs = list(ScheduleRun.objects.order_by("scheduled_for"))
    assert [run.status for run in runs] == ["success", "success"]
    for run in runs:
        assert run.export_job.columns["identity"] == "pseudonymise"
    reports = [m for m in mail.outbox if m.to == ["audit@example.com"]]
    assert len(reports) == 2
    text = reports[0].attachments[0][1]
    text = text.decode("utf-8-sig") if isinstance(text, bytes) else text
    assert "Zoë" not in text and "PSN-" in text
    notices = [m for m in mail.outbox if m.to == ["owner@example.com"]]
    assert len(notices) == 1 and "pseudonyms" in notices[0].subject.lower()
    schedule.refresh_from_db()
    assert schedule.columns["identity"] == "pseudonymise"
    assert AuditEvent.objects.filter(action="schedule.identity_pseudonymised").count() == 1
