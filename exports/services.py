"""Export jobs: create, run (claim → write → publish), cancel, recover, expire.

Nothing lost, nothing twice: a worker *claims* a job with a conditional UPDATE and a lease
it renews while writing. A job whose lease ran out (worker killed) is handed out again, or
failed after ``EXPORT_MAX_ATTEMPTS``; a second delivery of the same task finds the job
claimed or finished and does nothing. The file is written to a temporary file and only then
saved to storage under a server-generated key, so a partial file is never visible.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages
from django.db import OperationalError, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.services import audit_record
from config.db import db_write_retry
from config.errors import ApplicationError, ConflictError, ForbiddenError
from config.tasks import enqueue
from exports.columns import columns_resolve
from exports.columns_base import IdentityMode
from exports.filters import cases_filtered, filters_describe, filters_resolve
from exports.models import Dataset, ExportFormat, ExportJob, ExportSource, ExportStatus
from exports.pushdown import copy_write, pushdown_enabled
from exports.rows import RowPlan
from organizations.models import Organization
from organizations.selectors import identity_access_for
from tagging.selectors import tag_slots_for

logger = logging.getLogger(__name__)

RUN_TASK = "exports.tasks.run_export"


class ExportCancelled(Exception):
    """Raised inside the writer when the job was cancelled or its lease was lost."""


def exports_storage() -> Any:
    """The storage every export file lives in (local folder or S3)."""
    return storages["exports"]


def _lease_seconds() -> int:
    return int(getattr(settings, "EXPORT_LEASE_SECONDS", 120))


def _max_attempts() -> int:
    return int(getattr(settings, "EXPORT_MAX_ATTEMPTS", 3))


# --- create ------------------------------------------------------------------------------


def _validate_kind(dataset: Any, fmt: Any) -> None:
    if dataset not in Dataset.values:
        raise ApplicationError(f"Unknown dataset {dataset!r}: use {', '.join(Dataset.values)}.", field="dataset")
    if fmt not in ExportFormat.values:
        raise ApplicationError(f"Unknown format {fmt!r}: use {', '.join(ExportFormat.values)}.", field="format")
    if (dataset == Dataset.BOARD_REPORT) != (fmt == ExportFormat.PDF):
        raise ApplicationError("The board_report dataset is a PDF, and PDF is only for board_report.", field="format")


def export_definition_validate(
    *, dataset: Any, format: Any, filters: Any, columns: Any, timezone: str, now: dt.datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate an export definition; returns (resolved filters, column options)."""
    _validate_kind(dataset, format)
    return filters_resolve(filters, timezone=timezone, now=now), columns_resolve(columns)


@transaction.atomic
def export_job_create(
    *,
    organization: Organization,
    dataset: Any,
    format: Any,
    filters: Any = None,
    columns: Any = None,
    requested_by: Any = None,
    source: str = ExportSource.API,
    timezone_name: str | None = None,
    now: dt.datetime | None = None,
    ip_address: str | None = None,
    enqueue_run: bool = True,
) -> ExportJob:
    """Validate, snapshot the tag slots, save the job and queue it after commit.

    Relative periods are resolved here, at ``now`` in ``timezone_name`` (the
    organization's zone unless a schedule gives its own).
    """
    now = now or timezone.now()
    _identity_allowed(organization=organization, columns=columns, requested_by=requested_by)
    resolved_filters, options = export_definition_validate(
        dataset=dataset,
        format=format,
        filters=filters,
        columns=columns,
        timezone=timezone_name or organization.timezone,
        now=now,
    )
    snapshot = [t.snapshot() for t in tag_slots_for(organization=organization, active_only=True)]
    job = ExportJob.objects.create(
        organization=organization,
        dataset=dataset,
        format=format,
        filters=resolved_filters,
        columns=options,
        tag_snapshot=snapshot,
        source=source,
        requested_by=requested_by if getattr(requested_by, "is_authenticated", False) else None,
        enqueued_at=timezone.now() if enqueue_run else None,
    )
    audit_record(
        organization_id=organization.pk,
        action="export.created",
        actor=requested_by,
        target=job,
        ip_address=ip_address,
        details={"dataset": dataset, "format": format, "filters": resolved_filters, "source": source},
    )
    if options["identity"] == IdentityMode.INCLUDE:
        audit_record(
            organization_id=organization.pk,
            action="export.identity_included",
            actor=requested_by,
            target=job,
            ip_address=ip_address,
            details={"reason": options["identity_reason"], "dataset": dataset, "format": format, "source": source},
        )
    if enqueue_run:
        enqueue(RUN_TASK, str(job.pk), task_name=f"export-{job.pk}")
    return job


