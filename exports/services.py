"""Export jobs: create, run (claim → write → publish), cancel, recover, expire.

Nothing lost, nothing twice: a worker *claims* a job with a conditional UPDATE and a lease
it renews while writing. A job whose lease ran out (worker killed) is handed out again, or
failed after ``EXPORT_MAX_ATTEMPTS``; a second delivery of the same task finds the job
claimed or finished and does nothing. The file is written to a temporary file and only then
saved to storage under a server-generated key, so a partial file is never visible.

Fair shares: at most ``EXPORT_MAX_CONCURRENT_PER_ORG`` exports of one organization are
``processing`` at once, decided inside the claim (see ``_claim``), and they start in the
order they were created: a job may start only when its organization's exports processing
(with a live lease) plus its pending exports created before it leave a slot free. A job
that must wait stays ``pending`` without using an attempt; ``export_slots_fill`` queues
the oldest waiting jobs whenever a slot frees (a job finishes, fails, is cancelled or
handed back) and every minute from ``exports_recover``.

Graceful stop: a worker asked to stop (SIGTERM, see ``config.worker``) ends the export at
the next progress report, hands the job back (``pending``, lease cleared, the attempt not
counted) and queues it again for another worker.
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
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages
from django.db import OperationalError, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from audit.services import audit_record
from config.db import db_write_retry
from config.errors import ApplicationError, ConflictError, ForbiddenError
from config.logs import log_context_from
from config.tasks import enqueue
from config.worker import WorkerStopping, worker_stop_requested
from exports.columns import columns_resolve
from exports.columns_base import IdentityMode
from exports.filters import cases_filtered, filters_describe, filters_resolve
from exports.forked import forked_write
from exports.models import Dataset, ExportFormat, ExportJob, ExportSource, ExportStatus
from exports.pushdown import copy_write, pushdown_enabled
from exports.rows import RowPlan, collecting_rarely
from exports.signals import export_job_finished
from exports.tempfiles import temporary_dir
from exports.writers.base import ColumnBlock
from organizations.models import Organization
from organizations.selectors import identity_access_for
from tagging.selectors import tag_slots_for

logger = logging.getLogger(__name__)

RUN_TASK = "exports.tasks.run_export"
# A task queued this long ago for a job whose slot is free has most likely been lost.
LOST_TASK_AFTER = dt.timedelta(seconds=60)


class ExportCancelled(Exception):
    """Raised inside the writer when the job was cancelled or its lease was lost."""


def exports_storage() -> Any:
    """The storage every export file lives in (local folder or S3)."""
    return storages["exports"]


def _lease_seconds() -> int:
    return int(getattr(settings, "EXPORT_LEASE_SECONDS", 120))


def _max_attempts() -> int:
    return int(getattr(settings, "EXPORT_MAX_ATTEMPTS", 3))


def _max_concurrent() -> int:
    return max(1, int(getattr(settings, "EXPORT_MAX_CONCURRENT_PER_ORG", 2)))


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


def _organization_lock(organization_id: int) -> None:
    """Serialise claims and slot fills of one organization until the transaction ends.

    PostgreSQL: the organization's row, ``FOR NO KEY UPDATE`` (inserting rows that refer to
    it is not blocked). SQLite: nothing to do, an IMMEDIATE transaction holds the
    database's write lock from BEGIN.
    """
    list(Organization.objects.select_for_update(no_key=True).filter(pk=organization_id).values_list("pk"))


def _slot_free(*, organization_id: int, job_id: str, created_at: dt.datetime, now: dt.datetime) -> bool:
    """Whether the job's turn has come: its organization's exports processing with a live
    lease, plus its pending exports created before it, leave a slot under the cap."""
    others = ExportJob.objects.filter(organization_id=organization_id).exclude(pk=job_id)
    earlier = Q(created_at__lt=created_at) | Q(created_at=created_at, pk__lt=job_id)
    taken = others.aggregate(
        processing=Count("pk", filter=Q(status=ExportStatus.PROCESSING, lease_expires_at__gte=now)),
        ahead=Count("pk", filter=Q(earlier, status=ExportStatus.PENDING, attempts__lt=_max_attempts())),
    )
    return bool(taken["processing"] + taken["ahead"] < _max_concurrent())


def _claim(job_id: str, owner: str) -> bool:
    """Take the job if it is pending (or processing with a lease that ran out), has attempts
    left, and its turn has come under the organization's cap.

    Decided in one transaction holding the organization's lock, so it holds with any number
    of workers. A job that has to wait is left ``pending`` (one whose worker died goes back
    to ``pending``) with no task (``enqueued_at`` empty) and no attempt counted;
    ``export_slots_fill`` queues it again when its turn comes.
    """
    with transaction.atomic():
        row = ExportJob.objects.filter(pk=job_id).values("organization_id", "created_at").first()
        if row is None:
            return False
        _organization_lock(row["organization_id"])
        now = timezone.now()
        claimable = ExportJob.objects.filter(
            Q(status=ExportStatus.PENDING) | Q(status=ExportStatus.PROCESSING, lease_expires_at__lt=now),
            pk=job_id,
            attempts__lt=_max_attempts(),
        )
        if not claimable.exists():
            return False
        if not _slot_free(organization_id=row["organization_id"], job_id=job_id, created_at=row["created_at"], now=now):
            claimable.update(
                status=ExportStatus.PENDING, lease_owner="", lease_expires_at=None, worker_pid=None, enqueued_at=None
            )
            # An earlier job may be waiting without a task while a slot is free: queue it.
            transaction.on_commit(functools.partial(_slots_fill_quietly, row["organization_id"]))
            return False
        return bool(
            claimable.update(
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


def export_slots_fill(*, organization_id: int, now: dt.datetime | None = None) -> int:
    """Queue the organization's oldest pending exports, up to its free slots; returns how
    many were queued.

    Called when one of its exports leaves its slot or a claim had to wait, and every minute
    by ``exports_recover``. A job at the head of the line with no task (``enqueued_at``
    empty) is queued; one whose task was queued more than ``LOST_TASK_AFTER`` ago and has
    still not run while its slot is free was most likely lost (the Redis broker delivers at
    most once: a killed cluster takes the tasks it had fetched with it), so it is queued
    again rather than holding its whole organization's line.
    A second task for a job is harmless: the claim lets one through.
    """
    with transaction.atomic():
        _organization_lock(organization_id)
        now = now or timezone.now()
        jobs = ExportJob.objects.filter(organization_id=organization_id)
        free = _max_concurrent() - jobs.filter(status=ExportStatus.PROCESSING, lease_expires_at__gte=now).count()
        if free <= 0:
            return 0
        line = jobs.filter(status=ExportStatus.PENDING, attempts__lt=_max_attempts()).order_by("created_at", "pk")
        lost_before = now - LOST_TASK_AFTER
        queued = 0
        for job_id, enqueued_at in line.values_list("pk", "enqueued_at")[:free]:
            stale = Q(enqueued_at=None) if enqueued_at is None else Q(enqueued_at__lt=lost_before)
            if jobs.filter(stale, pk=job_id).update(enqueued_at=now):
                suffix = "slot" if enqueued_at is None else "lost"
                enqueue(RUN_TASK, str(job_id), task_name=f"export-{job_id}-{suffix}")
                queued += 1
        return queued


def _slots_fill_quietly(organization_id: int) -> None:
    try:
        export_slots_fill(organization_id=organization_id)
    except Exception:  # the minute's exports_recover fills the slot instead
        logger.exception("queueing the next exports of organization %s failed", organization_id)


def _left_slot(job_id: str, organization_id: int, status: str) -> None:
    """After a job left its slot (on commit): let the next ones in; tell listeners it ended."""
    _slots_fill_quietly(organization_id)
    if status in (ExportStatus.COMPLETED, ExportStatus.FAILED, ExportStatus.CANCELLED):
        for receiver, result in export_job_finished.send_robust(
            sender=ExportJob, job_id=job_id, organization_id=organization_id, status=status
        ):
            if isinstance(result, Exception):
                logger.error("export %s: %r failed on export_job_finished: %s", job_id, receiver, result)


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


class _Progress:
    """The writer's progress callback: renews the lease, and stops for a stopping worker."""

    def __init__(self, report: Callable[[int], None]) -> None:
        self.report = report
        self.total: int | None = None

    def __call__(self, rows_done: int) -> None:
        self.report(rows_done)
        # Between chunks: a stopping worker hands the job back, unless the file is complete.
        if worker_stop_requested() and (self.total is None or rows_done < self.total):
            raise WorkerStopping


