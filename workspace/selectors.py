"""Reads for the workspace: what runs, what finished, what goes out next, what failed.

Every selector takes ``organization_ids`` (None = every organization, for superusers) and
applies it first, so a member never reads another organization's rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Trunc, TruncDate

from exports.models import ExportFormat, ExportJob, ExportStatus
from scheduling.certificates import EXPIRY_WARNING
from scheduling.models import Delivery, DeliveryStatus, RecipientCertificate, ReportSchedule, RunStatus, ScheduleRun
from tagging.models import MAX_SLOTS, TagSlot

RUNNING = (ExportStatus.PENDING, ExportStatus.PROCESSING)
PROBLEM_DAYS = 7
CHART_DAYS = 30
CHART_WEEKS = 8


def _scoped(queryset: QuerySet[Any], path: str, organization_ids: Collection[int] | None) -> QuerySet[Any]:
    return queryset if organization_ids is None else queryset.filter(**{f"{path}__in": organization_ids})


def workspace_exports_running(*, organization_ids: Collection[int] | None, limit: int = 10) -> list[ExportJob]:
    """Exports waiting or being written, oldest first."""
    jobs = ExportJob.objects.filter(status__in=RUNNING).select_related("organization", "requested_by")
    return list(_scoped(jobs, "organization", organization_ids).order_by("created_at")[:limit])


def workspace_exports_finished(*, organization_ids: Collection[int] | None, limit: int = 5) -> list[ExportJob]:
    """The latest exports with a file to download, newest first."""
    jobs = ExportJob.objects.filter(status=ExportStatus.COMPLETED).select_related("organization", "requested_by")
    return list(_scoped(jobs, "organization", organization_ids).order_by("-completed_at")[:limit])


def workspace_schedules_next(*, organization_ids: Collection[int] | None, limit: int = 5) -> list[ReportSchedule]:
    """Active schedules by their next run."""
    schedules = ReportSchedule.objects.filter(is_active=True, next_run_at__isnull=False).select_related("organization")
    return list(_scoped(schedules, "organization", organization_ids).order_by("next_run_at")[:limit])


def workspace_runs_recent(*, organization_ids: Collection[int] | None, limit: int = 5) -> list[ScheduleRun]:
    """The latest report runs with their deliveries."""
    runs = ScheduleRun.objects.select_related("schedule__organization").prefetch_related("deliveries")
    return list(_scoped(runs, "schedule__organization", organization_ids).order_by("-created_at")[:limit])


@dataclass
class Problems:
    """What went wrong lately: failed or partial report runs and failed exports."""

    runs: list[ScheduleRun]
    exports: list[ExportJob]

    @property
    def count(self) -> int:
        return len(self.runs) + len(self.exports)


def workspace_problems(
    *, organization_ids: Collection[int] | None, now: dt.datetime, days: int = PROBLEM_DAYS, limit: int = 10
) -> Problems:
    """Report runs that failed or partly failed, and exports that failed, in the last ``days``."""
    since = now - dt.timedelta(days=days)
    runs = (
        ScheduleRun.objects.filter(status__in=[RunStatus.FAILED, RunStatus.PARTIAL], created_at__gte=since)
        .select_related("schedule__organization")
        .prefetch_related("deliveries")
    )
    exports = ExportJob.objects.filter(status=ExportStatus.FAILED, created_at__gte=since).select_related("organization")
    return Problems(
        runs=list(_scoped(runs, "schedule__organization", organization_ids).order_by("-created_at")[:limit]),
        exports=list(_scoped(exports, "organization", organization_ids).order_by("-created_at")[:limit]),
    )


@dataclass
class TagUsage:
    """Configured tag slots of one organization, out of ``MAX_SLOTS``."""

    organization: str
    configured: int
    active: int
    slots: int = MAX_SLOTS


def workspace_tag_usage(*, organization_ids: Collection[int] | None) -> list[TagUsage]:
    """Tag slots used per organization (organizations with none are left out)."""
    rows = (
        _scoped(TagSlot.objects.all(), "organization", organization_ids)
        .values("organization__name")
        .annotate(configured=Count("pk"), active=Count("pk", filter=Q(is_active=True)))
        .order_by("organization__name")
    )
    return [
        TagUsage(organization=r["organization__name"], configured=r["configured"], active=r["active"]) for r in rows
    ]


@dataclass
class Warnings:
    """Things that will go wrong unless someone acts."""

    certificates: list[RecipientCertificate] = field(default_factory=list)
    paused: list[ReportSchedule] = field(default_factory=list)
    failing: list[ReportSchedule] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.certificates) + len(self.paused) + len(self.failing)


def workspace_warnings(*, organization_ids: Collection[int] | None, now: dt.datetime, limit: int = 10) -> Warnings:
    """Recipient certificates expired or expiring soon; schedules paused or failing in a row."""
    certificates = RecipientCertificate.objects.filter(not_after__lte=now + EXPIRY_WARNING).select_related(
        "organization"
    )
    schedules = ReportSchedule.objects.select_related("organization")
    paused = schedules.filter(is_active=False).exclude(paused_reason="")
    failing = schedules.filter(is_active=True, consecutive_failures__gt=0)
    return Warnings(
        certificates=list(_scoped(certificates, "organization", organization_ids).order_by("not_after")[:limit]),
        paused=list(_scoped(paused, "organization", organization_ids).order_by("name")[:limit]),
        failing=list(_scoped(failing, "organization", organization_ids).order_by("-consecutive_failures")[:limit]),
    )


@dataclass
class Series:
    """Counts per period for each key (a format, a delivery outcome)."""

    labels: list[dt.date]
    counts: dict[str, list[int]]

    @property
    def total(self) -> int:
        return sum(sum(values) for values in self.counts.values())


def workspace_exports_per_day(
    *, organization_ids: Collection[int] | None, zone: ZoneInfo, now: dt.datetime, days: int = CHART_DAYS
) -> Series:
    """Exports requested per local day over the last ``days`` days, by format."""
    today = now.astimezone(zone).date()
    labels = [today - dt.timedelta(days=days - 1 - i) for i in range(days)]
    start = dt.datetime.combine(labels[0], dt.time(), tzinfo=zone)
    rows = (
        _scoped(ExportJob.objects.filter(created_at__gte=start), "organization", organization_ids)
        .annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("day", "format")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counts = {fmt: [0] * days for fmt in ExportFormat.values}
    index = {day: i for i, day in enumerate(labels)}
    for row in rows:
        i = index.get(row["day"])
        if i is not None and row["format"] in counts:
            counts[row["format"]][i] += row["n"]
    return Series(labels=labels, counts={fmt: values for fmt, values in counts.items() if any(values)})


def workspace_deliveries_per_week(
    *, organization_ids: Collection[int] | None, zone: ZoneInfo, now: dt.datetime, weeks: int = CHART_WEEKS
) -> Series:
    """Report deliveries per local week (Monday first) over the last ``weeks`` weeks, by outcome."""
    today = now.astimezone(zone).date()
    monday = today - dt.timedelta(days=today.weekday())
    labels = [monday - dt.timedelta(weeks=weeks - 1 - i) for i in range(weeks)]
    start = dt.datetime.combine(labels[0], dt.time(), tzinfo=zone)
    rows = (
        _scoped(Delivery.objects.filter(run__created_at__gte=start), "run__schedule__organization", organization_ids)
        .annotate(week=Trunc("run__created_at", "week", tzinfo=zone))
        .values("week", "status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counts = {status: [0] * weeks for status in DeliveryStatus.values}
    index = {week: i for i, week in enumerate(labels)}
    for row in rows:
        week = row["week"]
        i = index.get(week.astimezone(zone).date() if isinstance(week, dt.datetime) else week)
        if i is not None and row["status"] in counts:
            counts[row["status"]][i] += row["n"]
    return Series(labels=labels, counts=counts)
