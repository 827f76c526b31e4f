"""What operations keeps about the running system."""

from __future__ import annotations

from django.db import models


class WorkerHeartbeat(models.Model):
    """A django-q2 worker process and when it was last seen alive (one row per host and pid).

    django-q2's own cluster statistics live in Django's cache, which by default is memory
    local to each process: with the ORM broker no other process can read them.
    """

    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["host", "pid"], name="worker_heartbeat_once")]
        indexes = [models.Index(fields=["seen_at"], name="worker_heartbeat_seen_idx")]

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"