def _progress(
    job_id: str, owner: str, observer: Callable[[int], None] | None = None, every_seconds: float = 2.0
) -> _Progress:
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

    return _Progress(report)


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
    from exports.writers import get_writer

    writer = get_writer(job.format)
    plan = RowPlan(
        dataset=job.dataset,
        options=job.columns,
        snapshot=job.tag_snapshot,
        timezone=org.timezone,
        now=generated,
        pseudonym_key=bytes(org.pseudonym_key),
        datetimes_as_text=writer.datetimes_as_text,
    )
    total = plan.count(cases)
    if on_total:
        on_total(total)
    about = _about(job, generated)
    # The fast ways first, each None where it does not apply: the whole row in PostgreSQL's
    # SQL, then on SQLite parts written by forked processes; else this process alone.
    file: dict[str, Any] = {
        "plan": plan,
        "cases": cases,
        "format": job.format,
        "stream": stream,
        "total": total,
        "about": about,
        "on_progress": on_progress,
    }
    if pushdown_enabled() and (written := copy_write(**file, timezone=org.timezone, now=generated)) is not None:
        return written

    def write(blocks: Iterable[ColumnBlock], out: Any, progress: Callable[[int], None] | None) -> int:
        return writer.write_blocks(columns=plan.columns, blocks=blocks, stream=out, about=about, on_progress=progress)

    def blocks() -> Iterator[ColumnBlock]:
        count = 0
        for block in plan.blocks(cases):
            count += len(block[0]) if block else 0
            yield block
        # Writers read ``about`` after the last row (XLSX writes it as its last sheet).
        about.append(("Rows", f"{count:,}"))

    with collecting_rarely():  # rows made in Python: by forked processes on SQLite, else here
        if (written := forked_write(**file, write=write)) is not None:
            return written
        return write(blocks(), stream, on_progress)


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


