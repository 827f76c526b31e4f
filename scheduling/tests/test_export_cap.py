"""Scheduled reports under the per-organization export cap: a report whose export waits
for a slot waits too (no attempt used) and is delivered once the export ran."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from exports.models import ExportJob
from exports.services import export_job_cancel
from exports.tests.factories import ExportJobFactory, org_with_cases
from organizations.models import Role
from organizations.tests.factories import member
from scheduling.models import ScheduleRun
from scheduling.services import schedule_run_now
from scheduling.tests.factories import make_schedule

pytestmark = pytest.mark.django_db


def _storage_schedule(org):
    owner = member(org, Role.OFFICER)
    return owner, make_schedule(
        org, owner, format="csv", filters={}, delivery_method="storage", storage_path="reports", recipients=[]
    )


def _busy(org, n):
    lease = timezone.now() + dt.timedelta(minutes=2)
    return [
        ExportJobFactory(
            organization=org, status="processing", lease_owner=f"w{i}:1:x", lease_expires_at=lease, attempts=1
        )
        for i in range(n)
    ]


def test_a_report_whose_export_waits_for_a_slot_is_delivered_when_one_frees(
    settings, django_capture_on_commit_callbacks
):
    settings.EXPORT_MAX_CONCURRENT_PER_ORG = 2
    org = org_with_cases()[0]
    owner, schedule = _storage_schedule(org)
    running = _busy(org, 2)
    with django_capture_on_commit_callbacks(execute=True):
        run = schedule_run_now(schedule=schedule, actor=owner)
    run.refresh_from_db()
    job = run.export_job
    assert job is not None and job.source == "schedule"
    assert (job.status, job.attempts) == ("pending", 0)
    assert (run.status, run.attempts, run.lease_owner) == ("pending", 0, "")  # waiting is not an attempt

    with django_capture_on_commit_callbacks(execute=True):
        export_job_cancel(job=running[0])  # a slot frees: the export runs, its end wakes the run
    run.refresh_from_db()
    job.refresh_from_db()
    assert (job.status, job.attempts, job.row_count) == ("completed", 1, 5)
    assert (run.status, run.attempts, run.row_count) == ("success", 1, 5)
    assert run.deliveries.get().status == "sent"


def test_a_small_organizations_report_does_not_wait_behind_another_organizations_exports(
    settings, django_capture_on_commit_callbacks
):
    settings.EXPORT_MAX_CONCURRENT_PER_ORG = 2
    big = org_with_cases(slug="big")[0]
    _busy(big, 2)
    for _ in range(50):
        ExportJobFactory(organization=big)  # waiting behind the cap
    small = org_with_cases(slug="small")[0]
    owner, schedule = _storage_schedule(small)
    with django_capture_on_commit_callbacks(execute=True):
        run = schedule_run_now(schedule=schedule, actor=owner)
    run.refresh_from_db()
    assert (run.status, run.attempts, run.row_count) == ("success", 1, 5)
    assert ExportJob.objects.filter(organization=big, status="pending").count() == 50


def test_a_waiting_report_found_again_by_the_recovery_steps_back_without_an_attempt(
    settings, django_capture_on_commit_callbacks
):
    from scheduling.runner import schedule_run_execute

    settings.EXPORT_MAX_CONCURRENT_PER_ORG = 1
    org = org_with_cases()[0]
    owner, schedule = _storage_schedule(org)
    _busy(org, 1)
    with django_capture_on_commit_callbacks(execute=True):
        run = schedule_run_now(schedule=schedule, actor=owner)
    for _ in range(4):  # a duplicate or recovered task finds it waiting again
        assert schedule_run_execute(run_id=str(run.pk)) is None
    run = ScheduleRun.objects.get(pk=run.pk)
    assert (run.status, run.attempts) == ("pending", 0)
    assert run.export_job.status == "pending" and run.export_job.attempts == 0
