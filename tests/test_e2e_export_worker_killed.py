"""Fault: a real qcluster worker is killed with SIGKILL in the middle of an export."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

from exports.models import ExportJob
from exports.services import export_job_create, exports_recover, exports_storage
from organizations.models import Organization
from tests.cluster import qcluster

CASES = 20_000


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sigkilled_worker_leaves_a_job_that_completes_once_or_fails_never_stuck(settings):
    settings.TASKS_SYNC = False  # send tasks to the real cluster, not inline
    settings.EXPORT_LEASE_SECONDS = 4
    call_command("seed_demo", "--org", "acme", "--cases", str(CASES), "--no-users", "--anchor", "2026-06-30")
    org = Organization.objects.get(slug="acme")
    # The Python path, as in the SIGTERM tests: on PostgreSQL the pushdown writes these rows
    # in under the two seconds between progress writes, leaving no moment to kill it in.
    with qcluster(EXPORT_LEASE_SECONDS="4", EXPORT_SQL_PUSHDOWN="False"):
        job = export_job_create(organization=org, dataset="cases", format="xlsx")
        processing = wait_for(
            lambda: ExportJob.objects.filter(pk=job.pk, status="processing", rows_done__gt=0).first(),
            120,
            "the worker to start writing",
        )
        os.kill(processing.worker_pid, signal.SIGKILL)
        killed_pid = processing.worker_pid
        time.sleep(5)  # the lease runs out
        job.refresh_from_db()
        assert job.status == "processing" and job.rows_done < CASES  # killed mid-way, not finished
        assert exports_recover()["requeued"] == 1  # what the every-minute maintenance task does
        done = wait_for(
            lambda: ExportJob.objects.filter(pk=job.pk, status__in=["completed", "failed"]).first(),
            180,
            "the job to finish",
        )
    assert done.status == "completed", done.error
    assert done.worker_pid != killed_pid and done.attempts == 2 and done.row_count == CASES
    root = Path(django_settings.STORAGES["exports"]["OPTIONS"]["location"])
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) == 1
    with exports_storage().open(done.storage_key, "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == done.sha256