class _FinishedFile(File):  # type: ignore[type-arg]
    """The finished export in its temporary file. A storage on this machine moves it into
    place (``FileSystemStorage`` renames a file that has a temporary path, instead of
    copying a file of gigabytes); any other storage reads it."""

    def __init__(self, file: Any, *, name: str, path: Path) -> None:
        super().__init__(file, name=name)
        self.path = path

    def temporary_file_path(self) -> str:
        return str(self.path)


class _HashingFile:
    """``file``, hashing what is written to it as it goes: the file's SHA-256 without
    reading it back, for writers that only append (CSV, JSONL, Parquet). A writer that
    moves back (a ZIP rewriting a header) or uses anything else of the file leaves
    ``sha256()`` None: the file is then hashed from disk."""

    _PLAIN = frozenset({"flush", "tell", "closed", "name", "mode", "writable", "seekable", "readable", "close"})

    def __init__(self, file: Any) -> None:
        self.file = file
        self._digest: Any = hashlib.sha256()
        self._size = 0

    def write(self, data: Any) -> int:
        written = self.file.write(data)
        if self._digest is not None:
            self._digest.update(data)
            self._size += memoryview(data).nbytes
        return int(written)

    def seek(self, offset: int, whence: int = 0) -> int:
        position = int(self.file.seek(offset, whence))
        if position != self._size:
            self._digest = None
        return position

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # hasattr(…, "__fspath__") and the like: not a file of a path
            raise AttributeError(name)
        value = getattr(self.file, name)
        if name in self._PLAIN or not callable(value):
            return value

        def used(*args: Any, **kwargs: Any) -> Any:  # looked up (hasattr) is not used
            self._digest = None
            return value(*args, **kwargs)

        return used

    def sha256(self) -> tuple[str, int] | None:
        return None if self._digest is None else (self._digest.hexdigest(), self._size)


def _hash_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _run_log_fields(*, job_id: str, **_: Any) -> dict[str, Any]:
    """The job and its organization, on every log line written while it runs."""
    slug = ExportJob.objects.filter(pk=job_id).values_list("organization__slug", flat=True).first()
    return {"job_id": job_id, "organization": slug}


