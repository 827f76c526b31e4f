"""A worker asked to stop (SIGTERM) hands its export back between chunks instead of
holding it until the lease runs out; the attempt is not counted and another run finishes it."""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

from audit.models import AuditEvent
from config.worker import (
    worker_signals_install,
    worker_stop_clear,
    worker_stop_request,
    worker_stop_requested,
    worker_task_finished,
    worker_task_started,
)
from exports.rows import CHUNK_SIZE
from exports.services import export_job_create, export_job_run, exports_storage
from exports.tests.factories import org_with_cases
from organizations.models import Organization

pytestmark = pytest.mark.django_db

CASES = 6000  # more than one chunk: the CSV writer reports progress after each


@pytest.fixture(autouse=True)
def _no_stop_left_behind():
    worker_stop_clear()
    yield
    worker_stop_clear()


def _stored_files() -> list[Path]:
    root = Path(django_settings.STORAGES["exports"]["OPTIONS"]["location"])
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_a_stopping_worker_hands_the_job_back_and_a_second_run_completes_it(
    settings, django_capture_on_commit_callbacks
):
    settings.EXPORT_SQL_PUSHDOWN = False  # the chunked writer path on PostgreSQL too
    call_command("seed_demo", "--org", "big", "--cases", str(CASES), "--no-users", "--anchor", "2026-06-30")
    org = Organization.objects.get(slug="big")
    job = export_job_create(organization=org, dataset="cases", format="csv", enqueue_run=False)
    seen: list[int] = []

    def sigterm_after_first_chunk(rows_done: int) -> None:
        seen.append(rows_done)
        if len(seen) == 1:
            worker_stop_request()  # what the SIGTERM handler does

    with django_capture_on_commit_callbacks() as queued:
        assert export_job_run(job_id=str(job.pk), on_progress=sigterm_after_first_chunk) is None
    assert seen == [CHUNK_SIZE]  # stopped after the first chunk, not at the end
    job.refresh_from_db()
    assert job.status == "pending"
    assert job.lease_owner == "" and job.lease_expires_at is None and job.worker_pid is None
    assert job.attempts == 0  # handed back, not failed: no attempt used
    assert job.enqueued_at is not None and job.rows_done == 0
    assert _stored_files() == []
    released = AuditEvent.objects.get(action="export.released", target_id=str(job.pk))
    assert released.details == {"reason": "worker stopping", "attempts": 0}
    assert len(queued) >= 1  # queued again, for another worker, once committed

    worker_stop_clear()  # the next worker
    with django_capture_on_commit_callbacks(execute=True):
        for callback in queued:
            callback()
    job.refresh_from_db()
    assert job.status == "completed", job.error
    assert job.attempts == 1 and job.row_count == CASES
    with exports_storage().open(job.storage_key, "rb") as handle:
        rows = list(csv.reader(io.StringIO(handle.read().decode("utf-8-sig"))))
    assert len(rows) == CASES + 1
    assert len({row[0] for row in rows[1:]}) == CASES  # every case once
    assert len(_stored_files()) == 1


def test_a_stopping_worker_takes_no_new_export_and_queues_it_for_another(django_capture_on_commit_callbacks):
    org, _ = org_with_cases()
    job = export_job_create(organization=org, dataset="cases", format="csv", enqueue_run=False)
    worker_stop_request()
    with django_capture_on_commit_callbacks() as queued:
        assert export_job_run(job_id=str(job.pk)) is None
    job.refresh_from_db()
    assert job.status == "pending" and job.attempts == 0 and job.enqueued_at is not None
    assert len(queued) == 1
    worker_stop_clear()
    with django_capture_on_commit_callbacks(execute=True):
        queued[0]()
    job.refresh_from_db()
    assert job.status == "completed" and job.attempts == 1 and job.row_count == 5


def test_a_file_written_to_the_end_is_published_even_if_the_stop_comes_then(django_capture_on_commit_callbacks):
    org, _ = org_with_cases()
    job = export_job_create(organization=org, dataset="cases", format="jsonl", enqueue_run=False)

    def stop_at_the_last_row(rows_done: int) -> None:
        worker_stop_request()

    finished = export_job_run(job_id=str(job.pk), on_progress=stop_at_the_last_row)
    assert finished is not None and finished.status == "completed" and finished.row_count == 5


def _child(results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """In a forked process, as a django-q2 worker is: install, signal, report."""
    from django_q.worker import rss_check

    calls: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))  # a handler already there
    worker_signals_install()
    worker_task_started()  # in the middle of a task
    os.kill(os.getpid(), signal.SIGTERM)
    results.put({"stop": worker_stop_requested(), "chained": calls, "recycle": rss_check()})


def _idle_child(results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """A forked worker waiting for a task when SIGTERM comes."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    worker_signals_install()
    worker_task_started()
    worker_task_finished()  # the task returned: idle again
    results.put("ready")
    results.close()
    results.join_thread()  # the message is in the pipe before the signal ends this process
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)  # never reached: an idle worker stops at once


def test_sigterm_in_a_worker_process_asks_it_to_stop_chains_and_retires_it():
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_child, args=(results,))
    child.start()
    report = results.get(timeout=20)
    child.join(20)
    assert child.exitcode == 0  # still alive after SIGTERM: it exited on its own
    assert report == {"stop": True, "chained": [signal.SIGTERM], "recycle": True}
    assert worker_stop_requested() is False  # only the signalled process


def test_an_idle_worker_stops_at_once_on_sigterm():
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_idle_child, args=(results,))
    child.start()
    assert results.get(timeout=20) == "ready"
    child.join(8)
    assert child.exitcode == -signal.SIGTERM  # killed by the signal, not waiting for work


def test_sigterm_handler_is_not_installed_in_the_main_process():
    before = signal.getsignal(signal.SIGTERM)
    worker_signals_install()  # as django-q2's sync mode would, running a task inline
    assert signal.getsignal(signal.SIGTERM) is before


def test_django_q_reads_the_recycling_settings():
    from django_q.conf import Conf

    # django-q2 ignores a misspelled key silently: its defaults are 500 and None.
    assert Conf.RECYCLE == django_settings.Q_CLUSTER["recycle"] != 500
    assert Conf.MAX_RSS == django_settings.Q_CLUSTER["max_rss"] is not None
