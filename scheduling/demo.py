"""Demo schedules: the monthly board pack and the weekly hotline digest."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from organizations.models import Organization
from scheduling.models import ReportSchedule
from scheduling.services import schedule_create


@transaction.atomic
def schedules_seed(*, organization: Organization, owner: Any) -> int:
    """Create the demo schedules when the organization has none; returns how many."""
    if ReportSchedule.objects.filter(organization=organization).exists():
        return 0
    domain = f"{organization.slug}.example.com"
    demos = [
        {
            "name": "Monthly board pack",
            "description": "Every case of the previous month, for the audit committee.",
            "dataset": "cases",
            "format": "xlsx",
            "filters": {"period": "previous_month"},
            "columns": {},
            "schedule": {"kind": "monthly", "time": "08:00", "day_of_month": 1},
            "timezone": organization.timezone,
            "delivery_method": "email",
            "recipients": [f"audit@{domain}", f"board@{domain}"],
        },
        {
            "name": "Weekly hotline digest",
            "description": "Last week's hotline intake.",
            "dataset": "cases",
            "format": "csv",
            "filters": {"period": "previous_week"},
            "columns": {},
            "schedule": {"kind": "weekly", "time": "07:30", "day_of_week": 1},
            "timezone": organization.timezone,
            "delivery_method": "email_and_storage",
            "recipients": [f"compliance@{domain}"],
            "storage_path": "reports/weekly",
        },
    ]
    for data in demos:
        schedule_create(organization=organization, owner=owner, data=data)
    return len(demos)
