"""What ``bench/load.py`` found in the database, the storage and the mailbox after the run:
latencies of the scheduled runs, and every duplicate and every loss it can see."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

from bench.load_clients import percentile
from bench.load_procs import MailSink


def in_flight(pids: list[int]) -> list[dict[str, Any]]:
    """The exports and runs a set of worker processes held (read just before they are killed)."""
    from exports.models import ExportJob, ExportStatus

    jobs = ExportJob.objects.filter(status=ExportStatus.PROCESSING, worker_pid__in=pids)
    return [
        {"job": str(j.pk), "org": j.organization.slug, "source": j.source, "rows_done": j.rows_done}
        for j in jobs.select_related("organization")
    ]


def processing_by_pid(*, in_runs: bool = False) -> Counter[int]:
    """Exports processing now, counted by the worker process that holds them; with
    ``in_runs`` only those a worker writes inside a scheduled run it holds (``running``)."""
    from exports.models import ExportJob, ExportStatus
    from scheduling.models import RunStatus

    jobs = ExportJob.objects.filter(status=ExportStatus.PROCESSING)
    if in_runs:
        jobs = jobs.filter(schedule_runs__status=RunStatus.RUNNING)
    return Counter(jobs.values_list("worker_pid", flat=True))  # type: ignore[arg-type]


def runs_dispatched(schedule_ids: list[int], slot: dt.datetime) -> int:
    """Runs the dispatcher has made for the slot so far."""
    from scheduling.models import ScheduleRun

    return ScheduleRun.objects.filter(schedule_id__in=schedule_ids, scheduled_for=slot).count()


def settled(api_ids: list[str], schedule_ids: list[int], slot: dt.datetime) -> tuple[int, int]:
    """(API exports not finished, scheduled runs of the slot not finished or not yet made)."""
    from exports.models import TERMINAL_STATUSES, ExportJob
    from scheduling.models import RUN_FINISHED, DeliveryStatus, ScheduleRun

    open_jobs = ExportJob.objects.filter(pk__in=api_ids).exclude(status__in=TERMINAL_STATUSES).count()
    runs = ScheduleRun.objects.filter(schedule_id__in=schedule_ids, scheduled_for=slot, trigger="schedule")
    finished = runs.filter(status__in=RUN_FINISHED).exclude(deliveries__status=DeliveryStatus.PENDING).distinct()
    return open_jobs, len(schedule_ids) - finished.count()


def _seconds(later: dt.datetime | None, earlier: dt.datetime | None) -> float | None:
    return None if later is None or earlier is None else (later - earlier).total_seconds()


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 0.5),
        "p99": percentile(values, 0.99),
        "max": max(values) if values else float("nan"),
    }


def collect(
    *,
    api_ids: list[str],
    schedule_ids: list[int],
    slot: dt.datetime,
    since: dt.datetime,
    users: list[Any],
    sink: MailSink,
    storage_root: Path,
    killed_jobs: list[str],
) -> dict[str, Any]:
    """Every figure of the report that comes from Dossier's tables, files and emails."""
    from audit.models import AuditEvent
    from exports.models import ExportJob, ExportSource, ExportStatus
    from scheduling.models import Delivery, DeliveryStatus, ReportSchedule, RunStatus, ScheduleRun

    out: dict[str, Any] = {}
    api_jobs = list(ExportJob.objects.filter(pk__in=api_ids).select_related("organization"))
    out["api_status"] = dict(Counter(j.status for j in api_jobs))
    out["api_lost"] = [
        {"job": str(j.pk), "org": j.organization.slug, "status": j.status, "error": j.error[:200]}
        for j in api_jobs
        if j.status != ExportStatus.COMPLETED
    ]
    # Jobs the API created for our members whose client never got a 202 (an error reply
    # after the row was committed): a retrying client would ask twice.
    made = ExportJob.objects.filter(source=ExportSource.API, requested_by__in=users, created_at__gte=since)
    out["api_unacknowledged"] = made.exclude(pk__in=api_ids).count()

    schedules = {s.pk: s for s in ReportSchedule.objects.filter(pk__in=schedule_ids).select_related("organization")}
    runs = list(
        ScheduleRun.objects.filter(schedule_id__in=schedule_ids, trigger="schedule").select_related("export_job")
    )
    slot_runs = [r for r in runs if r.scheduled_for == slot]
    deliveries = list(Delivery.objects.filter(run__in=slot_runs))
    by_run: dict[Any, list[Delivery]] = {}
    for d in deliveries:
        by_run.setdefault(d.run_id, []).append(d)

    start_lat, dispatch_lat, delivered_lat, small_start, small_done = [], [], [], [], []
    for run in slot_runs:
        org = schedules[run.schedule_id].organization.slug
        # The report starts when its export does (a run that waits for a slot under its
        # organization's cap steps back and is claimed again when the export ends, so the
        # run's own started_at is its last claim, not its start).
        job = run.export_job
        if job is not None and (s := _seconds(job.started_at, slot)) is not None:
            start_lat.append(s)
        if (s := _seconds(run.created_at, slot)) is not None:
            dispatch_lat.append(s)
        sent = [d.sent_at for d in by_run.get(run.pk, []) if d.sent_at]
        done = _seconds(max(sent), slot) if sent else None
        if done is not None:
            delivered_lat.append(done)
        if org == "load-small":
            if job is not None and (s := _seconds(job.started_at, slot)) is not None:
                small_start.append(s)
            if done is not None:
                small_done.append(done)
    out["dispatch"] = _stats(dispatch_lat)
    out["start"] = _stats(start_lat)
    out["delivered"] = _stats(delivered_lat)
    out["small_export_start_max"] = max(small_start) if small_start else float("nan")
    out["small_delivered_max"] = max(small_done) if small_done else float("nan")
    out["runs_status"] = dict(Counter(r.status for r in slot_runs))
    out["run_attempts_max"] = max((r.attempts for r in slot_runs), default=0)

    # --- duplicates ---------------------------------------------------------------------------
    dup: dict[str, int] = {}
    per_slot = Counter((r.schedule_id, r.scheduled_for) for r in runs)
    dup["runs for one schedule and slot"] = sum(n - 1 for n in per_slot.values() if n > 1)
    per_schedule = Counter(r.schedule_id for r in runs if r.status in (RunStatus.SUCCESS, RunStatus.PARTIAL))
    dup["completed runs of one schedule"] = sum(n - 1 for n in per_schedule.values() if n > 1)
    sched_jobs = ExportJob.objects.filter(
        source=ExportSource.SCHEDULE, organization__in={s.organization_id for s in schedules.values()}
    ).filter(created_at__gte=since)
    dup["scheduled exports beyond one per run"] = max(0, sched_jobs.count() - len(slot_runs))
    job_ids = [str(j) for j in api_ids] + [str(r.export_job_id) for r in slot_runs if r.export_job_id]
    completions = Counter(
        AuditEvent.objects.filter(action="export.completed", target_id__in=job_ids).values_list("target_id", flat=True)
    )
    dup["export jobs with two completion events"] = sum(1 for n in completions.values() if n > 1)
    sent_events = Counter(
        (e.target_id, e.details.get("recipient"))
        for e in AuditEvent.objects.filter(action="delivery.sent", target_id__in=[str(r.pk) for r in slot_runs])
    )
    dup["deliveries recorded sent twice"] = sum(n - 1 for n in sent_events.values() if n > 1)
    reports_to = {s.recipients[0].lower() for s in schedules.values() if s.recipients}  # not the owners' notices
    dup["emails received twice (same recipient)"] = sum(
        n - 1 for rcpt, n in sink.by_recipient.items() if n > 1 and rcpt in reports_to
    )
    dup["emails received twice (same delivery)"] = sum(n - 1 for n in sink.by_delivery.values() if n > 1)
    files: Counter[str] = Counter()
    if storage_root.exists():
        for path in storage_root.rglob("*"):
            if path.is_file():
                files[path.parent.name] += 1
    dup["storage copies beyond one per schedule"] = sum(n - 1 for n in files.values() if n > 1)
    out["duplicates"] = dup

    # --- losses -------------------------------------------------------------------------------
    # A scheduled report counts once however many of its traces are missing: its run, the
    # run's success, its delivery rows, the email in the sink, the copy in storage.
    run_of = {r.schedule_id: r for r in slot_runs}
    undelivered: dict[str, int] = Counter()
    for pk in schedule_ids:
        schedule, slot_run = schedules[pk], run_of.get(pk)
        missing = []
        if slot_run is None:
            missing.append("no run")
        elif slot_run.status != RunStatus.SUCCESS:
            missing.append(f"run {slot_run.status}")
        if slot_run is not None and any(d.status != DeliveryStatus.SENT for d in by_run.get(slot_run.pk, [])):
            missing.append("delivery not sent")
        if schedule.recipients and schedule.recipients[0].lower() not in sink.by_recipient:
            missing.append("no email")
        if f"s{_number(schedule)}" not in files:
            missing.append("no storage copy")
        if missing:
            undelivered[", ".join(missing)] += 1
    # An export still pending or processing at the deadline is not lost but unfinished (it
    # is in its organization's line); the table says which, and a run cut short by its
    # deadline is not a result: run it again with a longer --seconds.
    in_line = (ExportStatus.PENDING, ExportStatus.PROCESSING)
    out["api_unfinished"] = sum(1 for j in out["api_lost"] if j["status"] in in_line)
    out["lost"] = {
        "API exports (202) failed or cancelled": len(out["api_lost"]) - out["api_unfinished"],
        "scheduled reports not delivered": sum(undelivered.values()),
    }
    out["lost_detail"] = dict(undelivered)
    out["lost_runs"] = [
        {
            "schedule": r.schedule_id,
            "org": schedules[r.schedule_id].organization.slug,
            "status": r.status,
            "attempts": r.attempts,
            "lease_expires_at": r.lease_expires_at.isoformat() if r.lease_expires_at else None,
            "export": r.export_job.status if r.export_job else None,
            "error": r.error[:200],
        }
        for r in slot_runs
        if r.status != RunStatus.SUCCESS
    ]

    # --- throughput ---------------------------------------------------------------------------
    all_jobs = list(ExportJob.objects.filter(pk__in=job_ids))
    completed = [j for j in all_jobs if j.status == ExportStatus.COMPLETED and j.completed_at]
    out["completed_exports"] = len(completed)
    if completed:
        first = min(j.created_at for j in all_jobs)
        last = max(j.completed_at for j in completed if j.completed_at)
        out["span_minutes"] = (last - first).total_seconds() / 60
        out["jobs_per_minute"] = len(completed) / max(out["span_minutes"], 1e-9)
        by_minute = Counter(j.completed_at.replace(second=0, microsecond=0) for j in completed if j.completed_at)
        out["peak_jobs_per_minute"] = max(by_minute.values())
        out["rows_exported"] = sum(j.row_count or 0 for j in completed)
    out["job_attempts"] = dict(Counter(j.attempts for j in all_jobs))
    killed = list(ExportJob.objects.filter(pk__in=killed_jobs))
    out["killed_jobs"] = [
        {"status": j.status, "attempts": j.attempts, "source": j.source, "completed_at": j.completed_at} for j in killed
    ]
    return out


def _number(schedule: Any) -> str:
    return str(schedule.name.rsplit("#", 1)[1])
