"""Export filters: validation, relative periods and the case queryset they select.

Relative periods are resolved once, when a job is created, on the organization's calendar
(or the schedule's, for a scheduled run): "previous_month" of a job created on 1 March in
Europe/London is 1–28/29 February there, stored as plain dates.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from django.db.models import QuerySet

from cases.models import Case, CaseStatus, Severity
from config.errors import ApplicationError

PERIODS = (
    "previous_day",
    "last_7_days",
    "previous_week",
    "month_to_date",
    "previous_month",
    "previous_quarter",
    "year_to_date",
    "previous_year",
)
LIST_KEYS = {
    "status": CaseStatus.values,
    "severity": Severity.values,
    "category": None,
    "business_unit": None,
    "reference": None,  # case references, e.g. the admin's "Export selected cases"
}
MAX_REFERENCES = 10_000
KNOWN_KEYS = {"created_from", "created_to", "period", *LIST_KEYS}


def _first_of_quarter(day: dt.date) -> dt.date:
    return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def resolve_period(period: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """Inclusive (first, last) dates of a relative period seen from ``today`` (local)."""
    if period == "previous_day":
        day = today - dt.timedelta(days=1)
        return day, day
    if period == "last_7_days":  # the seven complete days before today
        return today - dt.timedelta(days=7), today - dt.timedelta(days=1)
    if period == "previous_week":  # ISO week, Monday to Sunday
        monday = today - dt.timedelta(days=today.isoweekday() - 1) - dt.timedelta(days=7)
        return monday, monday + dt.timedelta(days=6)
    if period == "month_to_date":
        return today.replace(day=1), today
    if period == "previous_month":
        last = today.replace(day=1) - dt.timedelta(days=1)
        return last.replace(day=1), last
    if period == "previous_quarter":
        end = _first_of_quarter(today) - dt.timedelta(days=1)
        return _first_of_quarter(end), end
    if period == "year_to_date":
        return dt.date(today.year, 1, 1), today
    if period == "previous_year":
        return dt.date(today.year - 1, 1, 1), dt.date(today.year - 1, 12, 31)
    raise ApplicationError(f"Unknown period {period!r}: use one of {', '.join(PERIODS)}.", field="filters")


def _error(message: str) -> ApplicationError:
    return ApplicationError(message, field="filters")


def _date(value: Any, key: str) -> dt.date | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise _error(f"{key} must be a date like 2026-01-31.")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise _error(f"{key} must be a date like 2026-01-31, not {value!r}.") from None


def filters_resolve(raw: Any, *, timezone: str, now: dt.datetime) -> dict[str, Any]:
    """Validate filters and resolve a relative period at ``now`` in ``timezone``.

    Returns the stored form: every key present, dates as ISO strings, lists de-duplicated.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise _error("filters must be an object.")
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        raise _error(f"Unknown filter {', '.join(map(repr, unknown))}: use {', '.join(sorted(KNOWN_KEYS))}.")
    resolved: dict[str, Any] = {}
    for key, allowed in LIST_KEYS.items():
        values = raw.get(key) or []
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise _error(f"{key} must be a list of strings.")
        if allowed is not None:
            bad = [v for v in values if v not in allowed]
            if bad:
                raise _error(f"Unknown {key} {', '.join(map(repr, bad))}: use {', '.join(allowed)}.")
        if len(values) > MAX_REFERENCES:
            raise _error(f"{key} lists more than {MAX_REFERENCES:,} values.")
        resolved[key] = list(dict.fromkeys(values))
    period = raw.get("period")
    created_from, created_to = (
        _date(raw.get("created_from"), "created_from"),
        _date(raw.get("created_to"), "created_to"),
    )
    if period not in (None, ""):
        if period not in PERIODS:
            raise _error(f"Unknown period {period!r}: use one of {', '.join(PERIODS)}.")
        if created_from or created_to:
            raise _error("Give either a period or created_from/created_to, not both.")
        today = now.astimezone(zoneinfo.ZoneInfo(timezone)).date()
        created_from, created_to = resolve_period(period, today)
    else:
        period = None
    if created_from and created_to and created_from > created_to:
        raise _error(f"created_from ({created_from}) is after created_to ({created_to}).")
    resolved["created_from"] = created_from.isoformat() if created_from else None
    resolved["created_to"] = created_to.isoformat() if created_to else None
    resolved["period"] = period
    return resolved


def cases_filtered(*, organization_id: int, filters: dict[str, Any], timezone: str) -> QuerySet[Case]:
    """The organization's cases that match resolved filters (dates are local calendar days)."""
    zone = zoneinfo.ZoneInfo(timezone)
    cases = Case.objects.filter(organization_id=organization_id)
    if filters.get("created_from"):
        start = dt.datetime.combine(dt.date.fromisoformat(filters["created_from"]), dt.time(), tzinfo=zone)
        cases = cases.filter(created_at__gte=start)
    if filters.get("created_to"):
        end_day = dt.date.fromisoformat(filters["created_to"]) + dt.timedelta(days=1)
        cases = cases.filter(created_at__lt=dt.datetime.combine(end_day, dt.time(), tzinfo=zone))
    for key in LIST_KEYS:
        if filters.get(key):
            cases = cases.filter(**{f"{key}__in": filters[key]})
    return cases


def filters_describe(filters: dict[str, Any]) -> str:
    """One line for humans: 'Created 2026-01-01 to 2026-03-31 · status: open, closed'."""
    parts = []
    if filters.get("created_from") or filters.get("created_to"):
        span = f"{filters.get('created_from') or 'the beginning'} to {filters.get('created_to') or 'today'}"
        parts.append(f"Created {span}" + (f" ({filters['period'].replace('_', ' ')})" if filters.get("period") else ""))
    for key in LIST_KEYS:
        if filters.get(key):
            parts.append(f"{key.replace('_', ' ')}: {', '.join(filters[key])}")
    return " · ".join(parts) or "All cases"
