"""The board report's numbers, aggregated in the database (a dozen queries, whatever the size).

Definitions (the report's notes page repeats them for the reader):

- The *period* is ``period_start``..``period_end`` inclusive, as dates in the organization's
  timezone; its end instant is midnight after ``period_end`` there. With no end, the end
  instant is ``as_of`` (default: now); with no start, the period has no lower bound.
- ``cases`` arrives already filtered (organization, status, category, created dates…).
  A case is *new in period* when created in the period and *closed in period* when its
  ``closed_at`` falls in it; it is *open at period end* when created before the end instant
  and not closed by then. A case whose status is closed but has no ``closed_at`` counts as
  closed (at an unknown time): it is never open, and never closed in the period.
- *Substantiation rate*: of the cases closed in the period whose ``is_substantiated`` was
  decided (not null), the share that were substantiated.
- *Days to close*: ``closed_at − created_at`` in days, for the cases closed in the period.
- *Age* of an open case: whole days from ``created_at`` to the end instant.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, models
from django.db.models import Aggregate, Avg, Count, F, FloatField, Func, IntegerField, Min, Q, QuerySet, Value, When
from django.db.models.functions import TruncMonth
from django.utils import timezone

from cases.models import Case, CaseStatus, Finding, IntakeChannel, Investigation, Severity
from organizations.models import Organization

NOT_SET = "(not set)"
TOP_SLICES = 10  # bars per breakdown chart; the rest is summed into one "Other" bar
TOP_CATEGORIES = 12  # rows of the category table
OLDEST_OPEN = 10
MAX_MONTHS = 36  # longer periods are shown by quarter, then by year
AGE_BUCKETS: list[tuple[str, int, int | None]] = [
    ("0–30 days", 0, 30),
    ("31–60 days", 31, 60),
    ("61–90 days", 61, 90),
    ("91–180 days", 91, 180),
    ("Over 180 days", 181, None),
]
SEVERITY_ORDER = [Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW]
FINDING_ORDER = [Finding.SUBSTANTIATED, Finding.UNSUBSTANTIATED, Finding.INCONCLUSIVE, Finding.NONE]


class DaysBetween(Func):
    """``end − start`` in (fractional) days, as a float, on SQLite and PostgreSQL."""

    arity = 2
    output_field = FloatField()
    # PostgreSQL: EXTRACT(EPOCH …) is numeric; the cast keeps Python floats.
    template = "CAST(EXTRACT(EPOCH FROM (%(expressions)s)) / 86400.0 AS double precision)"
    arg_joiner = " - "

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        """SQLite stores UTC text that ``julianday`` reads: no Python function per row."""
        return self.as_sql(
            compiler, connection, template="(julianday(%(expressions)s))", arg_joiner=") - julianday(", **extra_context
        )


class Median(Aggregate):
    """PostgreSQL's ``percentile_cont(0.5)`` over one expression (not available on SQLite)."""

    function = "percentile_cont"
    name = "Median"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


@dataclass(frozen=True)
class Slice:
    """One bar of a breakdown: a label, its count and its share of the whole (0–1)."""

    label: str
    count: int
    share: float


@dataclass(frozen=True)
class MonthPoint:
    """Cases opened and closed in one month (or quarter) of the period, in the organization's zone."""

    start: dt.date
    label: str
    new: int
    closed: int
    new_by_severity: dict[str, int]


@dataclass(frozen=True)
class CategoryRow:
    """One category: cases, open at period end, closed in period, and its substantiation rate."""

    category: str
    total: int
    open_at_end: int
    closed_in_period: int
    substantiated: int
    decided: int

    @property
    def substantiation_rate(self) -> float | None:
        """Substantiated / decided closures, or None when nothing was decided."""
        return self.substantiated / self.decided if self.decided else None


@dataclass(frozen=True)
class OpenCase:
    """One of the oldest cases still open at period end."""

    reference: str
    title: str
    category: str
    severity: str
    status: str
    created_on: dt.date
    age_days: int


