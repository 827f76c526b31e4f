"""Running a schedule run: export, then deliver to each recipient once.

A run is claimed like an export job (conditional update + lease), so a duplicate task
delivery does nothing. Each recipient gets a ``Delivery`` row *before* anything is sent;
a sent delivery is never sent again, a transient failure (SMTP 4xx, connection trouble) is
retried later with exponential backoff and jitter, a permanent one (5xx) fails at once,
and one recipient's failure never re-sends to the others.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import random
import socket
import uuid
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.services import audit_record
from config.db import db_write_retry
from config.logs import log_context_from
from config.tasks import enqueue
from exports.columns_base import IdentityMode
from exports.models import ExportJob, ExportSource, ExportStatus
from exports.services import export_job_create, export_job_run
from organizations.selectors import identity_access_for
from scheduling.delivery import PermanentDeliveryError, Sent, TransientDeliveryError, delivery_send
from scheduling.models import (
    Delivery,
    DeliveryKind,
    DeliveryMethod,
    DeliveryStatus,
    ReportSchedule,
    RunStatus,
    ScheduleRun,
)
from scheduling.notices import identity_fallback_notice, run_notice
from scheduling.services import RUN_TASK, owner_may_run, schedule_pause

logger = logging.getLogger(__name__)

# Held while the run makes its export job and delivers it (not while the export is written).
RUN_LEASE = dt.timedelta(minutes=10)
MAX_RUN_ATTEMPTS = 3
MAX_DELIVERY_ATTEMPTS = 5
BACKOFF_BASE_SECONDS = 60
PAUSE_AFTER_FAILURES = 3


# --- the run ------------------------------------------------------------------------------


def _claim(run_id: str, owner: str) -> bool:
    now = timezone.now()
    claimable = Q(status=RunStatus.PENDING) | Q(status=RunStatus.RUNNING, lease_expires_at__lt=now)
    return bool(
        ScheduleRun.objects.filter(claimable, pk=run_id).update(
            status=RunStatus.RUNNING,
            lease_owner=owner,
            lease_expires_at=now + RUN_LEASE,
            attempts=F("attempts") + 1,
            started_at=now,
        )
    )


def _run_log_fields(*, run_id: str, **_: Any) -> dict[str, Any]:
    """The run, its schedule and organization, on every log line written while it runs."""
    row = ScheduleRun.objects.filter(pk=run_id).values_list("schedule_id", "schedule__organization__slug").first()
    schedule_id, slug = row or (None, None)
    return {"run_id": run_id, "schedule_id": schedule_id, "organization": slug}


@log_context_from(_run_log_fields)
def schedule_run_execute(*, run_id: str) -> ScheduleRun | None:
    """Claim the run, make (or reuse) its export, then deliver it.

    Once claimed, a run always ends recorded: delivered, or ``failed`` with the exception
    that stopped it (status writes are retried while the database is busy).
    """
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not db_write_retry(lambda: _claim(run_id, owner), what=f"run {run_id} claim"):
        return None
    try:
        return _execute(run_id)
    except Exception as exc:
        logger.exception("schedule run %s failed", run_id)
        error = f"{type(exc).__name__}: {exc}"
        return _finish(ScheduleRun.objects.get(pk=run_id), RunStatus.FAILED, error=error)


def _execute(run_id: str) -> ScheduleRun | None:
    run = ScheduleRun.objects.select_related("schedule__organization", "schedule__owner", "export_job").get(pk=run_id)
    schedule = run.schedule
    if not owner_may_run(schedule):
        reason = (
            f"The owner {schedule.owner.get_username()} no longer has officer access to "
            f"{schedule.organization.slug}; the schedule is paused until someone takes it over."
        )
        db_write_retry(lambda: schedule_pause(schedule=schedule, reason=reason), what=f"schedule {schedule.pk} pause")
        return _finish(run, RunStatus.FAILED, error=reason, notify=False)
    job = run.export_job
    if job is None:
        job = _export_for(run)
    if job.status in (ExportStatus.PENDING, ExportStatus.PROCESSING):
        # The run steps back while its export is written, here or by another worker (or it
        # waits for a slot under its organization's export cap): the export's end wakes it
        # (``runs_wake``). So a worker killed mid-export leaves no run behind: the export's
        # own lease and recovery finish the export, and its end brings the run back.
        db_write_retry(lambda: _wait_for_export(run), what=f"run {run_id} wait")
        if job.status == ExportStatus.PENDING:
            export_job_run(job_id=str(job.pk))  # a no-op if another worker holds it or its turn has not come
            job.refresh_from_db()
            if job.status not in (ExportStatus.PENDING, ExportStatus.PROCESSING):
                # Written here: go on to deliver now rather than wait for the wake-up task
                # (which then finds the run taken or finished, and does nothing).
                return schedule_run_execute(run_id=run_id) or ScheduleRun.objects.get(pk=run_id)
        return None
    if job.status != ExportStatus.COMPLETED:
        return _finish(run, RunStatus.FAILED, error=f"The export {job.status}: {job.error or 'no detail'}")
    ScheduleRun.objects.filter(pk=run.pk).update(row_count=job.row_count, file_size_bytes=job.file_size_bytes)
    run.refresh_from_db()
    if schedule.skip_if_empty and not job.row_count:
        return _finish(run, RunStatus.SKIPPED)
    db_write_retry(lambda: _create_deliveries(run), what=f"run {run_id} deliveries")
    deliveries_send(run_id=str(run.pk))
    run.refresh_from_db()
    return run


def _wait_for_export(run: ScheduleRun) -> None:
    """Put a run whose export is not done yet back to ``pending``; waiting is not an attempt."""
    ScheduleRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING, lease_owner=run.lease_owner).update(
        status=RunStatus.PENDING, lease_owner="", lease_expires_at=None, attempts=F("attempts") - 1
    )


def runs_wake(*, job_id: str, **_: Any) -> int:
    """Queue the runs waiting for this export (it just finished); returns how many.

    Connected to ``exports.signals.export_job_finished``. A wake-up that is missed (the
    export ended while its run was stepping back) is caught by ``runs_recover``.
    """
    waiting = ScheduleRun.objects.filter(export_job_id=uuid.UUID(str(job_id)), status=RunStatus.PENDING)
    run_ids = [str(run_id) for run_id in waiting.values_list("pk", flat=True)]
    for run_id in run_ids:
        enqueue(RUN_TASK, run_id, task_name=f"schedule-run-{run_id}-export-done")
    return len(run_ids)


@transaction.atomic
def _export_for(run: ScheduleRun) -> ExportJob:
    """The run's export job, created once (with the run's link to it, in one transaction)."""
    schedule = run.schedule
    job = export_job_create(
        organization=schedule.organization,
        dataset=schedule.dataset,
        format=schedule.format,
        filters=schedule.filters,
        columns=_identity_fallback(schedule),
        requested_by=schedule.owner,
        source=ExportSource.SCHEDULE,
        timezone_name=schedule.timezone,
        now=run.scheduled_for,
        enqueue_run=False,
    )
    ScheduleRun.objects.filter(pk=run.pk).update(export_job=job)
    return job


def _identity_fallback(schedule: ReportSchedule) -> dict[str, Any]:
    """The schedule's column options, with pseudonyms instead of revealed identities once
    its owner has lost identity access: the schedule is changed for good (audited) and
    its owner told once."""
    columns = dict(schedule.columns or {})
    if columns.get("identity") != IdentityMode.INCLUDE or identity_access_for(
        user=schedule.owner, organization=schedule.organization
    ):
        return columns
    columns.update(identity=IdentityMode.PSEUDONYMISE, identity_reason="")
    ReportSchedule.objects.filter(pk=schedule.pk).update(columns=columns)
    audit_record(
        organization_id=schedule.organization_id,
        action="schedule.identity_pseudonymised",
        target=schedule,
        details={"owner": schedule.owner.get_username(), "why": "the owner no longer has identity access"},
    )
    if schedule.owner.email:
        transaction.on_commit(lambda: identity_fallback_notice(schedule))
    return columns


def _create_deliveries(run: ScheduleRun) -> None:
    schedule = run.schedule
    targets: list[tuple[str, str]] = []
    if run.recipients_override is not None:
        targets = [(DeliveryKind.EMAIL, r) for r in run.recipients_override]
    else:
        if schedule.delivery_method in (DeliveryMethod.EMAIL, DeliveryMethod.EMAIL_AND_STORAGE):
            targets += [(DeliveryKind.EMAIL, r) for r in schedule.recipients]
        if schedule.delivery_method in (DeliveryMethod.STORAGE, DeliveryMethod.EMAIL_AND_STORAGE):
            targets.append((DeliveryKind.STORAGE, f"storage:{schedule.storage_path}"))
    for kind, recipient in targets:
        Delivery.objects.get_or_create(run=run, recipient=recipient, defaults={"kind": kind})


def deliveries_send(*, run_id: str | None = None, now: dt.datetime | None = None) -> int:
    """Send every due pending delivery (of one run, or all); finish runs with none left."""
    now = now or timezone.now()
    due = Delivery.objects.filter(status=DeliveryStatus.PENDING).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )
    if run_id:
        due = due.filter(run_id=uuid.UUID(str(run_id)))
    sent = 0
    for delivery_id in list(due.values_list("pk", flat=True)):
        # Claim the delivery for a short while so two workers never send the same one.
        claimed = db_write_retry(
            functools.partial(_delivery_claim, delivery_id, now), what=f"delivery {delivery_id} claim"
        )
        if not claimed:
            continue
        delivery = Delivery.objects.select_related("run__schedule__organization", "run__export_job").get(pk=delivery_id)
        sent += _attempt(delivery)
    runs = (
        {run_id}
        if run_id
        else set(
            str(rid) for rid in Delivery.objects.filter(run__status=RunStatus.RUNNING).values_list("run_id", flat=True)
        )
    )
    for rid in runs:
        _finish_if_delivered(str(rid))
    return sent


def _delivery_claim(delivery_id: int, now: dt.datetime) -> int:
    """Take a pending delivery for five minutes; 0 when another worker has it."""
    return (
        Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=now + dt.timedelta(minutes=5), attempts=F("attempts") + 1)
    )


def _attempt(delivery: Delivery) -> int:
    try:
        sent = delivery_send(delivery)
    except TransientDeliveryError as exc:
        if delivery.attempts >= MAX_DELIVERY_ATTEMPTS:
            _mark(delivery, DeliveryStatus.FAILED, error=f"Gave up after {delivery.attempts} attempts: {exc}")
        else:
            delay = BACKOFF_BASE_SECONDS * 2 ** (delivery.attempts - 1)
            delay += random.uniform(0, delay / 2)  # jitter: retries of many runs do not arrive together
            error = str(exc)[:1000]
            db_write_retry(
                lambda: Delivery.objects.filter(pk=delivery.pk).update(
                    last_error=error,
                    claimed_until=None,
                    next_attempt_at=timezone.now() + dt.timedelta(seconds=delay),
                ),
                what=f"delivery {delivery.pk} retry",
            )
        return 0
    except PermanentDeliveryError as exc:
        _mark(delivery, DeliveryStatus.FAILED, error=str(exc))
        return 0
    _mark(delivery, DeliveryStatus.SENT, sent=sent)
    return 1


def _mark(delivery: Delivery, status: str, *, error: str = "", sent: Sent | None = None) -> None:
    """Record a delivery's outcome; retried while the database is busy, because a sent
    message whose row still says pending would be sent again once its claim runs out."""
    db_write_retry(
        lambda: _mark_once(delivery, status, error=error, sent=sent or Sent(key="", attached=False)),
        what=f"delivery {delivery.pk} status",
    )


def _mark_once(delivery: Delivery, status: str, *, error: str, sent: Sent) -> None:
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk).update(
            status=status,
            last_error=error[:1000],
            message_id=sent.key[:300],
            attached=sent.attached,
            protection=sent.protection,
            sha256=sent.sha256,
            sent_at=timezone.now() if status == DeliveryStatus.SENT else None,
            claimed_until=None,
            next_attempt_at=None,
        )
        schedule = delivery.run.schedule
        audit_record(
            organization_id=schedule.organization_id,
            action="delivery.sent" if status == DeliveryStatus.SENT else "delivery.failed",
            target=delivery.run,
            details={
                "recipient": delivery.recipient,
                "attempts": delivery.attempts,
                "error": error or None,
                "schedule": schedule.pk,
                "protection": sent.protection or None,
                "attached": sent.attached,
                "sha256": sent.sha256 or None,
            },
        )


# --- finishing ----------------------------------------------------------------------------


def _finish_if_delivered(run_id: str) -> None:
    run = ScheduleRun.objects.select_related("schedule").get(pk=run_id)
    if run.status != RunStatus.RUNNING:
        return
    statuses = list(run.deliveries.values_list("status", flat=True))
    if not statuses or DeliveryStatus.PENDING in statuses:
        return
    failed = statuses.count(DeliveryStatus.FAILED)
    status = RunStatus.SUCCESS if not failed else RunStatus.FAILED if failed == len(statuses) else RunStatus.PARTIAL
    errors = "; ".join(f"{d.recipient}: {d.last_error}" for d in run.deliveries.filter(status=DeliveryStatus.FAILED))
    _finish(run, status, error=errors)


def _finish(run: ScheduleRun, status: str, *, error: str = "", notify: bool = True) -> ScheduleRun | None:
    """Record the run's outcome (retried while the database is busy: a run must never stay
    ``running`` for want of a write), then tell the owner and pause after repeated failures."""
    schedule = db_write_retry(lambda: _finish_record(run, status, error), what=f"run {run.pk} status")
    if schedule is None:
        return None  # finished elsewhere already
    if status in (RunStatus.FAILED, RunStatus.PARTIAL) and notify:
        run_notice(run, schedule)
    if schedule.consecutive_failures >= PAUSE_AFTER_FAILURES and schedule.is_active:
        schedule_pause(schedule=schedule, reason=f"Paused after {schedule.consecutive_failures} failed runs in a row.")
        run_notice(run, schedule, paused=True)
    return run


@transaction.atomic
def _finish_record(run: ScheduleRun, status: str, error: str) -> ReportSchedule | None:
    if not ScheduleRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        status=status, error=error[:5000], completed_at=timezone.now(), lease_expires_at=None
    ):
        return None
    run.refresh_from_db()
    schedule = ReportSchedule.objects.select_for_update().get(pk=run.schedule_id)
    if run.recipients_override is None:  # a test to oneself does not count in the history
        failed = status == RunStatus.FAILED
        schedule.last_run_at, schedule.last_run_status = run.completed_at, status
        schedule.consecutive_failures = schedule.consecutive_failures + 1 if failed else 0
        schedule.save(update_fields=["last_run_at", "last_run_status", "consecutive_failures", "updated_at"])
    audit_record(
        organization_id=schedule.organization_id,
        action=f"schedule.run_{status}",
        target=schedule,
        details={"run": str(run.pk), "error": error or None, "rows": run.row_count},
    )
    return schedule


def runs_recover(*, now: dt.datetime | None = None) -> int:
    """Re-queue runs whose worker died (lease ran out) or whose task was lost; fail the
    ones that already used ``MAX_RUN_ATTEMPTS`` so a run that kills its worker is not
    retried every minute for ever."""
    now = now or timezone.now()
    dead = ScheduleRun.objects.filter(status=RunStatus.RUNNING, lease_expires_at__lt=now)
    for run in dead.filter(attempts__gte=MAX_RUN_ATTEMPTS).select_related("schedule"):
        _finish(
            run,
            RunStatus.FAILED,
            error=f"The worker running this report stopped {run.attempts} times without recording a result "
            "(the process was killed or lost the database); giving up.",
        )
    # A pending run is waiting for its export (whose own recovery looks after it, and whose
    # end wakes the run): it is queued again only when its task seems lost, i.e. it has no
    # export after five minutes or its export ended a minute ago and did not wake it.
    ended = [ExportStatus.COMPLETED, ExportStatus.FAILED, ExportStatus.CANCELLED]
    lost = Q(export_job=None, created_at__lt=now - dt.timedelta(minutes=5)) | Q(
        export_job__status__in=ended, export_job__completed_at__lt=now - dt.timedelta(minutes=1)
    )
    stale = ScheduleRun.objects.filter(
        Q(status=RunStatus.RUNNING, lease_expires_at__lt=now, attempts__lt=MAX_RUN_ATTEMPTS)
        | Q(lost, status=RunStatus.PENDING)
    )
    count = 0
    for run_id in stale.values_list("pk", flat=True):
        with transaction.atomic():
            enqueue(RUN_TASK, str(run_id), task_name=f"schedule-run-{run_id}-recover")
        count += 1
    return count
