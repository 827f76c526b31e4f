"""The operations status: queue, exports per organization, failures, live workers."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection
from typing import Any

from django.conf import settings
from django.utils import timezone

from exports.selectors import (
    export_jobs_active_by_organization,
    export_jobs_failed_count,
    export_oldest_pending_created_at,
)
from ops.models import WorkerHeartbeat
from scheduling.selectors import schedule_runs_failed_count

logger = logging.getLogger(__name__)

SEEN_WITHIN = dt.timedelta(minutes=1)
FAILED_WITHIN = dt.timedelta(hours=24)


def task_queue_depth() -> int | None:
    """Tasks waiting in django-q2's broker, not yet taken by a cluster (None when the
    broker cannot be reached)."""
    from django_q.brokers import get_broker

    try:
        return int(get_broker().queue_size())
    except Exception:
        logger.warning("the task broker did not answer", exc_info=True)
        return None


def worker_heartbeats_seen_count(*, since: dt.datetime) -> int:
    """Worker processes that reported themselves alive since ``since``."""
    return WorkerHeartbeat.objects.filter(seen_at__gte=since).count()


def ops_status_read(
    *, now: dt.datetime | None = None, organization_ids: Collection[int] | None = None
) -> dict[str, Any]:
    """The figures of ``manage.py ops_status`` and of the admin's status page.

    ``organization_ids`` limits what is about organizations (their exports, failures and
    runs) to those; None means all. The queue and the workers are shared by everyone.
    """
    now = now or timezone.now()
    oldest = export_oldest_pending_created_at(organization_ids=organization_ids)
    since = now - FAILED_WITHIN
    return {
        "queue_depth": task_queue_depth(),
        "jobs": export_jobs_active_by_organization(organization_ids=organization_ids),
        "oldest_pending_seconds": None if oldest is None else max(0, int((now - oldest).total_seconds())),
        "failed_last_24h": {
            "exports": export_jobs_failed_count(since=since, organization_ids=organization_ids),
            "runs": schedule_runs_failed_count(since=since, organization_ids=organization_ids),
        },
        "workers_seen_last_minute": worker_heartbeats_seen_count(since=now - SEEN_WITHIN),
        "export_max_concurrent_per_org": int(settings.EXPORT_MAX_CONCURRENT_PER_ORG),
        "generated_at": now.isoformat(),
    }