@dataclass
class BoardReportData:
    """Everything the board report shows, computed for one set of cases and one period."""

    timezone: str
    period_start: dt.date | None
    period_end: dt.date | None
    end_instant: dt.datetime
    total_cases: int = 0
    new_in_period: int = 0
    closed_in_period: int = 0
    open_at_period_end: int = 0
    substantiated: int = 0
    decided: int = 0
    median_days_to_close: float | None = None
    mean_days_to_close: float | None = None
    anonymous: int = 0
    by_month: list[MonthPoint] = field(default_factory=list)
    trend_unit: str = "month"  # what each ``by_month`` point covers: month, quarter or year
    by_category: list[CategoryRow] = field(default_factory=list)
    by_severity: list[Slice] = field(default_factory=list)
    by_channel: list[Slice] = field(default_factory=list)
    by_business_unit: list[Slice] = field(default_factory=list)
    by_country: list[Slice] = field(default_factory=list)
    open_by_age: list[Slice] = field(default_factory=list)
    oldest_open: list[OpenCase] = field(default_factory=list)
    findings: list[Slice] = field(default_factory=list)
    investigations: int = 0

    @property
    def substantiation_rate(self) -> float | None:
        """Substantiated / decided closures in the period, or None when nothing was decided."""
        return self.substantiated / self.decided if self.decided else None

    @property
    def anonymous_share(self) -> float | None:
        """Share of the cases reported anonymously, or None without cases."""
        return self.anonymous / self.total_cases if self.total_cases else None


def period_bounds(
    *, zone: zoneinfo.ZoneInfo, period_start: dt.date | None, period_end: dt.date | None, as_of: dt.datetime
) -> tuple[dt.datetime | None, dt.datetime]:
    """The period as instants: local midnight of the start day, local midnight after the end day."""
    start = dt.datetime.combine(period_start, dt.time(0), tzinfo=zone) if period_start else None
    end = dt.datetime.combine(period_end + dt.timedelta(days=1), dt.time(0), tzinfo=zone) if period_end else as_of
    return start, end


