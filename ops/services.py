"""Writes of the operations app: worker heartbeats."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from ops.models import WorkerHeartbeat


def worker_heartbeat_record(*, host: str, pid: int, started_at: dt.datetime, now: dt.datetime | None = None) -> None:
    """Record that the worker process ``pid`` on ``host`` is alive now."""
    now = now or timezone.now()
    WorkerHeartbeat.objects.update_or_create(host=host, pid=pid, defaults={"started_at": started_at, "seen_at": now})


def worker_heartbeats_prune(*, before: dt.datetime) -> int:
    """Forget workers not seen since ``before``; returns how many."""
    deleted, _ = WorkerHeartbeat.objects.filter(seen_at__lt=before).delete()
    return deleted