def _identity_allowed(*, organization: Organization, columns: Any, requested_by: Any) -> None:
    """Revealing identities is for members with identity access (403 before any 400)."""
    if not isinstance(columns, dict) or columns.get("identity") != IdentityMode.INCLUDE:
        return
    if not identity_access_for(user=requested_by, organization=organization):
        raise ForbiddenError(
            "Revealing identities needs identity access in this organization (an organization admin grants it). "
            "Without it, exports show pseudonyms (identity: pseudonymise) or leave identities out (identity: omit)."
        )


# --- run ---------------------------------------------------------------------------------


def _claim(job_id: str, owner: str) -> bool:
    """Take the job if it is pending, or processing with a lease that ran out."""
    now = timezone.now()
    claimable = Q(status=ExportStatus.PENDING) | Q(status=ExportStatus.PROCESSING, lease_expires_at__lt=now)
    return bool(
        ExportJob.objects.filter(claimable, pk=job_id, attempts__lt=_max_attempts()).update(
            status=ExportStatus.PROCESSING,
            lease_owner=owner,
            worker_pid=os.getpid(),
            lease_expires_at=now + dt.timedelta(seconds=_lease_seconds()),
            attempts=F("attempts") + 1,
            started_at=now,
            rows_done=0,
            error="",
        )
    )


def _heartbeat(job_id: str, owner: str, rows_done: int, rows_total: int | None = None) -> None:
    """Renew the lease and record progress; stop if the job is no longer ours."""
    fields: dict[str, Any] = {
        "rows_done": rows_done,
        "lease_expires_at": timezone.now() + dt.timedelta(seconds=_lease_seconds()),
    }
    if rows_total is not None:
        fields["rows_total"] = rows_total
    if not ExportJob.objects.filter(pk=job_id, lease_owner=owner, status=ExportStatus.PROCESSING).update(**fields):
        raise ExportCancelled


def _progress(
    job_id: str, owner: str, observer: Callable[[int], None] | None = None, every_seconds: float = 2.0
) -> Callable[[int], None]:
    """A row counter that renews the lease every ``every_seconds``.

    A heartbeat that meets a busy database is skipped, not fatal: the lease is long, the next
    one tries again. Only when none got through for half the lease does the job stop (with
    the database error, so it is recorded as the cause).
    """
    last = [0.0]
    last_ok = [time.monotonic()]

    def report(rows_done: int) -> None:
        if observer is not None:
            observer(rows_done)
        now = time.monotonic()
        if now - last[0] < every_seconds:
            return
        last[0] = now
        try:
            _heartbeat(job_id, owner, rows_done)
        except OperationalError as exc:
            if time.monotonic() - last_ok[0] > _lease_seconds() / 2:
                raise
            logger.warning("export %s: heartbeat skipped, database busy (%s)", job_id, exc)
            return
        last_ok[0] = time.monotonic()

    return report


def _file_name(job: ExportJob, generated: dt.datetime) -> str:
    local = generated.astimezone(job.organization.tzinfo)
    return f"{job.organization.slug}-{job.dataset.replace('_', '-')}-{local:%Y%m%d-%H%M}-{str(job.pk)[:8]}.{job.format}"