def board_report_data(
    *,
    organization: Organization,
    cases: QuerySet[Case],
    period_start: dt.date | None,
    period_end: dt.date | None,
    as_of: dt.datetime | None = None,
) -> BoardReportData:
    """Aggregate the report's KPIs, breakdowns and tables for ``cases`` over the period."""
    zone = organization.tzinfo
    start, end = period_bounds(
        zone=zone, period_start=period_start, period_end=period_end, as_of=as_of or timezone.now()
    )
    # The organization filter is already in ``cases``; repeating it costs nothing and keeps
    # another tenant's rows out even if a caller forgets it. Clearing the ordering keeps
    # GROUP BY queries to their own columns.
    qs = cases.filter(organization=organization).order_by()
    created_in = Q(created_at__lt=end) & (Q(created_at__gte=start) if start else Q())
    closed_in = Q(closed_at__lt=end) & (Q(closed_at__gte=start) if start else Q(closed_at__isnull=False))
    closed_by_end = Q(closed_at__lt=end) | Q(closed_at__isnull=True, status=CaseStatus.CLOSED)
    open_at_end = Q(created_at__lt=end) & ~closed_by_end
    days_to_close = DaysBetween(F("closed_at"), F("created_at"))

    # One scan for every headline number and the ageing buckets.
    buckets = {
        f"age_{i}": Count("pk", filter=open_at_end & _age_between(end, low, high))
        for i, (_, low, high) in enumerate(AGE_BUCKETS)
    }
    totals = qs.aggregate(
        total=Count("pk"),
        new=Count("pk", filter=created_in),
        closed=Count("pk", filter=closed_in),
        open=Count("pk", filter=open_at_end),
        substantiated=Count("pk", filter=closed_in & Q(is_substantiated=True)),
        decided=Count("pk", filter=closed_in & Q(is_substantiated__isnull=False)),
        mean_days=Avg(days_to_close, filter=closed_in),
        anonymous=Count("pk", filter=Q(is_anonymous=True)),
        first_created=Min("created_at"),
        **buckets,
    )
    data = BoardReportData(
        timezone=organization.timezone,
        period_start=period_start,
        period_end=period_end,
        end_instant=end,
        total_cases=totals["total"],
        new_in_period=totals["new"],
        closed_in_period=totals["closed"],
        open_at_period_end=totals["open"],
        substantiated=totals["substantiated"],
        decided=totals["decided"],
        mean_days_to_close=totals["mean_days"],
        anonymous=totals["anonymous"],
    )
    if not data.total_cases:
        return data

    data.median_days_to_close = _median(qs.filter(closed_in), days_to_close, count=data.closed_in_period)
    data.open_by_age = [
        Slice(label, totals[f"age_{i}"], _share(totals[f"age_{i}"], data.open_at_period_end))
        for i, (label, _, _) in enumerate(AGE_BUCKETS)
    ]
    first_month = (period_start if period_start else timezone.localtime(totals["first_created"], zone).date()).replace(
        day=1
    )
    last_month = (end - dt.timedelta(microseconds=1)).astimezone(zone).date().replace(day=1)
    data.by_month, data.trend_unit = _trend(
        qs, zone=zone, created_in=created_in, closed_in=closed_in, first=first_month, last=last_month
    )
    data.by_category = _categories(qs, open_at_end=open_at_end, closed_in=closed_in)
    severities = _counts(qs, "severity")
    data.by_severity = [
        Slice(str(sev.label), severities.get(sev.value, 0), _share(severities.get(sev.value, 0), data.total_cases))
        for sev in SEVERITY_ORDER
    ]
    channel_labels = dict(IntakeChannel.choices)
    data.by_channel = _slices(_counts(qs, "intake_channel"), data.total_cases, labels=channel_labels)
    data.by_business_unit = _slices(_counts(qs, "business_unit"), data.total_cases)
    data.by_country = _slices(_counts(qs, "country"), data.total_cases)
    data.oldest_open = _oldest_open(qs.filter(open_at_end), end=end, zone=zone)

    findings = dict(
        # Scoped through the cases subquery alone: adding the investigation's own
        # organization_id made PostgreSQL AND two bitmap indexes per case (minutes at 100k).
        Investigation.objects.filter(case__in=qs.values("pk"))
        .order_by()
        .values("finding")
        .annotate(n=Count("pk"))
        .values_list("finding", "n")
    )
    data.investigations = sum(findings.values())
    finding_labels = {**dict(Finding.choices), Finding.NONE: "No finding yet"}
    data.findings = [
        Slice(
            str(finding_labels[f.value]),
            findings.get(f.value, 0),
            _share(findings.get(f.value, 0), data.investigations),
        )
        for f in FINDING_ORDER
    ]
    unknown = data.investigations - sum(s.count for s in data.findings)
    if unknown:  # values outside the choices (imported data): counted, not hidden
        data.findings.append(Slice("Other", unknown, _share(unknown, data.investigations)))
    return data


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _age_between(end: dt.datetime, low: int, high: int | None) -> Q:
    """Cases whose whole-day age at ``end`` is in ``low``..``high`` (``high`` None: no limit)."""
    # age = floor((end − created) / 1 day): age ≥ low ⇔ created ≤ end − low days,
    # age ≤ high ⇔ created > end − (high + 1) days.
    q = Q(created_at__lte=end - dt.timedelta(days=low))
    if high is not None:
        q &= Q(created_at__gt=end - dt.timedelta(days=high + 1))
    return q


def _median(closed: QuerySet[Case], days: DaysBetween, *, count: int) -> float | None:
    """Median days to close: ``percentile_cont`` on PostgreSQL, the middle row(s) elsewhere."""
    if not count:
        return None
    if connections[closed.db].vendor == "postgresql":
        value = closed.aggregate(m=Median(days))["m"]
        return float(value) if value is not None else None
    # SQLite has no percentile function: sort the durations and read the one or two middle rows.
    low, high = (count - 1) // 2, count // 2
    middle = list(closed.annotate(days=days).order_by("days").values_list("days", flat=True)[low : high + 1])
    return sum(middle) / len(middle) if middle else None