@log_context_from(_run_log_fields)
def export_job_run(
    *, job_id: str, on_progress: Callable[[int], None] | None = None, on_total: Callable[[int], None] | None = None
) -> ExportJob | None:
    """Claim and run one job to a published file (the worker's and the CLI's entry point).

    Once claimed, the job always ends in a recorded state: a file, ``failed`` with the
    exception that stopped it (written with retries, see ``config.db``), or — the worker
    being asked to stop — ``pending`` again and queued for another worker. Returns None
    when it did not run here (taken, finished, out of attempts, or waiting for its turn
    under the organization's cap: still ``pending`` then).
    """
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if worker_stop_requested():  # a stopping worker takes no new work: pass it on
        db_write_retry(lambda: _requeue_pending(job_id), what=f"export {job_id} hand-over")
        return None
    if not db_write_retry(lambda: _claim(job_id, owner), what=f"export {job_id} claim"):
        return None  # already taken, finished, cancelled, out of attempts, or waiting its turn
    tmp_path: Path | None = None
    stored_key = ""
    try:
        job = ExportJob.objects.select_related("organization", "requested_by").get(pk=job_id)
        generated = timezone.now()
        tmp_dir = temporary_dir()
        # Closed by the ``with handle`` below; kept (delete=False) until the file is in storage.
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="dossier-export-", suffix=f".{job.format}", dir=tmp_dir, delete=False
        )
        tmp_path = Path(handle.name)
        with handle:
            progress = _progress(job_id, owner, on_progress)

            def total(count: int) -> None:
                progress.total = count
                db_write_retry(lambda: _heartbeat(job_id, owner, 0, count), what=f"export {job_id} start")
                if on_total is not None:
                    on_total(count)

            hashing = _HashingFile(handle)
            rows = export_write(job, hashing, on_progress=progress, on_total=total, generated=generated)
        db_write_retry(lambda: _heartbeat(job_id, owner, rows), what=f"export {job_id} progress")
        sha256, size = hashing.sha256() or _hash_file(tmp_path)
        key = f"{job.organization.slug}/{job.pk}/{uuid.uuid4().hex}.{job.format}"
        with tmp_path.open("rb") as data:
            stored_key = exports_storage().save(key, _FinishedFile(data, name=key, path=tmp_path))
        return db_write_retry(
            lambda: _publish(job, owner, stored_key, rows, sha256, size, generated), what=f"export {job_id} publish"
        )
    except ExportCancelled:
        _discard(stored_key)
        logger.info("export %s stopped: cancelled or lease lost", job_id)
        return None
    except WorkerStopping:
        _discard(stored_key)
        released = db_write_retry(lambda: _release(job_id, owner), what=f"export {job_id} release")
        logger.info(
            "export %s handed back, the worker is stopping (%s)", job_id, "queued again" if released else "not ours"
        )
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
    transaction.on_commit(functools.partial(_left_slot, str(job.pk), job.organization_id, ExportStatus.COMPLETED))
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
        transaction.on_commit(functools.partial(_left_slot, job_id, job.organization_id, ExportStatus.FAILED))


@transaction.atomic
def _release(job_id: str, owner: str) -> bool:
    """Hand a job back from a stopping worker: ``pending``, lease cleared, this attempt not
    counted (it was cut short, not failed), queued again for another worker."""
    updated = ExportJob.objects.filter(pk=job_id, lease_owner=owner, status=ExportStatus.PROCESSING).update(
        status=ExportStatus.PENDING,
        lease_owner="",
        lease_expires_at=None,
        worker_pid=None,
        started_at=None,
        rows_done=0,
        attempts=F("attempts") - 1,
        enqueued_at=timezone.now(),
    )
    if not updated:
        return False  # cancelled or taken over meanwhile
    job = ExportJob.objects.get(pk=job_id)
    audit_record(
        organization_id=job.organization_id,
        action="export.released",
        target=job,
        details={"reason": "worker stopping", "attempts": job.attempts},
    )
    enqueue(RUN_TASK, job_id, task_name=f"export-{job_id}-released")
    transaction.on_commit(functools.partial(_left_slot, job_id, job.organization_id, ExportStatus.PENDING))
    return True


@transaction.atomic
def _requeue_pending(job_id: str) -> bool:
    """Queue a pending job again (for another worker); False when it is not pending."""
    if not ExportJob.objects.filter(pk=job_id, status=ExportStatus.PENDING).update(enqueued_at=timezone.now()):
        return False
    enqueue(RUN_TASK, job_id, task_name=f"export-{job_id}-handover")
    return True


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
    transaction.on_commit(functools.partial(_left_slot, str(job.pk), job.organization_id, ExportStatus.CANCELLED))
    return job


def exports_recover(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Re-queue jobs whose worker died (lease ran out) or whose task was lost, and jobs
    waiting for a slot of their organization that is free; fail the ones out of attempts.
    Run every minute by the cluster; safe to run anywhere, any time."""
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
                    transaction.on_commit(
                        functools.partial(_left_slot, str(job.pk), job.organization_id, ExportStatus.FAILED)
                    )
                    counts["failed"] += 1
            continue
        with transaction.atomic():
            ExportJob.objects.filter(pk=job.pk).update(enqueued_at=now)
            enqueue(RUN_TASK, str(job.pk), task_name=f"export-{job.pk}-retry{job.attempts}")
        counts["requeued"] += 1
    # Pending jobs with no task, or whose task seems lost (Redis delivers at most once), are
    # queued by their organization's line as their turn comes and a slot is free (normally
    # the job that freed it did this already); a lost task further back waits its turn.
    waiting = ExportJob.objects.filter(
        Q(enqueued_at=None) | Q(enqueued_at__lt=now - LOST_TASK_AFTER), status=ExportStatus.PENDING
    )
    for organization_id in waiting.values_list("organization_id", flat=True).distinct().order_by():
        counts["requeued"] += export_slots_fill(organization_id=organization_id, now=now)
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
