"""The dispatcher: every minute, turn due schedules into runs — once per slot.

Exactly once with any number of dispatchers (several qcluster machines): each due schedule
is handled in its own transaction that inserts the run for its slot; the unique constraint
on (schedule, scheduled_for) makes a second dispatcher's insert a no-op, and on PostgreSQL
``SELECT … FOR UPDATE SKIP LOCKED`` keeps dispatchers from even trying the same schedule.
Slots missed while nothing was dispatching are coalesced into one run of the latest slot
with ``missed_slots``. A broken schedule is logged and skipped; the others still run.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from audit.services import audit_record
from config.tasks import enqueue
from scheduling.models import ReportSchedule, RunTrigger, ScheduleRun
from scheduling.services import RUN_TASK
from scheduling.timemath import next_run, slots_between

logger = logging.getLogger(__name__)


def _dispatch_one(schedule_id: int, now: dt.datetime) -> ScheduleRun | None:
    with transaction.atomic():
        due = ReportSchedule.objects.filter(pk=schedule_id, is_active=True, next_run_at__lte=now)
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        schedule = due.first()
        if schedule is None or schedule.next_run_at is None:
            return None  # another dispatcher has it, or it was paused meanwhile
        first_due = schedule.next_run_at
        slots = slots_between(schedule.schedule, schedule.timezone, first_due - dt.timedelta(microseconds=1), now)
        slot = slots[-1] if slots else first_due
        run = None
        try:
            with transaction.atomic():
                run = ScheduleRun.objects.create(
                    schedule=schedule,
                    scheduled_for=slot,
                    trigger=RunTrigger.SCHEDULE,
                    missed_slots=max(0, len(slots) - 1),
                )
        except IntegrityError:
            logger.info("schedule %s slot %s already dispatched elsewhere", schedule_id, slot)
        schedule.next_run_at = next_run(schedule.schedule, schedule.timezone, max(now, slot))
        schedule.save(update_fields=["next_run_at", "updated_at"])
        if run is not None:
            audit_record(
                organization_id=schedule.organization_id,
                action="schedule.run",
                target=schedule,
                details={
                    "run": str(run.pk),
                    "scheduled_for": slot,
                    "missed_slots": run.missed_slots,
                    "trigger": "schedule",
                },
            )
            enqueue(RUN_TASK, str(run.pk), task_name=f"schedule-run-{run.pk}")
        return run


def schedules_dispatch(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Create (and queue) the run of every due schedule; returns counts."""
    now = now or timezone.now()
    counts = {"dispatched": 0, "errors": 0}
    due_ids = list(
        ReportSchedule.objects.filter(is_active=True, next_run_at__lte=now)
        .order_by("next_run_at")
        .values_list("pk", flat=True)
    )
    for schedule_id in due_ids:
        try:
            if _dispatch_one(schedule_id, now) is not None:
                counts["dispatched"] += 1
        except Exception:
            counts["errors"] += 1
            logger.exception("dispatching schedule %s failed; the others go on", schedule_id)
    return counts