def _about(job: ExportJob, generated: dt.datetime) -> list[tuple[str, str]]:
    org = job.organization
    tags = (
        "; ".join(
            f"{t['slot']}. {t['label']} = {t['source_entity']}.{t['field_path']} ({t['data_type']})"
            for t in job.tag_snapshot
        )
        or "none"
    )
    return [
        ("Organization", f"{org.name} ({org.slug})"),
        ("Dataset", job.get_dataset_display()),
        ("Filters", filters_describe(job.filters)),
        ("Tag columns", tags),
        ("Requested by", job.requested_by.get_username() if job.requested_by else job.get_source_display()),
        ("Identities", _identities_described(job)),
        ("Source", job.get_source_display()),
        ("Generated (UTC)", generated.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")),
        (f"Generated ({org.timezone})", generated.astimezone(org.tzinfo).strftime("%Y-%m-%d %H:%M:%S %Z")),
        ("Export id", str(job.pk)),
        ("Dossier version", settings.DOSSIER_VERSION),
    ]


def _identities_described(job: ExportJob) -> str:
    """What the file does with the people in the cases, and who revealed them and why."""
    mode = job.columns.get("identity", IdentityMode.PSEUDONYMISE)
    if mode == IdentityMode.INCLUDE:
        who = job.requested_by.get_username() if job.requested_by else job.get_source_display()
        return f"Revealed by {who}. Reason: {job.columns.get('identity_reason', '')}"
    if mode == IdentityMode.OMIT:
        return "Left out: no column identifies a person."
    return (
        "Pseudonymised: each person is shown as PSN- and 10 characters, the same person the same "
        "in every export of this organization."
    )


def export_write(
    job: ExportJob,
    stream: Any,
    *,
    on_progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    generated: dt.datetime | None = None,
) -> int:
    """Write the job's file to ``stream``; returns the row count. Shared by worker and CLI."""
    generated = generated or timezone.now()
    org = job.organization
    cases = cases_filtered(organization_id=org.pk, filters=job.filters, timezone=org.timezone)
    if job.dataset == Dataset.BOARD_REPORT:
        return _write_board_report(job, cases, stream, generated)
    plan = RowPlan(
        dataset=job.dataset,
        options=job.columns,
        snapshot=job.tag_snapshot,
        timezone=org.timezone,
        now=generated,
        pseudonym_key=bytes(org.pseudonym_key),
    )
    total = plan.count(cases)
    if on_total:
        on_total(total)
    about = _about(job, generated)
    if pushdown_enabled():
        written = copy_write(
            plan=plan,
            cases=cases,
            format=job.format,
            stream=stream,
            timezone=org.timezone,
            now=generated,
            total=total,
            about=about,
            on_progress=on_progress,
        )
        if written is not None:
            return written
    columns = plan.columns

    def rows() -> Iterator[list[Any]]:
        count = 0
        for row in plan.rows(cases):
            count += 1
            yield row
        # Writers read ``about`` after the last row (XLSX writes it as its last sheet).
        about.append(("Rows", f"{count:,}"))

    from exports.writers import get_writer

    return get_writer(job.format).write(
        columns=columns, rows=rows(), stream=stream, about=about, on_progress=on_progress
    )


def _write_board_report(job: ExportJob, cases: Any, stream: Any, generated: dt.datetime) -> int:
    from exports.board_report import board_report_data, render_board_report

    filters = job.filters
    data = board_report_data(
        organization=job.organization,
        cases=cases,
        period_start=dt.date.fromisoformat(filters["created_from"]) if filters.get("created_from") else None,
        period_end=dt.date.fromisoformat(filters["created_to"]) if filters.get("created_to") else None,
    )
    render_board_report(
        organization=job.organization,
        data=data,
        stream=stream,
        generated_at=generated,
        filters_text=filters_describe(filters),
    )
    return int(data.total_cases)


def _hash_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def export_job_run(
    *, job_id: str, on_progress: Callable[[int], None] | None = None, on_total: Callable[[int], None] | None = None
) -> ExportJob | None:
    """Claim and run one job to a published file (the worker's and the CLI's entry point).

    Once claimed, the job always ends in a recorded state: a file, or ``failed`` with the
    exception that stopped it (written with retries, see ``config.db``).
    """
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not db_write_retry(lambda: _claim(job_id, owner), what=f"export {job_id} claim"):
        return None  # already taken, finished, cancelled, or out of attempts
    tmp_path: Path | None = None
    stored_key = ""
    try:
        job = ExportJob.objects.select_related("organization", "requested_by").get(pk=job_id)
        generated = timezone.now()
        tmp_dir = getattr(settings, "EXPORTS_TMP_DIR", None) or None
        # Closed by the ``with handle`` below; kept (delete=False) until the file is in storage.
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="dossier-export-", suffix=f".{job.format}", dir=tmp_dir, delete=False
        )
        tmp_path = Path(handle.name)
        with handle:

            def total(count: int) -> None:
                db_write_retry(lambda: _heartbeat(job_id, owner, 0, count), what=f"export {job_id} start")
                if on_total is not None:
                    on_total(count)

            rows = export_write(
                job, handle, on_progress=_progress(job_id, owner, on_progress), on_total=total, generated=generated
            )
        db_write_retry(lambda: _heartbeat(job_id, owner, rows), what=f"export {job_id} progress")
        sha256, size = _hash_file(tmp_path)
        key = f"{job.organization.slug}/{job.pk}/{uuid.uuid4().hex}.{job.format}"
        with tmp_path.open("rb") as data:
            stored_key = exports_storage().save(key, File(data, name=key))
        return db_write_retry(
            lambda: _publish(job, owner, stored_key, rows, sha256, size, generated), what=f"export {job_id} publish"
        )
    except ExportCancelled:
        _discard(stored_key)
        logger.info("export %s stopped: cancelled or lease lost", job_id)
        return None
    except Exception as exc:
        _discard(stored_key)
        logger.exception("export %s failed", job_id)
        error = f"{type(exc).__name__}: {exc}"
        db_write_retry(lambda: _fail(job_id, owner, error), what=f"export {job_id} failed status")
        return None
    finally:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)


