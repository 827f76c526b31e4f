"""Reads about schedules and their runs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from scheduling.models import RunStatus, ScheduleRun


def schedule_runs_failed_count(*, since: dt.datetime, organization_ids: Collection[int] | None = None) -> int:
    """Schedule runs that ended ``failed`` since ``since``."""
    runs = ScheduleRun.objects.filter(status=RunStatus.FAILED, completed_at__gte=since)
    if organization_ids is not None:
        runs = runs.filter(schedule__organization_id__in=organization_ids)
    return runs.count()
