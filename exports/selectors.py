"""Reads about export jobs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from django.db.models import Count, Min, Q, QuerySet

from exports.models import ExportJob, ExportStatus


def _jobs(organization_ids: Collection[int] | None) -> QuerySet[ExportJob]:
    jobs = ExportJob.objects.all()
    return jobs if organization_ids is None else jobs.filter(organization_id__in=organization_ids)


def export_jobs_active_by_organization(*, organization_ids: Collection[int] | None = None) -> dict[str, dict[str, int]]:
    """Pending and processing exports per organization slug, for organizations with any."""
    active = (
        _jobs(organization_ids)
        .filter(status__in=[ExportStatus.PENDING, ExportStatus.PROCESSING])
        .values("organization__slug")
        .annotate(
            pending=Count("pk", filter=Q(status=ExportStatus.PENDING)),
            processing=Count("pk", filter=Q(status=ExportStatus.PROCESSING)),
        )
        .order_by("organization__slug")
    )
    return {row["organization__slug"]: {"pending": row["pending"], "processing": row["processing"]} for row in active}


def export_oldest_pending_created_at(*, organization_ids: Collection[int] | None = None) -> dt.datetime | None:
    """When the oldest export still pending was requested (None when none is)."""
    oldest = _jobs(organization_ids).filter(status=ExportStatus.PENDING).aggregate(oldest=Min("created_at"))
    return oldest["oldest"]


def export_jobs_failed_count(*, since: dt.datetime, organization_ids: Collection[int] | None = None) -> int:
    """Exports that ended ``failed`` since ``since``."""
    return _jobs(organization_ids).filter(status=ExportStatus.FAILED, completed_at__gte=since).count()
