"""Fair shares: at most EXPORT_MAX_CONCURRENT_PER_ORG exports of one organization run at
once, the others wait their turn (oldest first, no attempt used), and another organization
never waits behind them."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone

from audit.models import AuditEvent
from exports import services
from exports.models import ExportJob
from exports.services import export_job_cancel, export_job_create, export_job_run, exports_recover
from exports.tests.factories import ExportJobFactory, org_with_cases


@pytest.fixture
def org():
    return org_with_cases()[0]


def _make(**fields: Any) -> ExportJob:
    job: ExportJob = ExportJobFactory(**fields)  # type: ignore[assignment]
    return job


def _running(org: Any, n: int) -> list[ExportJob]:
    """``n`` exports of ``org`` being written by (other) live workers."""
    lease = timezone.now() + dt.timedelta(minutes=2)
    return [
        _make(organization=org, status="processing", lease_owner=f"w{i}:1:x", lease_expires_at=lease, attempts=1)
        for i in range(n)
    ]


def _pending(org: Any, n: int, *, enqueued: bool = False) -> list[ExportJob]:
    """``n`` pending exports of ``org``, created a second apart, oldest first."""
    base = timezone.now() - dt.timedelta(minutes=10)
    jobs = []
    for i in range(n):
        job = _make(organization=org, enqueued_at=timezone.now() if enqueued else None)
        ExportJob.objects.filter(pk=job.pk).update(created_at=base + dt.timedelta(seconds=i))
        jobs.append(job)
    return jobs


@pytest.mark.django_db
def test_a_job_above_the_cap_stays_pending_without_using_an_attempt(org, settings):
    settings.EXPORT_MAX_CONCURRENT_PER_ORG = 2
    _running(org, 2)
    job = export_job_create(organization=org, dataset="cases", format="csv")
    for _ in range(5):  # however often its task comes back
        assert export_job_run(job_id=str(job.pk)) is None
    job.refresh_from_db()
    assert job.status == "pending" and job.attempts == 0 and job.error == ""
    assert job.enqueued_at is None  # waiting for a slot, no task of its own


@pytest.mark.django_db
def test_another_organization_runs_while_one_is_at_its_cap(org, settings):
    settings.EXPORT_MAX_CONCURRENT_PER_ORG = 2
    _running(org, 2)
    _pending(org, 50)
    small = org_with_cases(slug="small")[0]
    job = export_job_create(organization=small, dataset="cases", format="csv", enqueue_run=False)
    finished = export_job_run(job_id=str(job.pk))
    assert finished is not None and finished.status == "completed" and finished.row_count == 5


@pytest.mark.django_db
def test_a_newer_job_does_not_overtake_an_older_one_waiting_for_the_same_slot(org, settings):
    settings.EXPORT_MAX_CONCURRENT_PER_ORG = 2
    _running(org, 1)
    older, newer = _pending(org, 2)
    assert export_job_run(job_id=str(newer.pk)) is None  # one slot free, and it is the older job's
    newer.refresh_from_db()
    assert newer.status == "pending" and newer.attempts == 0
    finished = export_job_run(job_id=str(older.pk))
    assert finished is not None and finished.status == "completed"


@pytest.mark.django_db
def test_with_slots_for_both_a_newer_job_does_not_wait_for_an_older_one(org, settings):
    settings.EXPORT_MAX_CONCURRENT_PER_ORG = 2
    older, newer = _pending(org, 2)
    finished = export_job_run(job_id=str(newer.pk))  # the older one still has a slot left
    assert finished is not None and finished.status == "completed"
    older.refresh_from_db()
    assert older.status == "pending"


@pytest.mark.django_db
def test_a_retry_of_a_dead_worker_waits_its_turn_as_pending(org, settings):
    settings.EXPORT_MAX_CONCURRENT_PER_ORG = 1
    _running(org, 1)
    dead = ExportJobFactory(
        organization=org,
        status="processing",
        lease_owner="dead:1:x",
        lease_expires_at=timezone.now() - dt.timedelta(seconds=1),
        attempts=1,
    )
    assert export_job_run(job_id=str(dead.pk)) is None
    dead.refresh_from_db()
    assert dead.status == "pending" and dead.lease_owner == "" and dead.lease_expires_at is None
    assert dead.attempts == 1  # the attempt its dead worker used still counts; waiting does not


@pytest.mark.django_db
def test_a_job_leaving_its_slot_queues_the_oldest_waiting_job(org, settings, django_capture_on_commit_callbacks):
    settings.EXPORT_MAX_CONCURRENT_PER_ORG = 1
    settings.TASKS_SYNC = False  # queue the task; no worker runs it here
    (running,) = _running(org, 1)
    first, second = _pending(org, 2)
    with django_capture_on_commit_callbacks(execute=True):
        export_job_cancel(job=running)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.enqueued_at is not None  # its turn: a task is on its way
    assert second.enqueued_at is None  # still waiting, no task yet


@pytest.mark.django_db
def test_the_minute_recovery_queues_waiting_jobs_up_to_the_free_slots(
    org, settings, django_capture_on_commit_callbacks
):
    settings.EXPORT_MAX_CONCURRENT_PER_ORG = 2
    waiting = _pending(org, 3)  # they waited and their wake-up was lost
    with django_capture_on_commit_callbacks() as queued:
        assert exports_recover() == {"requeued": 2, "failed": 0}
    assert len(queued) == 2
    statuses = {job.pk: job.enqueued_at is not None for job in ExportJob.objects.filter(pk__in=[j.pk for j in waiting])}
    assert statuses == {waiting[0].pk: True, waiting[1].pk: True, waiting[2].pk: False}
    with django_capture_on_commit_callbacks() as again:
        assert exports_recover() == {"requeued": 0, "failed": 0}  # not queued twice
    assert again == []


@pytest.mark.django_db
def test_all_waiting_jobs_run_once_slots_free_in_creation_order(org, settings, django_capture_on_commit_callbacks):
    settings.EXPORT_MAX_CONCURRENT_PER_ORG = 2
    running = _running(org, 2)
    with django_capture_on_commit_callbacks(execute=True):  # their tasks run (inline) and find no slot
        jobs = [export_job_create(organization=org, dataset="cases", format="csv") for _ in range(4)]
    waiting = ExportJob.objects.filter(pk__in=[j.pk for j in jobs])
    assert set(waiting.values_list("status", "attempts", "enqueued_at")) == {("pending", 0, None)}
    with django_capture_on_commit_callbacks(execute=True):
        export_job_cancel(job=running[0])  # one slot frees: the jobs go through it one by one
    done = list(waiting.order_by("started_at"))
    assert [j.pk for j in done] == [j.pk for j in jobs]  # started oldest first
    assert {(j.status, j.attempts, j.row_count) for j in done} == {("completed", 1, 5)}


# --- several workers at once ---------------------------------------------------------------


def _overtaken(rows: list[tuple[Any, str, Any]], cap: int) -> bool:
    """Whether a newer job holds a slot an older pending one was waiting for: for every
    job processing, those processing plus the pending ones older than it fit the cap."""
    processing = [r[0] for r in rows if r[1] == "processing"]
    order = {r[0]: (r[2], str(r[0])) for r in rows}
    for job in processing:
        older_pending = sum(1 for r in rows if r[1] == "pending" and order[r[0]] < order[job])
        if len(processing) + older_pending > cap:
            return True
    return False


def _race(org: Any, other: Any, cap: int, monkeypatch: Any) -> None:
    """Five exports of ``org`` claimed at once by five racing workers (threads, each with
    its own connection), and a sixth worker running ``other``'s export while ``org`` is at
    its cap. Every export of ``org`` is held (once claimed, before writing) until the other
    organization's is done; a sampler reads the organization's jobs all along.
    """
    jobs = []
    for _ in range(5):
        jobs.append(export_job_create(organization=org, dataset="cases", format="csv", enqueue_run=False))
        time.sleep(0.01)  # distinct creation times
    theirs = export_job_create(organization=other, dataset="cases", format="csv", enqueue_run=False)
    barrier = threading.Barrier(5)
    stop, other_done = threading.Event(), threading.Event()
    samples: list[int] = []
    overtaken: list[list[Any]] = []
    errors: list[BaseException] = []
    returned: dict[str, Any] = {}

    write = services.export_write

    def held_write(job: ExportJob, stream: Any, **kwargs: Any) -> int:
        if job.organization_id == org.pk:
            other_done.wait(30)
        return write(job, stream, **kwargs)

    monkeypatch.setattr(services, "export_write", held_write)

    def worker(job_id: str) -> None:
        try:
            barrier.wait()
            returned[job_id] = export_job_run(job_id=job_id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    def sampler() -> None:
        try:
            while not stop.is_set():
                rows = list(ExportJob.objects.filter(organization=org).values_list("pk", "status", "created_at"))
                samples.append(sum(1 for r in rows if r[1] == "processing"))
                if _overtaken(rows, cap):
                    overtaken.append(rows)
                time.sleep(0.005)
        finally:
            connection.close()

    def other_worker() -> None:
        try:
            deadline = time.monotonic() + 30
            while ExportJob.objects.filter(organization=org, status="processing").count() < cap:
                assert time.monotonic() < deadline, "the first organization never reached its cap"
                time.sleep(0.01)
            returned["other"] = export_job_run(job_id=str(theirs.pk))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            other_done.set()
            connection.close()

    watch = threading.Thread(target=sampler)
    watch.start()
    threads = [threading.Thread(target=worker, args=(str(job.pk),)) for job in jobs]
    threads.append(threading.Thread(target=other_worker))
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    stop.set()
    watch.join()
    close_old_connections()

    assert errors == []
    assert samples and max(samples) == cap, samples  # full, never over
    assert overtaken == []
    # The other organization's export ran while this one was at its cap.
    assert returned["other"] is not None and returned["other"].status == "completed"
    # The two oldest started first; those that had to wait (their tasks returned without a
    # claim) were queued as slots freed and ran (inline, as tasks do in tests).
    order = [str(job.pk) for job in jobs]
    done = ExportJob.objects.filter(pk__in=order)
    assert {str(pk) for pk in done.order_by("started_at").values_list("pk", flat=True)[:cap]} == set(order[:cap])
    assert {(j.status, j.attempts, j.row_count) for j in done} == {("completed", 1, 5)}  # each exactly once
    events = AuditEvent.objects.filter(action="export.completed", target_id__in=order)
    assert sorted(events.values_list("target_id", flat=True)) == sorted(order)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_cap_holds_with_racing_workers_on_postgresql(settings, monkeypatch):
    settings.EXPORT_MAX_CONCURRENT_PER_ORG = 2
    _race(org_with_cases(slug="busy")[0], org_with_cases(slug="small")[0], cap=2, monkeypatch=monkeypatch)


@pytest.mark.django_db(transaction=True)
def test_cap_holds_with_racing_workers_on_sqlite(settings, monkeypatch, is_postgres):
    if is_postgres:
        pytest.skip("the PostgreSQL run has its own test")
    settings.EXPORT_MAX_CONCURRENT_PER_ORG = 2
    _race(org_with_cases(slug="busy")[0], org_with_cases(slug="small")[0], cap=2, monkeypatch=monkeypatch)


def _race_with_dead_workers(org: Any, cap: int, monkeypatch: Any) -> list[int]:
    """Two jobs whose workers died (lease ran out) are claimed again while three newer
    pending ones are claimed, all at once; returns the counts of jobs processing with a
    live lease, sampled meanwhile. The dead jobs count neither as processing nor as
    pending: only the organization's lock keeps these claims from all seeing free slots."""
    dead = [
        _make(
            organization=org,
            status="processing",
            lease_owner=f"dead{i}:1:x",
            lease_expires_at=timezone.now() - dt.timedelta(seconds=1),
            attempts=1,
        )
        for i in range(2)
    ]
    fresh = _pending(org, 3)
    ExportJob.objects.filter(pk__in=[j.pk for j in dead]).update(created_at=timezone.now() - dt.timedelta(hours=1))
    release = threading.Event()
    write = services.export_write

    def held_write(job: ExportJob, stream: Any, **kwargs: Any) -> int:
        release.wait(30)
        return write(job, stream, **kwargs)

    monkeypatch.setattr(services, "export_write", held_write)
    barrier = threading.Barrier(5)
    errors: list[BaseException] = []

    def worker(job_id: str) -> None:
        try:
            barrier.wait()
            export_job_run(job_id=job_id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(str(job.pk),)) for job in [*dead, *fresh]]
    for t in threads:
        t.start()
    samples = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # the claims are decided within this time
        live = ExportJob.objects.filter(organization=org, status="processing", lease_expires_at__gte=timezone.now())
        samples.append(live.count())
        time.sleep(0.01)
    release.set()
    for t in threads:
        t.join(60)
    close_old_connections()
    assert errors == []
    jobs = ExportJob.objects.filter(pk__in=[j.pk for j in [*dead, *fresh]])
    assert {(j.status, j.row_count) for j in jobs} == {("completed", 5)}
    assert sorted(j.attempts for j in jobs) == [1, 1, 1, 2, 2]  # a dead worker's try still counts
    return samples


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_cap_holds_when_dead_workers_jobs_are_claimed_again_at_once_on_postgresql(settings, monkeypatch):
    settings.EXPORT_MAX_CONCURRENT_PER_ORG = 2
    samples = _race_with_dead_workers(org_with_cases(slug="busy")[0], 2, monkeypatch)
    assert max(samples) == 2, samples