def _counts(qs: QuerySet[Case], column: str) -> dict[str, int]:
    """``{value: cases}`` for one column, grouped in the database."""
    return {str(value): n for value, n in qs.values(column).annotate(n=Count("pk")).values_list(column, "n")}


def _slices(counts: dict[str, int], total: int, *, labels: dict[str, str] | None = None) -> list[Slice]:
    """The largest ``TOP_SLICES`` values as bars, most cases first, the rest as one "Other" bar."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    labels = labels or {}
    slices = [
        Slice(str(labels.get(value, value)) if value else NOT_SET, n, _share(n, total))
        for value, n in ordered[:TOP_SLICES]
    ]
    rest = ordered[TOP_SLICES:]
    if rest:
        n = sum(count for _, count in rest)
        slices.append(Slice(f"Other ({len(rest)} more)", n, _share(n, total)))
    return slices


def _categories(qs: QuerySet[Case], *, open_at_end: Q, closed_in: Q) -> list[CategoryRow]:
    """One row per category (largest first); past ``TOP_CATEGORIES`` the rest is summed."""
    rows = (
        qs.values("category")
        .annotate(
            total=Count("pk"),
            open=Count("pk", filter=open_at_end),
            closed=Count("pk", filter=closed_in),
            substantiated=Count("pk", filter=closed_in & Q(is_substantiated=True)),
            decided=Count("pk", filter=closed_in & Q(is_substantiated__isnull=False)),
        )
        .order_by("-total", "category")
    )
    result = [
        CategoryRow(
            category=row["category"] or NOT_SET,
            total=row["total"],
            open_at_end=row["open"],
            closed_in_period=row["closed"],
            substantiated=row["substantiated"],
            decided=row["decided"],
        )
        for row in rows
    ]
    if len(result) > TOP_CATEGORIES:
        rest = result[TOP_CATEGORIES - 1 :]
        result = [*result[: TOP_CATEGORIES - 1], _sum_categories(f"Other ({len(rest)} categories)", rest)]
    return result


def _sum_categories(label: str, rows: Iterable[CategoryRow]) -> CategoryRow:
    rows = list(rows)
    return CategoryRow(
        category=label,
        total=sum(r.total for r in rows),
        open_at_end=sum(r.open_at_end for r in rows),
        closed_in_period=sum(r.closed_in_period for r in rows),
        substantiated=sum(r.substantiated for r in rows),
        decided=sum(r.decided for r in rows),
    )


MONTH_NAMES = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _month_key(value: dt.datetime | dt.date, zone: zoneinfo.ZoneInfo) -> dt.date:
    """The first day of the month a ``TruncMonth`` value stands for, in the organization's zone."""
    if isinstance(value, dt.datetime):
        value = (timezone.localtime(value, zone) if timezone.is_aware(value) else value).date()
    return value.replace(day=1)


def _month_of(column: str, *, months: list[dt.date], zone: zoneinfo.ZoneInfo, vendor: str) -> Any:
    """An expression for the local month of ``column``; ``_month_value`` reads what it returns.

    PostgreSQL truncates natively (``AT TIME ZONE``). Django's SQLite ``TruncMonth`` with a
    zone calls a Python function per row (≈ 10 s per million rows), so there the month is
    the index of the last local month start not after the value: a CASE over a few dozen
    UTC instants, evaluated in C, with the same answer across DST changes.
    """
    if vendor == "postgresql":
        return TruncMonth(column, tzinfo=zone)
    whens = [
        When(**{f"{column}__lt": dt.datetime.combine(month, dt.time(0), tzinfo=zone)}, then=Value(i))
        for i, month in enumerate(months[1:])
    ]
    return models.Case(*whens, default=Value(len(months) - 1), output_field=IntegerField())


