"""A worker's status writes under a lock held by another connection for longer than the
database will wait: the job still ends recorded, never stuck in ``processing``."""

from __future__ import annotations

import time

import pytest

from audit.models import AuditEvent
from exports import services
from exports.models import ExportJob
from exports.services import _claim, _progress, export_job_create, export_job_run
from exports.tests.factories import org_with_cases
from tests.locks import LockHolder, wait_briefly_for_locks


@pytest.mark.django_db(transaction=True)
def test_failed_status_lands_after_a_lock_longer_than_the_busy_timeout(monkeypatch, caplog):
    org, _ = org_with_cases()
    job = export_job_create(organization=org, dataset="cases", format="csv", enqueue_run=False)
    holder = LockHolder(ExportJob, str(job.pk))

    def disk_full(*args, **kwargs):
        holder.take()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(services, "export_write", disk_full)
    wait_briefly_for_locks()
    export_job_run(job_id=str(job.pk))
    finished = time.monotonic()
    holder.join()

    job.refresh_from_db()
    assert job.status == "failed"
    assert job.error == "OSError: [Errno 28] No space left on device"  # the real cause, not "killed"
    assert job.lease_expires_at is None and job.completed_at is not None
    assert holder.released_at and finished >= holder.released_at  # it waited the lock out
    assert any("database busy" in r.getMessage() for r in caplog.records)
    event = AuditEvent.objects.get(action="export.failed", target_id=str(job.pk))
    assert event.details["error"] == job.error


@pytest.mark.django_db(transaction=True)
def test_heartbeat_on_a_busy_database_is_skipped_and_the_next_one_lands():
    org, _ = org_with_cases()
    job = export_job_create(organization=org, dataset="cases", format="csv", enqueue_run=False)
    assert _claim(str(job.pk), "me")
    report = _progress(str(job.pk), "me", every_seconds=0)
    wait_briefly_for_locks()
    holder = LockHolder(ExportJob, str(job.pk), seconds=1.5)
    holder.take()
    report(10)  # meets the lock: skipped, not fatal
    holder.join()
    job.refresh_from_db()
    assert job.status == "processing" and job.rows_done == 0
    report(20)
    job.refresh_from_db()
    assert job.status == "processing" and job.rows_done == 20


@pytest.mark.django_db(transaction=True)
def test_heartbeat_failing_for_half_the_lease_stops_the_job_with_the_database_error(settings, monkeypatch):
    settings.EXPORT_LEASE_SECONDS = 1  # half a lease: 0.5 s without a heartbeat
    org, _ = org_with_cases()
    job = export_job_create(organization=org, dataset="cases", format="csv", enqueue_run=False)
    holder = LockHolder(ExportJob, str(job.pk), seconds=3.5)
    real_write = services.export_write

    def slow_rows(job, stream, *, on_progress=None, **kwargs):
        holder.take()
        deadline = time.monotonic() + 2.8
        while time.monotonic() < deadline:  # a writer reporting progress while the lock is held
            on_progress(1)
            time.sleep(0.1)
        return real_write(job, stream, on_progress=on_progress, **kwargs)

    monkeypatch.setattr(services, "export_write", slow_rows)
    wait_briefly_for_locks()
    export_job_run(job_id=str(job.pk))
    holder.join()
    job.refresh_from_db()
    assert job.status == "failed"
    assert job.error.startswith("OperationalError:"), job.error
