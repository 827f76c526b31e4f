"""Schedules for tests, created through the service (validation, next_run_at, audit)."""

from __future__ import annotations

from typing import Any

from scheduling.models import ReportSchedule
from scheduling.services import schedule_create


def make_schedule(organization: Any, owner: Any, **overrides: Any) -> ReportSchedule:
    data: dict[str, Any] = {
        "name": "Monthly board pack",
        "dataset": "cases",
        "format": "xlsx",
        "filters": {"period": "previous_month"},
        "columns": {},
        "schedule": {"kind": "monthly", "time": "08:00", "day_of_month": 1},
        "timezone": "Europe/London",
        "delivery_method": "email",
        "recipients": ["audit@example.com", "board@example.com"],
    }
    data.update(overrides)
    return schedule_create(organization=organization, owner=owner, data=data)