def _month_value(value: Any, *, months: list[dt.date], zone: zoneinfo.ZoneInfo) -> dt.date:
    """The month a ``_month_of`` result stands for."""
    return months[value] if isinstance(value, int) else _month_key(value, zone)


def _trend(
    qs: QuerySet[Case], *, zone: zoneinfo.ZoneInfo, created_in: Q, closed_in: Q, first: dt.date, last: dt.date
) -> tuple[list[MonthPoint], str]:
    """New (by severity) and closed cases per month of the period (per quarter or year when long)."""
    months: list[dt.date] = []
    cursor = first
    while cursor <= last:
        months.append(cursor)
        cursor = (cursor + dt.timedelta(days=32)).replace(day=1)
    if not months:
        return [], "month"
    vendor = connections[qs.db].vendor
    new: dict[dt.date, dict[str, int]] = {}
    for month, severity, n in (
        qs.filter(created_in)
        .annotate(month=_month_of("created_at", months=months, zone=zone, vendor=vendor))
        .values_list("month", "severity")
        .annotate(n=Count("pk"))
        .values_list("month", "severity", "n")
    ):
        bucket = new.setdefault(_month_value(month, months=months, zone=zone), {})
        bucket[severity] = bucket.get(severity, 0) + n
    closed: dict[dt.date, int] = {}
    for month, n in (
        qs.filter(closed_in)
        .annotate(month=_month_of("closed_at", months=months, zone=zone, vendor=vendor))
        .values_list("month")
        .annotate(n=Count("pk"))
        .values_list("month", "n")
    ):
        key = _month_value(month, months=months, zone=zone)
        closed[key] = closed.get(key, 0) + n

    # Up to three years by month, up to nine by quarter, longer spans by year.
    span = 1 if len(months) <= MAX_MONTHS else 3 if len(months) <= 3 * MAX_MONTHS else 12
    unit = {1: "month", 3: "quarter", 12: "year"}[span]
    points: dict[dt.date, MonthPoint] = {}
    for month in months:
        key = month.replace(month=(month.month - 1) // span * span + 1)
        sev = new.get(month, {})
        previous = points.get(key) or MonthPoint(key, _period_label(key, span), 0, 0, {})
        points[key] = MonthPoint(
            key,
            previous.label,
            previous.new + sum(sev.values()),
            previous.closed + closed.get(month, 0),
            {s: previous.new_by_severity.get(s, 0) + sev.get(s, 0) for s in {*previous.new_by_severity, *sev}},
        )
    return list(points.values()), unit


def _period_label(start: dt.date, span: int) -> str:
    """``Jan 2026``, ``2026 Q1`` or ``2026``."""
    if span == 12:
        return str(start.year)
    if span == 3:
        return f"{start.year} Q{(start.month - 1) // 3 + 1}"
    return f"{MONTH_NAMES[start.month - 1]} {start.year}"


def _oldest_open(open_cases: QuerySet[Case], *, end: dt.datetime, zone: zoneinfo.ZoneInfo) -> list[OpenCase]:
    """The ``OLDEST_OPEN`` cases open longest at the end instant."""
    severity_labels = dict(Severity.choices)
    status_labels = dict(CaseStatus.choices)
    rows = open_cases.order_by("created_at", "pk").values(
        "reference", "title", "category", "severity", "status", "created_at", "closed_at"
    )[:OLDEST_OPEN]
    return [
        OpenCase(
            reference=row["reference"],
            title=row["title"],
            category=row["category"] or NOT_SET,
            severity=str(severity_labels.get(row["severity"], row["severity"])),
            # The row's status is today's: a case closed since the period ended says so.
            status="Closed after period end"
            if row["closed_at"] is not None
            else str(status_labels.get(row["status"], row["status"])),
            created_on=timezone.localtime(row["created_at"], zone).date(),
            age_days=(end - row["created_at"]).days,
        )
        for row in rows
    ]
