"""django-q2 entry points: load by id, call one service."""

from __future__ import annotations

from config.logs import log_context_task
from scheduling.certificates import certificates_expiring_notify
from scheduling.dispatch import schedules_dispatch
from scheduling.models import RUN_FINISHED, ScheduleRun
from scheduling.runner import deliveries_send, runs_recover, schedule_run_execute


@log_context_task
def execute_run(run_id: str) -> str:
    """Run one schedule run (safe to deliver twice: the claim lets only one worker in)."""
    status = ScheduleRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
    if status is None or status in RUN_FINISHED:
        return "nothing to do"
    run = schedule_run_execute(run_id=run_id)
    return run.status if run else "not run here"


@log_context_task
def tick() -> dict[str, int]:
    """Every minute: dispatch due schedules, retry due deliveries, recover lost runs, warn of
    expiring recipient certificates (one small query when there is nothing to do)."""
    return {
        **schedules_dispatch(),
        "delivered": deliveries_send(),
        "recovered": runs_recover(),
        "certificates_expiring": certificates_expiring_notify(),
    }