def _retention(job: ExportJob) -> dt.timedelta:
    hours = (
        settings.EXPORT_RETENTION_HOURS_SCHEDULED
        if job.source == ExportSource.SCHEDULE
        else settings.EXPORT_RETENTION_HOURS
    )
    return dt.timedelta(hours=hours)


@transaction.atomic
def _publish(
    job: ExportJob, owner: str, key: str, rows: int, sha256: str, size: int, generated: dt.datetime
) -> ExportJob | None:
    now = timezone.now()
    updated = ExportJob.objects.filter(pk=job.pk, lease_owner=owner, status=ExportStatus.PROCESSING).update(
        status=ExportStatus.COMPLETED,
        storage_key=key,
        row_count=rows,
        rows_done=rows,
        sha256=sha256,
        file_size_bytes=size,
        file_name=_file_name(job, generated),
        completed_at=now,
        expires_at=now + _retention(job),
        lease_expires_at=None,
    )
    if not updated:  # cancelled (or taken over) while we were saving: the file must not stay
        transaction.on_commit(lambda: _discard(key))
        return None
    job.refresh_from_db()
    audit_record(
        organization_id=job.organization_id,
        action="export.completed",
        target=job,
        details={"rows": rows, "sha256": sha256, "size": size, "attempt": job.attempts},
    )
    return job


@transaction.atomic
def _fail(job_id: str, owner: str, error: str) -> None:
    updated = ExportJob.objects.filter(pk=job_id, lease_owner=owner, status=ExportStatus.PROCESSING).update(
        status=ExportStatus.FAILED,
        error=error[:2000],
        completed_at=timezone.now(),
        lease_expires_at=None,
    )
    if updated:
        job = ExportJob.objects.get(pk=job_id)
        audit_record(
            organization_id=job.organization_id,
            action="export.failed",
            target=job,
            details={"error": error[:500], "attempt": job.attempts},
        )