@pytest.mark.django_db(transaction=True)
def test_cap_holds_when_dead_workers_jobs_are_claimed_again_at_once_on_sqlite(settings, monkeypatch, is_postgres):
    if is_postgres:
        pytest.skip("the PostgreSQL run has its own test")
    settings.EXPORT_MAX_CONCURRENT_PER_ORG = 2
    samples = _race_with_dead_workers(org_with_cases(slug="busy")[0], 2, monkeypatch)
    assert max(samples) == 2, samples


@pytest.mark.django_db
def test_a_lost_task_at_the_head_of_the_line_is_queued_again_after_a_minute_not_five(
    org, settings, django_capture_on_commit_callbacks
):
    settings.EXPORT_MAX_CONCURRENT_PER_ORG = 1
    settings.TASKS_SYNC = False  # queue the task; no worker runs it here
    head, behind = _pending(org, 2)
    sent = timezone.now()
    ExportJob.objects.filter(pk=head.pk).update(enqueued_at=sent)  # its task went to a cluster that died
    with django_capture_on_commit_callbacks() as queued:
        assert exports_recover(now=sent + dt.timedelta(seconds=30)) == {"requeued": 0, "failed": 0}
    assert queued == []  # half a minute is an ordinary wait for a worker
    with django_capture_on_commit_callbacks() as queued:
        assert exports_recover(now=sent + dt.timedelta(seconds=90)) == {"requeued": 1, "failed": 0}
    assert len(queued) == 1
    head.refresh_from_db()
    behind.refresh_from_db()
    assert head.enqueued_at == sent + dt.timedelta(seconds=90)  # queued again, in its place
    assert behind.enqueued_at is None  # the line behind it keeps waiting its turn


@pytest.mark.django_db
def test_a_lost_task_behind_a_full_line_is_not_queued_again_early(org, settings, django_capture_on_commit_callbacks):
    settings.EXPORT_MAX_CONCURRENT_PER_ORG = 1
    settings.TASKS_SYNC = False
    _running(org, 1)
    (waiting,) = _pending(org, 1)
    sent = timezone.now()
    ExportJob.objects.filter(pk=waiting.pk).update(enqueued_at=sent)
    with django_capture_on_commit_callbacks() as queued:
        exports_recover(now=sent + dt.timedelta(seconds=90))
    assert queued == []  # no free slot: its task would only step back
