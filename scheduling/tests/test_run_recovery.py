"""A scheduled report survives its worker dying while the export is written, and a broker
that cannot be reached never turns a committed request into an error."""

from __future__ import annotations

import datetime as dt
import socket

import pytest
import redis
from django.utils import timezone
from rest_framework.test import APIClient

from exports.models import ExportJob
from exports.services import export_job_run, exports_recover
from exports.tests.factories import org_with_cases
from organizations.models import Role
from organizations.tests.factories import member
from scheduling import runner
from scheduling.models import ScheduleRun
from scheduling.runner import runs_recover
from scheduling.services import schedule_run_now
from scheduling.tests.factories import make_schedule

pytestmark = pytest.mark.django_db


class WorkerKilled(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs (not an Exception)."""


def _storage_schedule(org):
    owner = member(org, Role.OFFICER)
    return owner, make_schedule(
        org, owner, format="csv", filters={}, delivery_method="storage", storage_path="reports", recipients=[]
    )


def test_a_run_whose_worker_dies_mid_export_is_delivered_once_the_export_is_recovered(
    monkeypatch, django_capture_on_commit_callbacks
):
    org = org_with_cases()[0]
    owner, schedule = _storage_schedule(org)

    def dies_while_writing(*, job_id: str) -> None:
        ExportJob.objects.filter(pk=job_id).update(
            status="processing", lease_owner="doomed:1:x", lease_expires_at=timezone.now() + dt.timedelta(seconds=120)
        )
        raise WorkerKilled

    monkeypatch.setattr(runner, "export_job_run", dies_while_writing)
    with pytest.raises(WorkerKilled), django_capture_on_commit_callbacks(execute=True):
        schedule_run_now(schedule=schedule, actor=owner)
    run = ScheduleRun.objects.get()
    # The run stepped back before its export was written: nothing holds it for its own lease.
    assert (run.status, run.lease_owner, run.lease_expires_at) == ("pending", "", None)
    job = run.export_job
    assert job is not None and job.status == "processing"
    monkeypatch.setattr(runner, "export_job_run", export_job_run)

    # The run sweep leaves a run alone while its export is being looked after...
    with django_capture_on_commit_callbacks() as queued:
        assert runs_recover(now=timezone.now() + dt.timedelta(minutes=10)) == 0
    assert queued == []
    # ...the export's lease runs out, its recovery writes it, and its end wakes the run.
    ExportJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - dt.timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert exports_recover() == {"requeued": 1, "failed": 0}
    run.refresh_from_db()
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("completed", 1)
    assert (run.status, run.row_count) == ("success", 5)
    assert [d.status for d in run.deliveries.all()] == ["sent"]


def test_a_pending_run_whose_wake_up_was_lost_is_queued_again_a_minute_after_its_export_ended(
    django_capture_on_commit_callbacks,
):
    org = org_with_cases()[0]
    owner, schedule = _storage_schedule(org)
    with django_capture_on_commit_callbacks(execute=True):
        run = schedule_run_now(schedule=schedule, actor=owner)
    run.refresh_from_db()
    assert run.status == "success"
    ScheduleRun.objects.filter(pk=run.pk).update(status="pending")  # as if the wake-up task was lost
    ExportJob.objects.filter(pk=run.export_job_id).update(completed_at=timezone.now())
    assert runs_recover(now=timezone.now() + dt.timedelta(seconds=30)) == 0
    with django_capture_on_commit_callbacks() as queued:
        assert runs_recover(now=timezone.now() + dt.timedelta(seconds=90)) == 1
    assert len(queued) == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def redis_down(monkeypatch, settings):
    """django-q2's own Redis broker, pointed at a port where nothing listens."""
    from django_q import tasks
    from django_q.brokers.redis_broker import Redis

    broker = Redis.__new__(Redis)
    broker.list_key = "django_q:dossier:q"
    broker.connection = redis.Redis(host="127.0.0.1", port=_closed_port(), socket_connect_timeout=1)
    broker._runtime_settings = {}  # type: ignore[attr-defined]
    monkeypatch.setattr(tasks, "get_broker", lambda *a, **k: broker)
    settings.TASKS_SYNC = False


def test_an_export_asked_for_while_the_broker_is_down_is_accepted_and_recovered(
    redis_down, django_capture_on_commit_callbacks, caplog, settings
):
    org = org_with_cases()[0]
    officer = member(org, Role.OFFICER)
    client = APIClient()
    client.force_authenticate(officer)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v1/orgs/{org.slug}/exports/", {"format": "csv"}, format="json")
    assert response.status_code == 202, response.content
    job = ExportJob.objects.get(pk=response.json()["id"])
    assert job.status == "pending"
    assert any(
        "could not queue task export-" in r.getMessage() and "ConnectionError" in r.getMessage() for r in caplog.records
    )
    # The broker is back: the minute's sweep finds the job whose task never left and queues it.
    settings.TASKS_SYNC = None
    with django_capture_on_commit_callbacks(execute=True):
        exports_recover(now=timezone.now() + dt.timedelta(seconds=61))
    job.refresh_from_db()
    assert (job.status, job.row_count) == ("completed", 5)