def _discard(key: str) -> None:
    if key:
        try:
            exports_storage().delete(key)
        except Exception:
            logger.exception("could not delete export file %s", key)


# --- cancel, recover, expire --------------------------------------------------------------


@transaction.atomic
def export_job_cancel(*, job: ExportJob, actor: Any = None, ip_address: str | None = None) -> ExportJob:
    """Cancel a pending or processing job; the worker notices at its next heartbeat."""
    updated = ExportJob.objects.filter(pk=job.pk, status__in=[ExportStatus.PENDING, ExportStatus.PROCESSING]).update(
        status=ExportStatus.CANCELLED, completed_at=timezone.now(), lease_expires_at=None
    )
    job.refresh_from_db()
    if not updated:
        raise ConflictError(
            f"This export is already {job.status}; only pending or processing exports can be cancelled."
        )
    audit_record(
        organization_id=job.organization_id,
        action="export.cancelled",
        actor=actor,
        target=job,
        ip_address=ip_address,
        details={"rows_done": job.rows_done},
    )
    return job


def exports_recover(*, now: dt.datetime | None = None, stale_pending_after: int = 300) -> dict[str, int]:
    """Re-queue jobs whose worker died (lease ran out) or whose task was lost; fail the
    ones out of attempts. Run every minute by the cluster; safe to run anywhere, any time."""
    now = now or timezone.now()
    counts = {"requeued": 0, "failed": 0}
    expired_leases = ExportJob.objects.filter(status=ExportStatus.PROCESSING, lease_expires_at__lt=now)
    for job in expired_leases.select_related("organization"):
        if job.attempts >= _max_attempts():
            with transaction.atomic():
                done = ExportJob.objects.filter(
                    pk=job.pk, status=ExportStatus.PROCESSING, lease_expires_at__lt=now
                ).update(
                    status=ExportStatus.FAILED,
                    completed_at=now,
                    lease_expires_at=None,
                    error=f"The worker writing this export stopped renewing its claim {job.attempts} times "
                    f"without recording a result (no heartbeat for {_lease_seconds()} s: the process was killed "
                    "or lost the database); giving up.",
                )
                if done:
                    audit_record(
                        organization_id=job.organization_id,
                        action="export.failed",
                        target=job,
                        details={"error": "worker lost", "attempts": job.attempts},
                    )
                    counts["failed"] += 1
            continue
        with transaction.atomic():
            ExportJob.objects.filter(pk=job.pk).update(enqueued_at=now)
            enqueue(RUN_TASK, str(job.pk), task_name=f"export-{job.pk}-retry{job.attempts}")
        counts["requeued"] += 1
    lost = ExportJob.objects.filter(
        status=ExportStatus.PENDING, enqueued_at__lt=now - dt.timedelta(seconds=stale_pending_after)
    )
    for job_id in lost.values_list("pk", flat=True):
        with transaction.atomic():
            ExportJob.objects.filter(pk=job_id).update(enqueued_at=now)
            enqueue(RUN_TASK, str(job_id), task_name=f"export-{job_id}-requeue")
        counts["requeued"] += 1
    return counts


def exports_expire(*, now: dt.datetime | None = None) -> int:
    """Delete files past their retention and mark their jobs ``expired``."""
    now = now or timezone.now()
    count = 0
    for job in ExportJob.objects.filter(status=ExportStatus.COMPLETED, expires_at__lt=now):
        with transaction.atomic():
            if not ExportJob.objects.filter(pk=job.pk, status=ExportStatus.COMPLETED).update(
                status=ExportStatus.EXPIRED
            ):
                continue
            audit_record(
                organization_id=job.organization_id,
                action="export.expired",
                target=job,
                details={"file_name": job.file_name},
            )
            transaction.on_commit(functools.partial(_discard, job.storage_key))
        count += 1
    return count
