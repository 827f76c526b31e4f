"""Graceful stop: a real qcluster worker gets SIGTERM in the middle of an export. It hands
the job back at the next chunk (no attempt used) and leaves; the worker that replaces it
writes the file. Nothing waits for the lease (ten minutes here) to run out."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

from audit.models import AuditEvent
from exports.models import ExportJob
from exports.services import export_job_create, exports_storage
from organizations.models import Organization
from tests.cluster import qcluster

CASES = 20_000


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sigterm_to_a_worker_hands_its_export_to_the_next_worker(settings):
    settings.TASKS_SYNC = False  # send tasks to the real cluster, not inline
    call_command("seed_demo", "--org", "acme", "--cases", str(CASES), "--no-users", "--anchor", "2026-06-30")
    org = Organization.objects.get(slug="acme")
    # One process's chunks: on SQLite, forked parts write these rows so fast that the file is
    # complete at the worker's next look, and a complete file is published, not handed back
    # (a stop while parts are written: exports/tests/test_forked.py).
    with qcluster(EXPORT_LEASE_SECONDS="600", EXPORT_SQL_PUSHDOWN="False", EXPORT_PROCESSES="1"):
        job = export_job_create(organization=org, dataset="cases", format="xlsx")
        writing = wait_for(
            lambda: ExportJob.objects.filter(pk=job.pk, status="processing", rows_done__gt=0).first(),
            120,
            "the worker to write its first chunk",
        )
        stopped_pid = writing.worker_pid
        os.kill(stopped_pid, signal.SIGTERM)
        released = wait_for(
            lambda: AuditEvent.objects.filter(action="export.released", target_id=str(job.pk)).first(),
            60,
            "the job to be handed back",
        )
        done = wait_for(
            lambda: ExportJob.objects.filter(pk=job.pk, status__in=["completed", "failed"]).first(),
            180,
            "the next worker to finish the job",
        )
    log = (Path(django_settings.MEDIA_ROOT).parent / "qcluster.log").read_text(errors="replace")
    assert released.details == {"reason": "worker stopping", "attempts": 0}
    assert done.status == "completed", done.error
    assert done.attempts == 1  # the handed-back run did not count
    assert done.worker_pid != stopped_pid and done.row_count == CASES
    assert "recycled worker" in log  # the stopped worker left after its task and was replaced
    root = Path(django_settings.STORAGES["exports"]["OPTIONS"]["location"])
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) == 1  # the cut-short file was never stored
    with exports_storage().open(done.storage_key, "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == done.sha256


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sigterm_to_the_whole_cluster_stops_it_promptly_and_the_export_is_handed_back(settings):
    """What honcho, Heroku and systemd send: SIGTERM to every process of the cluster. The
    qcluster process leaves within seconds (django-q2's own stop would hang on its dead
    sentinel), the busy worker hands its job back first, and the next cluster writes it."""
    settings.TASKS_SYNC = False
    call_command("seed_demo", "--org", "acme", "--cases", str(CASES), "--no-users", "--anchor", "2026-06-30")
    org = Organization.objects.get(slug="acme")
    with qcluster(EXPORT_LEASE_SECONDS="600", EXPORT_SQL_PUSHDOWN="False", EXPORT_PROCESSES="1") as cluster:
        job = export_job_create(organization=org, dataset="cases", format="xlsx")
        wait_for(
            lambda: ExportJob.objects.filter(pk=job.pk, status="processing", rows_done__gt=0).first(),
            120,
            "the worker to write its first chunk",
        )
        signalled = time.monotonic()
        os.killpg(cluster.pid, signal.SIGTERM)
        assert cluster.wait(timeout=60) == 0
        wait_for(lambda: not _group_alive(cluster.pid), 60, "every process of the cluster to leave")
        stopped_in = time.monotonic() - signalled
    released = AuditEvent.objects.get(action="export.released", target_id=str(job.pk))
    assert released.details == {"reason": "worker stopping", "attempts": 0}
    assert stopped_in < 45, stopped_in
    with qcluster(EXPORT_LEASE_SECONDS="600", EXPORT_SQL_PUSHDOWN="False"):
        done = wait_for(
            lambda: ExportJob.objects.filter(pk=job.pk, status__in=["completed", "failed"]).first(),
            180,
            "the next cluster to finish the job",
        )
    assert (done.status, done.attempts, done.row_count) == ("completed", 1, CASES)
